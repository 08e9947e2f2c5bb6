"""Pickling of the builtin types Stackless registers reducers for and stock
CPython does not pickle (docs/guides/pickling.rst): dict views, and the
``coroutine_wrapper`` that ``coro.__await__()`` returns."""

import copy
import pickle

import pytest

import stackless_compat  # noqa: F401  (registers the reducers)
from stackless_compat import _pickle

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
DUMPERS = [pickle.dumps, pickle._dumps]     # the C and the Python pickler
VIEWS = [dict.keys, dict.values, dict.items]


class MyDict(dict):
    pass


@pytest.mark.parametrize("dumps", DUMPERS, ids=["C", "Python"])
@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("view", VIEWS, ids=["keys", "values", "items"])
def test_dict_view_roundtrip(view, proto, dumps):
    d = {1: 2, "a": [3]}
    v = pickle.loads(dumps(view(d), proto))
    assert type(v) is type(view(d))
    assert list(v) == list(view(d))


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("view", VIEWS, ids=["keys", "values", "items"])
def test_dict_view_shows_the_unpickled_dict(view, proto):
    # pickled along with its dict, a view shows that same dict afterwards
    d = MyDict(x=1)
    d.attr = "kept"
    d2, v = pickle.loads(pickle.dumps((d, view(d)), proto))
    assert type(d2) is MyDict and d2.attr == "kept"
    d2["y"] = 2
    assert list(v) == list(view(d2))
    assert len(v) == 2


@pytest.mark.parametrize("view", VIEWS, ids=["keys", "values", "items"])
def test_dict_view_copy_and_deepcopy(view):
    d = {1: [2]}
    shallow = copy.copy(view(d))
    deep = copy.deepcopy(view(d))
    d[3] = [4]
    assert len(shallow) == 2        # a view of the same dict
    assert len(deep) == 1           # a view of a copy of it
    if view is dict.items:
        assert next(iter(deep))[1] is not d[1]


# -- coroutine_wrapper ------------------------------------------------------

class _Step:
    def __await__(self):
        return (yield "step")


async def two_steps():
    a = await _Step()
    b = await _Step()
    return (a, b)


def _drive(w, *values):
    out = [w.send(None)]
    with pytest.raises(StopIteration) as e:
        for v in values:
            out.append(w.send(v))
    return out, e.value.value


def test_coroutine_wrapper_copy_shares_its_coroutine():
    # as in Stackless: a shallow copy wraps the same coroutine
    c = two_steps()
    w = c.__await__()
    cw = copy.copy(w)
    assert type(cw) is type(w) and cw is not w
    assert _drive(cw, 1, 2) == (["step", "step"], (1, 2))
    with pytest.raises(RuntimeError,
                       match="cannot reuse already awaited coroutine"):
        w.send(None)


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("started", [False, True], ids=["new", "suspended"])
def test_coroutine_wrapper_roundtrip(started, proto):
    c = two_steps()
    w = c.__await__()
    if started:
        assert w.send(None) == "step"
    w2 = pickle.loads(pickle.dumps(w, proto))
    assert type(w2) is type(w)
    # the copy drives its own coroutine; the original is where it was
    if started:
        with pytest.raises(StopIteration) as e:
            w2.send("x")
            w2.send("y")
        assert e.value.value == ("x", "y")
    else:
        assert _drive(w2, 1, 2) == (["step", "step"], (1, 2))
    c.close()


def test_coroutine_wrapper_deepcopy_and_shared_coroutine():
    c = two_steps()
    w = c.__await__()
    assert w.send(None) == "step"
    c2, w2 = pickle.loads(pickle.dumps((c, w)))
    assert w2.send(1) == "step"             # one coroutine, behind both
    assert c2.cr_frame is not None
    with pytest.raises(StopIteration):
        c2.send(2)
    w3 = copy.deepcopy(w)
    with pytest.raises(StopIteration) as e:
        w3.send("a")
        w3.send("b")
    assert e.value.value == ("a", "b")
    c.close()


def test_coroutine_wrapper_refuses_what_is_not_a_coroutine():
    class Forged:
        def __reduce__(self):
            return _pickle._await, (5,)
    with pytest.raises(pickle.UnpicklingError, match="wraps a coroutine"):
        pickle.loads(pickle.dumps(Forged()))
