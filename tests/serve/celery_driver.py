"""Client side of tests/test_celery.py, run as a child process (the test
process keeps no broker connections).

    celery_driver.py publish QUEUE TASK N [ARGS_JSON]   -> JSON task ids
    celery_driver.py results IDS_FILE TIMEOUT          -> JSON [[state, result]]
    celery_driver.py call QUEUE TASK ARGS_JSON TIMEOUT -> JSON [state, result]
    celery_driver.py revoke ID                          (terminate=True)
    celery_driver.py smembers KEY                       -> JSON sorted members
"""
import json
import sys
import time

from celery.result import AsyncResult

from celery_app import app, _redis


def _state(r, timeout):
    try:
        value = r.get(timeout=timeout, propagate=False)
    except Exception as exc:  # timeout waiting
        return [r.state, "%s: %s" % (type(exc).__name__, exc)]
    if isinstance(value, BaseException):
        value = "%s: %s" % (type(value).__name__, value)
    return [r.state, value]


def main(argv):
    cmd = argv[0]
    if cmd == "publish":
        queue, name, n = argv[1], argv[2], int(argv[3])
        extra = json.loads(argv[4]) if len(argv) > 4 else []
        task = app.tasks["celery_app." + name]
        ids = []
        with app.producer_or_acquire() as producer:
            for i in range(n):
                args = [a if a != "$i" else i for a in extra] if extra else [i]
                ids.append(task.apply_async(args, queue=queue,
                                            producer=producer).id)
        print(json.dumps(ids))
    elif cmd == "results":
        with open(argv[1]) as f:
            ids = json.load(f)
        deadline = time.monotonic() + float(argv[2])
        out = []
        for i in ids:
            left = max(0.1, deadline - time.monotonic())
            out.append(_state(AsyncResult(i, app=app), left))
        print(json.dumps(out))
    elif cmd == "call":
        queue, name, args, timeout = argv[1], argv[2], json.loads(argv[3]), \
            float(argv[4])
        r = app.tasks["celery_app." + name].apply_async(args, queue=queue)
        print(json.dumps(_state(r, timeout)))
    elif cmd == "send":
        queue, name, args = argv[1], argv[2], json.loads(argv[3])
        print(json.dumps(app.tasks["celery_app." + name].apply_async(
            args, queue=queue).id))
    elif cmd == "states":
        with open(argv[1]) as f:
            ids = json.load(f)
        print(json.dumps([AsyncResult(i, app=app).state for i in ids]))
    elif cmd == "state":
        print(json.dumps(AsyncResult(argv[1], app=app).state))
    elif cmd == "revoke":
        app.control.revoke(argv[1], terminate=True)
        print(json.dumps("ok"))
    elif cmd == "stats":
        print(json.dumps(app.control.inspect(destination=[argv[1]],
                                             timeout=5).stats()[argv[1]]))
    elif cmd == "smembers":
        print(json.dumps(sorted(int(x) for x in _redis().smembers(argv[1]))))
    else:
        raise SystemExit("unknown command %r" % cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
