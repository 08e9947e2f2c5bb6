"""patch_thread(): threading's locks and everything built on them park
the tasklet, not the thread.  Each scenario runs in a child interpreter
under patch_all() (tasklets), beside the unpatched stdlib (threads) and
gevent (greenlets); results must agree, and a ticker worker must keep
running while the scenario waits (a blocked thread stops it)."""
import sys

import pytest

import helpers
from scenarios import MODES, run_scenario

# A blocked thread shows as a ticker that barely ran: the scenarios wait
# at least 0.1 s, i.e. ~20 ticks of 5 ms; demand a fraction of that.
MIN_TICKS = 3


def check(out, expected):
    assert out["result"] == expected, out
    assert out["ticks"] >= MIN_TICKS, out


SCENARIOS = {
    "queue_get_timeout": ("""
import queue
q = queue.Queue()
got = []
def g():
    try:
        got.append(q.get(timeout=2))
    except queue.Empty:
        got.append("empty")
hs = [spawn(g) for _ in range(10)]
time.sleep(0.1)
for i in range(10):
    q.put(i)
joinall(hs)
return sorted(got)
""", list(range(10))),
    "queue_get_between_workers": ("""
import queue
out = []
for cls in (queue.Queue, queue.LifoQueue, queue.PriorityQueue,
            queue.SimpleQueue):
    q = cls()
    res = []
    def consumer():
        while True:
            item = q.get()
            if item is None:
                break
            res.append(item)
    def producer():
        for i in (3, 1, 2):
            q.put(i)
            time.sleep(0.01)
        time.sleep(0.05)
        q.put(None)
    joinall([spawn(consumer), spawn(producer)])
    out.append(res)
bounded = queue.Queue(maxsize=1)
seen = []
def putter():
    for i in range(3):
        bounded.put(i)          # blocks while full
        seen.append(("put", i))
def getter():
    for i in range(3):
        time.sleep(0.02)
        seen.append(("got", bounded.get()))
joinall([spawn(putter), spawn(getter)])
out.append([s[0] for s in seen].count("put"))
try:
    queue.Queue().get(timeout=0.05)
except queue.Empty:
    out.append("empty")
return out
""", [[3, 1, 2]] * 4 + [3, "empty"]),
    "lock_acquire_timeout": ("""
lock = threading.Lock()
lock.acquire()
got = []
def w(t):
    ok = lock.acquire(timeout=t)
    got.append((t, ok))
    if ok:
        lock.release()
hs = [spawn(w, 1.0) for _ in range(5)] + [spawn(w, 0.05)]
time.sleep(0.2)
lock.release()
joinall(hs)
return [sorted(got), lock.locked(), lock.acquire(False), lock.acquire(False)]
""", [[[0.05, False]] + [[1.0, True]] * 5, False, True, False]),
    "with_lock_contended": ("""
lock = threading.Lock()
state = {"n": 0, "inside": 0, "max_inside": 0}
def w():
    for _ in range(5):
        with lock:
            state["inside"] += 1
            state["max_inside"] = max(state["max_inside"], state["inside"])
            n = state["n"]
            time.sleep(0.01)
            state["n"] = n + 1
            state["inside"] -= 1
joinall([spawn(w), spawn(w)])
return [state["n"], state["max_inside"]]
""", [10, 1]),
    "rlock_condition": ("""
rl = threading.RLock()
order = []
def w(name):
    with rl:
        with rl:
            order.append(name + "-in")
            time.sleep(0.02)
            order.append(name + "-out")
joinall([spawn(w, "a"), spawn(w, "b")])
try:
    rl.release()
except RuntimeError:
    order.append("unowned")
cond = threading.Condition()
items = []
def consumer():
    with cond:
        ok = cond.wait_for(lambda: len(items) >= 3, timeout=2)
        return ok
res = []
def c():
    res.append(consumer())
def p():
    for i in range(3):
        time.sleep(0.02)
        with cond:
            items.append(i)
            cond.notify_all()
joinall([spawn(c), spawn(c), spawn(p)])
with cond:
    timed_out = cond.wait(0.05)
return [order, res, timed_out]
""", [["a-in", "a-out", "b-in", "b-out", "unowned"], [True, True], False]),
    "event_wait": ("""
ev = threading.Event()
never = threading.Event()
got = []
def w():
    got.append(ev.wait())
def wt():
    got.append(ev.wait(timeout=1))
def wn():
    got.append(never.wait(timeout=0.05))
hs = [spawn(w) for _ in range(3)] + [spawn(wt) for _ in range(3)] + [spawn(wn)]
time.sleep(0.1)
ev.set()
joinall(hs)
return sorted(got)
""", [False] + [True] * 6),
    "semaphores_barrier": ("""
sem = threading.Semaphore(2)
state = {"in": 0, "max": 0}
def w():
    with sem:
        state["in"] += 1
        state["max"] = max(state["max"], state["in"])
        time.sleep(0.02)
        state["in"] -= 1
joinall([spawn(w) for _ in range(6)])
bs = threading.BoundedSemaphore(1)
bs.acquire()
bs.release()
try:
    bs.release()
    over = "no error"
except ValueError:
    over = "ValueError"
timed = threading.Semaphore(0).acquire(timeout=0.05)
b = threading.Barrier(3, timeout=2)
idx = []
def bw(d):
    time.sleep(d)
    idx.append(b.wait())
joinall([spawn(bw, 0.01 * i) for i in range(3)])
b2 = threading.Barrier(2, timeout=0.05)
try:
    b2.wait()
    broken = "passed"
except threading.BrokenBarrierError:
    broken = "broken"
return [state["max"], over, timed, sorted(idx), broken]
""", [2, "ValueError", False, [0, 1, 2], "broken"]),
    "thread_join": ("""
ts = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(10)]
for t in ts:
    t.start()
done = []
def j(t):
    t.join()
    done.append(t.is_alive())
joinall([spawn(j, t) for t in ts])
slow = threading.Thread(target=time.sleep, args=(0.5,))
slow.start()
slow.join(0.05)
alive = slow.is_alive()
slow.join()
return [done, alive, slow.is_alive()]
""", [[False] * 10, True, False]),
    "futures_result": ("""
from concurrent.futures import ThreadPoolExecutor, TimeoutError
ex = ThreadPoolExecutor(20)
res = []
def f(i):
    time.sleep(0.2)
    return i * i
def r(i):
    res.append(ex.submit(f, i).result())
joinall([spawn(r, i) for i in range(20)])
try:
    ex.submit(time.sleep, 0.5).result(timeout=0.05)
    to = "no timeout"
except TimeoutError:
    to = "timeout"
ex.shutdown()
return [sorted(res), to]
""", [sorted(i * i for i in range(20)), "timeout"]),
    "socketserver_shutdown": ("""
import socket, socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())
srv = socketserver.TCPServer(("127.0.0.1", 0), H)
h = spawn(srv.serve_forever, 0.05)
with socket.create_connection(srv.server_address) as c:
    c.sendall(b"ping\\n")
    reply = c.makefile("rb").readline()
time.sleep(0.1)
srv.shutdown()
joinall([h])
srv.server_close()
return reply.decode()
""", "PING\n"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name, mode):
    body, expected = SCENARIOS[name]
    check(run_scenario(mode, body), expected)


def run(code, **kw):
    return helpers.run_patched(code, "import threading, time, queue\n", **kw)


def test_patch_state():
    out = run("""
import _thread
import stackless_compat.patches as p
assert p.is_module_patched("thread") and p.is_module_patched("queue")
ours = sl._stackless.lock
assert type(threading.Lock()) is type(_thread.allocate_lock()) is ours
assert _thread.LockType is ours
assert type(threading.RLock()).__module__ == "stackless_compat.patches.thread"
assert p.get_original("threading", "_allocate_lock") is p.get_original("_thread", "allocate_lock")
assert queue.SimpleQueue.__name__ == "SimpleQueue"
assert p.get_original("threading.Thread", "join").__module__ == "threading"
patch_all()
assert type(threading.Lock()) is ours
print("ok")
""")
    assert out.strip() == "ok"


# How each way of making a lock behaves: the same under the patches as in
# the stdlib of the running version (3.13: threading.Lock and _thread.lock
# are the lock type, which has a constructor; 3.11/3.12: threading.Lock is
# allocate_lock(), the type cannot be instantiated).
LOCK_MAKERS = """
import _thread, threading, types
def outcome(f, *a, **k):
    try:
        r = f(*a, **k)
    except TypeError as e:
        msg = str(e)
        for prefix in ("_thread.", "stackless_compat.", "_stackless."):
            msg = msg.replace(prefix, "")
        return "TypeError: " + msg
    return type(r).__name__ + (" locked" if r.locked() else " unlocked")
lk = _thread.allocate_lock()
res = {
    "Lock is a type": isinstance(threading.Lock, type),
    "Lock is LockType": threading.Lock is _thread.LockType,
    "_thread.lock": getattr(_thread, "lock", None) is _thread.LockType,
    "_LockType": getattr(threading, "_LockType", None) in (None, _thread.LockType),
    "Lock()": outcome(threading.Lock),
    "Lock(1)": outcome(threading.Lock, 1),
    "Lock(a=1)": outcome(threading.Lock, a=1),
    "Lock(1, 2, a=1)": outcome(threading.Lock, 1, 2, a=1),
    "type(lock)()": outcome(type(lk)),
    "type(lock)(1)": outcome(type(lk), 1),
    "LockType.__new__": outcome(getattr(_thread.LockType, "__new__"),
                                _thread.LockType),
    "allocate_lock()": outcome(_thread.allocate_lock),
    "allocate_lock(1)": outcome(_thread.allocate_lock, 1),
    "Lock | None": isinstance(threading.Lock, type)
                   and isinstance(threading.Lock | None, types.UnionType),
}
try:
    class Sub(_thread.LockType):
        pass
    res["subclass"] = "allowed"
except TypeError:
    res["subclass"] = "TypeError"
for kw in ({}, {"a": 1}):
    try:
        threading.RLock(1, **kw)
        res["RLock(1, %s)" % kw] = "ok"
    except TypeError as e:
        res["RLock(1, %s)" % kw] = str(e)
    except DeprecationWarning:          # 3.13 warns, then passes them on
        res["RLock(1, %s)" % kw] = "DeprecationWarning"
print(repr(res))
"""


def test_lock_construction_matches_the_stdlib():
    import ast
    stdlib = helpers.run_py("import warnings; warnings.simplefilter('error')\n"
                            + LOCK_MAKERS)
    assert stdlib.returncode == 0, helpers.describe(stdlib)
    expected = ast.literal_eval(stdlib.stdout.strip())
    patched = ast.literal_eval(run(LOCK_MAKERS).strip())
    assert patched == expected
    # what that means per version
    new = sys.version_info >= (3, 13)
    assert expected["Lock is a type"] is new
    assert expected["type(lock)()"] == ("lock unlocked" if new else
                                        "TypeError: cannot create 'lock' instances")


def test_lock_errors_and_repr():
    out = run("""
import pickle, weakref
l = threading.Lock()
try:
    l.release()
except RuntimeError as e:
    print(e)
for kw in ({"blocking": False, "timeout": 1}, {"timeout": -2},
           {"timeout": float("nan")}, {"timeout": 1e300}):
    try:
        l.acquire(**kw)
    except (ValueError, OverflowError) as e:
        print(type(e).__name__, e)
print(repr(l).startswith("<unlocked "), l.acquire(), repr(l).startswith("<locked "))
print(l.acquire(timeout=0), l.acquire(False), l.locked())
with_err = None
try:
    pickle.dumps(l)
except TypeError:
    with_err = "TypeError"
print(with_err, weakref.ref(l)() is l)
l._at_fork_reinit()
print(l.locked())
""")
    assert out.splitlines() == [
        "release unlocked lock",
        "ValueError can't specify a timeout for a non-blocking call",
        "ValueError timeout value must be a non-negative number",
        "ValueError Invalid value NaN (not a number)",
        "OverflowError timeout value is too large",
        "True True True",
        "False False True",
        "TypeError True",
        "False"]


def test_fifo_handoff_and_kill_of_waiters():
    """release() hands the lock to the first waiter; a waiter killed while
    waiting leaves the queue, one killed after the hand-over passes the
    lock on; a waiter that timed out leaves no trace."""
    out = run("""
l = threading.Lock()
l.acquire()
order = []
def w(name):
    try:
        if l.acquire():
            order.append(name)
            time.sleep(0.01)
            l.release()
    except TaskletExit:
        order.append(name + " killed")
        raise
ts = {n: sl.tasklet(w)(n) for n in "abcde"}
sl.tasklet(lambda: l.acquire(timeout=0.01))()
sl.run()    # returns once the timed waiter gave up; five stay parked
print(l._nwaiters)
ts["b"].kill()                # killed while waiting
l.release()                   # handed to a ...
ts["a"].kill()                # ... which is killed before it runs: c gets it
sl.run()
print(order, l.locked(), l._nwaiters)
""")
    assert out.splitlines() == [
        "5",
        "['b killed', 'a killed', 'c', 'd', 'e'] False 0"]


def test_cross_thread_wake_parks_only_the_tasklet():
    """Tasklets of a worker thread wait on a lock, an event, a queue and a
    condition that the main thread's tasklets release; the worker's other
    tasklets keep running meanwhile, and each wait ends in about one
    latency."""
    out = run("""
lock = threading.Lock(); lock.acquire()
ev = threading.Event()
q = queue.Queue()
cond = threading.Condition()
res = {}
def worker_thread():
    ticks = [0]
    stop = [False]
    def ticker():
        while not stop[0]:
            time.sleep(0.005)
            ticks[0] += 1
    def waiter(name, fn):
        t0 = time.monotonic()
        res[name] = (fn(), round(time.monotonic() - t0, 1))
    def cw():
        with cond:
            return cond.wait(timeout=3)
    sl.tasklet(ticker)()
    ws = [sl.tasklet(waiter)("lock", lambda: lock.acquire(timeout=3)),
          sl.tasklet(waiter)("event", lambda: ev.wait(3)),
          sl.tasklet(waiter)("queue", lambda: q.get(timeout=3)),
          sl.tasklet(waiter)("cond", cw),
          sl.tasklet(waiter)("timeout", lambda: threading.Event().wait(0.2))]
    def stopper():
        while any(w.alive for w in ws):
            time.sleep(0.01)
        stop[0] = True
    sl.tasklet(stopper)()
    sl.run()
    res["ticks"] = ticks[0] > 20
th = threading.Thread(target=worker_thread)
th.start()
time.sleep(0.3)
lock.release(); ev.set(); q.put("item")
with cond:
    cond.notify()
th.join()
for k in sorted(res):
    print(k, res[k])
""")
    assert out.splitlines() == [
        "cond (True, 0.3)", "event (True, 0.3)", "lock (True, 0.3)",
        "queue ('item', 0.3)", "ticks True", "timeout (False, 0.2)"]


def test_cross_thread_kill_of_lock_waiter():
    out = run("""
l = threading.Lock(); l.acquire()
got = []
box = {}
def w():
    try:
        l.acquire()
        got.append("acquired")
    except TaskletExit:
        got.append("killed")
        raise
def thread_main():
    t = box["t"] = sl.tasklet(w)()
    while t.alive:
        time.sleep(0.01)
th = threading.Thread(target=thread_main)
th.start()
while "t" not in box or l._nwaiters == 0:
    time.sleep(0.01)
box["t"].kill()
th.join()
print(got, l._nwaiters, l.locked())
l.release()
""")
    assert out.strip() == "['killed'] 0 True"


def test_untimed_lock_wait_is_like_a_channel_wait():
    """With no other thread, a tasklet waiting for a lock nobody can
    release is Stackless's deadlock, not a hang."""
    out = run("""
l = threading.Lock()
l.acquire()
try:
    l.acquire()
except RuntimeError as e:
    print(e)
print(l.acquire(timeout=0.05))
""")
    assert out.splitlines() == [
        "Deadlock: the last runnable tasklet cannot be blocked.", "False"]


def test_main_tasklet_of_two_threads_ping_pong():
    """The main tasklets of two threads hand a lock pair back and forth:
    each wait parks the thread's only tasklet, its hub wakes it."""
    out = run("""
a, b = threading.Lock(), threading.Lock()
a.acquire(); b.acquire()
n = [0]
def other():
    for _ in range(200):
        a.acquire()
        n[0] += 1
        b.release()
th = threading.Thread(target=other)
th.start()
for _ in range(200):
    a.release()
    b.acquire()
th.join()
print(n[0])
""")
    assert out.strip() == "200"


def test_channels_atomic_watchdog_with_patch():
    out = run("""
ch = sl.channel()
lock = threading.Lock()
res = []
def sender():
    with lock:
        ch.send("x")
def receiver():
    res.append(ch.receive())
    with lock:
        res.append("locked")
sl.tasklet(sender)(); sl.tasklet(receiver)()
sl.run()
with sl.atomic():
    lock.acquire(); lock.release()
def busy():
    while True:
        pass
t = sl.tasklet(busy)()
victim = sl.run(100000)         # watchdog: interrupts the busy loop
res.append(victim is t)
t.kill()
print(res)
""")
    assert out.strip() == "['x', 'locked', True]"


def test_acquire_where_no_switch_is_possible():
    """Inside the schedule callback a lock held by another thread is waited
    for the way a thread lock is (no switch, no error)."""
    out = run("""
l = threading.Lock()
l.acquire()
threading.Timer(0.1, l.release).start()
got = []
def cb(prev, nxt):
    if not got:
        got.append(l.acquire(timeout=2))
        l.release()
sl.set_schedule_callback(cb)
sl.tasklet(lambda: None)()
sl.run()
sl.set_schedule_callback(None)
print(got)
""")
    assert out.strip() == "[True]"


def test_lock_stress_threads_tasklets_timeouts_kills():
    """4 threads x 8 tasklets contend for one lock with random timeouts
    while some waiters are killed from other threads: mutual exclusion
    holds, every acquire that returned True is released, and at the end
    nobody waits and the lock is free."""
    out = run("""
import random
lock = threading.Lock()
state = {"inside": 0, "bad": 0, "ok": 0, "timeouts": 0, "killed": 0}
tasklets = []
tl = threading.Lock()      # cooperative too; guards the tasklets list
def worker(seed):
    rnd = random.Random(seed)
    try:
        for _ in range(60):
            if lock.acquire(timeout=rnd.choice([-1, 0.001, 0.01, 0.05])):
                try:
                    state["inside"] += 1
                    if state["inside"] != 1:
                        state["bad"] += 1
                    if rnd.random() < 0.5:
                        time.sleep(0.0005)
                    state["ok"] += 1
                finally:
                    state["inside"] -= 1
                    lock.release()
            else:
                state["timeouts"] += 1
            if rnd.random() < 0.3:
                time.sleep(0)
    except TaskletExit:
        state["killed"] += 1
        raise
def thread_main(n):
    ts = [sl.tasklet(worker)(n * 100 + i) for i in range(8)]
    with tl:
        tasklets.extend(ts)
    while any(t.alive for t in ts):
        time.sleep(0.005)
ths = [threading.Thread(target=thread_main, args=(n,)) for n in range(4)]
for th in ths:
    th.start()
rnd = random.Random(1)
for _ in range(6):
    time.sleep(0.02)
    with tl:
        victims = [t for t in tasklets if t.alive]
    if victims:
        rnd.choice(victims).kill()
for th in ths:
    th.join()
print(state["bad"], state["inside"], lock.locked(), lock._nwaiters,
      state["ok"] > 100, state["killed"] <= 6)
""", timeout=120)
    assert out.strip() == "0 0 False 0 True True"


def test_waiter_left_behind_by_its_ending_thread():
    """A tasklet that swallows every TaskletExit is still waiting for a lock
    when its thread ends (the scheduler gives up killing it): its wait is
    dropped with the thread's hub, so a later release from the main thread
    reaches nothing that is gone and the lock is simply free."""
    out = run("""
lock = threading.Lock(); lock.acquire()
n = [0]
def stubborn():
    while True:
        try:
            lock.acquire()
            lock.release()
            return
        except TaskletExit:
            n[0] += 1
def th():
    sl.tasklet(stubborn)()
    sl.schedule()
t = threading.Thread(target=th); t.start(); t.join()
print(n[0] > 0, lock._nwaiters)
lock.release()
print(lock.locked(), lock.acquire(timeout=0.1))
""")
    assert out.splitlines() == ["True 0", "False True"]


def test_join_of_a_thread_started_before_patching():
    proc = helpers.run_py("""
import os, threading, time
SCALE = float(os.environ.get("SLP_TIMEOUT_SCALE", "1"))
early = threading.Thread(target=time.sleep, args=(1.5 * SCALE,))
early.start()
from stackless_compat.patches import patch_all
patch_all()
import stackless_compat as sl
ticks = [0]
def ticker():
    while early.is_alive():
        time.sleep(0.005)
        ticks[0] += 1
res = []
def joiner():
    early.join(0.05)
    res.append(early.is_alive())
    early.join()
    res.append(early.is_alive())
sl.tasklet(ticker)(); sl.tasklet(joiner)()
sl.run()
print(res, ticks[0] >= 10)
""")
    assert proc.returncode == 0, helpers.describe(proc)
    assert proc.stdout.strip() == "[True, False] True"
