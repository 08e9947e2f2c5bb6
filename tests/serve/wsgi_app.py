"""WSGI apps of tests/test_gunicorn.py and benchmarks/bench_gunicorn.py.

``app`` routes:
    /               hello world
    /pid            the worker's pid
    /conn           the worker's pid and the client's port (keep-alive)
    /upstream?d=S   ask the upstream (SLP_UPSTREAM_PORT) to wait S seconds
    /active         the most requests this worker had in flight at once
    /where          is the socket module patched, and are we in a tasklet
"""
import os
import socket
from urllib.parse import parse_qs

_state = {"active": 0, "max_active": 0}
_upstream = {}   # one keep-alive connection pool to the upstream


def _ask_upstream(delay):
    port = int(os.environ["SLP_UPSTREAM_PORT"])
    pool = _upstream.setdefault(port, [])
    conn = pool.pop() if pool else socket.create_connection(("127.0.0.1", port))
    try:
        conn.sendall(b"%s\n" % str(delay).encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = conn.recv(256)
            if not chunk:
                raise ConnectionError("upstream closed")
            buf += chunk
    except BaseException:
        conn.close()
        raise
    pool.append(conn)
    return buf.strip()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    _state["active"] += 1
    _state["max_active"] = max(_state["max_active"], _state["active"])
    try:
        if path == "/":
            body = b"Hello, World!"
        elif path == "/pid":
            body = str(os.getpid()).encode()
        elif path == "/conn":
            body = ("%d %s" % (os.getpid(), environ["REMOTE_PORT"])).encode()
        elif path == "/upstream":
            delay = float(parse_qs(environ.get("QUERY_STRING", "")).get("d", ["0.01"])[0])
            body = _ask_upstream(delay) + (" %d" % os.getpid()).encode()
        elif path == "/active":
            body = str(_state["max_active"]).encode()
        elif path == "/where":
            import stackless_compat
            body = ("%s %s" % (socket.socket.__module__,
                               stackless_compat.getcurrent() is not stackless_compat.main)).encode()
        else:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    finally:
        _state["active"] -= 1
