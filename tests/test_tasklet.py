"""The tasklet type: binding, setup, run-queue operations, flags and attributes.

Reference: docs/api/stackless.rst, "Tasklets" (and "The scheduler" for the
run queue).  Error
texts are the ones legacy code matches on, so they are checked verbatim.
"""

import contextvars
import gc
import re
import sys
import threading
import weakref

import pytest

import stackless_compat as stackless


def _msg(text):
    """A regular expression that matches exactly ``text``."""
    return "^" + re.escape(text) + "$"


def _noop(*args, **kwargs):
    pass


# ---------------------------------------------------------------------------
# Constructor, bind, setup, __call__


def test_constructor_with_func_only_binds_but_does_not_schedule():
    t = stackless.tasklet(_noop)
    assert not t.alive
    assert not t.scheduled
    assert t.tempval is _noop          # the function waits in tempval until setup
    assert stackless.getruncount() == 1


def test_call_idiom_binds_sets_up_and_appends():
    seen = []

    def f(a, b, x=None):
        seen.append((a, b, x))

    t = stackless.tasklet(f)(1, 2, x=3)
    assert isinstance(t, stackless.tasklet)
    assert t.alive and t.scheduled and not t.blocked and not t.paused
    assert stackless.getruncount() == 2
    assert seen == []                  # appended, not run
    stackless.run()
    assert seen == [(1, 2, 3)]
    assert not t.alive


def test_call_does_not_need_a_reference():
    seen = []
    stackless.tasklet(seen.append)("kept alive by the run queue")
    gc.collect()
    stackless.run()
    assert seen == ["kept alive by the run queue"]


def test_setup_and_call_return_self():
    t = stackless.tasklet(_noop)
    assert t.setup(1) is t
    t2 = stackless.tasklet(_noop)
    assert t2(1) is t2
    stackless.run()


def test_bind_returns_self_and_rebinds_function():
    seen = []
    t = stackless.tasklet(lambda: seen.append("first"))
    assert t.bind(lambda: seen.append("second")) is t
    t()
    stackless.run()
    assert seen == ["second"]


def test_constructor_with_args_prepares_frame_paused():
    seen = []

    def f(a, b=0):
        seen.append(a + b)

    t = stackless.tasklet(f, (1,), {"b": 10})
    assert t.alive
    assert t.paused
    assert not t.scheduled
    assert stackless.getruncount() == 1
    t.insert()
    assert t.scheduled and not t.paused
    stackless.run()
    assert seen == [11]


def test_bind_with_args_keeps_previous_function_when_func_is_none():
    seen = []
    t = stackless.tasklet(seen.append)
    assert t.bind(None, ("x",)) is t
    assert t.alive and t.paused
    t.insert()
    stackless.run()
    assert seen == ["x"]


def test_bind_kwargs_only():
    seen = []

    def f(**kw):
        seen.append(kw)

    t = stackless.tasklet(f).bind(None, None, {"k": 1})
    assert t.alive and t.paused
    t.insert()
    stackless.run()
    assert seen == [{"k": 1}]


def test_bind_all_none_unbinds_a_prepared_tasklet():
    seen = []
    t = stackless.tasklet(seen.append, ("never",))
    assert t.alive
    assert t.bind(None) is t
    assert not t.alive
    assert not t.scheduled
    stackless.run()
    assert seen == []


def test_bind_error_not_callable():
    with pytest.raises(TypeError, match=_msg("tasklet function must be a callable or None")):
        stackless.tasklet(42)
    t = stackless.tasklet()
    with pytest.raises(TypeError, match=_msg("tasklet function must be a callable or None")):
        t.bind("not callable")


def test_bind_error_order_callable_checked_before_current():
    # main is current, but the callable check comes first
    with pytest.raises(TypeError, match=_msg("tasklet function must be a callable or None")):
        stackless.getcurrent().bind(42)


def test_bind_error_current_main():
    with pytest.raises(RuntimeError, match=_msg("can't (re)bind the current tasklet")):
        stackless.getcurrent().bind(_noop)
    # unbinding main while it is current: "current" is checked before "main"
    with pytest.raises(RuntimeError, match=_msg("can't (re)bind the current tasklet")):
        stackless.getmain().bind(None)


def test_bind_error_current_in_tasklet():
    errors = []

    def f():
        try:
            stackless.getcurrent().bind(_noop)
        except RuntimeError as e:
            errors.append(str(e))

    stackless.tasklet(f)()
    stackless.run()
    assert errors == ["can't (re)bind the current tasklet"]


def test_bind_error_scheduled():
    t = stackless.tasklet(_noop)()
    with pytest.raises(RuntimeError, match=_msg("tasklet is scheduled")):
        t.bind(_noop)
    with pytest.raises(RuntimeError, match=_msg("tasklet is scheduled")):
        t.bind(None)
    stackless.run()


def test_bind_error_blocked_says_scheduled():
    ch = stackless.channel()
    t = stackless.tasklet(ch.receive)()
    stackless.run()
    assert t.blocked
    # a blocked tasklet also has its stack, but "scheduled" is checked first
    with pytest.raises(RuntimeError, match=_msg("tasklet is scheduled")):
        t.bind(_noop)
    ch.send(None)
    assert not t.alive


def _suspend_inside_c_call():
    """Body of a tasklet that pauses with a C-level re-entry on its stack."""
    def inner(x):
        stackless.schedule_remove()
        return x
    return list(map(inner, [1]))


def test_bind_error_c_state():
    result = []
    t = stackless.tasklet(lambda: result.append(_suspend_inside_c_call()))()
    stackless.run()
    assert t.alive and t.paused
    assert t.nesting_level > 0
    assert not t.restorable
    with pytest.raises(RuntimeError, match=_msg("tasklet has C state on its stack")):
        t.bind(_noop)
    with pytest.raises(RuntimeError, match=_msg("tasklet has C state on its stack")):
        t.bind(None)
    t.insert()
    # scheduled and with C state: "scheduled" is checked first
    with pytest.raises(RuntimeError, match=_msg("tasklet is scheduled")):
        t.bind(_noop)
    stackless.run()
    assert result == [[1]]
    assert not t.alive


def test_bind_error_unbind_main(run_py):
    # In a child: main's own frame chain is plain Python there.
    proc = run_py("""
        import stackless_compat as stackless
        out = []
        def f():
            try:
                stackless.getmain().bind(None)
            except RuntimeError as e:
                out.append(str(e))
        stackless.tasklet(f)()
        stackless.run()
        print(out)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[\"can't unbind the main tasklet\"]\n"


def test_setup_error_alive():
    t = stackless.tasklet(_noop)()
    with pytest.raises(RuntimeError, match=_msg("tasklet is alive")):
        t.setup()
    with pytest.raises(RuntimeError, match=_msg("tasklet is alive")):
        t()
    stackless.run()

    # bound with arguments: alive (paused), so setup is refused too
    t2 = stackless.tasklet(_noop, ())
    with pytest.raises(RuntimeError, match=_msg("tasklet is alive")):
        t2.setup()
    t2.insert()
    stackless.run()


def test_setup_error_not_bound():
    t = stackless.tasklet()
    with pytest.raises(RuntimeError, match=_msg("the tasklet was not bound to a function")):
        t.setup()
    with pytest.raises(RuntimeError, match=_msg("the tasklet was not bound to a function")):
        t()
    assert not t.alive
    assert stackless.getruncount() == 1


def test_rebinding_dead_tasklet_keeps_identity():
    seen = []
    t = stackless.tasklet(seen.append)("one")
    stackless.run()
    assert not t.alive
    ident = id(t)
    t2 = t.bind(lambda x: seen.append(x * 2))
    assert t2 is t
    assert t(21) is t
    assert t.alive and t.scheduled
    stackless.run()
    assert seen == ["one", 42]
    assert id(t) == ident


# ---------------------------------------------------------------------------
# insert / remove


def test_insert_appends_and_is_noop_when_scheduled():
    order = []
    a = stackless.tasklet(order.append, ("a",))
    stackless.tasklet(order.append)("b")
    assert a.insert() is a
    assert a.insert() is a                 # already scheduled: nothing happens
    assert stackless.getruncount() == 3
    stackless.run()
    assert order == ["b", "a"]


def test_insert_errors():
    t = stackless.tasklet(_noop)
    with pytest.raises(RuntimeError, match=_msg("You cannot run an unbound(dead) tasklet")):
        t.insert()
    ch = stackless.channel()
    b = stackless.tasklet(ch.receive)()
    stackless.run()
    with pytest.raises(RuntimeError, match=_msg("You cannot run a blocked tasklet")):
        b.insert()
    ch.send(None)


def test_remove_pauses_and_returns_self():
    seen = []
    t = stackless.tasklet(seen.append)("x")
    assert t.remove() is t
    assert t.alive and t.paused and not t.scheduled
    assert stackless.getruncount() == 1
    assert t.remove() is t                 # not scheduled: nothing happens
    stackless.run()
    assert seen == []
    t.insert()
    stackless.run()
    assert seen == ["x"]


def test_remove_errors():
    with pytest.raises(RuntimeError, match=_msg("The current tasklet cannot be removed.")):
        stackless.getcurrent().remove()
    ch = stackless.channel()
    b = stackless.tasklet(ch.receive)()
    stackless.run()
    with pytest.raises(RuntimeError, match=_msg("You cannot remove a blocked tasklet.")):
        b.remove()
    ch.send(None)


def test_remove_current_from_tasklet():
    errors = []

    def f():
        try:
            stackless.getcurrent().remove()
        except RuntimeError as e:
            errors.append(str(e))

    stackless.tasklet(f)()
    stackless.run()
    assert errors == ["The current tasklet cannot be removed."]


# ---------------------------------------------------------------------------
# run / switch


def _make_three(log):
    def f(name):
        log.append(name)
        stackless.schedule()
        log.append(name + "'")

    return [stackless.tasklet(f)(name) for name in ("t1", "t2", "t3")]


def test_run_scheduled_tasklet_rotates_queue_from_it():
    log = []
    t1, t2, t3 = _make_three(log)
    assert t1.run() is None
    log.append("main")
    stackless.run()
    assert log == ["t1", "t2", "t3", "main", "t1'", "t2'", "t3'"]


def test_run_scheduled_second_tasklet_skips_the_first():
    # main sits before t1 in the ring: running t2 shows t2 and t3 only
    log = []
    t1, t2, t3 = _make_three(log)
    t2.run()
    log.append("main")
    stackless.run()
    assert log == ["t2", "t3", "main", "t1", "t2'", "t3'", "t1'"]


def test_run_removed_tasklet_docs_example():
    # Stackless's docs (tasklet.run()) and its C source: t2.remove();
    # t2.run() appends t2 to the queue -- just before the caller -- and
    # switches to it, so t2's next is the caller, which runs as soon as t2
    # yields; the rest of the queue comes after.
    log = []
    nexts = []

    def f(name):
        log.append(name)
        nexts.append(stackless.getcurrent().next)
        stackless.schedule()
        log.append(name + "'")

    main = stackless.getcurrent()
    t1 = stackless.tasklet(f)("t1")
    t2 = stackless.tasklet(f)("t2")
    t3 = stackless.tasklet(f)("t3")
    t2.remove()
    t2.run()
    log.append("main")
    assert nexts[0] is main
    assert log == ["t2", "main"]
    assert t2.scheduled
    stackless.run()
    del nexts[:]
    assert log == ["t2", "main", "t1", "t3", "t2'", "t1'", "t3'"]
    assert not (t1.alive or t2.alive or t3.alive)


def test_switch_to_removed_tasklet_takes_the_callers_place():
    # switch() appends the target as run() does and takes the caller out:
    # the queue goes on from the target as it would have from the caller.
    log = []

    def f(name):
        log.append(name)
        stackless.schedule()
        log.append(name + "'")

    main = stackless.getcurrent()
    t1 = stackless.tasklet(f)("t1")
    t2 = stackless.tasklet(f)("t2")
    t2.remove()

    def switcher():
        t2.switch()
        log.append("switcher")

    s = stackless.tasklet(switcher)()
    stackless.run()
    assert not s.scheduled and s.alive   # paused by its switch()
    assert log == ["t1", "t2", "t1'", "t2'"]
    s.insert()
    stackless.run()
    assert log[-1] == "switcher" and not s.alive
    assert main is stackless.getcurrent()


def test_run_returns_tempval():
    def f():
        stackless.getmain().tempval = "handed back"

    t = stackless.tasklet(f)()
    assert t.run() == "handed back"
    stackless.run()


def test_run_errors():
    t = stackless.tasklet(_noop)
    with pytest.raises(RuntimeError, match=_msg("You cannot run an unbound(dead) tasklet")):
        t.run()
    ch = stackless.channel()
    b = stackless.tasklet(ch.receive)()
    stackless.run()
    with pytest.raises(RuntimeError, match=_msg("You cannot run a blocked tasklet")):
        b.run()
    ch.send(None)


def test_switch_pauses_the_caller():
    log = []
    main = stackless.getcurrent()

    def f():
        log.append(("main paused", main.paused, main.scheduled))

    t = stackless.tasklet(f)()
    assert t.switch() is None
    log.append("back")
    assert log == [("main paused", True, False), "back"]
    assert not t.alive
    assert stackless.getruncount() == 1


def test_switch_between_tasklets_pauses_each():
    log = []

    def a():
        log.append("a1")
        tb.switch()
        log.append("a2")

    def b():
        log.append("b1")
        log.append(("a paused", ta.paused))
        ta.switch()
        log.append("b2")

    ta = stackless.tasklet(a)()
    tb = stackless.tasklet(b)()
    stackless.run()
    # b switched to a (pausing b); a finished; b is paused and alive
    assert log == ["a1", "b1", ("a paused", True), "a2"]
    assert tb.alive and tb.paused
    tb.insert()
    stackless.run()
    assert log[-1] == "b2"
    assert not tb.alive


@pytest.mark.timeout(30)
def test_switch_to_other_thread_is_refused():
    ready = threading.Event()
    done = threading.Event()
    box = {}

    def worker():
        t = stackless.tasklet(_noop, ())   # bound, alive, paused, in this thread
        box["t"] = t
        ready.set()
        done.wait(20)
        t.kill()                          # never ran: kill ends it
        box.clear()

    th = threading.Thread(target=worker)
    th.start()
    try:
        assert ready.wait(20)
        with pytest.raises(RuntimeError, match=_msg("can't switch to a different thread.")):
            box["t"].switch()
    finally:
        done.set()
        th.join(20)
    assert not th.is_alive()


# ---------------------------------------------------------------------------
# State attributes


def test_state_life_cycle():
    ch = stackless.channel()
    states = {}

    def f():
        me = stackless.getcurrent()
        states["running"] = (me.alive, me.scheduled, me.paused, me.blocked, me.is_current)
        ch.receive()

    t = stackless.tasklet(f)
    states["bound"] = (t.alive, t.scheduled, t.paused, t.blocked, t.is_current)
    t()
    states["setup"] = (t.alive, t.scheduled, t.paused, t.blocked, t.is_current)
    stackless.run()
    states["blocked"] = (t.alive, t.scheduled, t.paused, t.blocked, t.is_current)
    ch.send(None)
    states["dead"] = (t.alive, t.scheduled, t.paused, t.blocked, t.is_current)
    assert states == {
        "bound": (False, False, False, False, False),
        "setup": (True, True, False, False, False),
        "running": (True, True, False, False, True),
        "blocked": (True, True, False, True, False),
        "dead": (False, False, False, False, False),
    }


def test_main_is_paused_while_it_runs_the_scheduler():
    seen = []
    main = stackless.getmain()

    def f():
        seen.append((main.paused, main.scheduled, main.is_current, main.alive))

    stackless.tasklet(f)()
    stackless.run()
    assert seen == [(True, False, False, True)]
    assert main.scheduled and not main.paused


def test_is_main_is_current():
    seen = []
    main = stackless.getmain()
    assert main.is_main and main.is_current

    def f():
        me = stackless.getcurrent()
        seen.append((me.is_main, me.is_current, main.is_main, main.is_current))

    t = stackless.tasklet(f)()
    assert not t.is_main and not t.is_current
    stackless.run()
    assert seen == [(False, True, True, False)]


def test_thread_id():
    t = stackless.tasklet(_noop)
    assert t.thread_id == threading.get_ident()
    assert stackless.getmain().thread_id == threading.get_ident()


def test_next_prev_in_run_queue():
    main = stackless.getmain()
    assert main.next is main and main.prev is main       # main alone
    t1 = stackless.tasklet(_noop)()
    t2 = stackless.tasklet(_noop)()
    assert main.next is t1 and t1.next is t2 and t2.next is main
    assert main.prev is t2 and t2.prev is t1 and t1.prev is main
    t3 = stackless.tasklet(_noop)
    assert t3.next is None and t3.prev is None           # not chained
    stackless.run()
    assert t1.next is None and t1.prev is None
    assert main.next is main


def test_tempval_is_writable():
    t = stackless.tasklet(_noop)
    t.tempval = 5
    assert t.tempval == 5
    obj = object()
    t.tempval = obj
    assert t.tempval is obj


def test_frame_of_suspended_tasklet():
    def inner():
        stackless.schedule_remove()

    def outer():
        inner()

    t = stackless.tasklet(outer)()
    stackless.run()
    assert t.paused
    names = []
    f = t.frame
    while f is not None:
        names.append(f.f_code.co_name)
        f = f.f_back
    del f
    assert names == ["inner", "outer"]
    t.insert()
    stackless.run()
    assert t.frame is None


def test_frame_of_current_tasklet_is_the_running_frame():
    seen = []

    def f():
        seen.append(stackless.getcurrent().frame is sys._getframe())

    stackless.tasklet(f)()
    stackless.run()
    assert seen == [True]
    assert stackless.getcurrent().frame is sys._getframe()


def test_recursion_depth_of_suspended_tasklets():
    def rec(n):
        if n == 0:
            stackless.schedule_remove()
        else:
            rec(n - 1)

    shallow = stackless.tasklet(rec)(5)
    deep = stackless.tasklet(rec)(25)
    stackless.run()
    assert shallow.paused and deep.paused
    assert isinstance(shallow.recursion_depth, int)
    assert deep.recursion_depth - shallow.recursion_depth == 20
    shallow.insert()
    deep.insert()
    stackless.run()


def test_nesting_level_zero_in_plain_python():
    seen = []

    def f():
        seen.append(stackless.getcurrent().nesting_level)
        stackless.schedule_remove()

    t = stackless.tasklet(f)()
    stackless.run()
    assert seen == [0]
    assert t.nesting_level == 0
    assert t.restorable
    t.insert()
    stackless.run()


# ---------------------------------------------------------------------------
# Flags


def test_set_atomic_returns_old_value_as_bool():
    cur = stackless.getcurrent()
    old = cur.set_atomic(True)
    try:
        assert old is False
        assert cur.atomic
        assert cur.set_atomic(0) is True
        assert not cur.atomic
        assert cur.set_atomic(5) is False
        assert cur.set_atomic(False) is True
    finally:
        cur.set_atomic(old)


def test_set_atomic_type_error():
    cur = stackless.getcurrent()
    with pytest.raises(TypeError, match=_msg("set_atomic needs exactly one bool or integer")):
        cur.set_atomic("yes")
    with pytest.raises(TypeError, match=_msg("set_atomic needs exactly one bool or integer")):
        cur.set_atomic(None)
    assert not cur.atomic


def test_set_ignore_nesting_returns_old_value():
    cur = stackless.getcurrent()
    old = cur.set_ignore_nesting(1)
    try:
        assert old == 0
        assert cur.ignore_nesting
        assert cur.set_ignore_nesting(0) == 1
        assert not cur.ignore_nesting
    finally:
        cur.set_ignore_nesting(old)


def test_block_trap_in_tasklet():
    ch = stackless.channel()
    errors = []

    def f():
        me = stackless.getcurrent()
        me.block_trap = True
        try:
            ch.receive()
        except RuntimeError as e:
            errors.append(str(e))
        me.block_trap = False

    stackless.tasklet(f)()
    stackless.run()
    assert errors == ["this tasklet does not like to be blocked."]
    assert ch.balance == 0


def test_block_trap_checked_before_closing_and_spares_transfers():
    cur = stackless.getcurrent()
    ch = stackless.channel()
    assert cur.block_trap is False
    cur.block_trap = True
    try:
        with pytest.raises(RuntimeError, match=_msg("this tasklet does not like to be blocked.")):
            ch.send(1)
        ch.close()
        with pytest.raises(RuntimeError, match=_msg("this tasklet does not like to be blocked.")):
            ch.receive()
        ch.open()
        # a transfer that finds a partner does not block: allowed
        stackless.tasklet(ch.send)("v")
        stackless.schedule()            # the sender blocks on ch
        assert ch.balance == 1
        assert ch.receive() == "v"
    finally:
        cur.block_trap = False
    stackless.run()


# ---------------------------------------------------------------------------
# Subclassing, weak references


def test_subclass_with_init_override():
    seen = []

    class Named(stackless.tasklet):
        def __init__(self, func, label):
            super().__init__(func)
            self.label = label

        def describe(self):
            return "tasklet %s" % self.label

    def f(x):
        me = stackless.getcurrent()
        seen.append((type(me) is Named, me.label, me.describe(), x))

    t = Named(f, "worker")
    assert isinstance(t, stackless.tasklet)
    assert not t.alive
    assert t(7) is t
    stackless.run()
    assert seen == [(True, "worker", "tasklet worker", 7)]


def test_subclass_instance_dict_and_slots_survive_switches():
    class T(stackless.tasklet):
        pass

    def f():
        stackless.getcurrent().counter += 1
        stackless.schedule()
        stackless.getcurrent().counter += 1

    t = T(f)
    t.counter = 0
    t()
    stackless.run()
    assert t.counter == 2


def test_weakref_to_tasklet():
    t = stackless.tasklet(_noop)()
    r = weakref.ref(t)
    assert r() is t
    stackless.run()
    del t
    gc.collect()
    assert r() is None


# ---------------------------------------------------------------------------
# Per-tasklet contexts


def test_context_run_set_context_context_id():
    var = contextvars.ContextVar("test_tasklet_ctx")
    token = var.set("main")
    try:
        ctx = contextvars.Context()
        ctx.run(var.set, "shared")
        seen = []

        def f(name):
            seen.append((name, var.get("unset")))

        a = stackless.tasklet(f)("a")
        b = stackless.tasklet(f)("b")
        c = stackless.tasklet(f)("c")
        a.set_context(ctx)
        b.set_context(ctx)
        assert isinstance(a.context_id, int)
        assert a.context_id == b.context_id
        assert c.context_id != a.context_id
        assert a.context_run(var.get) == "shared"
        assert c.context_run(var.get) == "main"
        # context_run leaves the caller's own context alone
        assert var.get() == "main"
        stackless.run()
        assert seen == [("a", "shared"), ("b", "shared"), ("c", "main")]
    finally:
        var.reset(token)


def test_context_run_passes_arguments():
    t = stackless.tasklet(_noop)
    assert t.context_run(lambda a, b=0: a + b, 1, b=2) == 3
    with pytest.raises(ZeroDivisionError):
        t.context_run(lambda: 1 / 0)
