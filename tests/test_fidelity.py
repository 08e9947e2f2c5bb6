"""Behaviour that Stackless's own regression suite checks: its test helpers
(test_cframe, test_cstate, test_outside, _test_nostacklesscall, the
_teststackless module) and the details fixed to match Stackless 3.7."""

import sys

import pytest

import stackless_compat as stackless
from stackless_compat import _teststackless


def test_test_cframe_switches_from_c():
    seen = []

    def other():
        for i in range(3):
            seen.append(i)
            stackless.schedule()
    stackless.tasklet(_teststackless.test_cframe)(3)
    stackless.tasklet(_teststackless.test_cframe)(3, 1000)
    stackless.tasklet(other)()
    stackless.run()
    assert seen == [0, 1, 2]
    # with nothing else to run, schedule() returns its argument
    assert _teststackless.test_cframe(2) is None


def test_test_cframe_argument_errors():
    with pytest.raises(ValueError, match="limited by 0 and 64000"):
        _teststackless.test_cframe(1, 64001)
    with pytest.raises(ValueError, match="limited by 0 and 64000"):
        _teststackless.test_cframe(1, -1)
    with pytest.raises(TypeError):
        _teststackless.test_cframe()
    with pytest.raises(TypeError):
        stackless.test_cframe_nr(1, cstate_add_addr=None)


def test_test_cframe_nr_and_module_names():
    t = stackless.tasklet(stackless.test_cframe_nr)(4)
    stackless.run()
    assert not t.alive
    assert stackless.test_cframe is _teststackless.test_cframe
    assert stackless.test_cstate is _teststackless.test_cstate
    assert set(_teststackless.__all__) == {"test_cframe", "test_cstate"}


def test_test_cstate_calls_from_c():
    assert _teststackless.test_cstate(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        _teststackless.test_cstate(lambda: 1 / 0)
    # a tasklet blocked inside it holds C state; killing it unwinds
    t = stackless.tasklet(_teststackless.test_cstate)(
        stackless.schedule_remove)
    t.run()
    assert t.paused and t.alive
    t.kill()
    assert not t.alive


def test_test_outside_runs_until_nothing_is_runnable():
    ch = stackless.channel()
    last = []

    def source():
        for i in range(3):
            ch.send(i)

    def sink():
        for _ in range(3):
            last.append(ch.receive())
    stackless.tasklet(source)()
    stackless.tasklet(sink)()
    stackless.tasklet(stackless.test_cframe)(5)
    assert stackless.test_outside() is None
    assert last == [0, 1, 2] and stackless.getruncount() == 1
    # a tasklet left blocked does not make it wait
    t = stackless.tasklet(ch.receive)()
    stackless.test_outside()
    assert t.blocked
    t.kill()


def test_test_nostacklesscall():
    f = stackless._test_nostacklesscall
    assert f(None, 1, 2) == (1, 2)
    assert f(lambda a, b=0: a + b, 1, b=3) == 4
    got = f(lambda a, b=0: a * b, 2, b=3, set_try_stackless=True,
            post_callback=lambda r, s, t, **kw: (r, s, t, kw))
    # (result, "was a stackless call", "try stackless"): never on a stock
    # interpreter
    assert got == (6, 0, 0, {"b": 3})
    with pytest.raises(IndexError):
        f()
    # it switches like any call from C
    t = stackless.tasklet(f)(stackless.schedule_remove)
    t.run()
    assert t.paused
    t.kill()


@pytest.mark.parametrize("tp", [stackless.tasklet, stackless.channel])
def test_no_instance_dict_and_stackless_repr(tp):
    o = tp()
    with pytest.raises(AttributeError):
        o.attr = 1
    assert not hasattr(o, "__dict__")
    # Stackless's repr: the default one, whatever the state
    assert repr(o) == "<_stackless.%s object at %#x>" % (tp.__name__, id(o))

    # a subclass may declare a __dict__ slot (a Stackless library does)
    class Sub(tp):
        __slots__ = ["__dict__"]
    s = Sub()
    s.attr = 1
    assert s.__dict__ == {"attr": 1}

    class Plain(tp):
        pass
    p = Plain()
    p.attr = 2
    assert p.__dict__ == {"attr": 2}


def test_repr_of_main_and_current_is_plain():
    m = stackless.main
    assert repr(m) == "<_stackless.tasklet object at %#x>" % id(m)
    ch = stackless.channel()
    t = stackless.tasklet(ch.receive)()
    t.run()
    assert repr(ch) == "<_stackless.channel object at %#x>" % id(ch)
    assert "blocked" in stackless.dump_tasklets(file=_Null())
    ch.send(None)


class _Null:
    def write(self, s):
        pass

    def flush(self):
        pass


class _PickleSub(stackless.tasklet):
    pass


class _PickleChanSub(stackless.channel):
    __slots__ = ["__dict__"]


def test_subclass_instance_dict_is_pickled():
    import pickle
    t = _PickleSub(print)
    t.name = "worker"
    t2 = pickle.loads(pickle.dumps(t))
    assert type(t2) is _PickleSub and t2.name == "worker"
    ch = _PickleChanSub()
    ch.tag = 5
    ch2 = pickle.loads(pickle.dumps(ch))
    assert ch2.tag == 5


def test_nesting_level_counts_what_stackless_counts():
    ch = stackless.channel()
    # the main tasklet, in plain Python code: 0, restorable
    assert stackless.current.nesting_level == 0
    assert stackless.current.restorable
    # a helper's call from C counts one level
    assert stackless._test_nostacklesscall(
        lambda: stackless.current.nesting_level) == 1
    assert _teststackless.test_cstate(
        lambda: stackless.current.nesting_level) == 1
    t = stackless.tasklet(stackless._test_nostacklesscall)(
        stackless.main.switch)
    t.run()
    assert t.nesting_level == 1 and not t.restorable
    assert t.cstate.nesting_level == 1
    t.kill()

    class Init:
        def __init__(self):
            ch.receive()

    class Call:
        def __call__(self):
            ch.receive()

    def gen():
        yield ch.receive()

    soft = [ch.receive, lambda: Init(), Call(), lambda: [x for x in gen()]]
    hard = [lambda: list(map(lambda x: ch.receive(), [1])),
            lambda: sorted([2, 1], key=lambda x: ch.receive())]
    tasks = [(stackless.tasklet(f)(), 0) for f in soft]
    tasks += [(stackless.tasklet(f)(), 1) for f in hard]
    stackless.run()
    for t, level in tasks:
        assert t.blocked
        assert t.nesting_level == level, (t, level)
        assert t.restorable == (level == 0)
    for t, _ in tasks:
        t.kill()


def test_nesting_level_of_a_blocked_caller_through_call_and_init():
    # A test runner's main tasklet blocks in a channel under several
    # instance __call__s and a class call: Stackless made those calls
    # soft, so a tasklet looking at it sees nesting_level 0 (3.12 and 3.13
    # counted every C-level entry of the eval loop there).
    ch = stackless.channel()
    seen = []

    def look():
        m = stackless.main
        seen.append((m.blocked, m.nesting_level, m.restorable))
        ch.send(None)

    class Inner:
        def __init__(self):
            stackless.tasklet(look)()
            ch.receive()

    class Outer:
        def __call__(self, depth):
            if depth:
                return self(depth - 1)
            return Inner()

    Outer()(3)
    stackless.run()
    assert seen == [(True, 0, True)]


def test_throw_argument_errors():
    # as in Stackless: exc is required; the usual raise rules for the rest
    t = stackless.tasklet(stackless.schedule_remove)()
    t.run()
    with pytest.raises(TypeError):
        t.throw()
    with pytest.raises(TypeError):
        t.throw(pending=True)
    with pytest.raises(TypeError, match="may not have a separate value"):
        t.throw(IndexError(1), (1, 2, 3))
    with pytest.raises(TypeError, match="third argument must be a traceback"):
        t.throw(IndexError, None, (1, 2, 3))
    with pytest.raises(TypeError, match="exceptions must be classes"):
        t.throw(None)
    assert t.paused
    t.throw(TaskletExit)
    assert not t.alive


def test_rebind_a_tasklet_paused_in_a_running_generator():
    # a generator resumed by a for loop is no C state for Stackless: the
    # tasklet may be rebound (its frames are dropped)
    import gc

    def gen():
        stackless.schedule_remove()
        yield 1

    def body():
        for _ in gen():
            pass

    t = stackless.tasklet(body)()
    t.run()
    assert t.paused and t.nesting_level == 0 and t.restorable
    t.bind(None)
    assert not t.alive
    ran = []
    t.bind(ran.append, (1,))
    t.run()
    assert ran == [1] and not t.alive
    del t
    gc.collect()


def test_interpreter_exit_drops_restorable_tasklets(run_py):
    proc = run_py("""
        import stackless_compat as stackless
        ch = stackless.channel()

        def catch_all(name, how):
            try:
                how()
            except BaseException as e:
                print(name, "got", type(e).__name__, flush=True)

        stackless.tasklet(catch_all)("plain", ch.receive)
        stackless.tasklet(catch_all)("paused", stackless.schedule_remove)
        stackless.tasklet(catch_all)(
            "c state", lambda: stackless._test_nostacklesscall(ch.receive))
        stackless.run()
        t = stackless.tasklet(catch_all)("runnable", stackless.schedule)
        stackless.schedule()
        print("main done", flush=True)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines() == ["main done", "c state got TaskletExit"]


def test_runner_traceback_is_the_programs_own(tmp_path):
    # python -m stackless_compat prog.py prints the traceback python3
    # prog.py would (with `import stackless` resolved): no runner frames
    import subprocess
    from helpers import child_env, run_runner
    prog = tmp_path / "prog.py"
    prog.write_text(
        "import stackless\n"
        "def f():\n"
        "    raise ValueError('boom')\n"
        "stackless.tasklet(f)()\n"
        "stackless.run()\n")
    plain = tmp_path / "plain.py"
    plain.write_text(prog.read_text().replace(
        "import stackless\n", "import stackless_compat as stackless\n"))
    got = run_runner(str(prog), cwd=str(tmp_path))
    want = subprocess.run([sys.executable, str(plain)], capture_output=True,
                          text=True, env=child_env(None), cwd=str(tmp_path),
                          timeout=60)
    assert got.returncode == want.returncode == 1
    assert got.stdout == want.stdout == ""
    assert got.stderr.replace("prog.py", "X") == \
        want.stderr.replace("plain.py", "X"), (got.stderr, want.stderr)
    assert "runpy" not in got.stderr and "__main__.py" not in got.stderr


def test_run_caller_woken_by_hand_releases_inner_run_callers():
    # as in Stackless: when a run() caller is woken by hand (t.run()), the
    # run() callers nested inside it go back to the run queue
    done = []
    live = None

    def wakeup():
        stackless.main.run()
        done.append("wakeup")

    def runner():
        stackless.tasklet(wakeup)()
        stackless.run()
        done.append("runner")

    r = stackless.tasklet(runner)()
    stackless.run()
    live = stackless.get_thread_info(-1, 1 << 31)[3]
    assert live == [None] and r.scheduled
    stackless.run()
    assert sorted(done) == ["runner", "wakeup"] and not r.alive


def test_nostacklesscall_as_the_tasklets_own_function_counts():
    # _test_nostacklesscall(f) as a tasklet's function: Stackless counts the
    # C call under f's frame (nesting_level 1), also when f is Python code
    def task():
        stackless.main.switch()

    t = stackless.tasklet(stackless._test_nostacklesscall)(task)
    t.run()
    assert t.nesting_level == 1 and not t.restorable
    t.kill()
