"""The hub's Python API: sleep, fd waits and Timeout.

The hub is one libev loop per thread, polled by the scheduler when no
tasklet is runnable (no hub tasklet).  Everything that waits parks the
calling tasklet; ``kill()``/``throw()`` of a waiting tasklet stops its
watcher.

    sleep(seconds)              park for that long; sleep(0) is schedule()
    wait_read(fd, timeout=None) park until fd (int or .fileno()) is readable
    wait_write(fd, timeout=None)
                                both raise TimeoutError("timed out") when
                                the timeout passes
    with Timeout(seconds[, exception]): ...
                                raise in this tasklet when it expires
"""
from . import _stackless
from ._stackless import sleep, wait_read, wait_write

__all__ = ["sleep", "wait_read", "wait_write", "Timeout", "with_timeout"]


class Timeout(BaseException):
    """Raise in the tasklet that started it once ``seconds`` pass.

    ``with Timeout(1.5): ...`` raises the Timeout itself (catch it with
    ``except Timeout``); ``Timeout(1.5, exc)`` raises ``exc`` (an instance
    or a class) instead; ``Timeout(1.5, False)`` makes the with block end
    silently.  ``seconds=None`` never expires.  ``start()``/``cancel()``
    work outside ``with`` too.  Like gevent's, it derives from
    BaseException so that ``except Exception`` does not swallow it.
    """

    def __init__(self, seconds=None, exception=None, ref=True):
        BaseException.__init__(self, seconds)
        self.seconds = seconds
        self.exception = exception
        self._timer = None

    def start(self):
        if self.pending:
            raise RuntimeError("Timeout is already started")
        if self.seconds is None:
            return self
        exc = self.exception
        if exc is None or exc is False:
            exc = self
        elif isinstance(exc, type):
            exc = exc()
        self._timer = _stackless._hub_timer(float(self.seconds),
                                            _stackless.getcurrent(), exc)
        return self

    @classmethod
    def start_new(cls, seconds=None, exception=None):
        if isinstance(seconds, Timeout):
            return seconds.start()
        return cls(seconds, exception).start()

    @property
    def pending(self):
        return self._timer is not None and self._timer.pending

    def cancel(self):
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    close = cancel

    def __enter__(self):
        return self.start()

    def __exit__(self, typ, value, tb):
        self.cancel()
        if value is self and self.exception is False:
            return True
        return None

    def __str__(self):
        if self.seconds is None:
            return ""
        suffix = "" if self.seconds == 1 else "s"
        if self.exception is None or self.exception is False:
            return "%s second%s" % (self.seconds, suffix)
        return "%s second%s: %s" % (self.seconds, suffix, self.exception)

    def __repr__(self):
        return "<%s seconds=%r exception=%r pending=%s>" % (
            type(self).__name__, self.seconds, self.exception, self.pending)


def with_timeout(seconds, function, *args, **kwds):
    """Call function(*args, **kwds) under a Timeout; with the keyword
    ``timeout_value``, return that value instead of raising."""
    marker = object()
    timeout_value = kwds.pop("timeout_value", marker)
    t = Timeout(seconds)
    t.start()
    try:
        return function(*args, **kwds)
    except Timeout as exc:
        if exc is t and timeout_value is not marker:
            return timeout_value
        raise
    finally:
        t.cancel()
