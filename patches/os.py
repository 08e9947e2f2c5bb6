"""Cooperative os.waitpid/os.wait, os.read/os.write on pipes.

``waitpid(pid, 0)`` for one child parks the tasklet on a pidfd
(``os.pidfd_open``: readable once the child has exited), then reaps that
child only -- no SIGCHLD handler, nothing else's children are reaped,
``os.system()`` and C libraries keep working.  Where a pidfd cannot be
opened (a kernel before 5.3) and for "any child" (``pid <= 0``), the
tasklet sleeps on its hub in growing naps (1 to 20 ms) between
``WNOHANG`` checks.  ``WNOHANG`` calls are passed through.

``read``/``write`` park the tasklet while a *blocking* pipe, FIFO,
socket or character device open in that direction has nothing to read /
no room; non-blocking fds, regular files and fds not open for that
direction keep the stdlib's behaviour exactly (EAGAIN, EBADF are the
caller's business).  A blocking write larger than PIPE_BUF goes out in
PIPE_BUF pieces, each after the fd is writable, so it never blocks the
thread; it returns once everything is written, as the stdlib's does.
"""
import errno as _errno
import fcntl as _fcntl_mod
import os as _os
import select as _select
import stat as _stat

from stackless_compat import _stackless

__implements__ = ["waitpid", "wait", "read", "write"]
__target__ = "os"

_waitpid = _os.waitpid
_wait = _os.wait
_read = _os.read
_write = _os.write
_fstat = _os.fstat
_fcntl = _fcntl_mod.fcntl
_F_GETFL = _fcntl_mod.F_GETFL
_pidfd_open = getattr(_os, "pidfd_open", None)
_close = _os.close
_WNOHANG = _os.WNOHANG
_real_poll = _select.poll
_POLLIN = _select.POLLIN
_POLLOUT = _select.POLLOUT
_wait_read = _stackless.wait_read
_wait_write = _stackless.wait_write
_sleep = _stackless.sleep
_PIPE_BUF = getattr(_select, "PIPE_BUF", 4096)
_WAITABLE = (_stat.S_IFIFO, _stat.S_IFSOCK, _stat.S_IFCHR)


def _nap_waitpid(pid, options):
    nap = 0.001
    while True:
        r = _waitpid(pid, options | _WNOHANG)
        if r[0] != 0:
            return r
        _sleep(nap)
        nap = min(nap * 2, 0.02)


def waitpid(pid, options):
    """os.waitpid parking the tasklet until the child changes state."""
    if options & _WNOHANG:
        return _waitpid(pid, options)
    r = _waitpid(pid, options | _WNOHANG)    # ChildProcessError as usual
    if r[0] != 0:
        return r
    if pid <= 0 or _pidfd_open is None:
        return _nap_waitpid(pid, options)
    try:
        fd = _pidfd_open(pid)
    except OSError:
        return _nap_waitpid(pid, options)
    try:
        while True:
            r = _waitpid(pid, options | _WNOHANG)
            if r[0] != 0:
                return r
            _wait_read(fd)
    finally:
        _close(fd)


def wait():
    """os.wait() parking the tasklet."""
    return waitpid(-1, 0)


def _waitable(fd, writing):
    """A blocking fd, open in that direction, where read/write can block:
    pipe, socket, tty (anything else: the stdlib's call as it is)."""
    try:
        fl = _fcntl(fd, _F_GETFL)
        if fl & _os.O_NONBLOCK:
            return False
        acc = fl & _os.O_ACCMODE
        if acc != _os.O_RDWR and acc != (_os.O_WRONLY if writing else _os.O_RDONLY):
            return False
        return _stat.S_IFMT(_fstat(fd).st_mode) in _WAITABLE
    except (OSError, TypeError, ValueError, OverflowError):
        return False        # the real call reports the error


def _ready(fd, events):
    p = _real_poll()
    p.register(fd, events)
    return bool(p.poll(0))


def read(fd, n):
    """os.read parking the tasklet while a blocking pipe is empty."""
    if _waitable(fd, False) and not _ready(fd, _POLLIN):
        _wait_read(fd)
    return _read(fd, n)


def write(fd, data):
    """os.write parking the tasklet while a blocking pipe is full."""
    if not _waitable(fd, True):
        return _write(fd, data)
    view = memoryview(data).cast("B")
    if len(view) <= _PIPE_BUF:
        if not _ready(fd, _POLLOUT):
            _wait_write(fd)
        return _write(fd, view)
    done = 0
    try:
        while done < len(view):
            if not _ready(fd, _POLLOUT):
                _wait_write(fd)
            done += _write(fd, view[done:done + _PIPE_BUF])
    except OSError as exc:
        if done and exc.errno in (_errno.EPIPE, _errno.EINTR):
            return done
        raise
    return done
