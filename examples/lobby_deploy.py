"""The lobby deployed the way the README's "Deployment" section says: a
private redis-server (broker, result backend and the lobby's bus), gunicorn
with N workers of our worker class serving examples/lobby_wsgi.py, and a
Celery worker with our pool running examples/lobby_tasks.py.  Then it
checks, over HTTP: listeners spread over the workers each get every line of
their room exactly once and in order, a Celery task posts into a room, and
a task that gathers through a channel inside itself answers right.

    python3 examples/lobby_deploy.py [--workers 4] [--listeners 40]

Needs Debian's redis-server and the [serve] extra.  Exit status 1 on any
lost, duplicated or reordered line.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any, cast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
from redis_server import RedisServer  # type: ignore[import-not-found]  # noqa: E402


def get(port: int, path: str, timeout: float = 30) -> Any:
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return json.loads(r.read())


def wait_for(pred: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--listeners", type=int, default=40)
    ap.add_argument("--rooms", type=int, default=4)
    ap.add_argument("--lines", type=int, default=10)
    args = ap.parse_args(argv)
    logs = tempfile.mkdtemp(prefix="lobby-deploy-")
    procs: list[subprocess.Popen[bytes]] = []
    with RedisServer() as redis:
        env = dict(os.environ, LOBBY_REDIS_URL=redis.url,
                   CELERY_CUSTOM_WORKER_POOL="stackless_compat.celery:TaskPool")
        env["PYTHONPATH"] = HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        glog = os.path.join(logs, "gunicorn.log")
        clog = os.path.join(logs, "celery.log")
        try:
            with open(glog, "wb") as f:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "-k", "stackless_compat.gunicorn.TaskletWorker",
                     "-w", str(args.workers), "-b", "127.0.0.1:0", "--no-control-socket",
                     "--chdir", HERE, "lobby_wsgi:app"],
                    cwd=HERE, env=env, stdout=f, stderr=subprocess.STDOUT))
            with open(clog, "wb") as f:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "lobby_tasks", "worker", "--pool=custom",
                     "-c", "100", "-n", "lobby@localhost", "--without-gossip", "--without-mingle",
                     "-l", "info"],
                    cwd=HERE, env=env, stdout=f, stderr=subprocess.STDOUT))

            def port() -> int | None:
                m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", open(glog).read())
                return int(m.group(1)) if m else None
            wait_for(lambda: port() and open(glog).read().count("Booting worker") >= args.workers,
                     "gunicorn")
            p = cast(int, port())
            wait_for(lambda: "ready." in open(clog).read(), "the Celery worker", 60)

            rooms = ["room%d" % i for i in range(args.rooms)]
            got: dict[int, list[tuple[int, str, str]]] = {}
            pids: set[int] = set()
            errors: list[str] = []

            def listen(i: int) -> None:
                r = rooms[i % len(rooms)]
                mine: list[tuple[int, str, str]] = []
                after = 0
                try:
                    while len(mine) < args.lines + 1:
                        ans = get(p, "/listen?room=%s&after=%d" % (r, after))
                        pids.add(ans["pid"])
                        for number, who, text in ans["lines"]:
                            mine.append((number, who, text))
                            after = number
                except Exception as exc:
                    errors.append("listener %d: %r" % (i, exc))
                got[i] = mine

            threads = [threading.Thread(target=listen, args=(i,)) for i in range(args.listeners)]
            for t in threads:
                t.start()
            time.sleep(1.5)  # the listeners park, each in a tasklet on some worker
            for k in range(args.lines):
                for r in rooms:
                    get(p, "/say?room=%s&name=user%d&text=line-%d" % (r, k, k))
            sys.path.insert(0, HERE)
            os.environ["LOBBY_REDIS_URL"] = redis.url
            import lobby_tasks
            for r in rooms:
                lobby_tasks.announce.delay(r, "hello from celery").get(timeout=30)
            census = lobby_tasks.room_census.delay(rooms).get(timeout=30)
            for t in threads:
                t.join(60)
            ok = not errors
            for i in range(args.listeners):
                lines = got.get(i, [])
                want = [(k + 1, "user%d" % k, "line-%d" % k) for k in range(args.lines)] + \
                       [(args.lines + 1, "bot", "hello from celery")]
                if lines != want:
                    ok = False
                    errors.append("listener %d got %r" % (i, lines[:3]))
            if census != {r: args.lines + 1 for r in rooms}:
                ok = False
                errors.append("census %r" % census)
            print("lobby deploy: %d gunicorn workers (%d answered the listeners), %d listeners "
                  "in %d rooms, %d lines each + 1 from a Celery task; census %s"
                  % (args.workers, len(pids), args.listeners, len(rooms), args.lines,
                     json.dumps(census, sort_keys=True)))
            for e in errors[:10]:
                print("lobby deploy: ERROR " + e)
            print("lobby deploy: " + ("OK, every line reached every listener once, in order"
                                      if ok else "FAILED (logs in %s)" % logs))
            return 0 if ok else 1
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    sys.exit(main())
