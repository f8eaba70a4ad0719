"""Memory per idle HTTP/1.1 keep-alive connection: opens N connections to URL's host and
port, sends one GET on each and reads its answer, then leaves them all open and silent, and
prints how much the server's resident memory (the sum over PIDS) grew per connection.

    python3 bench/idle_driver.py HOST PORT PATH N PID [PID ...]
"""

import resource
import socket
import sys
import time


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def read_answer(sock):
    """Reads one response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(4096)
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n")[0].decode())


def main():
    host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    pids = [int(p) for p in sys.argv[5:]]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = f"GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n".encode()
    time.sleep(0.5)
    before = rss_kib(pids)
    sockets = []
    for _ in range(n):
        sock = socket.create_connection((host, port))
        sock.sendall(request)
        read_answer(sock)
        sockets.append(sock)
    # Past the gateway's `idle_release_ms` (1 s) for the last connection too: all parked.
    time.sleep(3.0)
    after = rss_kib(pids)
    print(f"{n} {before} {after} {(after - before) / n:.2f}")
    for sock in sockets:
        sock.close()


main()
