"""A Celery execution pool on tasklets.

    CELERY_CUSTOM_WORKER_POOL=stackless_compat.celery:TaskPool \\
        celery -A proj worker --pool=custom --concurrency=500

Celery stays the worker: it consumes from the broker, acknowledges,
stores results, handles remote control and signals.  This pool runs each
task in its own tasklet of the worker process:

* ``--concurrency`` bounds the tasklets running tasks at once; tasks
  handed over beyond that wait in the pool, in order, for a free slot.
* ``time_limit`` raises a ``Timeout`` in the task's tasklet; the task
  fails with ``TimeLimitExceeded`` (Celery's own hard-limit handling) and
  the worker goes on.  ``soft_time_limit`` raises ``SoftTimeLimitExceeded``
  in the tasklet, which the task may catch.
* ``revoke(terminate=True)`` kills the task's tasklet (``TaskletExit``);
  Celery reports the task as terminated.
* Warm shutdown (TERM) waits for the running and waiting tasks; cold
  shutdown (QUIT) kills them.

Celery imports the pool named by ``CELERY_CUSTOM_WORKER_POOL`` as soon as
it has read ``--pool`` from the command line, before the application: so
importing this module calls ``patch_all()`` (like ``-P gevent``), and the
broker and backend clients get cooperative sockets.
"""
from stackless_compat.patches import patch_all

patch_all()

import collections  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402

from celery.concurrency import base as _base  # noqa: E402
from billiard.einfo import ExceptionInfo  # noqa: E402
from celery.exceptions import SoftTimeLimitExceeded, Terminated  # noqa: E402
from kombu.asynchronous import timer as _timer  # noqa: E402

import stackless_compat as _slp  # noqa: E402
from stackless_compat import hub as _hub  # noqa: E402

__all__ = ["TaskPool", "Timer"]


def _noop():
    pass


class _TimerCall:
    """A timer entry waiting in its own tasklet (see ``Timer``)."""

    __slots__ = ("entry", "eta", "priority", "tasklet", "__weakref__")

    def __init__(self, entry, eta, priority):
        self.entry = entry
        self.eta = eta
        self.priority = priority
        self.tasklet = None

    @property
    def canceled(self):
        return self.entry.canceled

    def cancel(self):
        self.entry.cancel()
        t = self.tasklet
        if t is not None and t.alive and t is not _slp.getcurrent():
            t.kill()


class Timer(_timer.Timer):
    """Celery's timer with each entry waiting in a tasklet.

    Used by Celery when the transport has no event loop of its own (the
    worker's timer then is the pool's ``Timer``); a thread-based timer
    would block the whole process on its locks.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._calls = set()

    def _enter(self, eta, priority, entry, **kwargs):
        call = _TimerCall(entry, eta, priority)
        call.tasklet = _slp.tasklet(self._fire)(call)
        self._calls.add(call)
        return call

    def _fire(self, call):
        try:
            delay = call.eta - time.monotonic()
            if delay > 0:
                _hub.sleep(delay)
            if not call.entry.canceled:
                self.apply_entry(call.entry)
        finally:
            call.tasklet = None
            self._calls.discard(call)

    def clear(self):
        while self._calls:
            self._calls.pop().cancel()

    def stop(self):
        self.clear()

    @property
    def queue(self):
        return sorted(self._calls, key=lambda c: (c.eta, c.priority))

    def __len__(self):
        return len(self._calls)


class _Job:
    """One task handed to the pool (Celery keeps a weak reference)."""

    __slots__ = ("pool", "pid", "tasklet", "target", "args", "kwargs",
                 "callback", "accept_callback", "timeout", "soft_timeout",
                 "timeout_callback", "signal", "__weakref__")

    def __init__(self, pool, pid, target, args, kwargs, callback,
                 accept_callback, timeout, soft_timeout, timeout_callback):
        self.pool = pool
        self.pid = pid
        self.tasklet = None
        self.target = target
        self.args = args
        self.kwargs = kwargs
        self.callback = callback
        self.accept_callback = accept_callback
        self.timeout = timeout
        self.soft_timeout = soft_timeout
        self.timeout_callback = timeout_callback
        self.signal = None  # set by terminate_job()

    def terminate(self, signal=None):
        # Celery calls this after terminate_job(pid), which did the kill;
        # a job still waiting for a slot is killed by Celery once it is
        # accepted (it is marked revoked).
        pass


class _SoftLimit:
    """Raise SoftTimeLimitExceeded in a job's tasklet once its soft limit
    passes (one small tasklet per job that has a soft limit)."""

    __slots__ = ("tasklet",)

    def __init__(self, job):
        self.tasklet = _slp.tasklet(self._watch)(job, _slp.getcurrent())

    @staticmethod
    def _watch(job, target):
        _hub.sleep(job.soft_timeout)
        if target.alive:
            if job.timeout_callback is not None:
                job.timeout_callback(True, job.soft_timeout)
            target.throw(SoftTimeLimitExceeded(job.soft_timeout))

    def cancel(self):
        t = self.tasklet
        if t.alive and t is not _slp.getcurrent():
            t.kill()


class _HardLimit(BaseException):
    """The Timeout exception of a job's hard time limit."""


class TaskPool(_base.BasePool):
    """Celery pool: each task in a tasklet, ``limit`` at a time."""

    Timer = Timer

    signal_safe = False
    is_green = False
    task_join_will_block = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timeout = kwargs.get("timeout")
        self.soft_timeout = kwargs.get("soft_timeout")
        self._running = {}                     # pid -> _Job
        self._waiting = collections.deque()    # jobs waiting for a slot
        self._slot = None                      # channel: on_apply callers
        self._idle = None                      # channel: on_stop waiter
        self._pids = itertools.count(1)
        self._cold = False                     # on_terminate() was called
        self._hub = None
        self._hub_tasklet = None
        self._wake_pipe = None
        self._wake_pending = False
        self.max_running = 0                   # high-water mark

    # -- life cycle -------------------------------------------------------

    def on_start(self):
        self._slot = _slp.channel()
        self._slot.preference = 0
        self._idle = _slp.channel()
        self._idle.preference = 0

    def register_with_event_loop(self, loop):
        # With an event-loop transport (Redis, AMQP) Celery runs kombu's
        # hub in the main tasklet; it polls (a patched poll that parks) and
        # so runs our tasklets.  Callbacks our tasklets hand to the hub
        # (acks, rate-limit and timer work) must wake its poll.
        import os
        self._hub = loop
        self._hub_tasklet = _slp.getcurrent()
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._wake_pipe = (r, w)
        loop.add_reader(r, self._on_wake)
        # Celery's signal handlers (warm and cold shutdown) only set flags
        # that the hub's loop checks between two polls: a signal must end
        # the poll, or the shutdown waits for the poll's timeout (up to
        # 10 s).  Signals write a byte to the pipe.
        import signal
        try:
            old = signal.set_wakeup_fd(w)
        except ValueError:
            pass  # not the main thread
        else:
            if old != -1:
                signal.set_wakeup_fd(old)  # someone else's: leave it
        # A handler may run in any tasklet, and set its flag after the hub
        # saw the byte: the hub polls for at most a second at a time.
        loop.call_repeatedly(1.0, _noop)
        hub_call_soon = loop.call_soon

        def call_soon(callback, *args):
            res = hub_call_soon(callback, *args)
            if _slp.getcurrent() is not self._hub_tasklet:
                self._wake()
            return res

        loop.call_soon = call_soon

    def _wake(self):
        if self._wake_pipe is not None and not self._wake_pending:
            import os
            self._wake_pending = True
            try:
                os.write(self._wake_pipe[1], b".")
            except OSError:
                pass  # full: a wake-up is pending anyway

    def _wake_soon(self):
        # on_stop()/on_terminate() run inside Celery's shutdown signal
        # handlers, which set the flag the hub loop checks only after they
        # return: wake the hub from a tasklet that runs after this one.
        if self._wake_pipe is not None:
            _slp.tasklet(self._wake)()

    def _on_wake(self):
        import os
        self._wake_pending = False
        if self._wake_pipe is None:
            return
        try:
            while os.read(self._wake_pipe[0], 4096):
                pass
        except OSError:
            pass

    def on_stop(self):
        """Warm shutdown: wait for the running and the waiting jobs."""
        while self._running or self._waiting:
            self._idle.receive()
        self._wake_soon()

    def on_terminate(self):
        """Cold shutdown: kill the running jobs, drop the waiting ones."""
        self._cold = True
        self._waiting.clear()
        for job in list(self._running.values()):
            t = job.tasklet
            if t is not None and t.alive:
                t.kill()
        self._wake_soon()

    def on_close(self):
        pass

    # -- jobs -------------------------------------------------------------

    def on_apply(self, target, args=None, kwargs=None, callback=None,
                 accept_callback=None, timeout=None, timeout_callback=None,
                 soft_timeout=None, waitforslot=False, **_):
        timeout = self.timeout if timeout is None else timeout
        soft_timeout = self.soft_timeout if soft_timeout is None \
            else soft_timeout
        job = _Job(self, next(self._pids), target, args, kwargs, callback,
                   accept_callback, timeout, soft_timeout, timeout_callback)
        if len(self._running) < self.limit:
            self._start(job)
        elif waitforslot:
            # A consumer that asked for back-pressure (the loop without an
            # event loop): it waits here for a free slot.
            while len(self._running) >= self.limit:
                self._slot.receive()
            self._start(job)
        else:
            self._waiting.append(job)
        return job

    def _start(self, job):
        self._running[job.pid] = job
        if len(self._running) > self.max_running:
            self.max_running = len(self._running)
        job.tasklet = _slp.tasklet(self._run)(job)

    def _run(self, job):
        try:
            self._execute(job)
        finally:
            self._running.pop(job.pid, None)
            job.tasklet = None
            if self._waiting and len(self._running) < self.limit:
                self._start(self._waiting.popleft())
            if self._slot.balance < 0:
                self._slot.send(None)
            if not self._running and not self._waiting \
                    and self._idle.balance < 0:
                self._idle.send(None)

    def _execute(self, job):
        limits = []
        if job.soft_timeout:
            limits.append(_SoftLimit(job))
        if job.timeout:
            limits.append(_hub.Timeout(job.timeout, _HardLimit).start())

        def target(*args, **kwargs):
            started = time.monotonic()
            try:
                return job.target(*args, **kwargs)
            except _slp.TaskletExit:
                if self._cold:
                    raise  # cold shutdown: the job just ends, no callback
                # revoke(terminate=True): reported the way Celery reports
                # a terminated child process
                try:
                    raise Terminated(job.signal)
                except Terminated:
                    return (True, ExceptionInfo(),
                            time.monotonic() - started)
            finally:
                # The limits cover the task's trace (the task and the
                # storing of its result), not the pool's callbacks.
                for limit in limits:
                    limit.cancel()

        try:
            _base.apply_target(target, job.args, job.kwargs,
                               job.callback, job.accept_callback,
                               pid=job.pid,
                               propagate=(_HardLimit, _slp.TaskletExit))
        except _HardLimit:
            if job.timeout_callback is not None:
                job.timeout_callback(False, job.timeout)
        except _slp.TaskletExit:
            pass
        finally:
            for limit in limits:
                limit.cancel()

    def terminate_job(self, pid, signal=None):
        job = self._running.get(pid)
        if job is not None:
            t = job.tasklet
            if t is not None and t.alive and t is not _slp.getcurrent():
                job.signal = signal
                # pending: Celery announces the revoke first, then the
                # tasklet ends (as with a child process being killed)
                t.kill(pending=True)

    # -- autoscale / info -------------------------------------------------

    def grow(self, n=1):
        self.limit += n
        while self._waiting and len(self._running) < self.limit:
            self._start(self._waiting.popleft())

    def shrink(self, n=1):
        self.limit = max(1, self.limit - n)

    @property
    def num_processes(self):
        return self.limit

    def _get_info(self):
        info = super()._get_info()
        info.update({
            "running": len(self._running),
            "waiting": len(self._waiting),
            "max-running": self.max_running,
        })
        return info
