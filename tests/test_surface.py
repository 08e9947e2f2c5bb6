"""The public surface of stackless_compat is the table in its __init__.py.

Pinned here: the names dir() lists after a fresh import, ``__all__``
(Stackless's list, in its order, as the stub declares it), where each name of the table comes
from, the module class's properties, and every attribute stackless_compat
sets on the C types at import (stackless_compat/_extras.py,
C_TYPE_ATTRIBUTES).  A name added to or dropped from the module must be
added to or dropped from the table and from these lists.
"""
import ast
import json
import os
import types

import stackless_compat
from stackless_compat import _extras, _stackless, hub

from helpers import describe, run_py

# dir(stackless_compat) after ``import stackless_compat``, less the names
# of the module's own implementation (_sys, _SURFACE, ...).
PUBLIC_DIR = [
    "PICKLEFLAGS_PRESERVE_AG_FINALIZER", "PICKLEFLAGS_PRESERVE_TRACING_STATE",
    "PICKLEFLAGS_RESET_AG_FINALIZER", "TaskletExit", "Timeout",
    "_gc_track", "_gc_untrack", "_pickle_moduledict",
    "_test_nostacklesscall", "atomic", "bomb", "cframe", "channel",
    "cstack", "current", "debug", "dump_tasklets", "enable_softswitch",
    "get_channel_callback", "get_schedule_callback", "get_thread_info",
    "getcurrent", "getcurrentid", "getdebug", "getmain", "getruncount",
    "getthreads", "getuncollectables", "hub", "install_dump_signal",
    "main", "pickle_flags", "pickle_flags_default", "run", "runcount",
    "schedule", "schedule_remove", "set_channel_callback",
    "set_error_handler", "set_schedule_callback", "sleep", "stackless",
    "switch_trap", "tasklet", "test_cframe", "test_cframe_nr",
    "test_cstate", "test_outside", "threads", "uncollectables",
    "wait_read", "wait_write", "with_timeout",
]
IMPLEMENTATION = {
    "_SUPPORTED", "_SURFACE", "_atexit", "_extras", "_gc", "_pickle",
    "_stackless", "_sys",
}
DUNDERS = {
    "__all__", "__builtins__", "__cached__", "__dir__", "__doc__",
    "__file__", "__loader__", "__name__", "__package__", "__path__",
    "__reduce__", "__spec__", "__version__",
}


def _stub_all():
    """``__all__`` as stackless_compat/__init__.pyi declares it (the stubs
    are reviewed with the code; ``make typecheck`` checks them too)."""
    path = os.path.join(os.path.dirname(stackless_compat.__file__),
                        "__init__.pyi")
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if (isinstance(node, ast.Assign)
                and [t.id for t in node.targets] == ["__all__"]):
            return ast.literal_eval(node.value)
    raise AssertionError("no __all__ in " + path)


ALL = _stub_all()
C_TYPE_ATTRIBUTES = [
    ("tasklet", "__reduce__"), ("tasklet", "__reduce_ex__"),
    ("tasklet", "__setstate__"), ("channel", "__reduce__"),
    ("channel", "__reduce_ex__"), ("channel", "__setstate__"),
]
SOURCES = {"_stackless": _stackless, "hub": hub, "_extras": _extras}


def fresh_dir():
    proc = run_py("""
        import json, stackless_compat
        print(json.dumps([dir(stackless_compat), stackless_compat.__all__]))
    """)
    assert proc.returncode == 0, describe(proc)
    return json.loads(proc.stdout)


def test_dir_and_all_after_import():
    names, all_ = fresh_dir()
    assert names == sorted(names)
    assert set(names) - DUNDERS - IMPLEMENTATION == set(PUBLIC_DIR)
    assert DUNDERS | IMPLEMENTATION <= set(names)
    assert all_ == ALL
    assert stackless_compat.__all__ == ALL


def test_table_is_the_surface():
    table = stackless_compat._SURFACE
    names = [name for name, _, _ in table]
    assert len(names) == len(set(names))
    assert [name for name, _, exported in table if exported] == ALL
    # every public name but the submodule hub is in the table; the settable
    # property is the one name of the table dir() does not list
    listed = {name for name, where, _ in table if where != "setting"}
    assert listed == set(PUBLIC_DIR) - {"hub"}
    for name, where, _ in table:
        value = getattr(stackless_compat, name)
        if where in SOURCES:
            assert value is getattr(SOURCES[where], name), name
            assert vars(stackless_compat)[name] is value, name
        elif where == "self":
            assert value is stackless_compat
        else:
            assert where in ("live", "setting"), (name, where)
            assert name not in vars(stackless_compat), name


def test_module_class_properties():
    cls = type(stackless_compat)
    assert cls is _extras.StacklessModuleType
    props = {name: obj for name, obj in vars(cls).items()
             if isinstance(obj, property)}
    table = stackless_compat._SURFACE
    assert set(props) == {name for name, where, _ in table
                          if where in ("live", "setting")}
    for name, where, _ in table:
        if where == "live":
            assert props[name].fset is None, name
        elif where == "setting":
            assert props[name].fset is not None, name
    assert stackless_compat.current is stackless_compat.getcurrent()
    assert stackless_compat.main is stackless_compat.getmain()
    assert stackless_compat.runcount == stackless_compat.getruncount()


def test_no_module_getattr():
    # The properties of the module's class answer the live names; a module
    # __getattr__ would never be asked for them.
    assert "__getattr__" not in vars(stackless_compat)
    try:
        stackless_compat.no_such_name
    except AttributeError as e:
        assert str(e) == ("module 'stackless_compat' has no attribute "
                          "'no_such_name'")
    else:
        raise AssertionError("no AttributeError")


def test_attributes_set_on_c_types():
    table = _extras.C_TYPE_ATTRIBUTES
    assert [(tp.__name__, name) for tp, name, _ in table] == C_TYPE_ATTRIBUTES
    for tp, name, value in table:
        assert vars(tp)[name] is value, (tp, name)
    # nothing else written in Python sits on a C type
    for tp in (_stackless.tasklet, _stackless.channel, _stackless.bomb,
               _stackless.atomic, _stackless.cstack):
        python_attrs = {(tp.__name__, name) for name, obj in vars(tp).items()
                        if isinstance(obj, types.FunctionType)}
        assert python_attrs == {(t, n) for t, n in C_TYPE_ATTRIBUTES
                                if t == tp.__name__}, tp
    assert _stackless.cframe is stackless_compat.cframe is _extras.cframe
