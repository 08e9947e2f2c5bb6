"""gunicorn: our worker class beside ``-k gevent`` and ``-k gthread``.

Two apps (tests/serve/wsgi_app.py): ``/`` hello world, and ``/upstream``,
which waits 10 ms on an upstream over a keep-alive connection (an asyncio
server in its own process, tests/serve/upstream.py).  ``wrk`` (Debian
``wrk``) drives 100 and 1,000 keep-alive connections at 2 workers; every
cell is run ``--repeat`` times, the worker kinds alternating, and the
median run is reported (requests/s and p99 latency).

    python3 benchmarks/bench_gunicorn.py [--repeat 3] [--duration 5]
        [--kinds ours,gevent,gthread] [--conns 100,1000] [--apps hello,upstream]

Prints one JSON line per cell and a Markdown table at the end.
"""
import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVE = os.path.join(os.path.dirname(HERE), "tests", "serve")

KINDS = {
    "ours": ["-k", "stackless_compat.gunicorn.TaskletWorker", "--worker-connections", "4000"],
    "gevent": ["-k", "gevent", "--worker-connections", "4000"],
    "gthread": ["-k", "gthread", "--threads", "32", "--worker-connections", "4000"],
}
APPS = {"hello": "/", "upstream": "/upstream?d=0.01"}


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port, deadline):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as c:
                c.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if c.recv(64).startswith(b"HTTP/1."):
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def parse_wrk(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    units = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * units[m.group(2)]
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    return rps, p99, errors


def run_cell(kind, app, conns, duration, upstream_port, log_dir):
    port = free_port()
    env = dict(os.environ, SLP_UPSTREAM_PORT=str(upstream_port))
    log = open(os.path.join(log_dir, "%s-%s-%d.log" % (kind, app, conns)), "ab")
    cmd = [sys.executable, "-m", "gunicorn", *KINDS[kind], "-w", "2",
           "-b", "127.0.0.1:%d" % port, "--no-control-socket", "--backlog", "4096",
           "--keep-alive", "30", "--log-level", "warning", "--chdir", SERVE, "wsgi_app:app"]
    proc = subprocess.Popen(cmd, cwd=SERVE, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_up(port, time.monotonic() + 30):
            raise RuntimeError("gunicorn (%s) did not come up" % kind)
        url = "http://127.0.0.1:%d%s" % (port, APPS[app])
        # warm-up: every connection opened once, imports and pools filled
        subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d1s", url],
                       capture_output=True, timeout=60)
        out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % duration,
                              "--timeout", "10s", "--latency", url],
                             capture_output=True, text=True, timeout=duration + 60).stdout
        return parse_wrk(out)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--kinds", default="ours,gevent,gthread")
    ap.add_argument("--conns", default="100,1000")
    ap.add_argument("--apps", default="hello,upstream")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found (Debian: apt-get install wrk)")
    raise_nofile()
    kinds = args.kinds.split(",")
    upstream = subprocess.Popen([sys.executable, os.path.join(SERVE, "upstream.py")],
                                stdout=subprocess.PIPE, text=True)
    upstream_port = int(upstream.stdout.readline())
    log_dir = tempfile.mkdtemp(prefix="bench-gunicorn-")
    table = {}
    try:
        for app in args.apps.split(","):
            for conns in (int(c) for c in args.conns.split(",")):
                runs = {k: [] for k in kinds}
                for r in range(args.repeat):
                    order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
                    for kind in order:
                        runs[kind].append(run_cell(kind, app, conns, args.duration,
                                                   upstream_port, log_dir))
                for kind in kinds:
                    ordered = sorted(runs[kind])
                    rps, p99, errors = ordered[len(ordered) // 2]
                    table[(app, conns, kind)] = (rps, p99, errors)
                    print(json.dumps({"bench": "gunicorn", "app": app, "conns": conns,
                                      "impl": kind, "rps": round(rps, 1),
                                      "p99_ms": round(p99, 2), "errors": errors,
                                      "runs": [[round(a, 1), round(b, 2), c]
                                               for a, b, c in runs[kind]]}), flush=True)
    finally:
        upstream.kill()
        upstream.wait()
        upstream.stdout.close()
    print()
    print("| app | conns | " + " | ".join("%s req/s (p99 ms)" % k for k in kinds)
          + " | ours / gevent |")
    print("|---|---|" + "---|" * len(kinds) + "---|")
    for app in args.apps.split(","):
        for conns in (int(c) for c in args.conns.split(",")):
            cells = []
            for k in kinds:
                rps, p99, err = table[(app, conns, k)]
                cells.append("%.0f (%.1f)%s" % (rps, p99, " [%d err]" % err if err else ""))
            ratio = ""
            if "ours" in kinds and "gevent" in kinds:
                ratio = "%.2fx" % (table[(app, conns, "ours")][0] / table[(app, conns, "gevent")][0])
            print("| %s | %d | %s | %s |" % (app, conns, " | ".join(cells), ratio))
    print("\nworker logs: %s" % log_dir)


if __name__ == "__main__":
    main()
