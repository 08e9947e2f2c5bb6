"""Move a tasklet blocked in a server to another process, over a socket.

    python examples/migrate.py

The "server" is a tasklet that keeps a session (a running total and a
history) and waits on a channel for requests.  This process serves a few
requests, then, while the server tasklet is blocked in receive(), pickles
the channel -- which carries the blocked tasklet and its frames -- and
sends it to a child process over a loopback TCP connection.  The child
unpickles it (the tasklet is blocked on the restored channel again),
serves the remaining requests and prints the session, which is the same
as if one process had served them all.
"""

import pickle
import socket
import struct
import subprocess
import sys
from typing import Any

import stackless_compat as stackless

REQUESTS = [3, 4, 10, -2, 7, 1]


def session_server(requests: "stackless.channel[int | None]",
                   replies: list[tuple[Any, ...]]) -> None:
    total = 0
    history: list[int] = []
    while True:
        op = requests.receive()
        if op is None:
            break
        total += op
        history.append(total)
        replies.append((op, total))
    replies.append(("closed", total, history))


def send_msg(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack("!I", len(data)) + data)


def recv_msg(sock: socket.socket) -> bytes:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    n, = struct.unpack("!I", head)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def child(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        requests, replies, rest = pickle.loads(recv_msg(s))
    assert requests.balance == -1, "the server is blocked on its channel"
    for op in rest:
        requests.send(op)
    requests.send(None)
    for r in replies:
        print("child:", r)


def parent() -> int:
    requests: "stackless.channel[int | None]" = stackless.channel()
    replies: list[tuple[Any, ...]] = []
    server = stackless.tasklet(session_server)(requests, replies)
    server.run()                       # up to its first receive()
    half = len(REQUESTS) // 2
    for op in REQUESTS[:half]:
        requests.send(op)
    for r in replies:
        print("parent:", r)
    del replies[:]
    with socket.create_server(("127.0.0.1", 0)) as ls:
        port = ls.getsockname()[1]
        proc = subprocess.Popen([sys.executable, __file__, "--child",
                                 str(port)])
        conn, _ = ls.accept()
        with conn:
            # the server tasklet travels with its channel
            send_msg(conn, pickle.dumps((requests, replies,
                                         REQUESTS[half:])))
    server.kill()                       # it lives on in the child
    return proc.wait()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
    else:
        sys.exit(parent())
