"""Timer fairness under load: a 10 ms ticker among busy tasklets.

N workers (100) each loop: 20 ms of CPU, then a loopback round trip to an
echo server in another process.  One more tasklet sleeps 10 ms in a loop
and records how late each wake-up is.  Prints JSON lines: the worst and
the 99th percentile lateness (ms) of the ticker, for stackless_compat
(patch_all(), tasklets) and for gevent (monkey.patch_all(), greenlets)
when it is installed, measured in the same run.

    python3 benchmarks/bench_timers.py [--workers 100] [--cpu-ms 20]
                                       [--seconds 5]
"""
import argparse
import json
import os
import platform
import subprocess
import sys

# the echo peer (stdlib selectors, no stackless_compat), shared with the tests
ECHO_SERVER = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tools", "echo_server.py")

SCENARIO = r"""
import socket, sys, time
port, workers, cpu, seconds = (int(sys.argv[1]), int(sys.argv[2]),
                               float(sys.argv[3]) / 1000, float(sys.argv[4]))
stop = [False]
late = []
def burn(t):
    end = time.perf_counter() + t
    while time.perf_counter() < end:
        pass
def worker():
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while not stop[0]:
        burn(cpu)
        s.sendall(b"x" * 64)
        n = 0
        while n < 64:
            n += len(s.recv(64 - n))
    s.close()
def ticker():
    time.sleep(0.5)                 # let the workers get going
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        time.sleep(0.01)
        late.append(time.monotonic() - t0 - 0.01)
    stop[0] = True
for _ in range(workers):
    spawn(worker)
spawn(ticker)
wait_all()
late.sort()
p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
print(max(late) * 1000, p99 * 1000, len(late))
"""

IMPLS = {
    "stackless_compat": """
from stackless_compat.patches import patch_all
patch_all()
import stackless_compat as sl
def spawn(f):
    sl.tasklet(f)()
wait_all = sl.run
""",
    "gevent": """
from gevent import monkey
monkey.patch_all()
import gevent
_gs = []
def spawn(f):
    _gs.append(gevent.spawn(f))
def wait_all():
    gevent.joinall(_gs)
""",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--cpu-ms", type=float, default=20)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--impls", default="stackless_compat,gevent")
    args = ap.parse_args()
    echo = subprocess.Popen([sys.executable, ECHO_SERVER],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = echo.stdout.readline().strip()
        for impl in args.impls.split(","):
            proc = subprocess.run(
                [sys.executable, "-c", IMPLS[impl] + SCENARIO, port,
                 str(args.workers), str(args.cpu_ms), str(args.seconds)],
                capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write("%s: skipped (%s)\n" % (
                    impl, proc.stderr.strip().splitlines()[-1:]))
                continue
            worst, p99, n = proc.stdout.split()
            for figure, value in (("worst", worst), ("p99", p99)):
                print(json.dumps({
                    "bench": "timers", "figure": "ticker lateness " + figure,
                    "impl": impl, "value": round(float(value), 1),
                    "unit": "ms", "ticks": int(n), "workers": args.workers,
                    "cpu_ms": args.cpu_ms,
                    "python": platform.python_version(),
                    "machine": platform.machine()}, sort_keys=True))
    finally:
        echo.kill()
        echo.wait()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
