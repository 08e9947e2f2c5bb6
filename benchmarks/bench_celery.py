"""Celery: I/O-bound tasks per second, our pool beside ``-P gevent``.

Each task waits on I/O for real (``BLPOP`` with a timeout on the private
redis-server that is also broker and result backend: tools/redis_server.py,
Debian ``redis-server``); the app is tests/serve/celery_app.py.  The tasks
are queued first, then one worker starts (``--pool=custom`` with
``CELERY_CUSTOM_WORKER_POOL=stackless_compat.celery:TaskPool``, or
``-P gevent``) at the same concurrency; tasks/s = tasks / (last task end -
first task start), from the tasks' own timestamps.  The pools alternate,
``--repeat`` times; the median is reported.

    python3 benchmarks/bench_celery.py [--tasks 3000] [--wait 0.05]
        [--concurrency 500] [--repeat 3] [--pools custom,gevent]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVE = os.path.join(ROOT, "tests", "serve")
sys.path.insert(0, os.path.join(ROOT, "tools"))
from redis_server import RedisServer  # noqa: E402


def env_for(url, extra=None):
    env = dict(os.environ, SLP_REDIS_URL=url,
               CELERY_CUSTOM_WORKER_POOL="stackless_compat.celery:TaskPool")
    env["PYTHONPATH"] = SERVE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def driver(url, *args, timeout=600):
    out = subprocess.run([sys.executable, os.path.join(SERVE, "celery_driver.py"),
                          *[str(a) for a in args]], cwd=SERVE, env=env_for(url),
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_once(url, pool, n, wait, concurrency):
    queue = "bench-" + uuid.uuid4().hex[:8]
    ids = driver(url, "publish", queue, "io_wait", n, json.dumps(["$i", wait]))
    d = tempfile.mkdtemp(prefix="bench-celery-")
    ready = os.path.join(d, "ready")
    log = open(os.path.join(d, "worker.log"), "wb")
    cmd = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=" + pool,
           "-c", str(concurrency), "-Q", queue, "-n", "%s@localhost" % queue,
           "--without-gossip", "--without-mingle", "--loglevel=warning"]
    proc = subprocess.Popen(cmd, cwd=SERVE, env=env_for(url, {"SLP_READY_FILE": ready}),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        ids_file = os.path.join(d, "ids.json")
        with open(ids_file, "w") as f:
            json.dump(ids, f)
        out = driver(url, "results", ids_file, 600)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    bad = [o for o in out if o[0] != "SUCCESS"]
    if bad:
        raise RuntimeError("%d tasks failed: %r (log in %s)" % (len(bad), bad[:3], d))
    if [v[0] for _, v in out] != [2 * i for i in range(n)]:
        raise RuntimeError("wrong results")
    spans = [(v[1], v[2]) for _, v in out]
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    cur = peak = 0
    for _, step in events:
        cur += step
        peak = max(peak, cur)
    return n / span, span, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument("--wait", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pools", default="custom,gevent")
    args = ap.parse_args()
    pools = args.pools.split(",")
    runs = {p: [] for p in pools}
    with RedisServer() as redis:
        for r in range(args.repeat):
            order = pools if r % 2 == 0 else pools[::-1]
            for pool in order:
                runs[pool].append(run_once(redis.url, pool, args.tasks, args.wait,
                                           args.concurrency))
    names = {"custom": "stackless_compat.celery", "gevent": "-P gevent"}
    med = {}
    for pool in pools:
        ordered = sorted(runs[pool])
        med[pool] = ordered[len(ordered) // 2]
        rate, span, peak = med[pool]
        print(json.dumps({"bench": "celery", "impl": names.get(pool, pool),
                          "tasks": args.tasks, "wait_s": args.wait,
                          "concurrency": args.concurrency, "tasks_per_s": round(rate, 1),
                          "span_s": round(span, 3), "peak_running": peak,
                          "runs": [[round(a, 1), round(b, 3), c] for a, b, c in runs[pool]]}),
              flush=True)
    print()
    print("| pool | tasks/s (median) | span s | peak running | runs (tasks/s) |")
    print("|---|---|---|---|---|")
    for pool in pools:
        rate, span, peak = med[pool]
        print("| %s | %.0f | %.2f | %d | %s |" % (names.get(pool, pool), rate, span, peak,
                                                 ", ".join("%.0f" % a for a, _, _ in runs[pool])))
    if "custom" in med and "gevent" in med:
        print("\nours / gevent: %.2fx" % (med["custom"][0] / med["gevent"][0]))


if __name__ == "__main__":
    main()
