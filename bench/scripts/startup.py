#!/usr/bin/env python3
"""Start-up time: execs the server, polls GET /healthz in a tight loop until
it answers 200, and prints the time from exec to that answer and the
server's VmRSS a second later.

Usage: startup.py SERVER_BINARY PORT [server flags...]
"""
import socket
import subprocess
import sys
import time


def healthz(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main():
    binary, port, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    start = time.monotonic()
    server = subprocess.Popen([binary, "--addr", f"127.0.0.1:{port}", *flags], stderr=subprocess.DEVNULL)
    try:
        while not healthz(port):
            if server.poll() is not None or time.monotonic() - start > 30:
                sys.exit("the server did not come up")
        ready = time.monotonic() - start
        time.sleep(1)
        print(f"first 200 after {ready * 1000:.1f} ms; VmRSS {rss_kib(server.pid)} KiB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
