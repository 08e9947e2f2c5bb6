"""The gunicorn worker class (stackless_compat.gunicorn.TaskletWorker) in a
real gunicorn master, driven over loopback by plain clients (threads and
http.client in this process).  Apps: tests/serve/wsgi_app.py,
tests/serve/flask_app.py; slow upstream: tests/serve/upstream.py.  Needs
the ``[serve]`` extra (gunicorn, flask).
"""
import concurrent.futures
import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest

from helpers import ROOT, ChildServer, child_env, scaled, wait_until

pytest.importorskip("gunicorn", reason="needs the [serve] extra: pip install -e '.[serve]'")

SERVE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serve")
WORKER = "stackless_compat.gunicorn.TaskletWorker"


@pytest.fixture(scope="module")
def upstream():
    proc = subprocess.Popen([sys.executable, os.path.join(SERVE_DIR, "upstream.py")],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    yield port
    proc.kill()
    proc.wait()
    proc.stdout.close()


class Gunicorn(ChildServer):
    """A gunicorn master with our worker class, as a child process."""

    label = "gunicorn"
    log_name = "gunicorn.log"
    stop_timeout = 40

    def __init__(self, upstream, *args, app="wsgi_app:app", workers=1, context=None):
        super().__init__("slp-gunicorn-")
        self.context = context
        self.workers = workers
        self.env = child_env({"SLP_UPSTREAM_PORT": str(upstream)})
        self.cwd = SERVE_DIR
        self.cmd = [sys.executable, "-m", "gunicorn", "-k", WORKER, "-w", str(workers),
                    "-b", "127.0.0.1:0", "--no-control-socket", "--log-level", "debug",
                    "--chdir", SERVE_DIR, *args, app]
        self.port = None

    def start(self, timeout=30):
        self.spawn()
        self.wait_ready(self._listening, timeout)
        # the workers are up once they answer
        wait_until(self._answers, timeout, lambda: "no answer:\n" + self.log())
        return self

    def _listening(self):
        log = self.log()
        m = re.search(r"Listening at: https?://127\.0\.0\.1:(\d+)", log)
        if m and log.count("Booting worker") >= self.workers:
            self.port = int(m.group(1))
            return True
        return False

    def _answers(self):
        try:
            get(self.port, "/", timeout=5, context=self.context)
        except OSError:
            return False
        return True


def get(port, path, timeout=30, context=None, conn=None):
    own = conn is None
    if own:
        if context is not None:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                               context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={} if not own else {"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        if own:
            conn.close()


def test_connections_are_served_in_tasklets_on_patched_sockets(upstream):
    with Gunicorn(upstream) as g:
        assert get(g.port, "/where") == (200, "stackless_compat.patches.socket True")
        assert get(g.port, "/") == (200, "Hello, World!")
        assert get(g.port, "/nothing")[0] == 404
    assert "Using worker: " + WORKER in g.log()


def test_requests_answered_while_others_wait_on_slow_upstream(upstream):
    # one worker: 50 requests wait 3 s each on the upstream; meanwhile 100
    # quick requests are answered one after the other
    with Gunicorn(upstream, workers=1) as g, \
            concurrent.futures.ThreadPoolExecutor(50) as pool:
        t0 = time.monotonic()
        slow = [pool.submit(get, g.port, "/upstream?d=3") for _ in range(50)]
        time.sleep(0.3)
        for _ in range(100):
            assert get(g.port, "/") == (200, "Hello, World!")
        quick_done = time.monotonic() - t0
        assert not any(f.done() for f in slow)
        results = [f.result() for f in slow]
        assert quick_done < 3.0
        assert all(status == 200 and body.startswith("ok 3.0") for status, body in results)
        assert get(g.port, "/active")[1] == "50" or int(get(g.port, "/active")[1]) >= 50


def test_keep_alive(upstream):
    with Gunicorn(upstream, "--keep-alive", "1") as g:
        conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
        try:
            answers = {get(g.port, "/conn", conn=conn) for _ in range(200)}
            assert len(answers) == 1  # one worker, one client port: one connection
            status, body = answers.pop()
            assert status == 200
            assert body.split()[1] == str(conn.sock.getsockname()[1])
            # idle longer than --keep-alive: the server closes the connection
            conn.sock.settimeout(scaled(10))
            t0 = time.monotonic()
            assert conn.sock.recv(1) == b""
            assert 0.5 < time.monotonic() - t0 < scaled(5)
        finally:
            conn.close()


def test_worker_connections_bound_concurrency(upstream):
    with Gunicorn(upstream, "--worker-connections", "5") as g, \
            concurrent.futures.ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(get, g.port, "/upstream?d=0.3") for _ in range(20)]
        results = [f.result() for f in futures]
        assert all(s == 200 for s, _ in results)
        assert get(g.port, "/active") == (200, "5")


def test_max_requests_restarts_worker_without_losing_requests(upstream):
    with Gunicorn(upstream, "--max-requests", "10") as g:
        pids = [get(g.port, "/pid") for _ in range(45)]
    assert all(s == 200 for s, _ in pids)
    counts = {}
    for _, pid in pids:
        counts[pid] = counts.get(pid, 0) + 1
    assert len(counts) >= 4, counts
    # the first worker also answered start()'s probe request
    assert max(counts.values()) <= 10, counts
    assert "Autorestarting worker after current request." in g.log()


def test_heartbeat_while_requests_wait_longer_than_timeout(upstream):
    # --timeout 2: a request waiting 5 s on I/O must not get the worker killed
    with Gunicorn(upstream, "--timeout", "2") as g:
        pid = get(g.port, "/pid")[1]
        status, body = get(g.port, "/upstream?d=5")
        assert status == 200 and body == "ok 5.0 %s" % pid
        assert get(g.port, "/pid")[1] == pid
    assert "WORKER TIMEOUT" not in g.log()


def test_term_lets_in_flight_requests_finish(upstream):
    with Gunicorn(upstream, "--graceful-timeout", "20") as g, \
            concurrent.futures.ThreadPoolExecutor(10) as pool:
        # an idle keep-alive connection must not hold the shutdown up
        idle = socket.create_connection(("127.0.0.1", g.port))
        try:
            idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"Hello, World!"):
                chunk = idle.recv(4096)
                assert chunk, data
                data += chunk
            futures = [pool.submit(get, g.port, "/upstream?d=2") for _ in range(10)]
            time.sleep(0.5)
            t0 = time.monotonic()
            g.signal(signal.SIGTERM)
            results = [f.result() for f in futures]
            assert all(s == 200 and b.startswith("ok 2.0") for s, b in results), results
            assert g.wait(20) == 0
            assert time.monotonic() - t0 < 10
            idle.settimeout(5)
            assert idle.recv(1) == b""
        finally:
            idle.close()


def test_graceful_timeout_cuts_what_is_still_running(upstream):
    with Gunicorn(upstream, "--graceful-timeout", "1") as g:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            f = pool.submit(get, g.port, "/upstream?d=30")
            time.sleep(0.5)
            t0 = time.monotonic()
            g.signal(signal.SIGTERM)
            g.wait(15)
            took = time.monotonic() - t0
            try:
                status, _ = f.result()
            except (OSError, http.client.HTTPException):
                status = None
            log = g.log()
            assert took < 10, (took, log)
            # cut: by the worker at its graceful timeout, or by the master,
            # which kills the workers still alive at the same moment
            assert status in (None, 500), (status, log)


def _load(port, stop, results, path):
    while not stop[0]:
        try:
            results.append(get(port, path, timeout=30))
        except Exception as exc:  # a lost request: the test fails on it
            results.append((None, repr(exc)))


def test_hup_under_load_loses_no_request(upstream):
    with Gunicorn(upstream, workers=2) as g, \
            concurrent.futures.ThreadPoolExecutor(16) as pool:
        stop = [False]
        results = []
        futures = [pool.submit(_load, g.port, stop, results,
                               "/upstream?d=0.2" if i % 2 else "/pid") for i in range(16)]
        time.sleep(1.0)
        for _ in range(2):
            g.signal(signal.SIGHUP)
            time.sleep(2.0)
        stop[0] = True
        for f in futures:
            f.result()
        log = g.log()
    failed = [r for r in results if r[0] != 200]
    assert not failed, (failed[:5], log[-3000:])
    assert len(results) > 100
    pids = {b for s, b in results if b.isdigit()}
    assert len(pids) >= 4, pids  # two generations of workers replaced the first


def test_tls(upstream):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    with tempfile.TemporaryDirectory() as d:
        certfile, keyfile = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        cert.cert_chain_pems[0].write_to_path(certfile)
        for pem in cert.cert_chain_pems[1:]:
            pem.write_to_path(certfile, append=True)
        cert.private_key_pem.write_to_path(keyfile)
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        with Gunicorn(upstream, "--certfile", certfile, "--keyfile", keyfile,
                      context=ctx) as g, \
                concurrent.futures.ThreadPoolExecutor(10) as pool:
            slow = [pool.submit(get, g.port, "/upstream?d=1", context=ctx) for _ in range(10)]
            for _ in range(20):
                assert get(g.port, "/where", context=ctx) == (
                    200, "stackless_compat.patches.socket True")
            assert all(s == 200 for s, _ in (f.result() for f in slow))
            # keep-alive over TLS
            conn = http.client.HTTPSConnection("127.0.0.1", g.port, timeout=10, context=ctx)
            try:
                bodies = {get(g.port, "/conn", conn=conn)[1] for _ in range(20)}
                assert len(bodies) == 1
            finally:
                conn.close()
            # a plain-text client gets no answer, and the worker goes on
            with socket.create_connection(("127.0.0.1", g.port), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                try:
                    data = s.recv(100)
                except ConnectionResetError:
                    data = b""
                assert b"Hello" not in data
            assert get(g.port, "/", context=ctx) == (200, "Hello, World!")


def test_flask_app(upstream):
    pytest.importorskip("flask")
    with Gunicorn(upstream, app="flask_app:app", workers=2) as g, \
            concurrent.futures.ThreadPoolExecutor(8) as pool:
        slow = [pool.submit(get, g.port, "/upstream?d=1") for _ in range(8)]
        assert get(g.port, "/") == (200, "Hello from Flask")
        conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
        try:
            conn.request("POST", "/json", body=b'{"a": [1, 2]}',
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200
            import json
            assert json.loads(resp.read())["got"] == {"a": [1, 2]}
        finally:
            conn.close()
        assert all(r == (200, "ok 1.0") for r in (f.result() for f in slow))


@pytest.mark.timeout(240)
def test_lobby_deployment_example():
    # examples/lobby_deploy.py: redis-server + gunicorn (4 workers of ours) +
    # a Celery worker with our pool, checked end to end (README "Deployment")
    pytest.importorskip("celery", reason="needs the [serve] extra")
    root = ROOT
    proc = subprocess.run([sys.executable, os.path.join(root, "examples", "lobby_deploy.py"),
                           "--workers", "4", "--listeners", "40"],
                          capture_output=True, text=True, timeout=scaled(200),
                          env=child_env(), cwd=root)
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-3000:])
    assert "lobby deploy: OK" in proc.stdout
    assert "4 gunicorn workers" in proc.stdout
