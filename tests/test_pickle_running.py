"""Pickling tasklets suspended in Python code and resuming them (README
"Pickling running tasklets"): in schedule()/schedule_remove(), blocked on
channels (queue order kept), interrupted by the watchdog; in this process
and in a child interpreter; kill/throw/tracing/GC on resumed tasklets;
what cannot be pickled; damaged pickles."""

import copy
import copyreg
import gc
import os
import pickle
import subprocess
import sys
import textwrap
import types

import pytest

import stackless_compat as stackless
from stackless_compat import _pickle

import pickle_subjects as subj

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

# 3.12+ count every C-level entry in nesting_level (csrc/pystate.c does not
# tell a bound method called through f(*args) apart there), and take a context manager off the
# value stack before its __enter__ runs (a frame in __enter__ does not
# resume).
PY312 = sys.version_info >= (3, 12)


@pytest.fixture(autouse=True)
def _clear_log():
    del subj.log[:]
    yield
    del subj.log[:]


def suspended(func, *args):
    """A tasklet that ran func until it paused (schedule_remove)."""
    t = stackless.tasklet(func)(*args)
    t.run()
    assert t.alive and t.paused
    return t


def finish(t):
    while t.alive:
        t.insert()
        stackless.run()


# -- resuming in this process ------------------------------------------------

@pytest.mark.parametrize("proto", PROTOCOLS)
def test_schedule_remove_chain_resumes(proto):
    t = suspended(subj.chain, 5)
    assert t.restorable
    data = pickle.dumps(t, proto)
    finish(t)
    expected = list(subj.log)
    del subj.log[:]
    u = pickle.loads(data)
    assert u.alive and u.paused and u is not t
    finish(u)
    assert subj.log == expected
    assert expected[-1] == ("chain", [5, 101, 103, 105])


def test_pending_result_is_delivered():
    # schedule_remove() returns the tasklet itself: the resumed one
    t = suspended(subj.leaf, 4)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    finish(u)
    assert subj.log[-1] == ("leaf", 4, 8, True)


def test_tempval_is_schedules_result():
    t = suspended(subj.leaf, 1)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    u.tempval = "other"
    finish(u)
    assert subj.log[-1] == ("leaf", 1, 2, False)


def test_deep_chain():
    t = suspended(subj.run_deep, 12)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    finish(u)
    assert subj.log == [("deep", [True] + [i * 10 for i in range(11, -1, -1)])]


def test_resumed_tasklet_pickles_again():
    t = suspended(subj.chain, 1)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    u.insert()
    stackless.run()                 # first leaf done, paused in the second
    assert u.alive and u.restorable
    v = pickle.loads(pickle.dumps(u))
    u.kill()
    del subj.log[:]
    finish(v)
    assert subj.log == [("leaf", 1, 2, True), ("leaf", 2, 4, True),
                        ("chain", [1, 101, 103, 105])]


def test_copy_and_deepcopy():
    t = suspended(subj.leaf, 3)
    for u in (copy.copy(t), copy.deepcopy(t)):
        finish(u)
    t.kill()
    # a shallow copy shares tempval (schedule_remove()'s result: t)
    assert subj.log == [("leaf", 3, 6, False), ("leaf", 3, 6, True)]


def test_cells_and_closures():
    t = suspended(subj.with_cells, 10)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    finish(u)
    assert subj.log == [("cells", 15, 16)]


def test_frame_with_free_variables():
    t = suspended(subj.in_closure, 10)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    finish(u)
    assert subj.log == [("closure", 15, 11)]


def test_handled_exception_is_restored():
    t = suspended(subj.in_handler)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    finish(u)
    assert subj.log == [("exc", "KeyError('handled')", "KeyError('handled')"),
                        ("after", (None, None, None))]


def test_value_stack_is_restored():
    ch = stackless.channel()
    t = stackless.tasklet(subj.stack_user)(ch)
    t.run()
    assert t.blocked
    data = pickle.dumps(t)
    t.kill()
    u = pickle.loads(data)
    assert u.blocked and u._channel is not None and u._channel is not ch
    u._channel.send("x")
    assert subj.log == [("stack", [1, 2, 2], {"k": [7, 8]})]


# -- channels ---------------------------------------------------------------

def test_channel_with_receivers_keeps_queue_order():
    ch = stackless.channel()
    ts = [stackless.tasklet(subj.receiver)(ch, n) for n in "abc"]
    stackless.run()
    ch.send(1)                  # a receives and queues again, after c
    data = pickle.dumps(ch)
    for t in ts:
        t.kill()
    del subj.log[:]
    ch2 = pickle.loads(data)
    assert ch2.balance == -3
    for v in (10, 20, 30, 40):
        ch2.send(v)
    assert [e[0] for e in subj.log] == ["b", "c", "a", "b"]
    assert subj.log[2] == ("a", 30, 31)
    ch2.send_exception(ValueError, "boom")
    assert subj.log[-2:] == [("c", "error", "boom"), ("c", "finally")]
    while ch2.balance:
        ch2.send(None)
    assert ("a", "finally") in subj.log and ("b", "finally") in subj.log


def test_tasklet_pickled_alone_is_blocked_on_a_copy_of_its_channel():
    ch = stackless.channel()
    t = stackless.tasklet(subj.receiver)(ch, "x")
    t.run()
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    assert u.blocked
    ch2 = u._channel
    assert ch2.balance == -1
    ch2.send(7)
    ch2.send(None)
    assert ("x", 7, 7) in subj.log and not u.alive


def test_blocked_sender_delivers_its_value():
    ch = stackless.channel()
    t = stackless.tasklet(subj.sender)(ch, ["p", "q"])
    t.run()
    ch2 = pickle.loads(pickle.dumps(ch))
    t.kill()
    assert ch2.balance == 1
    assert ch2.receive() == "p"
    assert ch2.receive() == "q"
    stackless.run()
    assert subj.log == [("sent", ["p", "q"])]


def test_for_loop_over_channel():
    ch = stackless.channel()
    t = stackless.tasklet(subj.iterate)(ch)
    t.run()
    ch.send(1)
    ch2 = pickle.loads(pickle.dumps(ch))
    t.kill()
    ch2.send(2)
    ch2.send(None)
    assert subj.log == [("iterated", [1, 2])]


# -- kill, throw, tracing, GC, watchdog --------------------------------------

def test_kill_before_it_ran_runs_finally_blocks():
    ch = stackless.channel()
    t = stackless.tasklet(subj.receiver)(ch, "k")
    t.run()
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    del subj.log[:]
    u.kill()
    assert subj.log == [("k", "finally")] and not u.alive


def test_removed_tasklet_pickles_paused():
    t = stackless.tasklet(subj.spinner)(3)
    t.run()
    t.remove()
    assert t.paused
    data = pickle.dumps(t)
    t.kill()
    u = pickle.loads(data)
    assert u.paused
    u.insert()
    stackless.run()
    assert subj.log == [("spun", 3)]


def test_throw_into_resumed_tasklet():
    t = suspended(subj.catcher)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    u.throw(ZeroDivisionError("zz"))
    assert subj.log == [("caught", "zz")] and not u.alive


def test_tracing_sees_resumed_frames():
    t = suspended(subj.leaf, 2)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    events = []

    def tracer(frame, event, arg):
        events.append((frame.f_code.co_name, event))
        return tracer
    u.trace_function = tracer
    finish(u)
    assert ("leaf", "line") in events or ("leaf", "call") in events


def test_tracing_state_with_pickle_flag():
    t = suspended(subj.leaf, 2)

    t.trace_function = tracer_for_flag
    old = stackless.pickle_flags(stackless.PICKLEFLAGS_PRESERVE_TRACING_STATE,
                                 stackless.PICKLEFLAGS_PRESERVE_TRACING_STATE)
    try:
        data = pickle.dumps(t)
    finally:
        stackless.pickle_flags(old, stackless.PICKLEFLAGS_PRESERVE_TRACING_STATE)
    t.kill()
    u = pickle.loads(data)
    assert u.trace_function is tracer_for_flag
    u.trace_function = None
    finish(u)


def tracer_for_flag(frame, event, arg):
    return None


def test_unreferenced_unpickled_tasklets_are_collected():
    t = suspended(subj.leaf, 2)
    data = pickle.dumps(t)
    t.kill()
    for _ in range(3):
        u = pickle.loads(data)
        u.insert()
        stackless.run()             # runs, pauses again in nothing: done
        del u
    gc.collect()


def test_abandoned_resumed_tasklet_is_killed_by_the_collector():
    t = suspended(subj.chain, 0)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    u.insert()
    stackless.run()                 # paused in the second leaf
    assert u.alive
    u.kill()
    assert not u.alive


def test_watchdog_interrupted_tasklet():
    n = 300000
    t = stackless.tasklet(subj.busy)(n)
    victim = stackless.run(200)
    assert victim is t and t.alive
    assert t.restorable
    data = pickle.dumps(t)
    t.kill()
    u = pickle.loads(data)
    finish(u)
    assert subj.log == [("busy", subj.busy_expected(n))]


# -- in another process -----------------------------------------------------

CHILD = textwrap.dedent("""
    import pickle, sys
    import stackless_compat as stackless
    import pickle_subjects as subj
    obj = pickle.loads(sys.stdin.buffer.read())
    if isinstance(obj, stackless.channel):
        for v in (10, 20):
            obj.send(v)
        while obj.balance:
            obj.send(None)
    else:
        while obj.alive:
            obj.insert()
            stackless.run()
    print(repr(subj.log))
""")


def run_child(data):
    env = dict(os.environ, PYTHONPATH=TESTS_DIR + os.pathsep +
               os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", CHILD], input=data,
                       capture_output=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return eval(p.stdout.decode())


def test_resume_in_another_process():
    t = suspended(subj.chain, 9)
    data = pickle.dumps(t)
    finish(t)
    expected = list(subj.log)
    assert run_child(data) == expected


def test_channel_with_receiver_in_another_process():
    ch = stackless.channel()
    t = stackless.tasklet(subj.receiver)(ch, "r")
    t.run()
    data = pickle.dumps(ch)
    t.kill()
    assert run_child(data) == [("r", 10, 10), ("r", 20, 30), ("r", "finally")]


# -- what cannot be pickled --------------------------------------------------

def test_callback_from_c_is_not_restorable():
    t = stackless.tasklet(subj.callback_user)()
    t.run()
    assert t.alive and not t.restorable
    with pytest.raises(pickle.PicklingError,
                       match=r"frame callback_user\.<locals>\.<lambda> "
                             r"\(.*pickle_subjects\.py, line \d+\) is "
                             r"called from C code"):
        pickle.dumps(t)
    t.kill()


def test_call_through_star_args_and_bound_method():
    t = suspended(subj.through_star_args, subj.Caller().method, 41)
    assert t.restorable      # f(*args) is no C recursion (Stackless)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    finish(u)
    assert subj.log == [("star", 42)]


@pytest.mark.xfail(PY312, strict=True, reason="3.12+ release the context "
                   "manager's value stack slot before __enter__ runs and "
                   "store __exit__ after it: a frame suspended in __enter__ "
                   "is refused")
@pytest.mark.parametrize("fail", [None, "x"])
def test_suspended_in_enter_and_exit(fail):
    t = suspended(subj.with_block, fail)         # in __enter__
    # restorable follows Stackless's rule (__enter__ is called from C: one
    # nesting level); pickling resumes the call all the same
    assert t.nesting_level == 1 and not t.restorable
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    u.insert()
    stackless.run()                             # now in __exit__
    assert u.alive and u.nesting_level == 1 and not u.restorable
    exc = "KeyError" if fail else None
    v = pickle.loads(pickle.dumps(u))       # (fail: with the traceback)
    u.kill()
    finish(v)
    assert subj.log == [("body", "entered"), ("exit", exc), "after"]


def test_code_with_extended_args():
    import dis
    assert any(i.opname == "EXTENDED_ARG"
               for i in dis.get_instructions(subj.long_function))
    ch = stackless.channel()
    t = stackless.tasklet(subj.long_function)(ch)
    t.run()
    ch2 = pickle.loads(pickle.dumps(ch))
    t.kill()
    ch2.send(1000)
    ch2.send(2000)
    base = sum(range(120))
    assert subj.log == [("long", base * 1 + 1000 + base * 2 + 2000)]


def test_unpicklable_local_names_frame_line_and_variable():
    t = suspended(subj.with_unpicklable)
    with pytest.raises(pickle.PicklingError,
                       match=r"frame with_unpicklable \(.*line \d+\) holds "
                             r"variable 'lock', which cannot be pickled"):
        pickle.dumps(t)
    t.kill()


def test_code_not_found_by_name():
    ns = {"__name__": subj.__name__}
    exec("def made_at_run_time():\n"
         "    import stackless_compat as s\n"
         "    s.schedule_remove()\n", subj.__dict__, ns)
    t = suspended(ns["made_at_run_time"])
    with pytest.raises(pickle.PicklingError, match="cannot be found by name"):
        pickle.dumps(t)
    t.kill()


def test_current_and_main_are_refused():
    with pytest.raises(RuntimeError):
        pickle.dumps(stackless.getcurrent())


def test_unpickled_not_yet_run_pickles_again():
    t = suspended(subj.leaf, 1)
    u = pickle.loads(pickle.dumps(t))
    t.kill()
    v = pickle.loads(pickle.dumps(u))
    u.kill()
    finish(v)
    assert subj.log == [("leaf", 1, 2, True)]


# -- damaged and hostile states ---------------------------------------------

def state_of(t):
    return t.__reduce__()[2]


def frames_of(state):
    return [f for f in state[3] if isinstance(f, tuple)]


def load_with(state, idx, field, value):
    st = list(state)
    frames = list(st[3])
    rec = list(frames[idx])
    rec[field] = value
    frames[idx] = tuple(rec)
    st[3] = frames
    u = stackless.tasklet()
    try:
        u.__setstate__(tuple(st))
    finally:
        if u.alive:
            u.kill()


@pytest.fixture
def leaf_state():
    t = suspended(subj.chain, 2)
    st = state_of(t)
    t.kill()
    yield st[:1] + (None,) + st[2:]     # tempval was t


def test_position_not_on_instruction_boundary(leaf_state):
    res = frames_of(leaf_state)[-1][7]
    for bad in (res + 1, res - 1, 1, 10 ** 6, -5):
        with pytest.raises((pickle.UnpicklingError, ValueError)):
            load_with(leaf_state, -1, 7, bad)


def test_stack_deeper_than_the_code_allows(leaf_state):
    stack = frames_of(leaf_state)[0][6]
    with pytest.raises(pickle.UnpicklingError, match="value stack of"):
        load_with(leaf_state, 0, 6, stack + (1,) * 50)


def test_stack_not_matching_the_code(leaf_state):
    stack = frames_of(leaf_state)[0][6]     # chain: for loop's iterator
    assert stack, stack
    with pytest.raises(pickle.UnpicklingError, match="does not match"):
        load_with(leaf_state, 0, 6, (42,) + stack[1:])
    with pytest.raises(pickle.UnpicklingError, match="does not match"):
        load_with(leaf_state, 0, 6, (_pickle.NULL,) + stack[1:])


def test_other_interpreter_version(leaf_state):
    with pytest.raises(pickle.UnpicklingError, match="another interpreter"):
        load_with(leaf_state, 0, 1, (("cpython-frames", 3, 12), b"xxxx"))


def test_changed_code(leaf_state):
    ref = frames_of(leaf_state)[0][2]
    with pytest.raises(pickle.UnpicklingError, match="code changed"):
        load_with(leaf_state, 0, 2, ref[:3] + ("0" * 16,))


def test_wrong_locals(leaf_state):
    lp = frames_of(leaf_state)[-1][5]
    with pytest.raises(pickle.UnpicklingError, match="local variables"):
        load_with(leaf_state, -1, 5, lp + (1,))


def test_cell_variable_must_be_a_cell():
    t = suspended(subj.with_cells, 1)
    st = state_of(t)
    t.kill()
    lp = frames_of(st)[0][5]
    with pytest.raises(pickle.UnpicklingError, match="must be a cell"):
        load_with(st, 0, 5, tuple(1 if type(v).__name__ == "cell" else v
                                  for v in lp))


# -- frames and tracebacks as values ----------------------------------------

def failing(depth):
    marker = "local%d" % depth
    if depth == 0:
        raise ValueError("deep")
    return failing(depth - 1) + len(marker)


def test_traceback_pickles_with_snapshots_of_its_frames():
    try:
        failing(3)
    except ValueError as e:
        tb = e.__traceback__.tb_next        # from failing(3) down
    for proto in PROTOCOLS:
        u = pickle.loads(pickle.dumps(tb, proto))
        lines, names = [], []
        while u is not None:
            assert u.tb_frame.f_code is failing.__code__
            lines.append(u.tb_lineno)
            names.append(u.tb_frame.f_locals["marker"])
            u = u.tb_next
        assert names == ["local3", "local2", "local1", "local0"]
        assert lines[-1] == failing.__code__.co_firstlineno + 3
        assert len(set(lines[:-1])) == 1


def test_damaged_frame_snapshot_is_refused():
    def here():
        return sys._getframe()
    f = here()
    fn, args, lp, _, _, setter = copyreg.dispatch_table[type(f)](f)
    for bad in (args[:3] + (10 ** 6,), args[:3] + (-1,),
                ((("x", 1, 2), b""),) + args[1:]):
        with pytest.raises(pickle.UnpicklingError):
            fn(*bad)
    g = fn(*args)
    for bad in ((1,) * 50, (1,), [1]):     # (here() has no variables)
        with pytest.raises(pickle.UnpicklingError):
            setter(g, bad)
    setter(g, lp)


def test_restorable_follows_stackless_and_pickling_goes_by_the_frames():
    # restorable is Stackless's rule (nesting_level == 0); pickling judges
    # the frames: it refuses a callback from C code, and resumes an
    # __enter__ call that Stackless would count as C state
    ch = stackless.channel()
    cases = ((subj.chain, (1,), True, True),
             (subj.callback_user, (), False, False),
             (subj.receiver, (ch, "r"), True, True),
             (subj.through_star_args, (subj.pause_with, 1), True, True),
             (subj.with_block, (None,), False, not PY312),
             (subj.in_closure, (2,), True, True))
    tasklets = []
    for f, a, restorable, pickles in cases:
        t = stackless.tasklet(f)(*a)
        t.run()
        tasklets.append(t)
        assert t.alive
        assert t.restorable == restorable == (t.nesting_level == 0), f
        try:
            pickle.dumps(t)
            ok = True
        except pickle.PicklingError:
            ok = False
        assert ok == pickles, f
    for t in tasklets:
        t.kill()


def _frames_running(code):
    # 3.12+ resume frames as the frames of generators made for them
    return [o for o in gc.get_objects()
            if (type(o) is type(sys._getframe()) and o.f_code is code) or
            (type(o) is types.GeneratorType and o.gi_code is code)]


def test_unrun_and_finished_resumed_frames_are_freed():
    t = suspended(subj.chain, 1)
    data = pickle.dumps(t)
    t.kill()
    gc.collect()
    before = len(_frames_running(subj.leaf.__code__))
    unrun = [pickle.loads(data) for _ in range(20)]
    assert len(_frames_running(subj.leaf.__code__)) == before + 20
    gc.collect()                # suspended ones stay
    assert len(_frames_running(subj.leaf.__code__)) == before + 20
    half = unrun[:10]
    for u in half:
        finish(u)
    del unrun, half, u
    gc.collect()
    assert len(_frames_running(subj.leaf.__code__)) == before


def test_collector_runs_while_resumed_frames_wait():
    ch = stackless.channel()
    ts = [stackless.tasklet(subj.receiver)(ch, n) for n in "pq"]
    stackless.run()
    ch2 = pickle.loads(pickle.dumps(ch))
    for t in ts:
        t.kill()
    for _ in range(3):
        gc.collect()
        ch2.send(1)
    while ch2.balance:
        ch2.send(None)
    gc.collect()
    assert sorted(e for e in subj.log if e[1] == "finally") == [
        ("p", "finally")] * 2 + [("q", "finally")] * 2
