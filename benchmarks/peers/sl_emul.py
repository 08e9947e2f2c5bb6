# sl_emul -- the pure-Python reference emulation of the core Stackless API on
# greenlet, copied verbatim (below this header) from the team's benchmark kit,
# which is kept outside this repository.  It is the team's own material and
# serves as the baseline peer for stackless_compat's benchmarks: "the pure-Python
# greenlet emulation" of the targets in benchmarks/README.md.  Do not optimise it
# here; keep it the same as the kit's.  (The trailing __main__ hook of the
# original, which ran the kit's own benchmark driver, is dropped.)
"""sl_emul -- a minimal pure-Python emulation of the core Stackless API on greenlet.

This is the kind of compatibility layer a user would write (or find) today when
Stackless Python itself is not available.  It is the *baseline* that
stackless_compat has to beat; it is written to be correct for the core API,
not clever.

Supported (single OS thread only):
  tasklet(func)(*args)  bind / setup / insert / remove / run / switch / kill /
                        throw / raise_exception, alive / blocked / scheduled /
                        paused / is_main / is_current
  channel               send / receive / send_exception / send_throw /
                        send_sequence / iteration / close / open,
                        balance, preference (-1 receiver, 0, 1 sender),
                        schedule_all, closing / closed, queue
  schedule(retval=None), schedule_remove(retval=None), run(), getcurrent(),
  getmain(), getruncount(), TaskletExit, module attributes current / main /
  runcount.

Scheduling model (as in Stackless):
  * the runnables queue is FIFO; tasklet(...)(...) appends to it;
  * schedule() puts the current tasklet at the end and runs the next one;
  * send() to a waiting receiver with preference -1 (default): the receiver
    runs at once, the sender goes to the end of the runnables;
    receive() from a waiting sender with preference -1: the receiver goes on,
    the sender is appended to the runnables;  preference 1 mirrors this;
    preference 0: the unblocked side is appended, the caller goes on;
    schedule_all: the unblocked side is appended and the caller yields;
  * run() (main tasklet only) returns when no other tasklet is runnable;
  * blocking the last runnable tasklet raises RuntimeError("Deadlock...")
    (in the main tasklet);
  * an exception escaping a tasklet is re-raised in the main tasklet.
"""
import collections
import sys

from greenlet import greenlet as _greenlet
from greenlet import getcurrent as _g_getcurrent
from greenlet import GreenletExit as _GreenletExit

__all__ = ["tasklet", "channel", "schedule", "schedule_remove", "run",
           "getcurrent", "getmain", "getruncount", "TaskletExit"]


class TaskletExit(SystemExit):
    """Raised inside a tasklet to kill it silently."""


_DEADLOCK = "Deadlock: the last runnable tasklet cannot be blocked."

_runnables = collections.deque()   # runnable tasklets, current excluded
_current = None                     # the running tasklet
_main = None                        # the main tasklet
_main_in_run = False                # main is waiting inside run()


class _Bomb(object):
    __slots__ = ("exc",)

    def __init__(self, exc):
        self.exc = exc

    def explode(self):
        raise self.exc


def _make_exc(typ, val=None, tb=None):
    if isinstance(typ, BaseException):
        exc = typ
    else:
        if val is None:
            exc = typ()
        elif isinstance(val, BaseException):
            exc = val
        elif isinstance(val, tuple):
            exc = typ(*val)
        else:
            exc = typ(val)
    if tb is not None:
        exc = exc.with_traceback(tb)
    return exc


class tasklet(object):
    __slots__ = ("_func", "_args", "_kwargs", "_g", "_gstarted", "_alive", "_started",
                 "_blocked_on", "_tempval", "_exc", "_is_main", "__weakref__",
                 "__dict__")

    def __init__(self, func=None, args=None, kwargs=None):
        self._func = None
        self._args = ()
        self._kwargs = {}
        self._g = None
        self._gstarted = False    # greenlet has been switched into
        self._alive = False
        self._started = False
        self._blocked_on = None   # channel we wait on
        self._tempval = None      # value handed over by a channel
        self._exc = None          # exception to raise when resumed
        self._is_main = False
        if func is not None or args is not None or kwargs is not None:
            self.bind(func, args, kwargs)

    # -- construction ---------------------------------------------------------
    def bind(self, func=None, args=None, kwargs=None):
        if self._alive:
            raise RuntimeError("tasklet is alive; cannot bind")
        if func is not None and not callable(func):
            raise TypeError("tasklet function must be a callable")
        self._func = func
        if args is not None or kwargs is not None:
            # bound with arguments: alive but paused (not inserted)
            self._setup(args or (), kwargs or {})
        return self

    def _setup(self, args, kwargs):
        if self._func is None:
            raise RuntimeError("the tasklet was not bound to a function")
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        self._g = _greenlet(self._bootstrap, _main._g)
        self._alive = True

    def setup(self, *args, **kwargs):
        if self._alive:
            raise RuntimeError("tasklet is already alive")
        self._setup(args, kwargs)
        _runnables.append(self)
        return self

    __call__ = setup

    def _bootstrap(self, *_ignored):
        global _current
        try:
            exc = self._exc
            if exc is not None:
                self._exc = None
                raise exc
            self._started = True
            self._func(*self._args, **self._kwargs)
        except TaskletExit:
            pass
        except _GreenletExit:
            # greenlet is being garbage-collected/killed from outside the
            # scheduler: just die, return to whoever threw it
            self._die()
            return
        except BaseException:
            # re-raise in main: main becomes current, greenlet parent is main
            self._die()
            _make_main_current()
            raise
        self._die()
        nxt = _pop_next()
        if nxt is None:
            # nothing runnable and main is not waiting in run(): main must be
            # blocked or paused -> wake it with a deadlock error
            nxt = _main
            _make_main_current()
            nxt._exc = RuntimeError(_DEADLOCK)
        _current = nxt
        # greenlet returns to its parent when run() finishes: make that the
        # next tasklet (it is alive, so its own parent is main: no cycle), or
        # the starter greenlet if the next one has never run (see _switch)
        if nxt._gstarted:
            self._g.parent = nxt._g
        else:
            global _to_start
            _to_start = nxt
            self._g.parent = _starter

    def _die(self):
        self._alive = False
        self._args = ()
        self._kwargs = {}

    # -- state ------------------------------------------------------------------
    @property
    def alive(self):
        return self._alive

    @property
    def blocked(self):
        return self._blocked_on is not None

    @property
    def scheduled(self):
        if not self._alive:
            return False
        return (self is _current or self._blocked_on is not None
                or (self is _main and _main_in_run) or self in _runnables)

    @property
    def paused(self):
        return self._alive and not self.scheduled

    @property
    def is_main(self):
        return self._is_main

    @property
    def is_current(self):
        return self is _current

    @property
    def restorable(self):
        return False

    # -- scheduling ---------------------------------------------------------
    def insert(self):
        if not self._alive:
            raise RuntimeError("You cannot run an unbound(dead) tasklet")
        if self._blocked_on is not None:
            raise RuntimeError("You cannot run a blocked tasklet")
        if not self.scheduled:
            _runnables.append(self)
        return None

    def remove(self):
        if self._blocked_on is not None:
            raise RuntimeError("You cannot remove a blocked tasklet.")
        if self is _current:
            raise RuntimeError("The current tasklet cannot be removed.")
        try:
            _runnables.remove(self)
        except ValueError:
            pass
        return self

    def _check_runnable(self):
        if not self._alive:
            raise RuntimeError("You cannot run an unbound(dead) tasklet")
        if self._blocked_on is not None:
            raise RuntimeError("You cannot run a blocked tasklet")

    def _rotate_to(self, keep_current):
        """Stackless semantics of run()/switch(): the target is (inserted at
        the end of the circular runqueue if needed and) made current, which
        rotates the queue: tasklets queued after the target come next, then
        the caller (unless paused), then those that were before the target."""
        self._check_runnable()
        cur = _current
        if self is cur:
            return
        if self is _main and _main_in_run:
            _leave_run()
        q = _runnables
        if not q or self not in q:
            if keep_current:
                q.appendleft(cur)
        else:
            i = q.index(self)
            n = len(q)
            q.rotate(-i)
            q.popleft()
            if keep_current:
                q.insert(n - i - 1, cur)
        _switch(cur, self)

    def run(self):
        """Run this tasklet now; the caller stays runnable."""
        self._rotate_to(True)

    def switch(self):
        """Run this tasklet now; the caller is paused (not rescheduled)."""
        self._rotate_to(False)

    def kill(self, pending=False):
        if not self._alive:
            return None
        return self.throw(TaskletExit, None, None, pending)

    def raise_exception(self, exc, *args):
        return self.throw(exc, args or None, None, False)

    def throw(self, exc=None, val=None, tb=None, pending=False):
        if not self._alive:
            raise RuntimeError("You cannot throw to a dead tasklet")
        e = _make_exc(exc, val, tb)
        if self is _current:
            raise e
        if self._g is not None and not self._started and self._exc is None \
                and isinstance(e, TaskletExit):
            # never ran: just drop it
            if self._blocked_on is None:
                try:
                    _runnables.remove(self)
                except ValueError:
                    pass
            else:
                self._blocked_on._unblock(self)
            self._die()
            return None
        if self._blocked_on is not None:
            self._blocked_on._unblock(self)
        self._exc = e
        if pending:
            if not self.scheduled:
                _runnables.append(self)
            return None
        self.run()
        return None

    def __repr__(self):
        st = "main" if self._is_main else ("alive" if self._alive else "dead")
        return "<sl_emul.tasklet %s at 0x%x>" % (st, id(self))


def _wrap_main():
    t = tasklet.__new__(tasklet)
    t._func = None
    t._args = ()
    t._kwargs = {}
    t._g = _g_getcurrent()
    t._gstarted = True
    t._alive = True
    t._started = True
    t._blocked_on = None
    t._tempval = None
    t._exc = None
    t._is_main = True
    return t


def _leave_run():
    global _main_in_run
    _main_in_run = False


def _make_main_current():
    """Pull main out of wherever it waits so that it can be resumed."""
    global _current, _main_in_run
    m = _main
    if _main_in_run:
        _main_in_run = False
    elif m._blocked_on is not None:
        m._blocked_on._unblock(m)
    else:
        try:
            _runnables.remove(m)
        except ValueError:
            pass
    _current = m


def _pop_next():
    """Next tasklet to run, or None.  Main waiting in run() comes last."""
    global _main_in_run
    if _runnables:
        return _runnables.popleft()
    if _main_in_run:
        _main_in_run = False
        return _main
    return None


def _switch(cur, nxt):
    """Suspend cur, resume nxt; on return cur is running again."""
    global _current, _to_start
    _current = nxt
    if nxt._gstarted:
        nxt._g.switch()
    else:
        # A greenlet starts on top of the stack of whoever first switches
        # into it.  Starting tasklet k+1 from inside tasklet k would nest C
        # stacks (and the recursion depth) without bound, so all tasklets are
        # started from one shallow "starter" greenlet.
        _to_start = nxt
        _starter.switch()
    # we are back
    exc = cur._exc
    if exc is not None:
        cur._exc = None
        raise exc


def _block_current(cur):
    """cur has been queued somewhere; switch away.  Returns when resumed."""
    nxt = _pop_next()
    if nxt is None:
        raise _DeadlockSignal()
    _switch(cur, nxt)


class _DeadlockSignal(Exception):
    pass


def getcurrent():
    return _current


def getmain():
    return _main


def getruncount():
    return len(_runnables) + 1


def schedule(retval=None):
    cur = _current
    if not _runnables:
        return retval if retval is not None else cur
    _runnables.append(cur)
    _switch(cur, _runnables.popleft())
    return retval if retval is not None else cur


def schedule_remove(retval=None):
    cur = _current
    nxt = _pop_next()
    if nxt is None:
        raise RuntimeError(_DEADLOCK)
    _switch(cur, nxt)
    return retval if retval is not None else cur


def run(timeout=0):
    """Run the scheduler until no other tasklet is runnable (main only)."""
    global _main_in_run
    cur = _current
    if cur is not _main:
        raise RuntimeError("run() must be called from the main tasklet")
    if not _runnables:
        return None
    _main_in_run = True
    try:
        _switch(cur, _runnables.popleft())
    finally:
        _main_in_run = False
    return None


class channel(object):
    __slots__ = ("_queue", "_balance", "preference", "schedule_all",
                 "closing", "__weakref__", "__dict__")

    def __init__(self):
        self._queue = collections.deque()
        self._balance = 0      # >0: senders waiting, <0: receivers waiting
        self.preference = -1
        self.schedule_all = False
        self.closing = False

    @property
    def balance(self):
        return self._balance

    @property
    def closed(self):
        return self.closing and self._balance == 0

    @property
    def queue(self):
        return self._queue[0] if self._queue else None

    def close(self):
        self.closing = True

    def open(self):
        self.closing = False

    def _unblock(self, t):
        """Remove a waiting tasklet from this channel (kill/throw/deadlock)."""
        self._queue.remove(t)
        self._balance -= 1 if self._balance > 0 else -1
        t._blocked_on = None
        t._tempval = None

    def _action(self, d, value):
        # d = +1 send, -1 receive
        cur = _current
        bal = self._balance
        if (d > 0 and bal < 0) or (d < 0 and bal > 0):
            target = self._queue.popleft()
            self._balance = bal + d
            target._blocked_on = None
            if d > 0:
                target._tempval = value
                result = None
            else:
                result = target._tempval
                target._tempval = None
            if self.schedule_all:
                _runnables.append(target)
                _runnables.append(cur)
                _switch(cur, _runnables.popleft())
            elif self.preference == -d:
                # the unblocked side runs now, the caller goes last
                _runnables.append(cur)
                _switch(cur, target)
            else:
                _runnables.append(target)
            if result.__class__ is _Bomb:
                result.explode()
            return result
        # nobody waiting: block
        if self.closing:
            raise ValueError("Send/receive operation on a closed channel")
        self._queue.append(cur)
        self._balance = bal + d
        cur._blocked_on = self
        if d > 0:
            cur._tempval = value
        try:
            _block_current(cur)
        except _DeadlockSignal:
            self._unblock(cur)
            raise RuntimeError(_DEADLOCK)
        if d > 0:
            return None
        result = cur._tempval
        cur._tempval = None
        if result.__class__ is _Bomb:
            result.explode()
        return result

    def send(self, value):
        return self._action(1, value)

    def receive(self):
        return self._action(-1, None)

    def send_exception(self, exc, *args):
        return self._action(1, _Bomb(_make_exc(exc, args or None)))

    def send_throw(self, exc, val=None, tb=None):
        return self._action(1, _Bomb(_make_exc(exc, val, tb)))

    def send_sequence(self, seq):
        n = 0
        for item in seq:
            self._action(1, item)
            n += 1
        return n

    def __iter__(self):
        return self

    def __next__(self):
        if self.closing and self._balance <= 0:
            raise StopIteration
        return self._action(-1, None)

    def __repr__(self):
        return "<sl_emul.channel balance=%d at 0x%x>" % (self._balance, id(self))


_to_start = None


def _starter_run():
    global _to_start
    _main._g.switch()          # park at a shallow stack position
    while True:
        t, _to_start = _to_start, None
        t._gstarted = True
        t._g.switch()


_main = _current = _wrap_main()
_starter = _greenlet(_starter_run, _main._g)
_starter.switch()


def __getattr__(name):
    if name == "current":
        return _current
    if name == "main":
        return _main
    if name == "runcount":
        return getruncount()
    raise AttributeError(name)


