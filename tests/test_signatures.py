"""Every callable implemented in C has a docstring and a text signature.

help() and inspect.signature() read the signature from the first line of
the C docstring ("name($self, a, b=None, /)\\n--\\n\\n").  The argument names
are Stackless's; the parameter kinds must match what the C code parses:
keyword calls of the main functions with the documented names are tried,
and positional-only parameters must refuse keywords.
"""
import inspect
import types

import pytest

import stackless_compat
from stackless_compat import _stackless

C_TYPES = (_stackless.tasklet, _stackless.channel, _stackless.bomb,
           _stackless.atomic)
# Types that Python code does not instantiate (tasklet.cstate's cstack,
# allocate_lock()'s lock): only their methods are walked.
METHOD_TYPES = (_stackless.cstack, _stackless.lock)
BUILTIN_KINDS = (types.BuiltinFunctionType, types.MethodDescriptorType)

# Slot wrappers (__init__, __call__, ...) get their signatures from CPython.
SLOT_WRAPPERS = (types.WrapperDescriptorType, types.MethodWrapperType)


def private(name):
    return name.startswith("_") and not name.startswith("__")


def c_callables():
    """(qualified name, object) of every public C function and method:
    the module's functions, the types and their methods (special methods
    included), the methods of cstack and of the cooperative lock, the
    cooperative socket methods of the hub."""
    found = []
    for name, obj in sorted(vars(_stackless).items()):
        if isinstance(obj, types.BuiltinFunctionType) and not private(name):
            found.append((name, obj))
    for tp in C_TYPES:
        found.append((tp.__name__, tp))
        for name, obj in sorted(vars(tp).items()):
            if isinstance(obj, types.MethodDescriptorType) and not private(name):
                found.append(("%s.%s" % (tp.__name__, name), obj))
    for tp in METHOD_TYPES:
        for name, obj in sorted(vars(tp).items()):
            if isinstance(obj, types.MethodDescriptorType) and not private(name):
                found.append(("%s.%s" % (tp.__name__, name), obj))
    if hasattr(_stackless, "_sock_methods"):
        for name, obj in sorted(_stackless._sock_methods().items()):
            if not private(name):
                found.append(("socket.%s" % name, obj))
    return found


CALLABLES = c_callables()


def test_the_walk_finds_the_api():
    names = {n for n, _ in CALLABLES}
    for expected in ("run", "schedule", "getcurrent", "tasklet.bind",
                     "tasklet.throw", "channel.send", "channel.send_throw",
                     "atomic.__enter__", "bomb", "tasklet", "test_cframe",
                     "allocate_lock", "lock.acquire", "cstack.__reduce__"):
        assert expected in names
    assert len(CALLABLES) > 50


@pytest.mark.parametrize("name,obj", CALLABLES, ids=[n for n, _ in CALLABLES])
def test_signature_and_docstring(name, obj):
    sig = inspect.signature(obj)
    assert obj.__text_signature__ is not None
    doc = inspect.getdoc(obj)
    assert doc, name
    # The signature line is not repeated in __doc__.
    assert "--\n" not in obj.__doc__
    for p in sig.parameters.values():
        assert p.name.isidentifier()


def public_callables():
    """Every public callable of the package that comes from C."""
    out = []
    for name in sorted(set(stackless_compat.__all__) | {"bomb", "sleep",
                                                         "wait_read",
                                                         "wait_write"}):
        obj = getattr(stackless_compat, name, None)
        if isinstance(obj, BUILTIN_KINDS) or obj in C_TYPES:
            out.append((name, obj))
    return out


@pytest.mark.parametrize("name,obj", public_callables(),
                         ids=[n for n, _ in public_callables()])
def test_public_names_have_signatures(name, obj):
    inspect.signature(obj)
    assert "(" in inspect.getdoc(obj) or obj.__text_signature__


# Stackless's argument names (Doc/library/stackless/*.rst and its C source).
STACKLESS_NAMES = {
    "run": ["timeout", "threadblock", "soft", "ignore_nesting",
            "totaltimeout"],
    "schedule": ["retval"],
    "schedule_remove": ["retval"],
    "get_thread_info": ["thread_id", "flags"],
    "switch_trap": ["change"],
    "enable_softswitch": ["flag"],
    "set_channel_callback": ["callable"],
    "set_schedule_callback": ["callable"],
    "set_error_handler": ["handler"],
    "tasklet": ["func", "args", "kwargs"],
    "tasklet.bind": ["self", "func", "args", "kwargs"],
    "tasklet.throw": ["self", "exc", "val", "tb", "pending"],
    "tasklet.kill": ["self", "pending"],
    "tasklet.raise_exception": ["self", "exc_class", "args"],
    "tasklet.set_atomic": ["self", "flag"],
    "tasklet.set_ignore_nesting": ["self", "flag"],
    "tasklet.bind_thread": ["self", "thread_id"],
    "tasklet.setup": ["self", "args", "kwargs"],
    "channel.send": ["self", "value"],
    "channel.send_exception": ["self", "exc", "args"],
    "channel.send_throw": ["self", "exc", "val", "tb"],
    "channel.send_sequence": ["self", "seq"],
    "bomb": ["type", "value", "traceback"],
    "test_cframe": ["switches", "words"],
    "test_cframe_nr": ["switches"],
    "test_cstate": ["callable"],
    "test_outside": [],
    "lock.acquire": ["self", "blocking", "timeout"],
}


@pytest.mark.parametrize("name", sorted(STACKLESS_NAMES))
def test_stackless_argument_names(name):
    obj = dict(CALLABLES)[name]
    assert list(inspect.signature(obj).parameters) == STACKLESS_NAMES[name]


def test_keyword_parameters_are_accepted_by_keyword():
    """Where a signature says a parameter can be passed by keyword, the C
    code takes it (and rejects a name it does not know)."""
    t = stackless_compat.tasklet()
    t.bind(func=len, args=("abc",), kwargs={})
    t.bind(func=None)
    assert stackless_compat.tasklet(func=len).alive is False
    bomb = stackless_compat.bomb(type=ValueError, value=ValueError("x"),
                                 traceback=None)
    assert bomb.type is ValueError
    assert stackless_compat.schedule(retval=7) == 7
    assert stackless_compat.run(timeout=0, threadblock=False, soft=False,
                                ignore_nesting=False,
                                totaltimeout=False) is None
    # kill(pending=...) of a dead tasklet does nothing
    assert stackless_compat.tasklet().kill(pending=True) is None
    with pytest.raises(TypeError):
        stackless_compat.schedule(value=7)
    with pytest.raises(TypeError):
        t.kill(immediate=True)
    assert stackless_compat.test_cframe(switches=0, words=0) is None
    lock = stackless_compat._stackless.allocate_lock()
    assert lock.acquire(blocking=True, timeout=-1) is True
    lock.release()


def test_positional_only_parameters_reject_keywords():
    with pytest.raises(TypeError):
        stackless_compat.switch_trap(change=0)
    with pytest.raises(TypeError):
        stackless_compat.channel().send(value=1)
    with pytest.raises(TypeError):
        stackless_compat.tasklet().set_atomic(flag=True)


def test_help_shows_the_signature():
    import pydoc
    import re

    def render(obj):
        # pydoc of 3.13 wraps a long signature over several lines
        text = " ".join(pydoc.render_doc(obj, renderer=pydoc.plaintext).split())
        return re.sub(r"\( ", "(", text)
    text = render(stackless_compat.tasklet.throw)
    assert "throw(self, /, exc, val=None, tb=None, pending=False)" in text
    text = render(stackless_compat.run)
    assert "run(timeout=0, threadblock=False, soft=False" in text
