"""patch_os(), patch_subprocess(), patch_signal() and the cooperative
epoll, against real child processes and real signals.  The scenarios run
under patch_all() (tasklets), beside the unpatched stdlib (threads) and
gevent (greenlets)."""
import subprocess
import sys

import pytest

import helpers
from scenarios import MODES, run_scenario

MIN_TICKS = 3

SCENARIOS = {
    "subprocess_run_x50": ("""
import subprocess
codes = []
def r():
    codes.append(subprocess.run(["sleep", "0.2"]).returncode)
joinall([spawn(r) for _ in range(50)])
return codes
""", [0] * 50),
    "check_output_call": ("""
import subprocess
out = []
def r(i):
    out.append(subprocess.check_output(
        ["sh", "-c", "sleep 0.1; echo %d" % i]).decode().strip())
def c():
    out.append(subprocess.call(["sh", "-c", "sleep 0.1; exit 3"]))
joinall([spawn(r, i) for i in range(10)] + [spawn(c)])
try:
    subprocess.check_output(["sh", "-c", "exit 2"])
except subprocess.CalledProcessError as e:
    out.append(e.returncode)
return sorted(map(str, out))
""", sorted(map(str, list(range(10)) + [3, 2]))),
    "communicate_large": ("""
import subprocess, hashlib
data = bytes(range(256)) * 4096          # 1 MiB both ways
res = []
def r():
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    o, e = p.communicate(data)
    res.append([o == data, e, p.returncode])
def single():
    p = subprocess.Popen(["sh", "-c", "sleep 0.1; echo one"],
                         stdout=subprocess.PIPE, text=True)
    res.append(p.communicate()[0])
def lines():
    p = subprocess.Popen(["sh", "-c", "echo a; sleep 0.1; echo b"],
                         stdout=subprocess.PIPE)
    res.append([ln.strip().decode() for ln in p.stdout])
    p.wait()
    p.stdout.close()
joinall([spawn(r), spawn(r), spawn(single), spawn(lines)])
return sorted(map(str, res))
""", sorted(map(str, [[True, b"", 0], [True, b"", 0], "one\n", ["a", "b"]]))),
    "popen_wait_timeout": ("""
import subprocess
p = subprocess.Popen(["sleep", "5"])
try:
    p.wait(timeout=0.1)
    r = "no timeout"
except subprocess.TimeoutExpired:
    r = "timeout"
try:
    subprocess.run(["sleep", "5"], timeout=0.1)
    r2 = "no timeout"
except subprocess.TimeoutExpired:
    r2 = "timeout"
p.kill()
return [r, r2, p.wait()]
""", ["timeout", "timeout", -9]),
    "os_read_write_pipe": ("""
import os
r, w = os.pipe()
got = []
big = b"x" * (1 << 20)
def reader():
    n = 0
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        n += len(chunk)
    got.append(n)
def writer():
    time.sleep(0.05)
    got.append(os.write(w, big))
    os.close(w)
joinall([spawn(reader), spawn(writer)])
os.close(r)
return sorted(got)
""", [1 << 20, 1 << 20]),
    "os_waitpid": ("""
import os, subprocess
p = subprocess.Popen(["sh", "-c", "sleep 0.2; exit 5"])
st = []
def w():
    st.append(os.waitstatus_to_exitcode(os.waitpid(p.pid, 0)[1]))
joinall([spawn(w)])
p.returncode = 5
return st
""", [5]),
    "epoll_selector": ("""
import selectors, select, socket
a, b = socket.socketpair()
got = []
def waiter():
    with selectors.EpollSelector() as sel:
        sel.register(a, selectors.EVENT_READ)
        got.append(len(sel.select(timeout=2)))
        got.append(len(sel.select(timeout=0.05)) if not a.recv(1) else "read")
    ep = select.epoll()
    ep.register(a.fileno(), select.EPOLLIN)
    got.append(ep.poll(0.05))
    ep.close()
def sender():
    time.sleep(0.1)
    b.send(b"x")
joinall([spawn(waiter), spawn(sender)])
a.close(); b.close()
return got
""", [1, "read", []]),
}


GEVENT_CANNOT = {
    "epoll_selector": "gevent's patch removes select.epoll and "
                      "selectors.EpollSelector",
    "os_read_write_pipe": "gevent's patch_all() leaves os.read/os.write "
                          "blocking (the scenario deadlocks there)",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name, mode):
    body, expected = SCENARIOS[name]
    if mode == "gevent" and name in GEVENT_CANNOT:
        pytest.skip("no peer figure: " + GEVENT_CANNOT[name])
    out = run_scenario(mode, body)
    assert out["result"] == expected, out
    assert out["ticks"] >= MIN_TICKS, out


def run(code, **kw):
    return helpers.run_patched(
        code, "import os, signal, subprocess, threading, time, queue\n", **kw)


def test_fork_child_uses_the_hub():
    """In a forked child the hub works (fresh epoll set and wake-up fd):
    sleeping tasklets, a socketpair, a cooperative lock; the parent's
    waitpid parks only its tasklet."""
    out = run("""
import socket
ticks = [0]
def ticker():
    for _ in range(20):
        time.sleep(0.005)
        ticks[0] += 1
sl.tasklet(ticker)()
sl.schedule()
pid = os.fork()
if pid == 0:
    res = []
    a, b = socket.socketpair()
    lock = threading.Lock()
    lock.acquire()
    def w():
        with lock:
            res.append(a.recv(10))
    def s():
        time.sleep(0.05)
        b.send(b"hi")
        lock.release()
    sl.tasklet(w)(); sl.tasklet(s)()
    sl.run()
    os._exit(0 if res == [b"hi"] else 1)
st = []
def waiter():
    st.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
sl.tasklet(waiter)()
sl.run()
print(st, ticks[0] == 20)
""")
    assert out.strip() == "[0] True"


def test_signal_handler_runs_in_a_tasklet_and_may_block():
    out = run("""
q = queue.Queue(maxsize=1)
q.put("full")
seen = []
def handler(signum, frame):
    q.put(signum)              # blocks until the consumer makes room
    seen.append(sl.getcurrent() is not sl.getmain())
old = signal.signal(signal.SIGUSR1, handler)
print(old is signal.SIG_DFL, signal.getsignal(signal.SIGUSR1) is handler)
got = []
def consumer():
    time.sleep(0.2)
    got.append(q.get())
    got.append(q.get(timeout=2))
threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1)).start()
sl.tasklet(consumer)()
sl.run()
print(got == ["full", signal.SIGUSR1], seen)
print(signal.signal(signal.SIGUSR1, signal.SIG_DFL) is handler)
""")
    assert out.splitlines() == ["True True", "True [True]", "True"]


def test_signal_handler_exception_reaches_the_waiting_code():
    """A handler raising while main sleeps on the hub: the exception comes
    out of time.sleep(), as with the stdlib."""
    out = run("""
class Boom(Exception):
    pass
def handler(signum, frame):
    raise Boom(signum)
signal.signal(signal.SIGUSR2, handler)
threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR2)).start()
t0 = time.monotonic()
try:
    time.sleep(5)
except Boom as e:
    print("Boom", e.args[0] == signal.SIGUSR2, time.monotonic() - t0 < 2)
def busy():
    n = 0
    try:
        while True:
            n += 1
    except Boom:
        print("interrupted in plain code")
threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR2)).start()
busy()
""")
    assert out.splitlines() == ["Boom True True", "interrupted in plain code"]


def test_keyboard_interrupt_default_handler_kept():
    out = run("""
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    time.sleep(5)
except KeyboardInterrupt:
    print("KeyboardInterrupt")
""")
    assert out.splitlines() == ["True", "KeyboardInterrupt"]


def test_os_read_nonblocking_fd_keeps_stdlib_behaviour():
    out = run("""
r, w = os.pipe()
os.set_blocking(r, False)
try:
    os.read(r, 10)
except BlockingIOError:
    print("EAGAIN")
with open(__import__("tempfile").mktemp(), "wb+") as f:
    f.write(b"abc"); f.flush(); os.lseek(f.fileno(), 0, 0)
    print(os.read(f.fileno(), 10))
    os.unlink(f.name)
try:
    os.read(9999, 1)
except OSError as e:
    print(e.errno == __import__("errno").EBADF)
try:
    os.waitpid(1, 0)
except ChildProcessError:
    print("ChildProcessError")
os.close(r); os.close(w)
""")
    assert out.splitlines() == ["EAGAIN", "b'abc'", "True", "ChildProcessError"]


def test_waitpid_any_child_and_thread_waits():
    """os.wait() (any child) and a waitpid in another thread's tasklet."""
    out = run("""
p1 = subprocess.Popen(["sh", "-c", "sleep 0.1; exit 4"])
pid, st = os.wait()
print(pid == p1.pid, os.waitstatus_to_exitcode(st))
p1.returncode = 4
res = []
def in_thread():
    p = subprocess.Popen(["sh", "-c", "sleep 0.1; exit 6"])
    res.append(p.wait())
th = threading.Thread(target=in_thread)
th.start(); th.join()
print(res)
""")
    assert out.splitlines() == ["True 4", "[6]"]


CHILD = """
def child(delay, code):
    return os.posix_spawn("/bin/sh", ["sh", "-c", "sleep %s; exit %d"
                                      % (delay, code)], os.environ)
def code_of(r):
    return (r[0], os.waitstatus_to_exitcode(r[1]))
def watcher_idle():
    info = sl._stackless._child_info()
    return info[0] == 0 and sl._stackless._hub_info()["active"] == 0
"""


def test_os_wait_wakes_on_the_child_watcher():
    """os.wait() parks on the hub's child watcher: the exiting child wakes
    it with its status, the thread keeps running other tasklets, and the
    watcher scans once per wake-up (no polling)."""
    out = run(CHILD + """
def nthreads():
    with open("/proc/self/status") as f:
        return [int(ln.split()[1]) for ln in f if ln.startswith("Threads:")][0]
threads_before = nthreads()
ticks = [0]
res = []
def ticker():
    while not res:
        time.sleep(0.005)
        ticks[0] += 1
def waiter():
    res.append(code_of(os.wait()))
p = child(0.2, 5)
scans = sl._stackless._child_info()[2]
sl.tasklet(ticker)(); sl.tasklet(waiter)()
sl.run()
print(res == [(p, 5)], ticks[0] >= 10,
      sl._stackless._child_info()[2] - scans <= 2, watcher_idle())
# in a plain script too (the main tasklet), and ECHILD with no child left
p = child(0.05, 0)
print(code_of(os.wait()) == (p, 0), watcher_idle())
try:
    os.wait()
except ChildProcessError as e:
    print("ChildProcessError", e.errno)
# nobody waits: the helper thread ends (a fork then has no thread to warn
# about on 3.12+, warnings being errors here)
deadline = time.monotonic() + 10
while nthreads() != threads_before and time.monotonic() < deadline:
    time.sleep(0.001)
print(sl._stackless._child_info()[1], nthreads() == threads_before)
pid = os.fork()
if pid == 0:
    os._exit(9)
print(code_of(os.waitpid(pid, 0)) == (pid, 9))
""")
    assert out.splitlines() == ["True True True True", "True True",
                                "ChildProcessError 10", "0 True", "True"]


def test_concurrent_child_waiters_each_get_the_right_child():
    """waitpid(pid) waiters keep their children: any-child waiters (two
    tasklets here, one in another thread) leave a reserved child alone
    even when it exits first, and each exited child goes to exactly one
    waiter."""
    out = run(CHILD + """
got = {}
p2 = child(0.05, 2)          # exits first; reserved by waitpid(p2)
p1 = child(0.15, 1)
p3 = child(0.25, 3)
def any_waiter(name):
    got[name] = code_of(os.wait())
def pid_waiter():
    got["pid"] = code_of(os.waitpid(p2, 0))
def thread_main():
    any_waiter("thread")
th = threading.Thread(target=thread_main)
sl.tasklet(any_waiter)("a")
sl.tasklet(pid_waiter)()
th.start()
sl.run()
th.join()
print(got["pid"] == (p2, 2),
      sorted([got["a"], got["thread"]]) == sorted([(p1, 1), (p3, 3)]),
      watcher_idle())
""")
    assert out.strip() == "True True True"


def test_waitpid_any_wnohang_and_killed_waiter():
    """waitpid(-1, WNOHANG): (0, 0) while children run or only a reserved
    one has exited, the child once it exited, ChildProcessError without
    children; a killed os.wait() leaves no watcher behind and the child
    for the next wait."""
    out = run(CHILD + """
res = []
try:
    os.waitpid(-1, os.WNOHANG)
except ChildProcessError:
    res.append("ECHILD")
import stackless_compat.patches.os as pos
p = child(0.05, 3)
res.append(os.waitpid(-1, os.WNOHANG))
# exited, but a waitpid(p) of ours is waiting for it (its reservation
# made by hand here, to look in the window before that waiter runs)
pos._reserve(p)
os.waitid(os.P_PID, p, os.WEXITED | os.WNOWAIT)    # until p has exited
res.append(os.waitpid(-1, os.WNOHANG))
pos._unreserve(p)
res.append(code_of(os.waitpid(-1, os.WNOHANG)) == (p, 3))
q = child(0.05, 4)
while True:
    r = os.waitpid(-1, os.WNOHANG)
    if r[0]:
        break
    time.sleep(0.01)
res.append(code_of(r) == (q, 4))
q = child(0.1, 6)
w = sl.tasklet(os.wait)()
def killer():
    time.sleep(0.03)
    res.append(w.blocked != 0)
    w.kill()
    res.append(watcher_idle())
sl.tasklet(killer)()
sl.run()
res.append(code_of(os.wait()) == (q, 6))
res.append(watcher_idle())
print(res)
""")
    assert out.strip() == str(["ECHILD", (0, 0), (0, 0), True, True, True,
                               True, True, True])


def test_multiprocessing_fork_pool_and_join(tmp_path):
    """multiprocessing with fork under patch_all(): the children inherit a
    hub reset by the at-fork hook, Pool.map's result pipes and
    Process.join() (os.waitpid on a pidfd) park only the tasklet."""
    script = tmp_path / "mp_prog.py"
    script.write_text('''
from stackless_compat.patches import patch_all
patch_all()
import multiprocessing as mp, time
import stackless_compat as sl
def sq(x):
    time.sleep(0.1)
    return x * x
if __name__ == "__main__":
    mp.set_start_method("fork")
    ticks = [0]
    done = [False]
    res = []
    def tick():
        while not done[0]:
            time.sleep(0.005)
            ticks[0] += 1
    def main():
        with mp.Pool(4) as p:
            res.append(p.map(sq, range(8)))
        pr = mp.Process(target=time.sleep, args=(0.2,))
        pr.start()
        pr.join()
        res.append(pr.exitcode)
        done[0] = True
    sl.tasklet(tick)()
    sl.tasklet(main)()
    sl.run()
    print(res, ticks[0] >= 20)
''')
    proc = subprocess.run([sys.executable, str(script)], capture_output=True,
                          text=True, timeout=helpers.scaled(120),
                          env=helpers.child_env(), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, helpers.describe(proc)
    assert proc.stdout.strip() == "[[0, 1, 4, 9, 16, 25, 36, 49], 0] True"
