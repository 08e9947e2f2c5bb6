"""A plain echo server for tests and benchmarks: the stdlib's selectors,
no stackless_compat, so it is a peer process that behaves like any
other.  Listens on a free loopback port, prints the port on its first
line, then echoes every connection until it is killed.

    echo = subprocess.Popen([sys.executable, "tools/echo_server.py"],
                            stdout=subprocess.PIPE, text=True)
    port = int(echo.stdout.readline())
"""
import selectors
import socket


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)
    print(srv.getsockname()[1], flush=True)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is srv:
                sel.register(srv.accept()[0], selectors.EVENT_READ)
            else:
                data = s.recv(4096)
                if data:
                    s.sendall(data)
                else:
                    sel.unregister(s)
                    s.close()


if __name__ == "__main__":
    main()
