"""Cooperative select.select and select.poll on hub waits.

Both first ask the real call with a zero timeout (so EBADF, POLLNVAL and
ready fds come out exactly as the stdlib reports them), then park on the
hub until one fd is ready or the timeout passes, and ask again."""
import select as _stdselect
import time as _time

from stackless_compat import _stackless

__implements__ = ["select", "poll"]
__target__ = "select"

_select = _stdselect.select
_poll = _stdselect.poll
_wait_many = _stackless._wait_many
_sleep = _stackless.sleep
_monotonic = _time.monotonic

POLLIN = _stdselect.POLLIN
POLLOUT = _stdselect.POLLOUT
POLLPRI = _stdselect.POLLPRI
_READ_MASK = POLLIN | POLLPRI | getattr(_stdselect, "POLLRDNORM", 0) | getattr(_stdselect, "POLLRDHUP", 0)
_WRITE_MASK = POLLOUT | getattr(_stdselect, "POLLWRNORM", 0)


def _fileno(obj):
    if isinstance(obj, int):
        return obj
    return int(obj.fileno())


def select(rlist, wlist, xlist, timeout=None):
    """select.select(rlist, wlist, xlist[, timeout]) parking the tasklet."""
    if timeout is not None:
        if isinstance(timeout, (str, bytes)) or not hasattr(timeout, "__float__"):
            raise TypeError("timeout must be a float or None")
        timeout = float(timeout)
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
    result = _select(rlist, wlist, xlist, 0)
    if result[0] or result[1] or result[2] or timeout == 0:
        return result
    rl = list(rlist)
    wl = list(wlist)
    rfds = [_fileno(o) for o in rl]
    wfds = [_fileno(o) for o in wl]
    deadline = None if timeout is None else _monotonic() + timeout
    while True:
        remaining = None
        if deadline is not None:
            remaining = deadline - _monotonic()
            if remaining <= 0:
                return [], [], []
        if not rfds and not wfds:
            if remaining is None:
                raise RuntimeError("select() with no fds and no timeout "
                                   "would block forever")
            _sleep(remaining)
            return [], [], []
        _wait_many(rfds, wfds, remaining)
        result = _select(rl, wl, xlist, 0)
        if result[0] or result[1] or result[2]:
            return result


class poll:
    """select.poll() whose poll() parks the tasklet."""

    def __init__(self):
        self._poll = _poll()
        self._fds = {}

    def register(self, fd, eventmask=POLLIN | POLLPRI | POLLOUT):
        fd = _fileno(fd)
        self._poll.register(fd, eventmask)
        self._fds[fd] = eventmask

    def modify(self, fd, eventmask):
        fd = _fileno(fd)
        self._poll.modify(fd, eventmask)
        self._fds[fd] = eventmask

    def unregister(self, fd):
        fd = _fileno(fd)
        self._poll.unregister(fd)
        del self._fds[fd]

    def poll(self, timeout=None):
        if timeout is not None:
            # milliseconds; negative means forever (as the stdlib)
            timeout = _stdselect_timeout(timeout)
        result = self._poll.poll(0)
        if result or timeout == 0:
            return result
        deadline = None if timeout is None else _monotonic() + timeout / 1000.0
        while True:
            remaining = None
            if deadline is not None:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    return []
            rfds = [fd for fd, m in self._fds.items() if m & _READ_MASK]
            wfds = [fd for fd, m in self._fds.items() if m & _WRITE_MASK]
            if not rfds and not wfds:
                if remaining is None:
                    # only error events asked for: poll the real thing
                    _sleep(0.01)
                else:
                    _sleep(min(remaining, 0.01))
            else:
                _wait_many(rfds, wfds, remaining)
            result = self._poll.poll(0)
            if result:
                return result


def _stdselect_timeout(timeout):
    if not isinstance(timeout, (int, float)) and hasattr(timeout, "__index__"):
        timeout = timeout.__index__()
    if isinstance(timeout, float):
        import math
        timeout = math.ceil(timeout)
    elif not isinstance(timeout, int):
        raise TypeError("timeout must be an integer or None")
    if timeout < 0:
        return None
    return timeout
