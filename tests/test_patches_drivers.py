"""C drivers on the hub, against real servers: psycopg2 (wait callback)
and psycopg 3's C build (its wait functions) against a real PostgreSQL
started by tools/pg_server.sh (or the one SLP_PG_DSN names), pyzmq's
cooperative Socket/Context against a real ZeroMQ peer process."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

import helpers
from scenarios import run_scenario

MIN_TICKS = 3


def _need(module):
    proc = helpers.run_py("import %s" % module)
    if proc.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("%s is not installed (pip install '.[drivers]')" % module)
        pytest.skip("%s is not installed (pip install '.[drivers]')" % module)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_dsn():
    if os.environ.get("SLP_PG_DSN"):
        yield os.environ["SLP_PG_DSN"]
        return
    script = os.path.join(helpers.ROOT, "tools", "pg_server.sh")
    tmp = tempfile.mkdtemp(prefix="slp-pg-")
    proc = subprocess.run(["bash", script, "start", tmp, str(_free_port())],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        msg = "no PostgreSQL server: %s" % (proc.stderr.strip(),)
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg + " (apt-get install postgresql)")
    try:
        yield proc.stdout.strip()
    finally:
        subprocess.run(["bash", script, "stop", tmp], capture_output=True,
                       timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


PG_SLEEPS = """
out = []
def q(i):
    conn = connect(DSN)
    cur = conn.cursor()
    cur.execute("SELECT pg_sleep(0.2), %s", (i,))
    out.append(cur.fetchone()[1])
    conn.close()
t0 = time.monotonic()
joinall([spawn(q, i) for i in range(10)])
# ten 0.2 s queries: together, not one after the other (2 s)
return [sorted(out), time.monotonic() - t0 < 1.5]
"""


@pytest.mark.parametrize("mode", ["ours", "stdlib", "gevent"])
@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_pg_queries_in_parallel(pg_dsn, driver, mode):
    _need(driver)
    if mode == "gevent" and driver == "psycopg2":
        pytest.skip("no peer figure: psycopg2 under gevent needs psycogreen's "
                    "wait callback (not installed); gevent alone blocks")
    setup = "DSN = %r\nfrom %s import connect\n" % (pg_dsn, driver)
    out = run_scenario(mode, PG_SLEEPS, setup=setup)
    assert out["result"] == [list(range(10)), True], out
    assert out["ticks"] >= MIN_TICKS, out


def _run(code):
    proc = helpers.run_py("""
from stackless_compat.patches import patch_all
patch_all()
import time
import stackless_compat as sl
""" + code)
    assert proc.returncode == 0, helpers.describe(proc)
    return proc.stdout


def test_psycopg_c_build_and_patch_state(pg_dsn):
    _need("psycopg")
    out = _run("""
import sys
print("psycopg" in sys.modules, "psycopg2" in sys.modules)  # not imported by patching
import psycopg, psycopg.waiting as w
import stackless_compat.patches as p
from stackless_compat.patches import pg
print(psycopg.pq.__impl__, w.wait is pg.psycopg_wait,
      w.wait_conn is pg.psycopg_wait_conn, p.is_module_patched("psycopg"))
import psycopg2.extensions
print(psycopg2.extensions.get_wait_callback() is pg.psycopg2_wait_callback)
""")
    assert out.split() == ["False", "False", "binary", "True", "True", "True",
                           "True"]


def test_psycopg2_kill_mid_query_cancels(pg_dsn):
    """A tasklet killed while its query runs: the query is cancelled on the
    server (psycopg2 itself closes a connection whose wait callback
    raised)."""
    _need("psycopg2")
    out = _run("""
import psycopg2
conn = psycopg2.connect(%r)
res = []
def q():
    cur = conn.cursor()
    try:
        cur.execute("SELECT pg_sleep(30)")
    except TaskletExit:
        res.append("killed")
        raise
t = sl.tasklet(q)()
def killer():
    time.sleep(0.2)
    t.kill()
sl.tasklet(killer)()
t0 = time.monotonic()
sl.run()
other = psycopg2.connect(%r)
cur = other.cursor()
cur.execute("SELECT count(*) FROM pg_stat_activity "
            "WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'")
print(res, cur.fetchone()[0], time.monotonic() - t0 < 10, conn.closed != 0)
other.close()
""" % (pg_dsn, pg_dsn))
    assert out.strip() == "['killed'] 0 True True"


def test_psycopg_timeout_and_notify(pg_dsn):
    """psycopg 3: a statement timeout error and LISTEN/NOTIFY between two
    connections of two tasklets."""
    _need("psycopg")
    out = _run("""
import psycopg
dsn = %r
res = []
def listener():
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("LISTEN chan")
        for n in c.notifies(timeout=5):
            res.append(n.payload)
            break
def notifier():
    time.sleep(0.2)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("NOTIFY chan, 'hello'")
def timeout():
    with psycopg.connect(dsn) as c:
        c.execute("SET statement_timeout = 100")
        try:
            c.execute("SELECT pg_sleep(5)")
        except psycopg.errors.QueryCanceled:
            res.append("canceled")
for f in (listener, notifier, timeout):
    sl.tasklet(f)()
sl.run()
print(sorted(res))
""" % pg_dsn)
    assert out.strip() == "['canceled', 'hello']"


ZMQ_PEER = r"""
import heapq, sys, time, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
port = s.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
pending = []
poller = zmq.Poller()
poller.register(s, zmq.POLLIN)
while True:
    timeout = None
    if pending:
        timeout = max(0, (pending[0][0] - time.monotonic()) * 1000)
    if poller.poll(timeout):
        ident, empty, body = s.recv_multipart()
        if body == b"quit":
            break
        # answer 0.1 s later: a slow server that serves many at once
        heapq.heappush(pending, (time.monotonic() + 0.1, ident, body))
    while pending and pending[0][0] <= time.monotonic():
        _, ident, body = heapq.heappop(pending)
        s.send_multipart([ident, b"", body.upper()])
"""


@pytest.fixture
def zmq_peer():
    _need("zmq")
    proc = subprocess.Popen([sys.executable, "-c", ZMQ_PEER],
                            stdout=subprocess.PIPE, text=True)
    try:
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_zmq_req_against_real_peer(zmq_peer):
    out = _run("""
import stackless_compat.patches.zmq as zmq
ctx = zmq.Context()
res = []
ticks = [0]
def client(i):
    s = ctx.socket(zmq.REQ)
    s.connect("tcp://127.0.0.1:%d")
    s.send_string("hi %%d" %% i)
    res.append(s.recv_string())
    s.close()
def ticker():
    while len(res) < 10:
        time.sleep(0.005)
        ticks[0] += 1
t0 = time.monotonic()
for i in range(10):
    sl.tasklet(client)(i)
sl.tasklet(ticker)()
sl.run()
print(sorted(res) == sorted("HI %%d" %% i for i in range(10)),
      time.monotonic() - t0 < 0.9, ticks[0] >= 3)
# RCVTIMEO: zmq.Again after it, other tasklets running meanwhile
s = ctx.socket(zmq.DEALER)
s.connect("tcp://127.0.0.1:%d")
s.setsockopt(zmq.RCVTIMEO, 100)
try:
    s.recv()
except zmq.Again:
    print("Again")
s.close()
ctx.term()
""" % (zmq_peer, zmq_peer))
    assert out.splitlines() == ["True True True", "Again"]


def test_zmq_pair_ping_pong_edge_triggered():
    """Both ends of an inproc PAIR in tasklets of one thread, each socket
    sending and receiving: every edge of the FD that one direction's call
    consumes must still wake the other direction's waiter."""
    _need("zmq")
    out = _run("""
import stackless_compat.patches as p
import stackless_compat.patches.zmq as zmq
ctx = zmq.Context.instance()
a = ctx.socket(zmq.PAIR); a.bind("inproc://x")
b = ctx.socket(zmq.PAIR); b.connect("inproc://x")
n = 2000
got = []
def side(s, first):
    if first:
        s.send(b"0")
    while True:
        m = int(s.recv())
        if m >= n:
            got.append(m)
            if m == n:
                s.send(str(m + 1).encode())
            return
        s.send(str(m + 1).encode())
def poller_user():
    c = ctx.socket(zmq.PULL); c.bind("inproc://y")
    d = ctx.socket(zmq.PUSH); d.connect("inproc://y")
    poller = zmq.Poller(); poller.register(c, zmq.POLLIN)
    empty = poller.poll(50)
    def later():
        time.sleep(0.05)
        d.send(b"z")
    sl.tasklet(later)()
    ready = dict(poller.poll(2000))
    got.append((empty, ready.get(c) == zmq.POLLIN, c.recv()))
    c.close(); d.close()
sl.tasklet(side)(a, True)
sl.tasklet(side)(b, False)
sl.tasklet(poller_user)()
sl.run()
print(sorted(map(str, got)))
a.close(); b.close()
ctx.term()
""")
    assert out.strip() == str(sorted(map(str, [([], True, b"z"), 2000, 2001])))


def test_zmq_poller_parks_until_a_message_no_recheck(zmq_peer):
    """Poller.poll() checks once, then parks until one of its sockets
    changes: no periodic re-check while idle; a message wakes it although
    other tasklets' sends and EVENTS reads on the same socket take the
    FD's edges meanwhile; a plain fd in the same poller wakes it too; over
    TCP against a real peer process and over inproc."""
    out = _run("""
import os
import stackless_compat.patches.zmq as zmq
checks = [0]
orig_check = zmq.Poller._slp_check
def counting_check(self, waiter):
    checks[0] += 1
    return orig_check(self, waiter)
zmq.Poller._slp_check = counting_check
ctx = zmq.Context()
res = []

# 1. idle, then a reply from the peer (100 ms later): one check while idle
s = ctx.socket(zmq.DEALER)
s.connect("tcp://127.0.0.1:%d")
poller = zmq.Poller()
poller.register(s, zmq.POLLIN)
s.send_multipart([b"", b"hello"])
ready = dict(poller.poll())
res.append((ready.get(s) == zmq.POLLIN, checks[0] <= 3,
            s.recv_multipart() == [b"", b"HELLO"]))

# 2. a PAIR: tasklet A polls a for POLLIN while tasklet B keeps sending
# from a (each send takes the FD's edge); the peer b answers once
a = ctx.socket(zmq.PAIR); a.bind("inproc://edge")
b = ctx.socket(zmq.PAIR); b.connect("inproc://edge")
woke = []
def poll_a():
    p = zmq.Poller(); p.register(a, zmq.POLLIN)
    woke.append(int(dict(p.poll(5000)).get(a, 0)))
def send_from_a():
    for i in range(200):
        a.send(b"x%%d" %% i)
        sl.schedule()
def answer_from_b():
    for i in range(200):
        b.recv()
        if i == 100:
            b.send(b"answer")
sl.tasklet(poll_a)(); sl.tasklet(send_from_a)(); sl.tasklet(answer_from_b)()
sl.run()
res.append((woke, a.recv()))

# 3. a plain pipe registered beside a zmq socket wakes the poller
r, w = os.pipe()
p = zmq.Poller(); p.register(a, zmq.POLLIN); p.register(r, zmq.POLLIN)
def writer():
    time.sleep(0.05)
    os.write(w, b"!")
sl.tasklet(writer)()
checks[0] = 0
got = p.poll(5000)
res.append((got == [(r, zmq.POLLIN)], checks[0]))
p.unregister(r)
os.close(r); os.close(w)
# a timeout with nothing ready: [] after one check
checks[0] = 0
res.append((p.poll(30), checks[0]))
for x in (s, a, b):
    x.close()
ctx.term()
print(res)
""" % zmq_peer)
    assert out.strip() == str([(True, True, True), ([1], b"answer"),
                               (True, 2), ([], 2)])
