"""Cooperative select.select, select.poll and select.epoll on hub waits.

select and poll first ask the real call with a zero timeout (so EBADF, POLLNVAL and
ready fds come out exactly as the stdlib reports them), then park on the
hub until one fd is ready or the timeout passes, and ask again.
``epoll`` wraps a real epoll object (the type cannot be subclassed); its
``poll()`` asks with a zero timeout, then parks until the epoll fd itself
is readable (it is once any registered fd has an event) and asks again."""
import select as _stdselect

from stackless_compat import _stackless
from stackless_compat.patches._deadline import AGAIN as _AGAIN
from stackless_compat.patches._deadline import retry as _retry_loop

__implements__ = ["select", "poll", "epoll"]
__target__ = "select"

_select = _stdselect.select
_poll = _stdselect.poll
_wait_many = _stackless._wait_many
_sleep = _stackless.sleep

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
    if not rfds and not wfds:
        if timeout is None:
            raise RuntimeError("select() with no fds and no timeout "
                               "would block forever")
        _sleep(timeout)
        return [], [], []

    def attempt():
        result = _select(rl, wl, xlist, 0)
        if result[0] or result[1] or result[2]:
            return result
        return _AGAIN

    def park(remaining):
        _wait_many(rfds, wfds, remaining)

    return _retry_loop(attempt, park, timeout, _nothing_ready,
                       attempted=True)


def _nothing_ready():
    return [], [], []


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
        fds = self._fds

        def attempt():
            return self._poll.poll(0) or _AGAIN

        def park(remaining):
            rfds = [fd for fd, m in fds.items() if m & _READ_MASK]
            wfds = [fd for fd, m in fds.items() if m & _WRITE_MASK]
            if rfds or wfds:
                _wait_many(rfds, wfds, remaining)
            elif remaining is None:
                # only error events asked for: poll the real thing
                _sleep(0.01)
            else:
                _sleep(min(remaining, 0.01))

        return _retry_loop(attempt, park,
                           None if timeout is None else timeout / 1000.0,
                           list, attempted=True)


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


_real_epoll = getattr(_stdselect, "epoll", None)

if _real_epoll is not None:
    class epoll:
        """select.epoll whose poll() parks the tasklet (it wraps a real
        epoll object: that type cannot be subclassed)."""

        def __init__(self, sizehint=-1, flags=0, _ep=None):
            self._ep = _real_epoll(sizehint, flags) if _ep is None else _ep

        @classmethod
        def fromfd(cls, fd):
            return cls(_ep=_real_epoll.fromfd(fd))

        @property
        def closed(self):
            return self._ep.closed

        def close(self):
            self._ep.close()

        def fileno(self):
            return self._ep.fileno()

        def register(self, fd, eventmask=None):
            if eventmask is None:
                return self._ep.register(fd)
            return self._ep.register(fd, eventmask)

        def modify(self, fd, eventmask):
            return self._ep.modify(fd, eventmask)

        def unregister(self, fd):
            return self._ep.unregister(fd)

        def __enter__(self):
            self._ep.__enter__()
            return self

        def __exit__(self, *exc):
            return self._ep.__exit__(*exc)

        def poll(self, timeout=None, maxevents=-1):
            if timeout is not None:
                if not isinstance(timeout, (int, float)):
                    timeout = float(timeout)    # TypeError as the stdlib
                if timeout < 0:
                    timeout = None
            ep = self._ep
            result = ep.poll(0, maxevents)
            if result or timeout == 0:
                return result

            def attempt():
                return ep.poll(0, maxevents) or _AGAIN

            def park(remaining):
                try:
                    _stackless.wait_read(ep.fileno(), remaining)
                except TimeoutError:
                    pass        # the next attempt looks once more

            return _retry_loop(attempt, park, timeout, list, attempted=True)
