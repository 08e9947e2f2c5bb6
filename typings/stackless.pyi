# `import stackless` in a legacy program run by `python -m stackless_compat`
# is the stackless_compat module itself: for type checkers, the same names.
# Add this directory to mypy's search path (MYPYPATH=typings, or mypy_path)
# to type-check such programs; see docs/guides/migrating.rst.
from stackless_compat import *
from stackless_compat import (
    PICKLEFLAGS_PRESERVE_AG_FINALIZER as PICKLEFLAGS_PRESERVE_AG_FINALIZER,
    PICKLEFLAGS_PRESERVE_TRACING_STATE as PICKLEFLAGS_PRESERVE_TRACING_STATE,
    PICKLEFLAGS_RESET_AG_FINALIZER as PICKLEFLAGS_RESET_AG_FINALIZER,
    TaskletExit as TaskletExit,
    Timeout as Timeout,
    bomb as bomb,
    cframe as cframe,
    cstack as cstack,
    current as current,
    debug as debug,
    dump_tasklets as dump_tasklets,
    install_dump_signal as install_dump_signal,
    main as main,
    pickle_flags as pickle_flags,
    pickle_flags_default as pickle_flags_default,
    runcount as runcount,
    test_cframe as test_cframe,
    test_cframe_nr as test_cframe_nr,
    test_cstate as test_cstate,
    test_outside as test_outside,
    _test_nostacklesscall as _test_nostacklesscall,
    threads as threads,
    uncollectables as uncollectables,
)
