"""Cooperative threading primitives: what patch_thread() installs.

``Lock`` is the hub's C lock (hub/lock.c): ``acquire()`` parks only the
calling tasklet, ``release()`` hands the lock to the first waiter, in
whatever thread that waiter runs (its own thread's hub wakes it).
``RLock`` is owned by a tasklet, not by a thread, so two tasklets of one
thread exclude each other.  The stdlib's own Condition, Event, Semaphore,
BoundedSemaphore, Barrier, Timer and queue.Queue are built from
``threading.Lock``/``RLock``/``_allocate_lock`` and become cooperative
with them; ``queue.SimpleQueue`` becomes the stdlib's pure-Python one on
top of a cooperative Semaphore.

Threads stay real OS threads (each has its own scheduler, as in
Stackless).  ``Thread.join()`` parks the joining tasklet until the
thread's Python code has ended, then waits for the interpreter to let go
of the thread state (a few microseconds) in 0.5 ms naps of the tasklet;
a thread started before patching has no end event: its joiner naps on
the hub (1 to 20 ms) between ``is_alive()`` checks.
"""
import _thread
import threading

from stackless_compat import _stackless
from stackless_compat.patches._deadline import Deadline as _Deadline

__all__ = ["Lock", "RLock", "allocate_lock"]

#: the cooperative lock type (``_thread.LockType`` when patched); like the
#: stdlib's ``_thread.lock`` it has a constructor on 3.13 and none before
#: (hub/lock.c, csrc/compat.h)
LockType = _stackless.lock
#: a new cooperative lock (``_thread.allocate_lock`` when patched)
allocate_lock = _stackless.allocate_lock
allocate = allocate_lock
#: ``threading.Lock`` when patched: as in the stdlib, the lock type itself
#: where it can be instantiated (3.13), else the factory function
Lock = LockType if "__new__" in vars(LockType) else allocate_lock
_getcurrent = _stackless.getcurrent
_sleep = _stackless.sleep


class RLock:
    """A reentrant lock owned by the tasklet that acquired it."""

    __slots__ = ("_block", "_owner", "_count", "__weakref__")

    def __init__(self, *args, **kwargs):
        # _thread.RLock ignores arguments (3.13's threading.RLock() warns
        # about them, then passes them on)
        self._block = allocate_lock()
        self._owner = None
        self._count = 0

    def __repr__(self):
        owner = self._owner
        return "<%s %s.%s object owner=%r count=%d at %s>" % (
            "locked" if self._block.locked() else "unlocked",
            self.__class__.__module__, self.__class__.__qualname__,
            owner, self._count, hex(id(self)))

    def _at_fork_reinit(self):
        self._block._at_fork_reinit()
        self._owner = None
        self._count = 0

    def acquire(self, blocking=True, timeout=-1):
        me = _getcurrent()
        if self._owner is me:
            self._count += 1
            return True
        rc = self._block.acquire(blocking, timeout)
        if rc:
            self._owner = me
            self._count = 1
        return rc

    __enter__ = acquire

    def release(self):
        if self._owner is not _getcurrent():
            raise RuntimeError("cannot release un-acquired lock")
        self._count = count = self._count - 1
        if not count:
            self._owner = None
            self._block.release()

    def __exit__(self, t, v, tb):
        self.release()

    # Condition's protocol
    def _acquire_restore(self, state):
        self._block.acquire()
        self._count, self._owner = state

    def _release_save(self):
        if self._count == 0:
            raise RuntimeError("cannot release un-acquired lock")
        count, owner = self._count, self._owner
        self._count = 0
        self._owner = None
        self._block.release()
        return (count, owner)

    def _is_owned(self):
        return self._owner is _getcurrent()

    def _recursion_count(self):
        return self._count if self._owner is _getcurrent() else 0


_orig_join = threading.Thread.join
_orig_start = threading.Thread.start
_orig_bootstrap_inner = threading.Thread._bootstrap_inner


def _start(self):
    # Set once the thread's Python code is over; the joiners park on it.
    if getattr(self, "_slp_done", None) is None:
        self._slp_done = threading.Event()
    _orig_start(self)


def _bootstrap_inner(self):
    try:
        _orig_bootstrap_inner(self)
    finally:
        done = getattr(self, "_slp_done", None)
        if done is not None:
            done.set()


def _join(self, timeout=None):
    done = getattr(self, "_slp_done", None)
    if not self._started.is_set() or self is threading.current_thread():
        return _orig_join(self, timeout)        # the stdlib's errors
    deadline = _Deadline(None if timeout is None else max(timeout, 0))
    if done is None:
        # started before patching: no event to park on; nap on the hub
        nap = 0.001
        while self.is_alive():
            remaining = deadline.remaining()
            if remaining is not None:
                if remaining <= 0:
                    return
                nap = min(nap, remaining)
            _sleep(nap)
            nap = min(nap * 2, 0.02)
        return _orig_join(self, 0)
    if not done.wait(timeout):
        return
    # The thread's code is over; the interpreter releases its state next.
    while self.is_alive():
        if deadline.passed():
            return
        _sleep(0.0005)
    _orig_join(self, 0)


class SimpleQueue(__import__("queue")._PySimpleQueue):
    """queue.SimpleQueue on a cooperative Semaphore."""
    __slots__ = ()


SimpleQueue.__module__ = "queue"
SimpleQueue.__qualname__ = "SimpleQueue"
