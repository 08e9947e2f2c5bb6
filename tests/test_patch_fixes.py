"""Regressions found by CPython's own suites under patch_all()."""

import socket
import ssl
import subprocess
import sys
import textwrap


def run(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60)


def test_msg_dontwait_never_parks():
    proc = run("""
        from stackless_compat.patches import patch_all
        patch_all()
        import socket
        a, b = socket.socketpair()
        calls = {
            "recv": lambda: a.recv(10, socket.MSG_DONTWAIT),
            "recv_into": lambda: a.recv_into(bytearray(10), 10, socket.MSG_DONTWAIT),
            "recvfrom": lambda: a.recvfrom(10, socket.MSG_DONTWAIT),
            "recvmsg": lambda: a.recvmsg(10, 0, socket.MSG_DONTWAIT),
        }
        for name, call in calls.items():
            try:
                call()
                print(name, "returned")
            except BlockingIOError:
                print(name, "BlockingIOError")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "recv BlockingIOError", "recv_into BlockingIOError",
        "recvfrom BlockingIOError", "recvmsg BlockingIOError"]


def test_select_timeout_type_error():
    proc = run("""
        from stackless_compat.patches import patch_all
        patch_all()
        import select
        try:
            select.select([], [], [], "x")
        except TypeError:
            print("TypeError")
    """)
    assert proc.stdout.strip() == "TypeError", proc.stderr


def test_ssl_msg_callback_property():
    proc = run("""
        from stackless_compat.patches import patch_all
        patch_all()
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cb = lambda *a: None
        ctx._msg_callback = cb
        print(ctx._msg_callback is cb)
        ctx._msg_callback = None
        print(ctx._msg_callback)
    """)
    assert proc.stdout.split() == ["True", "None"], proc.stderr


def test_ssl_non_blocking_connect_ex_then_handshake():
    # test_ssl's test_non_blocking_connect_ex: connect_ex() on a
    # non-blocking SSLSocket returns EINPROGRESS, and do_handshake() must
    # then work (SSL want-read/write), as in the stdlib, which creates the
    # SSL object before connecting (it raised AttributeError on _sslobj).
    proc = run("""
        from stackless_compat.patches import patch_all
        patch_all()
        import errno, select, socket, ssl
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(socket.socket(), do_handshake_on_connect=False)
        s.setblocking(False)
        rc = s.connect_ex(srv.getsockname())
        print(rc in (0, errno.EINPROGRESS, errno.EWOULDBLOCK))
        print(s._sslobj is not None)
        select.select([], [s], [], 5.0)
        try:
            s.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            print("want")
        s.close()
        # a failed blocking connect() leaves no SSL object behind, as in
        # the stdlib, so the socket can be connected again
        port = srv.getsockname()[1]
        srv.close()
        s = ctx.wrap_socket(socket.socket(), do_handshake_on_connect=False)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            print("refused", s._sslobj is None)
        s.close()
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "want", "refused", "True"], \
        (proc.stdout, proc.stderr)
