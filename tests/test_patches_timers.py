"""Timer fairness under load: a due timer's tasklet runs after at most
the tasklet that is running, not behind a round of busy tasklets whose
socket I/O completes without waiting (benchmarks/bench_timers.py
measures the lateness; these tests check the property loosely)."""
import os

import helpers

ECHO_SERVER = os.path.join(helpers.ROOT, "tools", "echo_server.py")


def test_ticker_among_busy_workers_with_an_echo_peer():
    """10 workers: 20 ms of CPU, then a round trip to a real echo server
    process.  Over 1 s a 10 ms ticker used to get 1-2 turns (the workers'
    recv found the answer there and never yielded); now it gets most of
    its ~100."""
    out = helpers.run_py("""
import subprocess, sys
echo = subprocess.Popen([sys.executable, %r], stdout=subprocess.PIPE,
                        text=True)
port = int(echo.stdout.readline())
from stackless_compat.patches import patch_all
patch_all()
import socket, time
import stackless_compat as sl
stop = [False]
trips = [0]
def worker():
    s = socket.create_connection(("127.0.0.1", port))
    while not stop[0]:
        end = time.perf_counter() + 0.02
        while time.perf_counter() < end:
            pass
        s.sendall(b"x" * 64)
        n = 0
        while n < 64:
            n += len(s.recv(64 - n))
        trips[0] += 1
    s.close()
ticks = [0]
def ticker():
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        time.sleep(0.01)
        ticks[0] += 1
    stop[0] = True
for _ in range(10):
    sl.tasklet(worker)()
sl.tasklet(ticker)()
sl.run()
echo.kill(); echo.wait()
print(ticks[0] >= 30, trips[0] > 10, ticks[0], trips[0])
""" % ECHO_SERVER)
    assert out.returncode == 0, helpers.describe(out)
    assert out.stdout.split()[:2] == ["True", "True"], out.stdout


def test_no_fairness_switch_inside_atomic():
    out = helpers.run_py("""
from stackless_compat.patches import patch_all
patch_all()
import socket, time
import stackless_compat as sl
a, b = socket.socketpair()
woke = []
def sleeper():
    time.sleep(0.001)
    woke.append(time.monotonic())
sl.tasklet(sleeper)()
sl.schedule()                  # the sleeper is parked on its timer
with sl.atomic():
    end = time.monotonic() + 0.05
    while time.monotonic() < end:
        a.send(b"x")
        b.recv(1)
    left_atomic = time.monotonic()
sl.run()
print(woke[0] > left_atomic)
a.close(); b.close()
""")
    assert out.returncode == 0, helpers.describe(out)
    assert out.stdout.strip() == "True"
