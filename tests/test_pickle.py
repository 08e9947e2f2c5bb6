"""Pickling (docs/guides/pickling.rst; docs/api/stackless.rst, "Pickling"):
tasklets bound but not started, dead tasklets, channels, bombs, through
every pickle protocol and copy/deepcopy; the pickle flags; the module."""

import copy
import pickle
import sys
import threading

import pytest

import stackless_compat as stackless
from stackless_compat import _extras

_extras.install(stackless)      # a no-op once stackless_compat/__init__ does it

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
results = []


def work(a, b=2, *, c=0):
    results.append((a, b, c))
    return a + b + c


def roundtrips(obj):
    """obj through every protocol, copy.copy and copy.deepcopy."""
    out = [pickle.loads(pickle.dumps(obj, p)) for p in PROTOCOLS]
    out.append(copy.copy(obj))
    out.append(copy.deepcopy(obj))
    return out


class MyTasklet(stackless.tasklet):
    pass


class MyChannel(stackless.channel):
    pass


@pytest.fixture(autouse=True)
def _clear():
    del results[:]
    yield
    del results[:]


# -- tasklets ---------------------------------------------------------------

def test_setup_tasklet_roundtrip_and_run():
    t = stackless.tasklet(work)
    t.bind(work, (1,), {"b": 5, "c": 7})
    assert t.alive and t.paused
    copies = roundtrips(t)
    assert len(copies) == len(PROTOCOLS) + 2
    for u in copies:
        assert type(u) is stackless.tasklet and u is not t
        assert u.alive and u.paused and not u.scheduled   # as in Stackless
        assert u.frame is None
        u.insert()
    stackless.run()
    assert results == [(1, 5, 7)] * len(copies)
    assert t.alive                          # the original is untouched
    t.insert()
    stackless.run()
    assert len(results) == len(copies) + 1


def test_scheduled_setup_tasklet_pickles_paused():
    t = stackless.tasklet(work)(3)
    assert t.scheduled
    u = pickle.loads(pickle.dumps(t))
    assert u.paused and not u.scheduled
    u.insert()
    stackless.run()
    assert results == [(3, 2, 0), (3, 2, 0)]


def test_bound_only_tasklet():
    t = stackless.tasklet(work)
    assert not t.alive and t.tempval is work
    for u in roundtrips(t):
        assert not u.alive and u.tempval is work
        u.setup(4, c=1)
    stackless.run()
    assert results == [(4, 2, 1)] * (len(PROTOCOLS) + 2)


def test_unbound_tasklet():
    for u in roundtrips(stackless.tasklet()):
        assert not u.alive and u.tempval is None
        with pytest.raises(RuntimeError):
            u.setup()


def test_dead_tasklet_keeps_function():
    t = stackless.tasklet(work)(1)
    stackless.run()
    assert not t.alive
    for u in roundtrips(t):
        assert not u.alive and u.frame is None
        u.setup(9)              # a dead tasklet can be set up again
    stackless.run()
    assert results[1:] == [(9, 2, 0)] * (len(PROTOCOLS) + 2)


def test_killed_before_start_is_dead():
    t = stackless.tasklet(work)(1)
    t.kill()
    assert not t.alive
    u = pickle.loads(pickle.dumps(t))
    assert not u.alive


def test_reduce_shape():
    t = stackless.tasklet(work)
    t.bind(work, (1, 2), {"c": 3})
    t.set_atomic(True)
    t.set_ignore_nesting(True)
    t.block_trap = True
    cls, args, state = t.__reduce__()
    assert cls is stackless.tasklet and args == ()
    flags, tempval, nesting, frames, et, ev, etb, eio = state
    assert flags == (1 << 2) | (1 << 3) | (1 << 5)     # Stackless's flag bits
    assert tempval is None and nesting == 0
    assert et is ev is etb is eio is None
    [cf] = frames
    assert isinstance(cf, stackless.cframe)
    assert (cf.f_execute, cf.ob1, cf.ob2, cf.ob3) == (
        "tasklet_setup", work, (1, 2), {"c": 3})
    assert t.__reduce_ex__(2)[2][0] == flags
    u = pickle.loads(pickle.dumps(t))
    assert u.atomic and u.ignore_nesting and u.block_trap
    assert pickle.loads(pickle.dumps(stackless.tasklet(work))).__reduce__()[2][:4] \
        == (0, work, 0, [])


def test_tempval_preserved():
    t = stackless.tasklet(work)(1)
    t.remove()
    t.tempval = ("payload", 42)
    u = pickle.loads(pickle.dumps(t))
    assert u.tempval == ("payload", 42)


def test_shared_objects_keep_identity():
    ch = stackless.channel()
    box = []
    t1 = stackless.tasklet(work)
    t1.bind(work, (ch, box))
    t2 = stackless.tasklet(work)
    t2.bind(work, (ch, box))
    t3 = stackless.tasklet(work)
    t3.bind(work, (t1,))        # a tasklet referring to another one
    a, b, c = pickle.loads(pickle.dumps([t1, t2, t3]))
    fa, fb, fc = (x.__reduce__()[2][3][0] for x in (a, b, c))
    assert fa.ob2[0] is fb.ob2[0] and isinstance(fa.ob2[0], stackless.channel)
    assert fa.ob2[1] is fb.ob2[1]
    assert fc.ob2[0] is a


def test_self_referencing_tempval():
    t = stackless.tasklet(work)(1)
    t.remove()
    t.tempval = t
    u = pickle.loads(pickle.dumps(t))
    assert u.tempval is u


def test_subclass_with_attributes():
    t = MyTasklet(work)
    t.bind(work, (5,))
    t.name = "worker"
    for u in roundtrips(t):
        assert type(u) is MyTasklet and u.name == "worker"
        u.insert()
    stackless.run()
    assert results == [(5, 2, 0)] * (len(PROTOCOLS) + 2)


def test_current_tasklet_cannot_be_reduced():
    with pytest.raises(RuntimeError,
                       match=r"^You cannot __reduce__ the tasklet which is current\.$"):
        stackless.getcurrent().__reduce__()
    errors = []

    def inner():
        try:
            pickle.dumps(stackless.getcurrent())
        except RuntimeError as e:
            errors.append(str(e))
    stackless.tasklet(inner)()
    stackless.run()
    assert errors == ["You cannot __reduce__ the tasklet which is current."]


def test_suspended_tasklet_pickles_and_resumes():
    # (tests/test_pickle_running.py covers this in depth)
    def f():
        me = stackless.schedule_remove() is stackless.getcurrent()
        results.append(me)      # (results on the stack would be a copy)
    t = stackless.tasklet(f)()
    stackless.run()
    assert t.paused and t.frame is not None and t.restorable
    u = pickle.loads(pickle.dumps(t))
    v = copy.deepcopy(t)
    t.kill()
    for x in (u, v):
        x.insert()
    stackless.run()
    assert results == [True, True]


def test_scheduled_started_tasklet_pickles_paused():
    def f():
        stackless.schedule()
        results.append("done")
    t = stackless.tasklet(f)()
    stackless.schedule()
    assert t.scheduled and t.frame is not None
    u = pickle.loads(pickle.dumps(t))
    assert u.paused
    stackless.run()
    u.insert()
    stackless.run()
    assert results == ["done", "done"]


def test_tasklet_blocked_in_a_builtin_pickles():
    ch = stackless.channel()
    t = stackless.tasklet(ch.receive)()
    stackless.run()
    assert t.blocked and t.frame is None
    ch2 = pickle.loads(pickle.dumps(ch))
    t.kill()
    assert ch2.balance == -1
    u = ch2.queue
    ch2.send("v")
    assert not u.alive


def test_main_tasklet_cannot_be_pickled():
    def f():
        with pytest.raises(pickle.PicklingError, match="main tasklet"):
            pickle.dumps(stackless.getmain())
        results.append(1)
    stackless.tasklet(f)()
    stackless.run()
    assert results == [1]


def test_setstate_rejects_python_frames_and_alive():
    t = stackless.tasklet()
    with pytest.raises(pickle.UnpicklingError, match="mid-run"):
        t.__setstate__((0, None, 0, [sys._getframe()]))
    with pytest.raises(TypeError):
        t.__setstate__((0, None))
    u = stackless.tasklet(work)
    u.bind(work, (1,))
    with pytest.raises(RuntimeError, match="tasklet is alive"):
        u.__setstate__((0, None, 0, []))
    # Stackless's 4-item and 8-item states are accepted.
    v = stackless.tasklet()
    assert v.__setstate__((0, "x", 0, [])) is v and v.tempval == "x"
    w = stackless.tasklet()
    w.__setstate__((4, None, 0, [stackless.cframe("tasklet_setup", work, (2,), None)],
                    None, None, None, None))
    assert w.alive and w.atomic
    w.insert()
    stackless.run()
    assert results == [(2, 2, 0)]


def test_unpickled_in_other_thread_belongs_there():
    data = pickle.dumps(stackless.tasklet(work).bind(work, (8,)))
    seen = []

    def thread():
        u = pickle.loads(data)
        seen.append(u.thread_id == threading.get_ident())
        u.insert()
        stackless.run()
    th = threading.Thread(target=thread)
    th.start()
    th.join()
    assert seen == [True] and results == [(8, 2, 0)]


# -- channels ---------------------------------------------------------------

@pytest.mark.parametrize("pref", [-1, 0, 1])
@pytest.mark.parametrize("schedule_all", [False, True])
@pytest.mark.parametrize("closing", [False, True])
def test_channel_roundtrip(pref, schedule_all, closing):
    ch = stackless.channel()
    ch.preference = pref
    ch.schedule_all = schedule_all
    if closing:
        ch.close()
    cls, args, state = ch.__reduce__()
    assert cls is stackless.channel and args == ()
    assert state[0] == 0 and state[2] == []
    assert state[1] == (closing | ((pref & 3) << 1) | (schedule_all << 3))
    for c in roundtrips(ch):
        assert type(c) is stackless.channel and c is not ch
        assert (c.preference, bool(c.schedule_all), c.closing, c.balance) == (
            pref, schedule_all, closing, 0)


def test_channel_subclass_and_use_after_unpickle():
    ch = MyChannel()
    ch.label = "jobs"
    for c in roundtrips(ch):
        assert type(c) is MyChannel and c.label == "jobs"
        got = []
        stackless.tasklet(lambda: got.append(c.receive()))()
        c.send(11)
        assert got == [11]


def consumer(c):
    results.append(c.receive())


def producer(c, v):
    c.send(v)


def test_channel_with_setup_tasklets_in_graph():
    ch = stackless.channel()
    got = results
    ts = [stackless.tasklet(consumer).bind(consumer, (ch,)),
          stackless.tasklet(producer).bind(producer, (ch, "hello"))]
    c2, t1, t2 = pickle.loads(pickle.dumps((ch, *ts)))
    t1.insert()
    t2.insert()
    stackless.run()
    assert got == ["hello"]
    assert c2.balance == 0


def test_channel_setstate_rejects_tasklet_list():
    with pytest.raises(pickle.UnpicklingError):
        stackless.channel().__setstate__(
            (1, 0, [stackless.tasklet(work).bind(work, (1,))]))
    with pytest.raises(pickle.UnpicklingError):
        stackless.channel().__setstate__((1, 0, [1]))


# -- bombs ------------------------------------------------------------------

def test_bomb_roundtrip():
    b = stackless.bomb(ValueError, ValueError("boom"), None)
    for c in roundtrips(b):
        assert type(c) is stackless.bomb
        assert c.type is ValueError and isinstance(c.value, ValueError)
        assert c.value.args == ("boom",) and c.traceback is None
    for c in roundtrips(stackless.bomb()):
        assert c.type is None and c.value is None


def test_bomb_in_tempval_explodes_after_unpickle():
    t = stackless.tasklet(work)(1)
    t.remove()
    u = pickle.loads(pickle.dumps(t))
    u.tempval = pickle.loads(pickle.dumps(stackless.bomb(KeyError, KeyError("k"))))
    u.insert()
    with pytest.raises(KeyError):       # uncaught: goes to main
        stackless.run()
    assert not u.alive and results == []
    t.kill()


def test_bomb_with_traceback_pickles_with_frame_snapshots():
    try:
        raise KeyError("x")
    except KeyError:
        b = stackless.bomb(*sys.exc_info())
    assert copy.copy(b).traceback is b.traceback
    u = pickle.loads(pickle.dumps(b))
    assert u.type is KeyError and u.value.args == ("x",)
    assert u.traceback.tb_frame.f_code is b.traceback.tb_frame.f_code
    assert u.traceback.tb_lineno == b.traceback.tb_lineno


# -- pickle flags -----------------------------------------------------------

@pytest.fixture
def flags_restored():
    old = stackless.pickle_flags()
    old_default = stackless.pickle_flags_default()
    yield
    stackless.pickle_flags(old)
    stackless.pickle_flags_default(old_default)


def test_pickleflags_constants():
    assert stackless.PICKLEFLAGS_PRESERVE_TRACING_STATE == 1
    assert stackless.PICKLEFLAGS_PRESERVE_AG_FINALIZER == 2
    assert stackless.PICKLEFLAGS_RESET_AG_FINALIZER == 4


def test_pickle_flags(flags_restored):
    assert stackless.pickle_flags() == 0
    assert stackless.pickle_flags(3) == 0
    assert stackless.pickle_flags() == 3
    assert stackless.pickle_flags(4, 6) == 3    # only bits 1 and 2 change
    assert stackless.pickle_flags() == 5
    assert stackless.pickle_flags(-1) == 5      # inquire
    assert stackless.pickle_flags(8, 7) == 5    # masked: bit 3 ignored
    assert stackless.pickle_flags() == 0
    for bad in (8, -2, 1 << 40):
        with pytest.raises(ValueError,
                           match=r"^you must not set an undefined pickle-flag$"):
            stackless.pickle_flags(bad)
        with pytest.raises(ValueError,
                           match=r"^you must not set an undefined pickle-flag$"):
            stackless.pickle_flags_default(bad)
    with pytest.raises(TypeError):
        stackless.pickle_flags("1")


def test_pickle_flags_per_thread_and_default(flags_restored):
    stackless.pickle_flags(1)
    assert stackless.pickle_flags_default(2) == 0
    seen = []

    def thread():
        seen.append(stackless.pickle_flags())
        stackless.pickle_flags(4)
        seen.append(stackless.pickle_flags())
    th = threading.Thread(target=thread)
    th.start()
    th.join()
    assert seen == [2, 4]                       # copied the default
    assert stackless.pickle_flags() == 1        # ours is untouched
    assert stackless.pickle_flags_default() == 2


def test_pickle_with_tracing_state_property(flags_restored):
    assert stackless.pickle_with_tracing_state is False
    stackless.pickle_with_tracing_state = True
    assert stackless.pickle_with_tracing_state is True
    assert stackless.pickle_flags() & 1 and stackless.pickle_flags_default() & 1
    stackless.pickle_flags(0, 1)
    assert stackless.pickle_with_tracing_state is False
    stackless.pickle_with_tracing_state = False
    assert stackless.pickle_flags_default() & 1 == 0
    assert "pickle_with_tracing_state" in stackless.__all__


def test_tracing_state_pickled_with_flag(flags_restored):
    t = stackless.tasklet(work)
    t.bind(work, (1,))
    t.trace_function = _tracer
    frames = t.__reduce__()[2][3]
    assert [f.f_execute for f in frames] == ["tasklet_setup"]
    stackless.pickle_flags(1, 1)
    frames = t.__reduce__()[2][3]
    assert [f.f_execute for f in frames] == ["tasklet_setup", "restore_tracing"]
    u = pickle.loads(pickle.dumps(t))
    assert u.trace_function is _tracer


def _tracer(frame, event, arg):
    return None


def test_unrun_unpickled_tasklet_repickles_tracing_and_dict(flags_restored):
    # an unpickled suspended tasklet pickled again before it runs keeps
    # what the first pickle held: its tracing state and its attributes
    def f():
        stackless.schedule_remove()
        results.append("resumed")
    t = MyTasklet(f)()
    t.name = "worker"
    stackless.run()
    t.trace_function = _tracer
    stackless.pickle_flags(1, 1)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    assert u.trace_function is _tracer and u.name == "worker"
    w = pickle.loads(pickle.dumps(u))
    assert type(w) is MyTasklet
    assert w.trace_function is _tracer and w.name == "worker"
    u.kill()
    w.trace_function = None
    w.insert()
    stackless.run()
    assert results == ["resumed"]


# -- the module -------------------------------------------------------------

def test_module_pickles_by_name():
    for p in PROTOCOLS:
        assert pickle.loads(pickle.dumps(stackless, p)) is stackless
    assert stackless.__reduce__() == "stackless"
    assert stackless.__reduce_ex__(2) == "stackless"
    assert stackless.stackless is stackless
