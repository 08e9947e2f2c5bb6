# Type stubs of the stackless_compat package: the Stackless API.
import types
from typing import Any, Final, TextIO

from ._stackless import (
    TaskletExit as TaskletExit,
    atomic as atomic,
    bomb as bomb,
    cframe as cframe,
    channel as channel,
    cstack as cstack,
    enable_softswitch as enable_softswitch,
    get_channel_callback as get_channel_callback,
    get_schedule_callback as get_schedule_callback,
    get_thread_info as get_thread_info,
    getcurrent as getcurrent,
    getcurrentid as getcurrentid,
    getdebug as getdebug,
    getmain as getmain,
    getruncount as getruncount,
    getthreads as getthreads,
    getuncollectables as getuncollectables,
    run as run,
    schedule as schedule,
    schedule_remove as schedule_remove,
    set_channel_callback as set_channel_callback,
    set_error_handler as set_error_handler,
    set_schedule_callback as set_schedule_callback,
    switch_trap as switch_trap,
    tasklet as tasklet,
    # Stackless's test helpers
    _test_nostacklesscall as _test_nostacklesscall,
    test_cframe as test_cframe,
    test_cframe_nr as test_cframe_nr,
    test_cstate as test_cstate,
    test_outside as test_outside,
)
from .hub import (
    Timeout as Timeout,
    sleep as sleep,
    wait_read as wait_read,
    wait_write as wait_write,
    with_timeout as with_timeout,
)

__version__: str
__all__ = [
    "atomic", "channel", "enable_softswitch", "get_channel_callback",
    "get_schedule_callback", "get_thread_info", "getcurrent",
    "getcurrentid", "getdebug", "getmain", "getruncount", "getthreads",
    "getuncollectables", "run", "schedule", "schedule_remove",
    "set_channel_callback", "set_error_handler", "set_schedule_callback",
    "switch_trap", "tasklet", "stackless", "pickle_with_tracing_state",
]

# The module itself, as Stackless's ``stackless.stackless``.
stackless: types.ModuleType

# Attributes computed on every access, as in Stackless.
current: tasklet
main: tasklet
runcount: int
threads: list[int]
debug: bool
uncollectables: list[tasklet]
pickle_with_tracing_state: bool

PICKLEFLAGS_PRESERVE_TRACING_STATE: Final = 1
PICKLEFLAGS_PRESERVE_AG_FINALIZER: Final = 2
PICKLEFLAGS_RESET_AG_FINALIZER: Final = 4

def pickle_flags(new_flags: int = -1, mask: int = -1) -> int: ...
def pickle_flags_default(new_default: int = -1, mask: int = -1) -> int: ...
def dump_tasklets(file: TextIO | None = None) -> str: ...
def install_dump_signal(signum: int = ..., file: TextIO | None = None) -> Any: ...
def _gc_track(obj: object) -> None: ...
def _gc_untrack(obj: object) -> None: ...
def _pickle_moduledict(pickler: Any, obj: object) -> Any: ...
