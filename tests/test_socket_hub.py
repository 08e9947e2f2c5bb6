"""Cooperative sockets (patches/socket.py over hub/sock.c) on loopback,
used directly (without patch_all) so the rest of the suite is unaffected."""
import errno
import socket as stdsocket
import threading
import time

import pytest

import stackless_compat as sl
from stackless_compat.hub import sleep
from stackless_compat.patches import socket as cosocket

socket = cosocket.socket


def listener():
    srv = socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
    srv.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(2048)
    return srv


def pair():
    a, b = stdsocket.socketpair()
    return socket(fileno=a.detach()), socket(fileno=b.detach())


def run_until(cond, limit=30):
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        sleep(0.005)


def test_fd_is_nonblocking_timeout_is_stdlib():
    a, b = pair()
    with a, b:
        assert a.gettimeout() is None and a.getblocking()
        assert not stdsocket.socket.getblocking(a) or True
        a.settimeout(1.5)
        assert a.gettimeout() == 1.5
        a.setblocking(False)
        assert a.gettimeout() == 0.0
        with pytest.raises(BlockingIOError):
            a.recv(10)
        a.setblocking(True)
        assert a.gettimeout() is None
        with pytest.raises(ValueError):
            a.settimeout(-1)
        with pytest.raises(TypeError):
            a.settimeout("x")
        import os
        assert os.get_blocking(a.fileno()) is False


def test_thousand_clients_every_byte_checked():
    srv = listener()
    port = srv.getsockname()[1]
    done = []
    handlers = []

    def handle(c):
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)

    def server():
        while True:
            c, _ = srv.accept()
            handlers.append(sl.tasklet(handle)(c))

    def client(i):
        s = socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
        s.connect(("127.0.0.1", port))
        with s:
            for k in range(5):
                msg = (b"%d:%d|" % (i, k)) * (1 + (i * 37 + k) % 300)
                s.sendall(msg)
                buf = bytearray(len(msg))
                view = memoryview(buf)
                got = 0
                while got < len(msg):
                    n = s.recv_into(view[got:])
                    assert n > 0
                    got += n
                assert bytes(buf) == msg
        done.append(i)

    st = sl.tasklet(server)()
    for i in range(1000):
        sl.tasklet(client)(i)
    run_until(lambda: len(done) == 1000)
    run_until(lambda: all(not h.alive for h in handlers))
    st.kill()
    srv.close()
    assert sorted(done) == list(range(1000))


def test_large_sendall_with_slow_reader():
    a, b = pair()
    data = bytes(range(256)) * 40000   # 10 MB
    got = bytearray()
    with a, b:
        def reader():
            while len(got) < len(data):
                got.extend(b.recv(100000))
                sleep(0)

        t = sl.tasklet(reader)()
        a.sendall(data)
        run_until(lambda: not t.alive)
    assert got == data


def test_recv_timeout():
    a, b = pair()
    with a, b:
        a.settimeout(0.02)
        t0 = time.monotonic()
        with pytest.raises(stdsocket.timeout, match="timed out"):
            a.recv(10)
        assert 0.015 < time.monotonic() - t0 < 1
        b.send(b"x")
        assert a.recv(10) == b"x"


def test_accept_timeout_and_connect_refused():
    srv = listener()
    with srv:
        srv.settimeout(0.01)
        with pytest.raises(TimeoutError):
            srv.accept()
        port = srv.getsockname()[1]
    s = socket()
    with s:
        with pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))
    s = socket()
    with s:
        assert s.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED


def test_close_from_other_tasklet_wakes_with_ebadf():
    a, b = pair()
    errs = []
    with b:
        def reader():
            try:
                a.recv(10)
            except OSError as e:
                errs.append(e.errno)

        sl.tasklet(reader)()
        sl.schedule()
        a.close()
        run_until(lambda: errs)
    assert errs == [errno.EBADF]


def test_two_readers_is_an_error_not_a_hang():
    a, b = pair()
    with a, b:
        t = sl.tasklet(a.recv)(10)
        sl.schedule()
        with pytest.raises(RuntimeError, match="already waiting"):
            a.recv(10)
        t.kill()


def test_kill_while_blocked_in_recv():
    a, b = pair()
    seen = []
    with a, b:
        def reader():
            try:
                a.recv(10)
            except sl.TaskletExit:
                seen.append("exit")
                raise

        t = sl.tasklet(reader)()
        sl.schedule()
        t.kill()
        assert seen == ["exit"]
        b.send(b"after")
        assert a.recv(10) == b"after"


def test_makefile_readline_and_dup():
    a, b = pair()
    with a, b:
        f = a.makefile("rwb")
        b.sendall(b"line1\nline2\n")
        assert f.readline() == b"line1\n"
        assert f.readline() == b"line2\n"
        f.write(b"back\n")
        f.flush()
        assert b.recv(10) == b"back\n"
        f.close()
        c = a.dup()
        with c:
            assert isinstance(c, socket)
            b.send(b"d")
            assert c.recv(1) == b"d"


def test_udp_sendto_recvfrom():
    s1 = socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM)
    s2 = socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM)
    with s1, s2:
        s1.bind(("127.0.0.1", 0))
        got = []
        sl.tasklet(lambda: got.append(s1.recvfrom(100)))()
        sl.schedule()
        s2.sendto(b"dgram", s1.getsockname())
        run_until(lambda: got)
        assert got[0][0] == b"dgram"
        buf = bytearray(10)
        s2.sendto(b"x2", s1.getsockname())
        n, addr = s1.recvfrom_into(buf)
        assert buf[:n] == b"x2"


def test_real_thread_peer():
    """A plain OS thread talks to a tasklet: the hub's poll releases the
    GIL."""
    srv = listener()
    port = srv.getsockname()[1]

    def peer():
        with stdsocket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"from thread")
            c.recv(10)

    th = threading.Thread(target=peer)
    th.start()
    with srv:
        c, _ = srv.accept()
        with c:
            assert c.recv(100) == b"from thread"
            c.send(b"ok")
    th.join()


def test_shutdown_and_sendfile(tmp_path):
    a, b = pair()
    p = tmp_path / "f"
    p.write_bytes(b"file-data" * 1000)
    with a, b, open(p, "rb") as f:
        out = []
        t = sl.tasklet(lambda: out.append(a.sendfile(f)))()
        got = bytearray()
        while len(got) < 9000:
            got.extend(b.recv(65536))
        run_until(lambda: not t.alive)
        assert out == [9000] and got == b"file-data" * 1000
        a.shutdown(stdsocket.SHUT_WR)
        assert b.recv(10) == b""


def test_accept_connect_in_c_numeric_skips_resolver(monkeypatch):
    # accept/connect/connect_ex are C (hub/sock.c); a numeric address
    # never reaches the resolver, a host name goes through it.
    from stackless_compat import _stackless
    calls = []

    def resolver(sock, address):
        calls.append(address)
        return ("127.0.0.1", address[1])
    _stackless._sock_set_resolver(resolver)
    try:
        with listener() as srv:
            port = srv.getsockname()[1]
            for timeout in (None, 5.0):
                c = socket()
                c.settimeout(timeout)
                c.connect(("127.0.0.1", port))
                fd, addr = srv._accept()
                assert isinstance(fd, int) and fd >= 0
                assert addr == c.getsockname()
                stdsocket.socket(fileno=fd).close()
                c.close()
            assert calls == []
            c = socket()
            assert c.connect_ex(("localhost-by-name.invalid", port)) == 0
            c.close()
            assert calls == [("localhost-by-name.invalid", port)]
            s, addr = srv.accept()
            assert isinstance(s, socket) and addr[0] == "127.0.0.1"
            s.close()
    finally:
        _stackless._sock_set_resolver(cosocket._resolve_addr)


def test_connect_errors_and_nonblocking_connect_ex():
    with listener() as srv:
        port = srv.getsockname()[1]
    c = socket()
    with c:
        assert c.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
    c = socket()
    with c, pytest.raises(ConnectionRefusedError):
        c.connect(("127.0.0.1", port))
    c = socket()
    with c, pytest.raises(OverflowError):     # the stdlib's own check
        c.connect(("127.0.0.1", 70000))
    with listener() as srv:
        c = socket()
        c.setblocking(False)
        with c:
            rc = c.connect_ex(srv.getsockname())
            assert rc in (0, errno.EINPROGRESS)
            # the connect completes; a second connect_ex reports EISCONN
            run_until(lambda: c.connect_ex(srv.getsockname()) == errno.EISCONN)
            srv.accept()[0].close()


def test_ipv6_and_unix_accept_connect(tmp_path):
    if stdsocket.has_ipv6:
        try:
            srv = socket(stdsocket.AF_INET6)
            srv.bind(("::1", 0))
        except OSError:
            srv = None
        if srv is not None:
            with srv:
                srv.listen(1)
                c = socket(stdsocket.AF_INET6)
                with c:
                    c.settimeout(5)
                    c.connect(srv.getsockname())
                    s, addr = srv.accept()
                    with s:
                        assert addr == c.getsockname() and len(addr) == 4
    path = str(tmp_path / "sock")
    srv = socket(stdsocket.AF_UNIX)
    with srv:
        srv.bind(path)
        srv.listen(1)
        c = socket(stdsocket.AF_UNIX)
        with c:
            c.connect(path)
            s, addr = srv.accept()
            s.close()
