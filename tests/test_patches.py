"""patch_all() and the patched modules.  Patching is process-wide, so
each scenario runs in a child interpreter."""
import os
import sys

import pytest

import helpers

def run(code, **kw):
    return helpers.run_patched(code, **kw)


def test_importing_never_patches():
    out = helpers.run_py("""
import socket, time
orig = socket.socket, time.sleep
import stackless_compat.patches as p
print(socket.socket is orig[0], time.sleep is orig[1], p.is_module_patched("socket"))
""").stdout
    assert out.split() == ["True", "True", "False"]


def test_patch_all_state_and_idempotence():
    out = run("""
import socket, time, select, selectors, ssl
import stackless_compat.patches as p
from stackless_compat.patches import socket as cosock
first = socket.socket
assert patch_all() is True and socket.socket is first
assert socket.socket is cosock.socket
assert p.get_original("socket", "socket").__module__ == "socket"
assert p.get_original("time", "sleep") is not time.sleep
assert p.is_module_patched("socket") and p.is_module_patched("ssl")
assert p.is_object_patched("select", "select")
assert select.epoll.__module__ == "stackless_compat.patches.select"
assert selectors.EpollSelector._selector_cls is select.epoll
assert not hasattr(select, "kqueue") and not hasattr(selectors, "KqueueSelector")
assert selectors.DefaultSelector.__name__ == "HubSelector"
assert ssl.SSLContext.__module__ == "stackless_compat.patches.ssl"
print("ok")
""")
    assert out.strip() == "ok"


def test_time_sleep_parks_tasklets():
    out = run("""
import time
out = []
def f(n):
    time.sleep(n * 0.02)
    out.append(n)
for n in (3, 1, 2):
    sl.tasklet(f)(n)
t0 = time.monotonic()
sl.run()
print(out, time.monotonic() - t0 < 0.5)
""")
    assert out.strip() == "[1, 2, 3] True"


def test_select_poll_selectors():
    out = run("""
import socket, select, selectors, time, errno
a, b = socket.socketpair()
got = []
def waiter():
    got.append(select.select([a], [], [], 5))
sl.tasklet(waiter)()
sl.schedule()
b.send(b"x")
time.sleep(0.01)
assert got == [([a], [], [])], got
assert select.select([a], [], [], 0) == ([a], [], [])
a.recv(1)
t0 = time.monotonic()
assert select.select([a], [], [], 0.02) == ([], [], [])
assert time.monotonic() - t0 >= 0.015
p = select.poll()
p.register(a, select.POLLIN)
assert p.poll(10) == []
b.send(b"y")
assert p.poll() == [(a.fileno(), select.POLLIN)]
a.recv(1)
sel = selectors.DefaultSelector()
sel.register(a, selectors.EVENT_READ, "data")
res = []
sl.tasklet(lambda: res.append(sel.select()))()
sl.schedule()
b.send(b"z")
time.sleep(0.01)
assert res[0][0][0].data == "data"
c = socket.socket(); fd = c.fileno(); c.close()
try:
    select.select([fd], [], [], 1)
except OSError as e:
    assert e.errno == errno.EBADF
print("ok")
""")
    assert out.strip() == "ok"


def test_http_server_and_urllib_in_one_process():
    out = run("""
import http.server, threading, urllib.request, socketserver, http.client
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello " + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
port = srv.server_address[1]
def serve():
    while True:
        srv.handle_request()
st = sl.tasklet(serve)()
results = []
def fetch(i):
    with urllib.request.urlopen("http://127.0.0.1:%d/p%d" % (port, i), timeout=10) as r:
        results.append(r.read())
for i in range(20):
    sl.tasklet(fetch)(i)
while len(results) < 20:
    sl.schedule() if sl.getruncount() > 1 else __import__("time").sleep(0.01)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
c.request("GET", "/x")
assert c.getresponse().read() == b"hello /x"
c.close()
st.kill()
srv.server_close()
print(sorted(results) == sorted(b"hello /p%d" % i for i in range(20)))
""")
    assert out.strip() == "True"


def test_tls_with_generated_cert():
    pytest.importorskip("trustme")
    out = run("""
import socket, ssl, time, trustme
ca = trustme.CA()
cert = ca.issue_cert("localhost")
sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
cert.configure_cert(sctx)
cctx = ssl.create_default_context()
ca.configure_trust(cctx)
assert isinstance(sctx, ssl.SSLContext)
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(50)
port = srv.getsockname()[1]
def handle(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
def server():
    with sctx.wrap_socket(srv, server_side=True) as ls:
        while True:
            c, _ = ls.accept()
            sl.tasklet(handle)(c)
done = []
def client(i):
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with cctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert isinstance(s, ssl.SSLSocket)
            msg = b"%d" % i * 5000
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(65536)
            assert got == msg
            done.append(i)
st = sl.tasklet(server)()
for i in range(20):
    sl.tasklet(client)(i)
t0 = time.monotonic()
while len(done) < 20 and time.monotonic() - t0 < 20:
    time.sleep(0.01)
# read timeout on a TLS socket
with socket.create_connection(("127.0.0.1", port)) as raw:
    with cctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.settimeout(0.05)
        try:
            s.recv(10)
        except TimeoutError as e:
            print("timeout:", e)
st.kill()
print(len(done))
""")
    assert "timeout: The read operation timed out" in out
    assert out.strip().endswith("20")


def test_runner_patch_flag(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text("""
import stackless, time, socket
from stackless_compat.patches import is_module_patched
out = []
for n in (2, 1):
    stackless.tasklet(lambda n: (time.sleep(n * 0.01), out.append(n)))(n)
stackless.run()
print(is_module_patched("socket"), out)
""")
    proc = helpers.run_runner("--patch", str(prog))
    assert proc.returncode == 0, helpers.describe(proc)
    assert proc.stdout.strip() == "True [1, 2]"


def test_late_patch_warns():
    proc = helpers.run_py("""
import warnings
from socket import socket as early
from stackless_compat.patches import patch_all, PatchWarning
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    patch_all()
print(any(issubclass(x.category, PatchWarning) and "__main__" in str(x.message) for x in w))
""")
    assert proc.stdout.strip() == "True", helpers.describe(proc)


def test_patch_off_main_thread_warns():
    proc = helpers.run_py("""
import threading, warnings
from stackless_compat.patches import patch_time, PatchWarning, _flush_warnings
res = []
def t():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        patch_time()
        _flush_warnings()
    res.append(any("main thread" in str(x.message) for x in w))
th = threading.Thread(target=t); th.start(); th.join()
print(res)
""")
    assert proc.stdout.strip() == "[True]", helpers.describe(proc)


def test_dns_threaded_resolver():
    out = run("""
import socket
print(socket.getaddrinfo("localhost", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4])
print(socket.gethostbyname("localhost"))
""")
    assert "127.0.0.1" in out
