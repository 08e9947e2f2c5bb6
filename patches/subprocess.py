"""Cooperative subprocess: Popen.wait(), communicate(), run(), call(),
check_output() park the tasklet.

``wait()`` without a timeout reaps through the patched os.waitpid (a
pidfd wait on the hub).  ``wait(timeout)`` -- also what communicate()
and run(timeout=...) use -- parks on the child's pidfd with that
timeout instead of the stdlib's sleep-and-check loop.  communicate()'s
pipes go through the hub's poll-like selector, and the pipe file objects
Popen makes (``p.stdin``, ``p.stdout``, ``p.stderr``: what communicate()
reads and writes when only one pipe is open, and what ``for line in
p.stdout`` reads) are cooperative: their raw layer waits on the hub for
the pipe before each read or write (``subprocess.io`` is a copy of io
whose ``open`` makes them).  Popen's own fork/exec is the stdlib's (the
child execs at once).
"""
import io as _io
import os as _os
import select as _select
import types as _types
import subprocess as _stdsubprocess

from stackless_compat import _stackless
from stackless_compat.patches._deadline import Deadline as _Deadline

from . import selectors as _coselectors

__target__ = "subprocess"
__implements__ = ["_PopenSelector", "io"]

_PopenSelector = _coselectors.HubSelector
_orig_wait = _stdsubprocess.Popen._wait
_pidfd_open = getattr(_os, "pidfd_open", None)
_wait_read = _stackless.wait_read
_wait_write = _stackless.wait_write
_PIPE_BUF = getattr(_select, "PIPE_BUF", 4096)


def _ready(fd, events):
    p = _select.poll()
    p.register(fd, events)
    return bool(p.poll(0))


class PipeIO(_io.FileIO):
    """FileIO on a pipe that parks the tasklet until the pipe is ready."""

    def readinto(self, b):
        fd = self.fileno()
        if not _ready(fd, _select.POLLIN):
            _wait_read(fd)
        return super().readinto(b)

    def read(self, size=-1):
        if size is None or size < 0:
            return self.readall()
        fd = self.fileno()
        if not _ready(fd, _select.POLLIN):
            _wait_read(fd)
        return super().read(size)

    def readall(self):
        chunks = []
        while True:
            data = self.read(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def write(self, b):
        fd = self.fileno()
        if not _ready(fd, _select.POLLOUT):
            _wait_write(fd)
        # at most PIPE_BUF once writable: never blocks; the buffered
        # layer above writes the rest
        return super().write(memoryview(b).cast("B")[:_PIPE_BUF])


def _open(file, mode="r", buffering=-1, *args, **kwargs):
    """io.open for Popen: a pipe fd gets a PipeIO raw layer."""
    if (not isinstance(file, int) or args or kwargs or
            mode not in ("rb", "wb")):
        return _io.open(file, mode, buffering, *args, **kwargs)
    if buffering == 1:
        import warnings
        warnings.warn("line buffering (buffering=1) isn't supported in "
                      "binary mode, the default buffer size will be used",
                      RuntimeWarning, 2)
    raw = PipeIO(file, mode[0])
    if buffering == 0:
        return raw
    size = _io.DEFAULT_BUFFER_SIZE if buffering in (-1, 1) else buffering
    if mode == "rb":
        return _io.BufferedReader(raw, size)
    return _io.BufferedWriter(raw, size)


io = _types.ModuleType("io", _io.__doc__)
io.__dict__.update({k: v for k, v in vars(_io).items()
                    if not k.startswith("__")})
io.open = _open
_WNOHANG = _os.WNOHANG


def _wait(self, timeout):
    """Popen._wait: park on the child's pidfd rather than nap-and-poll."""
    if self.returncode is not None or timeout is None or _pidfd_open is None:
        return _orig_wait(self, timeout)
    deadline = _Deadline(timeout)
    try:
        fd = _pidfd_open(self.pid)
    except OSError:             # reaped already, or no pidfd: the stdlib way
        return _orig_wait(self, timeout)
    try:
        while True:
            # another tasklet in wait() holds the lock while it reaps: park
            # on the (cooperative) lock until it is done
            if not self._waitpid_lock.acquire(
                    timeout=deadline.slice(timeout)):
                raise _stdsubprocess.TimeoutExpired(self.args, timeout)
            try:
                if self.returncode is not None:
                    break
                pid, sts = self._try_wait(_WNOHANG)
                if pid == self.pid:
                    self._handle_exitstatus(sts)
                    break
            finally:
                self._waitpid_lock.release()
            remaining = deadline.remaining()
            if remaining <= 0:
                raise _stdsubprocess.TimeoutExpired(self.args, timeout)
            try:
                _wait_read(fd, remaining)
            except TimeoutError:
                pass
    finally:
        _os.close(fd)
    return self.returncode
