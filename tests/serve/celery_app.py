"""The Celery app of tests/test_celery.py (and benchmarks/bench_celery.py).

The broker and result backend are the private redis-server of the test:
``SLP_REDIS_URL``.  ``SLP_READY_FILE``: written once the worker is ready.
Tasks wait on I/O for real: ``BLPOP`` of a key nobody pushes to, with a
timeout, parks the task's tasklet on its socket to redis for that long.
"""
import os
import time

import redis
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready

URL = os.environ["SLP_REDIS_URL"]

app = Celery("celery_app", broker=URL, backend=URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    # With hundreds of tasks in flight, hundreds of tasklets talk to the
    # broker and the result backend at once: their connection pools must
    # be that large (redis-py's default is 100), as for -P gevent.
    broker_transport_options={
        "visibility_timeout": float(
            os.environ.get("SLP_VISIBILITY_TIMEOUT", "3600")),
        # look for unacknowledged messages to redeliver every second
        # (kombu's default: every 10 s, and only every 10th time)
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
        "max_connections": 2000},
    redis_max_connections=2000,
    worker_prefetch_multiplier=int(os.environ.get("SLP_PREFETCH", "4")),
    result_expires=600,
    task_track_started=os.environ.get("SLP_TRACK_STARTED") == "1",
    worker_hijack_root_logger=False,
)

_client = redis.Redis(connection_pool=redis.ConnectionPool.from_url(
    URL, max_connections=2000, socket_timeout=60))


def _redis():
    return _client


@worker_ready.connect
def _ready(**kwargs):
    path = os.environ.get("SLP_READY_FILE")
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(path + ".tmp", path)


def _io_wait(secs):
    # BLPOP's timeout is in seconds (fractions since redis 6)
    _redis().blpop(["slp:never"], timeout=secs)


@app.task
def io_wait(i, secs=0.1):
    t0 = time.time()
    _io_wait(secs)
    return [i * 2, t0, time.time()]


@app.task
def sleep_task(i, secs=0.1):
    time.sleep(secs)
    return i


@app.task(time_limit=0.5)
def overrun(secs):
    _io_wait(secs)
    return "finished"


@app.task(soft_time_limit=0.3)
def soft_overrun(secs):
    try:
        _io_wait(secs)
    except SoftTimeLimitExceeded:
        return "soft limit caught"
    return "finished"


@app.task
def long_task(secs):
    _io_wait(secs)
    return "finished"


def _record(tag, i, secs):
    r = _redis()
    r.sadd("slp:%s:started" % tag, i)
    _io_wait(secs)
    r.sadd("slp:%s:done" % tag, i)
    return i


@app.task(acks_late=True)
def record_late(tag, i, secs):
    return _record(tag, i, secs)


@app.task(acks_late=False)
def record_early(tag, i, secs):
    return _record(tag, i, secs)


@app.task
def channel_pipeline(n):
    """Tasklets and a channel inside one task: producers feed a consumer."""
    import stackless_compat as stackless
    ch = stackless.channel()
    out = []

    def producer(k):
        _io_wait(0.05)
        ch.send(k * k)

    for k in range(n):
        stackless.tasklet(producer)(k)
    for _ in range(n):
        out.append(ch.receive())
    return sorted(out)
