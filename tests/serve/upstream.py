"""A slow upstream for tests/test_gunicorn.py and benchmarks/bench_gunicorn.py:
a TCP server (plain threads, no tasklets) that reads a line holding a delay
in seconds, waits that long and answers ``ok <delay>\\n``.  Prints its port.

    python3 upstream.py [PORT]
"""
import socket
import sys
import threading
import time


def serve(conn):
    with conn:
        f = conn.makefile("rb")
        for line in f:
            delay = float(line.strip() or 0)
            if delay > 0:
                time.sleep(delay)
            conn.sendall(b"ok %s\n" % line.strip())


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4096)
    print(s.getsockname()[1], flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
