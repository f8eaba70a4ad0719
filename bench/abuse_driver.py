#!/usr/bin/env python3
"""Abuse driver for bench/abuse.sh: holds hostile client connections against a gateway
while the script measures what other clients get. Each case runs until killed or until its
duration is over; it prints one JSON line with what it observed.

  abuse_driver.py CASE HOST:PORT COUNT SECONDS

CASE is one of:
  idle         COUNT sockets that never send a byte
  slow-headers COUNT sockets sending one header line per second, never ending the head
  slow-body    COUNT POSTs declaring 1 MB and sending one byte per second
  abort        POSTs of 64 KB broken off after 1 KB, COUNT at a time, again and again

The hostile connections come from 127.0.0.2, so that per-address limits tell them apart
from the well-behaved client on 127.0.0.1.
"""
import asyncio
import json
import sys
import time

SOURCE = ("127.0.0.2", 0)


async def hold(host, port, first, drip, stats, stop_at):
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=SOURCE)
    except OSError:
        stats["refused"] += 1
        return
    stats["opened"] += 1
    try:
        if first:
            writer.write(first)
            await writer.drain()
        while time.monotonic() < stop_at:
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=1.0)
                if not data:
                    stats["closed_by_server"] += 1
                    return
                stats["answered"] += 1
                return
            except asyncio.TimeoutError:
                pass
            if drip:
                writer.write(drip)
                await writer.drain()
    except (ConnectionError, OSError):
        stats["closed_by_server"] += 1
    finally:
        writer.close()


async def abort_loop(host, port, stats, stop_at):
    head = b"POST /abuse HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n"
    while time.monotonic() < stop_at:
        try:
            _, writer = await asyncio.open_connection(host, port, local_addr=SOURCE)
        except OSError:
            stats["refused"] += 1
            await asyncio.sleep(0.01)
            continue
        stats["opened"] += 1
        writer.write(head + b"x" * 1024)
        await writer.drain()
        writer.transport.abort()


async def main():
    case, addr, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    host, port = addr.rsplit(":", 1)
    port = int(port)
    stop_at = time.monotonic() + seconds
    stats = {"case": case, "count": count, "opened": 0, "refused": 0, "closed_by_server": 0, "answered": 0}
    if case == "abort":
        tasks = [abort_loop(host, port, stats, stop_at) for _ in range(count)]
    else:
        first, drip = {
            "idle": (b"", b""),
            "slow-headers": (b"GET / HTTP/1.1\r\nHost: a\r\n", b"X-Slow: 1\r\n"),
            "slow-body": (b"POST /abuse HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n", b"x"),
        }[case]
        tasks = []
        for _ in range(count):
            tasks.append(hold(host, port, first, drip, stats, stop_at))
    await asyncio.gather(*tasks)
    print(json.dumps(stats))


if __name__ == "__main__":
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main())
