"""The parts of the Stackless API that are written in Python.

* pickling of tasklets, channels (``__reduce__``/``__setstate__`` attached to
  the C heap types), ``pickle_flags``/``pickle_flags_default`` and the
  ``PICKLEFLAGS_*`` constants;
* the module subclass with the live properties (``current``, ``main``,
  ``runcount``, ``threads``, ``debug``, ``uncollectables``) and the settable
  ``pickle_with_tracing_state``;
* ``cstack`` objects (``tasklet.cstate``) and the ``cframe`` placeholder;
* ``_gc_track``/``_gc_untrack``/``_pickle_moduledict``;
* ``dump_tasklets()`` and ``install_dump_signal()``: what every tasklet of
  every thread is doing, safe to call from a signal handler.

``install(module)`` gives the ``stackless_compat`` module its class; the
module's ``__init__.py`` takes the names from here through its table of the
public surface.

Tasklet pickle format
---------------------

``tasklet.__reduce__()`` returns ``(type(t), (), state)`` with ::

    state = (flags, tempval, nesting_level, frames,
             exc_type, exc_value, exc_traceback, exc_info_obj, extra)

* ``flags``: Stackless's flag word (``blocked`` in bits 0-1, ``atomic``
  bit 2, ``ignore_nesting`` bit 3, ``autoschedule`` bit 4, ``block_trap``
  bit 5, ``is_zombie`` bit 6, ``pending_irq`` bit 7).  Only ``atomic``,
  ``ignore_nesting`` and ``block_trap`` can be non-zero in a pickle (a
  blocked tasklet is suspended mid-run, which cannot be pickled).
* ``tempval``: the tasklet's ``tempval``.
* ``nesting_level``: always 0.
* ``frames``: Stackless pickled the frame chain, bottom first.  Here it
  holds ``cframe`` objects only: a tasklet that was set up but has not
  started has ``cframe("tasklet_setup", func, args, kwargs)`` (the call it
  will make; Stackless's set-up tasklets also carried such a C frame); with
  ``PICKLEFLAGS_PRESERVE_TRACING_STATE`` set and a trace or profile function
  on the tasklet, ``cframe("restore_tracing", trace_function,
  profile_function)`` is appended.  Bound-only and dead tasklets have ``[]``.
* ``exc_*``: always ``None`` (no handled exception without a frame).
* ``extra`` (not in Stackless; optional on input): a dict with ``"func"``
  (the bound callable of a tasklet that is not set up: bound-only or dead,
  since a dead tasklet keeps its function and can be set up again) and
  ``"__dict__"`` (the instance dict, for subclasses or added attributes).

``__setstate__`` accepts 4 to 9 items (Stackless pickles have 4 or 8).  An
unpickled set-up tasklet is *paused* (``bind(func, args, kwargs)``), as in
Stackless: call ``insert()`` to schedule it.  Its contextvars context is a
copy of the unpickler's (contexts do not pickle).

Channels: ``(type(ch), (), (balance, flags, [blocked tasklets], extra))``
with Stackless's channel flag word (``closing`` bit 0, ``preference``
bits 1-2, ``schedule_all`` bit 3).  The tasklet list is always empty: a
tasklet blocked on a channel is suspended mid-run and cannot be pickled.
"""

import copyreg
import gc
import pickle
import signal
import sys
import threading
import traceback
import types
import weakref

from . import _stackless
from . import _pickle

_RESUMER = getattr(_stackless, "_resumer", ())

tasklet = _stackless.tasklet
channel = _stackless.channel
bomb = _stackless.bomb
cstack = _stackless.cstack

__all__ = [
    "PICKLEFLAGS_PRESERVE_TRACING_STATE", "PICKLEFLAGS_PRESERVE_AG_FINALIZER",
    "PICKLEFLAGS_RESET_AG_FINALIZER", "pickle_flags", "pickle_flags_default",
    "cstack", "cframe", "dump_tasklets", "install_dump_signal",
    "StacklessModuleType", "install",
]

# --------------------------------------------------------------------------
# Pickle flags

PICKLEFLAGS_PRESERVE_TRACING_STATE = 1
PICKLEFLAGS_PRESERVE_AG_FINALIZER = 2
PICKLEFLAGS_RESET_AG_FINALIZER = 4
_PICKLEFLAGS_MAX = 7

_pickleflags_default = 0
_flags_lock = threading.Lock()


class _ThreadFlags(threading.local):
    def __init__(self):
        # Runs once per thread, on its first access: new threads copy the
        # interpreter default.
        self.flags = _pickleflags_default


_thread_flags = _ThreadFlags()


def _check_flags(new, mask):
    new = _index(new)
    mask = _index(mask)
    if new < -1 or (new & mask) > _PICKLEFLAGS_MAX:
        raise ValueError("you must not set an undefined pickle-flag")
    return new, mask


def _index(v):
    try:
        return v.__index__()
    except AttributeError:
        raise TypeError("an integer is required (got type %s)"
                        % type(v).__name__) from None


def pickle_flags(new_flags=-1, mask=-1):
    """pickle_flags(new_flags=-1, mask=-1)

    Get and set the pickle-flags of the current thread.  Returns the
    previous value; omit the arguments to inquire.  Only the bits set in
    ``mask`` are changed."""
    new_flags, mask = _check_flags(new_flags, mask)
    old = _thread_flags.flags
    if new_flags != -1:
        _thread_flags.flags = ((old & ~mask) | (new_flags & mask)) & 0xFF
    return old


def pickle_flags_default(new_default=-1, mask=-1):
    """pickle_flags_default(new_default=-1, mask=-1)

    Get and set the per interpreter default of the pickle-flags, which
    threads copy when they first use them.  Returns the previous default."""
    global _pickleflags_default
    new_default, mask = _check_flags(new_default, mask)
    with _flags_lock:
        old = _pickleflags_default
        if new_default != -1:
            _pickleflags_default = (
                (old & ~mask) | (new_default & mask)) & 0xFF
    return old


# --------------------------------------------------------------------------
# cframe: placeholder of Stackless's C frame type


class cframe:
    """Stackless's C frame, reduced to what pickles need here: the name of
    the C function it would execute (``f_execute``) and its objects."""

    __slots__ = ("f_execute", "ob1", "ob2", "ob3", "i", "n", "f_back",
                 "__weakref__")

    def __init__(self, f_execute, ob1=None, ob2=None, ob3=None, i=0, n=0):
        self.f_execute = f_execute
        self.ob1, self.ob2, self.ob3 = ob1, ob2, ob3
        self.i, self.n = i, n
        self.f_back = None

    def __reduce__(self):
        return (type(self),
                (self.f_execute, self.ob1, self.ob2, self.ob3, self.i, self.n))

    def __repr__(self):
        return "<cframe %s at %#x>" % (self.f_execute, id(self))


cframe.__module__ = "_stackless"


# --------------------------------------------------------------------------
# Reading a tasklet's bound call (func, args, kwargs)


def _bound_call(t):
    """(func, args, kwargs, setup) of a tasklet that has not started.

    func may be None; args/kwargs are None unless set up."""
    func, args, kwargs = _stackless._tasklet_bound(t)
    return func, args, kwargs, args is not None


def _is_started(t):
    """Alive and past its first instruction (suspended mid-run)."""
    if t.is_main or t.is_current or t.blocked:
        return True
    if not t.alive:
        return False
    return t.frame is not None or _stackless._stack_info(t)[0] > 0


# --------------------------------------------------------------------------
# tasklet pickling

_F_ATOMIC, _F_IGNORE_NESTING, _F_BLOCK_TRAP = 1 << 2, 1 << 3, 1 << 5


def _tasklet_flags(t):
    f = 0
    if t.blocked:
        f |= 1
    if t.atomic:
        f |= _F_ATOMIC
    if t.ignore_nesting:
        f |= _F_IGNORE_NESTING
    if t.block_trap:
        f |= _F_BLOCK_TRAP
    return f


def _instance_dict(o):
    """A copy of the instance dict of a tasklet or channel subclass instance
    (the C types have none, as in Stackless), or None."""
    try:
        d = object.__getattribute__(o, "__dict__")
    except AttributeError:
        return None
    return dict(d) if d else None


def _tasklet_state(self, frames, extra):
    """The reduce value of a tasklet whose frames and extras are given: the
    tracing state (when the pickle flags ask for it) and the instance dict
    of a subclass go along in every case."""
    if pickle_flags() & PICKLEFLAGS_PRESERVE_TRACING_STATE:
        tr = getattr(self, "trace_function", None)
        pr = getattr(self, "profile_function", None)
        if tr is not None or pr is not None:
            frames.append(cframe("restore_tracing", tr, pr))
    d = _instance_dict(self)
    if d:
        extra["__dict__"] = d
    state = (_tasklet_flags(self), self.tempval, 0, frames,
             None, None, None, None)
    if extra:
        state += (extra,)
    return (type(self), (), state)


def _tasklet_reduce(self):
    if self.is_current:
        raise RuntimeError("You cannot __reduce__ the tasklet which is current.")
    if self.is_main:
        raise pickle.PicklingError(
            "cannot pickle %r: it is the main tasklet (its bottom frames "
            "are the interpreter's)" % (self,))
    if _is_started(self):
        # suspended in Python code: its frames (stackless_compat/_pickle.py)
        return _tasklet_state(self, *_pickle.reduce_suspended(self))
    func, args, kwargs, setup = _bound_call(self)
    if isinstance(func, _RESUMER) and not func.started:
        # unpickled and not run yet: the state it was restored from
        return _tasklet_state(self, *_pickle.unrun_state(self))
    frames = []
    extra = {}
    if setup:
        frames.append(cframe("tasklet_setup", func, args, kwargs))
    elif func is not None:
        extra["func"] = func
    return _tasklet_state(self, frames, extra)


def _tasklet_reduce_ex(self, protocol=0):
    return _tasklet_reduce(self)


def _tasklet_setstate(self, state):
    if not isinstance(state, tuple) or not 4 <= len(state) <= 9:
        raise TypeError("tasklet state must be a tuple of 4 to 9 items")
    flags, tempval, nesting_level, frames = state[:4]
    extra = state[8] if len(state) == 9 and state[8] is not None else {}
    if not isinstance(flags, int) or not isinstance(nesting_level, int):
        raise TypeError("tasklet state: flags and nesting_level must be int")
    if not isinstance(frames, list):
        raise TypeError("tasklet state: frames must be a list")
    if not isinstance(extra, dict):
        raise TypeError("tasklet state: the 9th item must be a dict")
    if self.alive:
        raise RuntimeError("tasklet is alive")
    setup = tracing = blocked = None
    pyframes = [fr for fr in frames
                if isinstance(fr, tuple) and fr[:1] == ("pyframe",)]
    if pyframes or extra.get("suspended"):
        blocked = _pickle.restore_suspended(self, pyframes, extra, tempval)
        frames = [fr for fr in frames if isinstance(fr, cframe)]
    for fr in frames:
        if isinstance(fr, cframe):
            if fr.f_execute == "tasklet_setup":
                setup = fr
            elif fr.f_execute == "restore_tracing":
                tracing = fr
            else:
                raise pickle.UnpicklingError(
                    "cannot restore a tasklet with a %r C frame" % fr.f_execute)
        else:
            raise pickle.UnpicklingError(
                "cannot restore a tasklet suspended mid-run (its pickle holds "
                "Python frames; stackless_compat cannot resume them)")
    if setup is not None:
        self.bind(setup.ob1, tuple(setup.ob2 or ()), setup.ob3)
    elif extra.get("func") is not None:
        self.bind(extra["func"])
    self.tempval = tempval
    self.set_atomic(bool(flags & _F_ATOMIC))
    self.set_ignore_nesting(bool(flags & _F_IGNORE_NESTING))
    self.block_trap = bool(flags & _F_BLOCK_TRAP)
    if tracing is not None:
        if hasattr(self, "trace_function"):
            self.trace_function = tracing.ob1
        if hasattr(self, "profile_function"):
            self.profile_function = tracing.ob2
    d = extra.get("__dict__")
    if d:
        for k, v in d.items():
            object.__setattr__(self, k, v)
    if blocked is not None:
        _pickle.tasklet_blocked(self, blocked[0])
    return self


# --------------------------------------------------------------------------
# channel pickling


def _channel_flags(ch):
    return ((1 if ch.closing else 0) | ((ch.preference & 3) << 1)
            | ((1 if ch.schedule_all else 0) << 3))


def _channel_reduce(self):
    waiting = []
    t = self.queue
    while t is not None and len(waiting) < abs(self.balance):
        waiting.append(t)
        t = t.next
    state = (self.balance, _channel_flags(self), waiting)
    d = _instance_dict(self)
    if d:
        state += ({"__dict__": d},)
    return (type(self), (), state)


def _channel_reduce_ex(self, protocol=0):
    return _channel_reduce(self)


def _channel_setstate(self, state):
    if not isinstance(state, tuple) or not 3 <= len(state) <= 4:
        raise TypeError("channel state must be a tuple of 3 or 4 items")
    balance, flags, tasklets = state[:3]
    extra = state[3] if len(state) == 4 and state[3] is not None else {}
    if not isinstance(flags, int):
        raise TypeError("channel state: flags must be an int")
    if not isinstance(tasklets, list) or not all(
            isinstance(t, tasklet) for t in tasklets):
        raise pickle.UnpicklingError("channel state: malformed tasklets")
    pref = (flags >> 1) & 3
    self.preference = pref - 4 if pref & 2 else pref
    self.schedule_all = bool(flags & 8)
    d = extra.get("__dict__")
    if d:
        for k, v in d.items():
            object.__setattr__(self, k, v)
    if tasklets:
        _pickle.channel_tasklets(self, tasklets)
    if flags & 1:
        self.close()
    return self


# --------------------------------------------------------------------------
# _gc_track / _gc_untrack / _pickle_moduledict


def _gc_track(obj):
    """Kept for compatibility; the tasklet types manage their GC tracking."""
    return None


def _gc_untrack(obj):
    """Kept for compatibility; the tasklet types manage their GC tracking."""
    return None


def _module_dict(name):
    __import__(name)
    return sys.modules[name].__dict__


def _pickle_moduledict(pickler, obj):
    """Reduce ``obj`` if it is the ``__dict__`` of a module in sys.modules
    (by the module's name), else return NotImplemented."""
    if isinstance(obj, dict):
        for name, mod in list(sys.modules.items()):
            if getattr(mod, "__dict__", None) is obj:
                return (_module_dict, (name,))
    return NotImplemented


# --------------------------------------------------------------------------
# Attaching to the C types
#
# Every attribute that stackless_compat sets on a type of the C extension,
# in this one place.  They stay in Python because what they call is Python
# (pickling suspended frames is stackless_compat/_pickle.py), and a Python
# subclass would not do: legacy code and old pickles name the C types
# themselves.  docs/design.md ("Python on top") explains;
# tests/test_surface.py pins the table.

C_TYPE_ATTRIBUTES = (
    # (C type, attribute, value)
    (tasklet, "__reduce__", _tasklet_reduce),
    (tasklet, "__reduce_ex__", _tasklet_reduce_ex),
    (tasklet, "__setstate__", _tasklet_setstate),
    (channel, "__reduce__", _channel_reduce),
    (channel, "__reduce_ex__", _channel_reduce_ex),
    (channel, "__setstate__", _channel_setstate),
)


def _attach_to_c_types():
    for tp, name, value in C_TYPE_ATTRIBUTES:
        setattr(tp, name, value)
    # Our types are named "_stackless.xxx", as in Stackless: pickles refer
    # to them through a module called _stackless (old Stackless pickles of
    # unstarted tasklets and bombs load too), which has cframe as well.
    sys.modules.setdefault("_stackless", _stackless)
    _stackless.cframe = cframe


_attach_to_c_types()


# --------------------------------------------------------------------------
# dump_tasklets


def _tasklets_of_threads():
    """{thread_id: [tasklets]} of every live tasklet, main first, then the
    run queue in order, then the others (blocked, paused)."""
    found = {}
    seen = set()

    def add(t):
        if t is None or id(t) in seen:
            return
        seen.add(id(t))
        found.setdefault(t.thread_id, []).append(t)

    for tid in _stackless.getthreads():
        try:
            main, cur, runcount = _stackless.get_thread_info(tid)
        except (RuntimeError, ValueError):
            continue
        add(main)
        add(cur)
        t = cur
        for _ in range(runcount + 2):
            if t is None:
                break
            t = t.next
            if t is None or t is cur:
                break
            add(t)
    for o in gc.get_objects():
        if isinstance(o, tasklet) and id(o) not in seen and o.alive:
            add(o)
    return found


def _state_of(t, atomic_override=None):
    parts = []
    if t.is_current:
        parts.append("current")
    ch = t._channel
    if ch is not None:
        direction = ("sending" if ch.balance > 0
                     else "receiving" if ch.balance < 0 else "")
        parts.append("blocked %s on %r" % (direction, ch) if direction
                     else "blocked on %r" % (ch,))
    elif t.blocked:
        parts.append("waiting (hub: I/O, timer or DNS)")
    elif t.scheduled and not t.is_current:
        parts.append("scheduled")
    elif not t.is_current:
        if t.alive:
            started = t.frame is not None or t.is_main
            parts.append("paused" if started else "paused (not started)")
        else:
            parts.append("dead")
    if t.is_main:
        parts.append("main")
    if t.atomic if atomic_override is None else atomic_override:
        parts.append("atomic")
    return ", ".join(parts)


def _format_tasklets(skip_frame=None, cur=None, cur_atomic=None):
    out = []
    try:
        threads = _stackless.getthreads()
    except Exception:           # pragma: no cover - defensive
        threads = []
    by_thread = _tasklets_of_threads()
    names = {th.ident: th.name for th in threading.enumerate()}
    here = threading.get_ident()
    order = list(threads) + [tid for tid in by_thread if tid not in threads]
    n = sum(len(v) for v in by_thread.values())
    out.append("=== stackless_compat: %d tasklet(s) in %d thread(s) ===\n"
               % (n, len(by_thread)))
    for tid in order:
        ts = by_thread.get(tid)
        if not ts:
            continue
        label = ("dead thread" if tid == -1
                 else "thread %d (%s)" % (tid, names.get(tid, "?")))
        out.append("--- %s%s ---\n" % (label,
                                       ", dumping thread" if tid == here else ""))
        for t in ts:
            state = _state_of(t, cur_atomic if t is cur else None)
            out.append("tasklet %#x %s [%s]\n" % (id(t), _describe(t), state))
            if t.is_current and tid == here and skip_frame is not None:
                frame = skip_frame
            else:
                try:
                    frame = t.frame
                except Exception:
                    frame = None
            if frame is None:
                if t.alive and not t.is_main:
                    out.append("    (not started)\n")
                continue
            try:
                stack = traceback.format_stack(frame)
            except Exception as e:      # pragma: no cover - defensive
                stack = ["    <stack unavailable: %r>\n" % (e,)]
            for line in stack:
                out.append("  " + line.replace("\n  ", "\n    "))
    out.append("=== end of tasklets ===\n")
    return "".join(out)


def _describe(t):
    name = type(t).__name__
    if t.is_main:
        return "%s (main)" % name
    func = None
    frame = t.frame if t.alive else None
    if frame is not None:
        # The outermost frame of the tasklet is its function.
        f = frame
        while f.f_back is not None:
            f = f.f_back
        func = f.f_code.co_name
    else:
        try:
            fn = _bound_call(t)[0]
        except Exception:
            fn = None
        if fn is not None:
            func = getattr(fn, "__qualname__", None) or repr(fn)
    return "%s %s" % (name, func) if func else name


def dump_tasklets(file=None):
    """Print every tasklet of every thread with its state and Python stack.

    Nothing is switched, scheduled or changed (the current tasklet is made
    atomic meanwhile so that a watchdog cannot pre-empt the dump).  Safe to
    call from a signal handler::

        signal.signal(signal.SIGUSR1,
                      lambda *a: stackless_compat.dump_tasklets())

    ``file`` defaults to ``sys.stderr``.  Returns the text."""
    if file is None:
        file = sys.stderr
    caller = sys._getframe(1)
    cur = None
    if threading.get_ident() in _stackless.getthreads():
        cur = _stackless.getcurrent()
    old = cur.set_atomic(True) if cur is not None else None
    try:
        text = _format_tasklets(caller, cur, bool(old))
    finally:
        if cur is not None:
            cur.set_atomic(old)
    file.write(text)
    try:
        file.flush()
    except Exception:
        pass
    return text


def install_dump_signal(signum=signal.SIGUSR1, file=None):
    """Make signal ``signum`` print dump_tasklets(file) (stderr by default).
    Returns the previous handler."""
    def handler(sig, frame):
        dump_tasklets(file)
    return signal.signal(signum, handler)


# --------------------------------------------------------------------------
# The module subclass


def _flag_property():
    def getter(self):
        return bool(pickle_flags() & PICKLEFLAGS_PRESERVE_TRACING_STATE)

    def setter(self, value):
        mask = PICKLEFLAGS_PRESERVE_TRACING_STATE
        bits = mask if value else 0
        pickle_flags(bits, mask)
        pickle_flags_default(bits, mask)
    return property(getter, setter, doc="bit 0 of pickle_flags() and "
                    "pickle_flags_default() (deprecated)")


class StacklessModuleType(types.ModuleType):
    """The class of the stackless_compat module: live attributes."""

    current = property(lambda self: _stackless.getcurrent(),
                       doc="the current tasklet of this thread")
    main = property(lambda self: _stackless.getmain(),
                    doc="the main tasklet of this thread")
    runcount = property(lambda self: _stackless.getruncount(),
                        doc="runnable tasklets of this thread")
    threads = property(lambda self: _stackless.getthreads(),
                       doc="the thread ids, main thread first")
    debug = property(lambda self: _stackless.getdebug())
    uncollectables = property(lambda self: _stackless.getuncollectables())
    pickle_with_tracing_state = _flag_property()

    # The module pickles by name: pickle looks up "stackless" in the module
    # named by __module__, which is the module's self-reference.
    def __reduce__(self):
        return "stackless"

    def __reduce_ex__(self, protocol):
        return "stackless"


StacklessModuleType.__module__ = "stackless_compat"

def install(module):
    """Give ``module`` (stackless_compat) its class, StacklessModuleType:
    the live and settable properties.  Its other names come from the table
    in stackless_compat/__init__.py."""
    if not isinstance(module, StacklessModuleType):
        module.__class__ = StacklessModuleType
    return module
