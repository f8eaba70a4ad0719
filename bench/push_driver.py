#!/usr/bin/env python3
"""Push driver for bench/push.sh: devices on WebSocket connections and business servers
publishing, against a gateway's push routes (/push/connect, /push/devices, /push/publish,
behind `auth` with API keys). Stdlib only: raw sockets, a minimal WebSocket client
(handshake, masked client frames, unmasked server frames), a minimal HTTP/1.1 keep-alive
client. Each case prints one JSON line with what it measured.

  push_driver.py register   HOST:PORT KEY PREFIX FROM TO [TOPIC]
  push_driver.py idle-ws    HOST:PORT KEY PREFIX PID COUNTS SETTLE
  push_driver.py idle-http  HOST:PORT PID COUNTS SETTLE
  push_driver.py fanout     HOST:PORT KEY PUBKEY PREFIX N TOPIC SECONDS ACK_EVERY PID
  push_driver.py publish    HOST:PORT PUBKEY PREFIX DEVICES PUBLISHERS SECONDS PID

register   registers devices PREFIX-FROM .. PREFIX-(TO-1) (platform ws, following TOPIC if given) for
           the user of KEY, over 8 keep-alive connections.
idle-ws    opens WebSocket connections of devices PREFIX-0 .., up to each of COUNTS in turn
           (e.g. 5000,15000), waits for every `hello`, lets the gateway settle SETTLE s and
           reads the gateway's VmRSS (process PID) before and at each stage; the baseline is
           read after WARMUP connections were opened and closed.
idle-http  the same with HTTP/1.1 keep-alive connections that made one request (a 404).
fanout     connects N devices (all following TOPIC); then (1) two publishers in a closed loop
           publish to the topic for SECONDS s, never more than FANOUT_LAG messages per device
           ahead of the deliveries: delivered messages per second; (2) after the
           backlog is delivered, one publisher publishes at half that rate for SECONDS s:
           publish→deliver latency (p50, p99). Devices ack every ACK_EVERY messages and
           every ACK_PERIOD s (cumulative acks); each phase ends when every ack is answered.
publish    PUBLISHERS concurrent closed-loop publishers, each message to one of DEVICES
           devices (PREFIX-i): accepted (202) messages per second.

Client connections come from 127.0.0.2 .. 127.0.0.17 in turn, so that no source address
runs out of ephemeral ports.
"""
import asyncio
import base64
import json
import os
import resource
import sys
import time

SOURCES = [f"127.0.0.{i}" for i in range(2, 18)]
CONNECT_CONCURRENCY = 64
# In the fan-out's closed loop, publishers wait while the devices are this many messages behind.
FANOUT_LAG = 8
# Idle cases: connections opened and closed before the baseline RSS is read.
WARMUP = 1000
# Fan-out devices ack every ACK_EVERY messages, and whatever they hold every ACK_PERIOD s.
ACK_PERIOD = float(os.environ.get("ACK_PERIOD", "5"))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of a process so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


# --- HTTP/1.1 keep-alive client -------------------------------------------------------------


class Http:
    def __init__(self, host, port, source):
        self.host, self.port, self.source = host, port, source
        self.reader = self.writer = None

    async def request(self, method, path, headers=(), body=b""):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, local_addr=(self.source, 0))
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        self.writer.write(head.encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self):
        if self.writer is not None:
            self.writer.close()


# --- WebSocket device -----------------------------------------------------------------------


def masked_text(text):
    """A masked client text frame (FIN, opcode 1)."""
    payload = text.encode()
    n = len(payload)
    mask = os.urandom(4)
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
    if n < 126:
        header = bytes([0x81, 0x80 | n])
    else:
        header = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return header + mask + body


PONG = bytes([0x8A, 0x80]) + b"\0\0\0\0"


class Stats:
    def __init__(self):
        self.delivered = 0
        self.hellos = 0
        self.closed = 0
        self.errors = 0
        self.acks_sent = 0
        self.acks_answered = 0
        self.latencies = None  # a list while latencies are recorded


class Device(asyncio.Protocol):
    def __init__(self, device, key, stats, ack_every, hello):
        self.device, self.key, self.stats = device, key, stats
        self.ack_every = ack_every
        self.hello = hello
        self.buf = b""
        self.upgraded = False
        self.acked = 0
        self.last = 0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((
            f"GET /push/connect?device={self.device} HTTP/1.1\r\nHost: bench\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nx-api-key: {self.key}\r\n\r\n").encode())

    def connection_lost(self, exc):
        self.stats.closed += 1
        if not self.hello.done():
            self.hello.set_result(False)

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.stats.errors += 1
                self.hello.done() or self.hello.set_result(False)
                self.transport.close()
                return
            self.upgraded = True
            buf = buf[end + 4:]
        at, size = 0, len(buf)
        while size - at >= 2:
            b0, b1 = buf[at], buf[at + 1]
            n, head = b1 & 0x7F, 2
            if n == 126:
                if size - at < 4:
                    break
                n, head = int.from_bytes(buf[at + 2:at + 4], "big"), 4
            elif n == 127:
                if size - at < 10:
                    break
                n, head = int.from_bytes(buf[at + 2:at + 10], "big"), 10
            if size - at < head + n:
                break
            payload = buf[at + head:at + head + n]
            at += head + n
            opcode = b0 & 0x0F
            if opcode == 1:
                self.text(payload)
            elif opcode == 9:
                self.transport.write(PONG)
            elif opcode == 8:
                self.transport.close()
        self.buf = buf[at:] if at < size else b""

    def text(self, payload):
        if payload.startswith(b'{"type":"message"'):
            stats = self.stats
            stats.delivered += 1
            i = payload.find(b'"offset":') + 9
            offset = int(payload[i:payload.find(b",", i)])
            if stats.latencies is not None:
                j = payload.find(b'"t":') + 4
                k = j
                while payload[k] in b"0123456789.e-":
                    k += 1
                stats.latencies.append(time.perf_counter() - float(payload[j:k]))
            self.last = offset
            if offset - self.acked >= self.ack_every:
                self.ack()
        elif payload.startswith(b'{"type":"acked"'):
            self.stats.acks_answered += 1
        elif payload.startswith(b'{"type":"hello"'):
            # Acks count from what the store says the device acked already.
            i = payload.find(b'"acked":') + 8
            self.acked = self.last = int(payload[i:payload.find(b"}", i)])
            self.stats.hellos += 1
            self.hello.done() or self.hello.set_result(True)

    def ack(self):
        if self.last > self.acked:
            self.acked = self.last
            self.stats.acks_sent += 1
            self.transport.write(masked_text('{"type":"ack","offset":%d}' % self.last))


class Idle(asyncio.Protocol):
    """An HTTP/1.1 connection that makes one request and then holds the connection."""

    def __init__(self, stats, answered):
        self.stats, self.answered, self.buf = stats, answered, b""

    def connection_made(self, transport):
        transport.write(b"GET /nowhere HTTP/1.1\r\nHost: bench\r\n\r\n")

    def data_received(self, data):
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end >= 0 and not self.answered.done():
            head = self.buf[:end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15:].split(b"\r\n")[0]) if i >= 0 else 0
            if len(self.buf) >= end + 4 + length:
                self.answered.set_result(True)

    def connection_lost(self, exc):
        self.stats.closed += 1
        if not self.answered.done():
            self.answered.set_result(False)


async def open_all(host, port, factories):
    """Opens one connection per factory (CONNECT_CONCURRENCY at a time); each factory
    returns (protocol, future resolved when the connection is ready)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    transports, ok = [], 0

    async def one(i, factory):
        nonlocal ok
        async with gate:
            protocol, ready = factory()
            try:
                transport, _ = await loop.create_connection(
                    lambda: protocol, host, port, local_addr=(SOURCES[i % len(SOURCES)], 0))
            except OSError:
                return
            transports.append(transport)
            try:
                if await asyncio.wait_for(ready, 30):
                    ok += 1
            except asyncio.TimeoutError:
                pass

    await asyncio.gather(*(one(i, f) for i, f in factories))
    return transports, ok


# --- cases ----------------------------------------------------------------------------------


async def register(host, port, key, prefix, first, count, topic=None):
    clients = [Http(host, port, SOURCES[i]) for i in range(8)]
    refused = 0
    started = time.perf_counter()

    async def work(client, ids):
        nonlocal refused
        for i in ids:
            body = {"device": f"{prefix}-{i}", "platform": "ws"}
            if topic:
                body["topics"] = [topic]
            status, answer = await client.request(
                "POST", "/push/devices", [("x-api-key", key), ("content-type", "application/json")],
                json.dumps(body).encode())
            if status != 201:
                refused += 1
                if refused < 3:
                    print(f"register: {status} {answer[:200]!r}", file=sys.stderr)

    await asyncio.gather(*(work(c, range(first + k, count, len(clients))) for k, c in enumerate(clients)))
    for c in clients:
        c.close()
    took = time.perf_counter() - started
    return {"case": "register", "count": count - first, "refused": refused,
            "seconds": round(took, 1), "per_second": round((count - first) / took)}


def device_factory(key, prefix, i, stats, ack_every=1 << 62):
    def make():
        hello = asyncio.get_running_loop().create_future()
        return Device(f"{prefix}-{i}", key, stats, ack_every, hello), hello
    return make


async def stages(host, port, pid, counts, settle, factory):
    """Opens connections up to each of `counts`, reading RSS before and at each stage.
    First WARMUP connections are opened and closed, so that the gateway's one-off growth
    (blocking threads, plugin instances, buffers of the connect burst) is in the baseline."""
    warm, _ = await open_all(host, port, [(i, factory(i)) for i in range(min(WARMUP, counts[0]))])
    for t in warm:
        t.close()
    await asyncio.sleep(settle)
    result = {"rss_before_kb": rss_kb(pid), "warmup": len(warm), "stages": []}
    transports, opened = [], 0
    for count in counts:
        started = time.perf_counter()
        more, ok = await open_all(host, port, [(i, factory(i)) for i in range(opened, count)])
        transports += more
        took = time.perf_counter() - started
        opened = count
        await asyncio.sleep(settle)
        result["stages"].append({"connections": count, "ready": None, "rss_kb": rss_kb(pid),
                                 "open_seconds": round(took, 1), "_ok": ok})
    total = 0
    for stage in result["stages"]:
        total += stage.pop("_ok")
        stage["ready"] = total
    open_now = sum(1 for t in transports if not t.is_closing())
    result["open_at_end"] = open_now
    for t in transports:
        t.close()
    await asyncio.sleep(0.5)
    return result


async def idle_ws(host, port, key, prefix, pid, counts, settle):
    stats = Stats()
    result = await stages(host, port, pid, counts, settle,
                          lambda i: device_factory(key, prefix, i, stats))
    result.update(case="idle-ws", errors=stats.errors)
    return result


async def idle_http(host, port, pid, counts, settle):
    stats = Stats()

    def factory(i):
        def make():
            answered = asyncio.get_running_loop().create_future()
            return Idle(stats, answered), answered
        return make

    result = await stages(host, port, pid, counts, settle, factory)
    result.update(case="idle-http")
    return result


async def publish_loop(client, pubkey, target, stop_at, counter, id_prefix, pace=None, ahead=None):
    """Publishes to `target` until `stop_at`: every `pace` s if given, else back to back
    (waiting while `ahead()` says the devices are too far behind)."""
    n = 0
    next_at = time.perf_counter()
    while True:
        while ahead is not None and ahead() and time.perf_counter() < stop_at:
            await asyncio.sleep(0.002)
        now = time.perf_counter()
        if now >= stop_at:
            return
        if pace:
            if now < next_at:
                await asyncio.sleep(next_at - now)
            next_at += pace
        n += 1
        body = json.dumps({"id": f"{id_prefix}-{n}", "target": target(n),
                           "payload": {"t": time.perf_counter()}}).encode()
        status, answer = await client.request(
            "POST", "/push/publish", [("x-api-key", pubkey), ("content-type", "application/json")], body)
        if status == 202:
            counter["accepted"] += 1
        else:
            counter["refused"] += 1
            if counter["refused"] < 3:
                print(f"publish: {status} {answer[:200]!r}", file=sys.stderr)


async def fanout(host, port, key, pubkey, prefix, n, topic, seconds, ack_every, pid, publish_at=None):
    """Devices connect to host:port; publishers publish there too, or to `publish_at`
    ((host, port) of another instance of a fleet)."""
    stats = Stats()
    started = time.perf_counter()
    transports, ok = await open_all(
        host, port, [(i, device_factory(key, prefix, i, stats, ack_every)) for i in range(n)])
    result = {"case": "fanout", "devices": n, "connected": ok,
              "connect_seconds": round(time.perf_counter() - started, 1), "ack_every": ack_every}
    devices = [t.get_protocol() for t in transports]
    run = f"{os.getpid()}-{int(time.time())}"

    async def acker():
        # Devices also ack what they hold every ACK_PERIOD s, inside the gateway's 10 s ack
        # timeout, so that nothing is resent while the gateway keeps up with the acks.
        while True:
            await asyncio.sleep(ACK_PERIOD)
            for d in devices:
                d.ack()

    async def drain(expected, limit):
        # Until every published message reached every device and every ack was answered,
        # or `limit` s.
        until = time.perf_counter() + limit
        while stats.delivered < expected and time.perf_counter() < until:
            await asyncio.sleep(0.2)
        for d in devices:
            d.ack()
        while stats.acks_answered < stats.acks_sent and time.perf_counter() < until:
            await asyncio.sleep(0.2)
        return stats.delivered >= expected and stats.acks_answered >= stats.acks_sent

    acking = asyncio.ensure_future(acker())

    # (1) Throughput: closed-loop publishers; deliveries counted over the run.
    counter = {"accepted": 0, "refused": 0}
    publish_host, publish_port = publish_at or (host, port)
    publishers = [Http(publish_host, publish_port, SOURCES[i]) for i in range(2)]
    cpu0, d0, t0 = cpu_seconds(pid), stats.delivered, time.perf_counter()
    own0, a0 = time.process_time(), stats.acks_answered
    stop_at = t0 + seconds
    # Publishers stay at most LAG messages per device ahead of what the devices got.
    ahead = lambda: (counter["accepted"] * ok - (stats.delivered - d0)) > FANOUT_LAG * ok
    await asyncio.gather(*(publish_loop(c, pubkey, lambda _: {"topic": topic}, stop_at, counter,
                                        f"fan-{run}-{k}", ahead=ahead) for k, c in enumerate(publishers)))
    t1 = time.perf_counter()
    d1, cpu1, own1 = stats.delivered, cpu_seconds(pid), time.process_time()
    rate = (d1 - d0) / (t1 - t0)
    result["throughput"] = {
        "seconds": round(t1 - t0, 1), "publishers": len(publishers),
        "published": counter["accepted"], "refused": counter["refused"],
        "publishes_per_second": round(counter["accepted"] / (t1 - t0), 2),
        "delivered": d1 - d0, "delivered_per_second": round(rate),
        "gateway_cpu_us_per_delivery": round((cpu1 - cpu0) * 1e6 / max(1, d1 - d0), 1),
        "gateway_cpu_cores": round((cpu1 - cpu0) / (t1 - t0), 2),
        "driver_cpu_cores": round((own1 - own0) / (t1 - t0), 2),
        "acks_answered_per_second": round((stats.acks_answered - a0) / (t1 - t0))}
    expected = counter["accepted"] * ok
    t2 = time.perf_counter()
    complete = await drain(expected, 120)
    t3 = time.perf_counter()
    result["throughput"]["backlog_drain_seconds"] = round(t3 - t2, 1)
    result["throughput"]["all_delivered"] = complete
    result["throughput"]["delivered_incl_backlog_per_second"] = round(
        (stats.delivered - d0) / (t3 - t0))

    # (2) Latency at about half the sustained delivery rate: one paced publisher.
    sustained = (stats.delivered - d0) / (t3 - t0)
    pub_rate = max(0.2, sustained / 2 / max(1, ok))
    counter2 = {"accepted": 0, "refused": 0}
    stats.latencies = []
    d4, t4 = stats.delivered, time.perf_counter()
    await publish_loop(publishers[0], pubkey, lambda _: {"topic": topic}, t4 + seconds,
                       counter2, f"lat-{run}", pace=1 / pub_rate)
    await drain(d4 + counter2["accepted"] * ok, 60)
    lat = stats.latencies
    stats.latencies = None
    result["latency"] = {
        "publishes_per_second": round(pub_rate, 2),
        "target_deliveries_per_second": round(pub_rate * ok),
        "published": counter2["accepted"], "refused": counter2["refused"],
        "samples": len(lat),
        "p50_ms": round(percentile(lat, 0.5) * 1000, 1) if lat else None,
        "p99_ms": round(percentile(lat, 0.99) * 1000, 1) if lat else None,
        "max_ms": round(max(lat) * 1000, 1) if lat else None}
    result["errors"], result["closed"] = stats.errors, stats.closed
    acking.cancel()
    for c in publishers:
        c.close()
    for t in transports:
        t.close()
    await asyncio.sleep(0.5)
    return result


async def publish(host, port, pubkey, prefix, devices, publishers, seconds, pid):
    counter = {"accepted": 0, "refused": 0}
    clients = [Http(host, port, SOURCES[i % len(SOURCES)]) for i in range(publishers)]
    run = f"{os.getpid()}-{int(time.time())}"
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(
        publish_loop(c, pubkey, lambda n, k=k: {"device": f"{prefix}-{(n * publishers + k) % devices}"},
                     t0 + seconds, counter, f"dur-{run}-{k}")
        for k, c in enumerate(clients)))
    took = time.perf_counter() - t0
    cpu1 = cpu_seconds(pid)
    for c in clients:
        c.close()
    return {"case": "publish", "publishers": publishers, "seconds": round(took, 1),
            "accepted": counter["accepted"], "refused": counter["refused"],
            "accepted_per_second": round(counter["accepted"] / took),
            "gateway_cpu_us_per_publish": round((cpu1 - cpu0) * 1e6 / max(1, counter["accepted"]), 1)}


def main():
    case, addr = sys.argv[1], sys.argv[2]
    host, port = addr.rsplit(":", 1)
    port = int(port)
    a = sys.argv[3:]
    if case == "register":
        coro = register(host, port, a[0], a[1], int(a[2]), int(a[3]), a[4] if len(a) > 4 else None)
    elif case == "idle-ws":
        coro = idle_ws(host, port, a[0], a[1], int(a[2]), [int(c) for c in a[3].split(",")], float(a[4]))
    elif case == "idle-http":
        coro = idle_http(host, port, int(a[0]), [int(c) for c in a[1].split(",")], float(a[2]))
    elif case == "fanout":
        publish_at = None
        if len(a) > 8:
            publish_host, publish_port = a[8].rsplit(":", 1)
            publish_at = (publish_host, int(publish_port))
        coro = fanout(host, port, a[0], a[1], a[2], int(a[3]), a[4], float(a[5]), int(a[6]), int(a[7]),
                      publish_at)
    elif case == "publish":
        coro = publish(host, port, a[0], a[1], int(a[2]), int(a[3]), float(a[4]), int(a[5]))
    else:
        sys.exit(f"unknown case {case}")
    print(json.dumps(asyncio.run(coro)))


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    main()
