"""Pickling of the builtin types Stackless registers reducers for and stock
CPython does not pickle (STACKLESS_API.md §8.3): dict views."""

import copy
import pickle

import pytest

import stackless_compat  # noqa: F401  (registers the reducers)

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
