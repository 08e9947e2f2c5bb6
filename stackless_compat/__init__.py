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

try:
    # The hub (libev): sleep, fd waits and Timeout park only the caller.
    from . import hub as _hub
except ImportError:         # built without the hub (STACKLESS_COMPAT_NO_HUB)
    _hub = None

# Pickling, cstack, dump_tasklets, the module's class with its properties.
from . import _extras

# The public surface of the module, in one table: every name, where it
# comes from, and whether ``__all__`` (Stackless's list, what
# ``from stackless_compat import *`` takes) has it.  Where it comes from:
#   "_stackless"  the C extension (csrc/, hub/)
#   "hub"         stackless_compat/hub.py (absent in a build without the hub)
#   "_extras"     stackless_compat/_extras.py
#   "live"        a read-only property of the module's class
#                 (_extras.StacklessModuleType), computed on every access
#   "setting"     a settable property of that class; dir() does not list it
#   "self"        the module itself
# The attributes that stackless_compat sets on the C types at import are
# listed in _extras.C_TYPE_ATTRIBUTES.  tests/test_surface.py pins both
# tables, dir() and __all__; docs/design.md ("Python on top") explains.
_SURFACE = (
    # (name, where it comes from, in __all__)
    ("atomic", "_stackless", True),
    ("channel", "_stackless", True),
    ("enable_softswitch", "_stackless", True),
    ("get_channel_callback", "_stackless", True),
    ("get_schedule_callback", "_stackless", True),
    ("get_thread_info", "_stackless", True),
    ("getcurrent", "_stackless", True),
    ("getcurrentid", "_stackless", True),
    ("getdebug", "_stackless", True),
    ("getmain", "_stackless", True),
    ("getruncount", "_stackless", True),
    ("getthreads", "_stackless", True),
    ("getuncollectables", "_stackless", True),
    ("run", "_stackless", True),
    ("schedule", "_stackless", True),
    ("schedule_remove", "_stackless", True),
    ("set_channel_callback", "_stackless", True),
    ("set_error_handler", "_stackless", True),
    ("set_schedule_callback", "_stackless", True),
    ("switch_trap", "_stackless", True),
    ("tasklet", "_stackless", True),
    ("stackless", "self", True),
    ("pickle_with_tracing_state", "setting", True),
    ("TaskletExit", "_stackless", False),
    ("bomb", "_stackless", False),
    # Stackless's test helpers (README.rst, "Test helpers")
    ("_test_nostacklesscall", "_stackless", False),
    ("test_cframe", "_stackless", False),
    ("test_cframe_nr", "_stackless", False),
    ("test_cstate", "_stackless", False),
    ("test_outside", "_stackless", False),
    ("Timeout", "hub", False),
    ("sleep", "hub", False),
    ("wait_read", "hub", False),
    ("wait_write", "hub", False),
    ("with_timeout", "hub", False),
    ("PICKLEFLAGS_PRESERVE_TRACING_STATE", "_extras", False),
    ("PICKLEFLAGS_PRESERVE_AG_FINALIZER", "_extras", False),
    ("PICKLEFLAGS_RESET_AG_FINALIZER", "_extras", False),
    ("pickle_flags", "_extras", False),
    ("pickle_flags_default", "_extras", False),
    ("cstack", "_stackless", False),
    ("cframe", "_extras", False),
    ("_gc_track", "_extras", False),
    ("_gc_untrack", "_extras", False),
    ("_pickle_moduledict", "_extras", False),
    ("dump_tasklets", "_extras", False),
    ("install_dump_signal", "_extras", False),
    ("current", "live", False),
    ("main", "live", False),
    ("runcount", "live", False),
    ("threads", "live", False),
    ("debug", "live", False),
    ("uncollectables", "live", False),
)

__version__ = "0.1.0.dev0"

__all__ = [_name for _name, _, _exported in _SURFACE if _exported]

# The module refers to itself, as Stackless's did (deprecated there too).
stackless = _sys.modules[__name__]

_SOURCES = {"_stackless": _stackless, "hub": _hub, "_extras": _extras}
for _name, _where, _exported in _SURFACE:
    if _where in _SOURCES and _SOURCES[_where] is not None:
        globals()[_name] = getattr(_SOURCES[_where], _name)
del _SOURCES, _name, _where, _exported, _hub

# The module's class has the live and settable properties (its instance
# dict cannot hold them: they are computed on each access).
_extras.install(_sys.modules[__name__])


def __dir__():
    return sorted(set(globals())
                  | {name for name, where, _ in _SURFACE if where == "live"})


def __reduce__():
    return "stackless"


# Suspended tasklets the collector finds unreachable are killed (their
# finally blocks run) right after the collection.
_gc.callbacks.append(_stackless._gc_callback)

# At interpreter exit (after the atexit functions registered later than
# this import), every suspended tasklet gets TaskletExit so that its finally
# blocks run.
_atexit.register(_stackless._atexit_kill)
