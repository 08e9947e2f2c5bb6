"""sleep(0) among N tasklets (stackless_compat.hub.sleep) beside gevent's
sleep(0) among N greenlets when gevent is installed.  Prints JSON:
ns per sleep(0) call.

    python3 benchmarks/bench_sleep.py [--switches 200000]
"""
import argparse
import json
import subprocess
import sys
import time

OURS = r"""
import sys, time
import stackless_compat as sl
from stackless_compat.hub import sleep
n, total = int(sys.argv[1]), int(sys.argv[2])
per = total // n
def f():
    for _ in range(per):
        sleep(0)
for _ in range(n):
    sl.tasklet(f)()
t0 = time.perf_counter()
sl.run()
print((time.perf_counter() - t0) / (per * n) * 1e9)
"""

GEVENT = r"""
import sys, time
import gevent
n, total = int(sys.argv[1]), int(sys.argv[2])
per = total // n
def f():
    for _ in range(per):
        gevent.sleep(0)
gs = [gevent.spawn(f) for _ in range(n)]
t0 = time.perf_counter()
gevent.joinall(gs)
print((time.perf_counter() - t0) / (per * n) * 1e9)
"""


def run(code, n, total):
    out = subprocess.run([sys.executable, "-c", code, str(n), str(total)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return round(float(out.stdout.strip()), 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--switches", type=int, default=200000)
    args = ap.parse_args()
    res = {}
    for n in (2, 1000):
        ours = run(OURS, n, args.switches)
        gev = run(GEVENT, n, args.switches)
        res["sleep0_%d" % n] = {
            "stackless_compat_ns": ours, "gevent_ns": gev,
            "ratio": round(ours / gev, 3) if ours and gev else None}
    print(json.dumps({"bench": "sleep0", "results": res}, indent=1))


if __name__ == "__main__":
    main()
