"""stackless_compat: the Stackless Python API on stock CPython 3.11-3.13.

``import stackless_compat as stackless`` gives tasklets, channels and the
cooperative scheduler of Stackless Python, implemented in C on a
stack-slicing switch core.  ``python -m stackless_compat program.py`` runs a
legacy program with ``import stackless`` resolved to this module.
"""
import atexit as _atexit
import gc as _gc
import sys as _sys

# Each supported interpreter has its entry in the C extension's version
# layer; anything else is refused here, before the extension is looked for.
_SUPPORTED = ((3, 11), (3, 12), (3, 13))
if (_sys.implementation.name != "cpython"
        or _sys.version_info[:2] not in _SUPPORTED):
    raise ImportError(
        "stackless_compat supports CPython %s only; this is %s %s"
        % (", ".join("%d.%d" % v for v in _SUPPORTED),
           _sys.implementation.name, _sys.version.split()[0]))

from . import _stackless
from ._stackless import (
    TaskletExit, atomic, bomb, channel, enable_softswitch,
    get_channel_callback, get_schedule_callback, get_thread_info,
    getcurrent, getcurrentid, getdebug, getmain, getruncount, getthreads,
    getuncollectables, run, schedule, schedule_remove,
    set_channel_callback, set_error_handler, set_schedule_callback,
    switch_trap, tasklet,
    # test helpers of Stackless's (README.rst, "Test helpers")
    _test_nostacklesscall, test_cframe, test_cframe_nr, test_cstate,
    test_outside,
)

try:
    # The hub (libev): sleep, fd waits and Timeout park only the caller.
    from .hub import Timeout, sleep, wait_read, wait_write, with_timeout
except ImportError:         # built without the hub (STACKLESS_COMPAT_NO_HUB)
    pass

__version__ = "0.1.0.dev0"

__all__ = [
    "atomic", "channel", "enable_softswitch", "get_channel_callback",
    "get_schedule_callback", "get_thread_info", "getcurrent",
    "getcurrentid", "getdebug", "getmain", "getruncount", "getthreads",
    "getuncollectables", "run", "schedule", "schedule_remove",
    "set_channel_callback", "set_error_handler", "set_schedule_callback",
    "switch_trap", "tasklet", "stackless",
]

# The module refers to itself, as Stackless's did (deprecated there too).
stackless = _sys.modules[__name__]

# Pickling, cstack, dump_tasklets, live and settable module properties.
from . import _extras  # noqa: E402
_extras.install(_sys.modules[__name__])

# Attributes Stackless computes on every access (PEP 562).
_DYNAMIC = {
    "current": getcurrent,
    "main": getmain,
    "runcount": getruncount,
    "threads": getthreads,
    "debug": getdebug,
    "uncollectables": getuncollectables,
}


def __getattr__(name):
    try:
        return _DYNAMIC[name]()
    except KeyError:
        raise AttributeError(
            "module %r has no attribute %r" % (__name__, name)) from None


def __dir__():
    return sorted(set(globals()) | set(_DYNAMIC))


def __reduce__():
    return "stackless"


# Suspended tasklets the collector finds unreachable are killed (their
# finally blocks run) right after the collection.
_gc.callbacks.append(_stackless._gc_callback)

# At interpreter exit (after the atexit functions registered later than
# this import), every suspended tasklet gets TaskletExit so that its finally
# blocks run.
_atexit.register(_stackless._atexit_kill)
