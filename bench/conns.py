#!/usr/bin/env python3
"""Open N connections to 127.0.0.1:PORT and hold them, for bench/memory.sh.

usage: conns.py PORT N request|silent HOLD_SECONDS

request: each connection sends `GET /?rid=<i> HTTP/1.1` and reads the whole response
         (Content-Length), then stays open, idle, keep-alive: a spliced connection in ringlb.
silent:  each connection sends nothing: a connection waiting for its request line.

Prints `READY <open>` once every connection is set up (open = how many are still open and,
in request mode, got a full 200 response), then holds them until stdin closes or HOLD_SECONDS
pass, then closes them all and prints `CLOSED`.
"""

import resource
import selectors
import socket
import sys
import time


def main():
    port, n, mode, hold = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))
    socks = []
    # Connect in batches so the listener's backlog never overflows.
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect(("127.0.0.1", port))
        except OSError as e:
            print(f"connect {i}: {e}", file=sys.stderr)
            s.close()
            break
        socks.append(s)
        if mode == "request":
            s.sendall(f"GET /?rid={100000 + i} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        if i % 200 == 199:
            time.sleep(0.01)
    good = []
    if mode == "request":
        sel = selectors.DefaultSelector()
        bufs = {}
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            bufs[s] = b""
        # Give up on the rest once nothing has arrived for STALL seconds (a proxy out of file
        # descriptors leaves the surplus connections in its accept backlog).
        stall, last = 5.0, time.time()
        pending = len(socks)
        while pending and time.time() - last < stall:
            for key, _ in sel.select(timeout=1):
                last = time.time()
                s = key.fileobj
                try:
                    chunk = s.recv(4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(s)
                    pending -= 1
                    continue
                bufs[s] += chunk
                b = bufs[s]
                head, sep, body = b.partition(b"\r\n\r\n")
                if sep:
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            length = int(v)
                    if len(body) >= length:
                        sel.unregister(s)
                        pending -= 1
                        if head.startswith(b"HTTP/1.1 200"):
                            good.append(s)
        sel.close()
    else:
        good = list(socks)
    # Still open? A closed peer shows up as readable with EOF.
    time.sleep(0.5)
    sel = selectors.DefaultSelector()
    for s in good:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    closed = len(sel.select(timeout=0))
    sel.close()
    print(f"READY {len(good) - closed} of {n}", flush=True)
    end = time.time() + hold
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    while time.time() < end:
        if sel.select(timeout=min(1.0, max(end - time.time(), 0.01))):
            if not sys.stdin.readline():
                break
    for s in socks:
        s.close()
    print("CLOSED", flush=True)


if __name__ == "__main__":
    main()
