"""Cooperative os.waitpid/os.wait, os.read/os.write on pipes.

``waitpid(pid, 0)`` for one child parks the tasklet on a pidfd
(``os.pidfd_open``: readable once the child has exited), then reaps that
child only.  ``os.wait()`` / ``waitpid(-1, 0)`` park on the hub's child
watcher (hub/wait.c: a helper thread in ``waitid(P_ALL, WEXITED |
WNOWAIT)``, which reaps nothing), then look with ``WNOWAIT`` and reap the
first exited child that no tasklet's ``waitpid(pid)`` is waiting for.
Neither installs a SIGCHLD handler or reaps anything else's children, so
``os.system()`` and C libraries keep working.  Where a pidfd cannot be
opened (a kernel before 5.3), for a process group (``pid`` 0 or below
-1) and with ``WUNTRACED``/``WCONTINUED`` for "any child", the tasklet
sleeps on its hub in growing naps (1 to 20 ms) between ``WNOHANG``
checks.  ``WNOHANG`` calls are passed through (``waitpid(-1, WNOHANG)``
leaves the children of waiting ``waitpid(pid)`` calls alone too).

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
_waitid = getattr(_os, "waitid", None)
_P_ALL = getattr(_os, "P_ALL", 0)
_WEXITED = getattr(_os, "WEXITED", 4)
_WNOWAIT = getattr(_os, "WNOWAIT", 0x01000000)
_STOP_CONT = _os.WUNTRACED | getattr(_os, "WCONTINUED", 0)
_wait_child = _stackless._wait_child
_child_notify = _stackless._child_notify
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


# pid -> number of tasklets parked in waitpid(pid, ...) for that child: an
# "any child" wait leaves it to them
_reserved = {}


def _reserve(pid):
    _reserved[pid] = _reserved.get(pid, 0) + 1


def _unreserve(pid):
    n = _reserved.pop(pid) - 1
    if n:
        _reserved[pid] = n
    # the child is reaped or left alone: any-child waiters look again
    _child_notify()


def _wait_one(pid, options):
    """waitpid(pid > 0, options) without WNOHANG, parked."""
    _reserve(pid)
    try:
        r = _waitpid(pid, options | _WNOHANG)    # ChildProcessError as usual
        if r[0] != 0 or _pidfd_open is None:
            return r if r[0] != 0 else _nap_waitpid(pid, options)
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
    finally:
        _unreserve(pid)


def _reap_any(options):
    """The first exited child that no waitpid(pid) of ours is waiting for,
    reaped: (pid, status); 0 when none has exited, -1 when the first one
    is reserved.  ChildProcessError when there is no child at all."""
    while True:
        info = _waitid(_P_ALL, 0, _WEXITED | _WNOHANG | _WNOWAIT)
        if info is None:
            return 0
        pid = info.si_pid
        if pid in _reserved:
            return -1
        try:
            r = _waitpid(pid, options | _WNOHANG)
        except ChildProcessError:
            continue                    # reaped meanwhile by someone else
        if r[0] != 0:
            return r


def _wait_any(options):
    """waitpid(-1, options) without WNOHANG: park on the hub's child
    watcher between looks."""
    while True:
        r = _reap_any(options)
        if r == 0:
            _wait_child(True)       # the watcher's next scan wakes us
        elif r == -1:
            _wait_child(False)      # its waiter reaps it, then notifies
        else:
            return r


def waitpid(pid, options):
    """os.waitpid parking the tasklet until the child changes state."""
    any_child = (pid == -1 and _waitid is not None
                 and not options & _STOP_CONT)
    if options & _WNOHANG:
        if any_child:
            r = _reap_any(options)
            return r if r not in (0, -1) else (0, 0)
        return _waitpid(pid, options)
    if pid > 0:
        return _wait_one(pid, options)
    if any_child:
        return _wait_any(options)
    r = _waitpid(pid, options | _WNOHANG)    # ChildProcessError as usual
    if r[0] != 0:
        return r
    return _nap_waitpid(pid, options)


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
