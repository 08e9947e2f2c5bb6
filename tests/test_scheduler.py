"""The scheduler: schedule/schedule_remove/run, the run queue counters,
deadlock detection, uncaught exceptions, error handler, switch_trap.

Reference: docs/api/stackless.rst, "The scheduler" and "Callbacks and
threads".
"""

import re
import threading

import pytest

import stackless_compat as stackless

DEADLOCK = "Deadlock: the last runnable tasklet cannot be blocked."
MAIN_RECEIVING = "the main tasklet is receiving without a sender available."
MAIN_SENDING = "the main tasklet is sending without a receiver available."


def _msg(text):
    return "^" + re.escape(text) + "$"


# ---------------------------------------------------------------------------
# schedule / schedule_remove


def test_schedule_alone_returns_current_or_retval():
    assert stackless.schedule() is stackless.getcurrent()
    assert stackless.schedule(42) == 42
    sentinel = object()
    assert stackless.schedule(sentinel) is sentinel


def test_schedule_in_tasklet_returns_retval():
    results = []

    def f():
        results.append(stackless.schedule() is stackless.getcurrent())
        results.append(stackless.schedule("r"))

    stackless.tasklet(f)()
    stackless.tasklet(stackless.schedule)()
    stackless.run()
    assert results == [True, "r"]


def test_schedule_returns_tempval_set_meanwhile():
    results = []

    def waiter():
        results.append(stackless.schedule("own"))

    def meddler():
        w.tempval = "override"

    w = stackless.tasklet(waiter)()
    stackless.tasklet(meddler)()
    stackless.run()
    assert results == ["override"]


def test_schedule_yields_to_next_and_keeps_caller_runnable():
    log = []

    def f(name):
        log.append(name + "1")
        stackless.schedule()
        log.append(name + "2")

    stackless.tasklet(f)("a")
    stackless.tasklet(f)("b")
    log.append("main1")
    stackless.schedule()         # main stays in the queue: it comes back after a and b
    log.append("main2")
    stackless.run()
    assert log == ["main1", "a1", "b1", "main2", "a2", "b2"]


def test_schedule_remove_returns_tempval_set_by_reinserter():
    results = []

    def f():
        results.append(stackless.schedule_remove())

    t = stackless.tasklet(f)()
    stackless.run()                       # f pauses; the watchdog (main) is revived
    assert t.alive and t.paused and results == []
    assert stackless.getruncount() == 1
    t.tempval = "wake-up value"
    t.insert()
    stackless.run()
    assert results == ["wake-up value"]


def test_schedule_remove_returns_retval_when_tempval_untouched():
    results = []

    def f():
        results.append(stackless.schedule_remove("mine"))
        results.append(stackless.schedule_remove() is stackless.getcurrent())

    t = stackless.tasklet(f)()
    stackless.run()
    t.insert()
    stackless.run()
    t.insert()
    stackless.run()
    assert results == ["mine", True]


# ---------------------------------------------------------------------------
# run()


def test_run_returns_none():
    assert stackless.run() is None
    stackless.tasklet(lambda: None)()
    assert stackless.run() is None


def test_run_nested_from_tasklet():
    log = []

    def inner():
        log.append(("inner", stackless.getruncount()))

    def outer():
        stackless.tasklet(inner)()
        log.append("outer-run")
        log.append(("outer-back", stackless.run()))

    stackless.tasklet(outer)()
    stackless.run()
    # both watchdogs (main, outer) are out of the queue while inner runs
    assert log == ["outer-run", ("inner", 1), ("outer-back", None)]


def test_run_queue_survives_uncaught_error_in_nested_run():
    log = []

    def bad():
        raise KeyError("nested")

    def outer():
        stackless.tasklet(bad)()
        try:
            stackless.run()
        except KeyError as e:
            log.append(("outer caught", e.args))

    stackless.tasklet(outer)()
    stackless.run()
    assert log == [("outer caught", ("nested",))]


# ---------------------------------------------------------------------------
# Counters and identities


def test_getruncount_includes_current():
    assert stackless.getruncount() == 1
    stackless.tasklet(lambda: None)()
    stackless.tasklet(lambda: None)()
    assert stackless.getruncount() == 3
    counts = []
    stackless.tasklet(lambda: counts.append(stackless.getruncount()))()
    stackless.tasklet(lambda: counts.append(stackless.getruncount()))()
    stackless.run()
    # inside run() the watchdog (main) is not counted
    assert counts == [2, 1]
    assert stackless.getruncount() == 1


def test_getcurrent_getmain():
    main = stackless.getmain()
    assert stackless.getcurrent() is main
    assert main.is_main
    seen = []

    def f():
        seen.append((stackless.getcurrent(), stackless.getmain()))

    t = stackless.tasklet(f)()
    stackless.run()
    assert seen == [(t, main)]


def test_getcurrentid():
    assert isinstance(stackless.getcurrentid(), int)
    assert stackless.getcurrentid() == threading.get_ident()
    ids = []

    def f():
        ids.append(stackless.getcurrentid())
        stackless.schedule()
        ids.append(stackless.getcurrentid())

    stackless.tasklet(f)()
    stackless.tasklet(f)()
    stackless.run()
    assert ids[0] == ids[2] and ids[1] == ids[3]
    assert ids[0] != ids[1]
    assert threading.get_ident() not in ids


def test_getcurrentid_of_main_is_constant_from_the_start(run_py):
    proc = run_py("""
        import threading
        import stackless_compat as stackless
        before = stackless.getcurrentid()
        main = stackless.getmain()
        after = stackless.getcurrentid()
        print(before == after == threading.get_ident(), main.is_main)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True True\n"


def test_module_attributes_are_live():
    main = stackless.getmain()
    assert stackless.main is main
    assert stackless.current is main
    assert stackless.runcount == 1
    seen = []

    def f():
        seen.append((stackless.current, stackless.main, stackless.runcount))

    t = stackless.tasklet(f)()
    assert stackless.runcount == 2
    stackless.run()
    assert seen == [(t, main, 1)]
    assert stackless.runcount == 1
    assert stackless.current is main


# ---------------------------------------------------------------------------
# Blocking and deadlock


def test_receive_in_main_alone_is_a_deadlock():
    ch = stackless.channel()
    with pytest.raises(RuntimeError, match=_msg(DEADLOCK)):
        ch.receive()
    assert ch.balance == 0
    with pytest.raises(RuntimeError, match=_msg(DEADLOCK)):
        ch.send(1)
    assert ch.balance == 0


def test_main_receiving_and_last_tasklet_ends():
    ch = stackless.channel()
    stackless.tasklet(lambda: None)()
    with pytest.raises(RuntimeError, match=_msg(MAIN_RECEIVING)):
        ch.receive()
    assert ch.balance == 0
    assert stackless.getruncount() == 1


def test_main_sending_and_last_tasklet_ends():
    ch = stackless.channel()
    stackless.tasklet(lambda: None)()
    with pytest.raises(RuntimeError, match=_msg(MAIN_SENDING)):
        ch.send("lost")
    assert ch.balance == 0
    assert stackless.getruncount() == 1


def test_main_blocked_and_last_tasklet_dies_with_error():
    ch = stackless.channel()

    def boom():
        raise ValueError("instead of the deadlock message")

    stackless.tasklet(boom)()
    with pytest.raises(ValueError, match="instead of the deadlock message"):
        ch.receive()
    assert ch.balance == 0


def test_tasklet_and_then_main_get_deadlock():
    c1 = stackless.channel()
    c2 = stackless.channel()
    seen = []

    def f():
        try:
            c2.receive()
        except RuntimeError as e:
            seen.append(str(e))
            raise

    stackless.tasklet(f)()
    with pytest.raises(RuntimeError, match=_msg(DEADLOCK)):
        c1.receive()
    assert seen == [DEADLOCK]
    assert c1.balance == 0 and c2.balance == 0


def test_blocking_last_tasklet_revives_watchdog():
    ch = stackless.channel()
    log = []

    def f():
        log.append("blocking")
        log.append(ch.receive())

    t = stackless.tasklet(f)()
    assert stackless.run() is None       # run() returns normally ...
    assert t.blocked and t.alive         # ... and the tasklet stays blocked
    assert ch.balance == -1
    assert log == ["blocking"]
    ch.send("released")
    assert log == ["blocking", "released"]
    assert not t.alive


def test_schedule_remove_last_tasklet_revives_watchdog():
    t = stackless.tasklet(stackless.schedule_remove)()
    assert stackless.run() is None
    assert t.paused
    t.insert()
    stackless.run()
    assert not t.alive


# ---------------------------------------------------------------------------
# Uncaught exceptions


def test_uncaught_exception_raised_out_of_run():
    def boom():
        raise ValueError("from the tasklet")

    t = stackless.tasklet(boom)()
    with pytest.raises(ValueError, match=_msg("from the tasklet")) as info:
        stackless.run()
    assert stackless.getruncount() == 1
    assert not t.alive
    names = []
    tb = info.value.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    del tb
    assert "boom" in names


def test_uncaught_exception_leaves_other_tasklets_queued():
    log = []

    def boom():
        raise KeyError("k")

    stackless.tasklet(boom)()
    stackless.tasklet(log.append)("later")
    with pytest.raises(KeyError):
        stackless.run()
    assert log == []
    assert stackless.getruncount() == 2
    stackless.run()
    assert log == ["later"]


def test_tasklet_exit_escaping_is_silent():
    def f():
        raise TaskletExit  # noqa: F821

    stackless.tasklet(f)()
    assert stackless.run() is None


def test_set_error_handler_returns_old_and_swallows():
    calls = []
    log = []

    def handler(typ, val, tb):
        calls.append((typ, type(val), tb is not None))

    def boom():
        raise ValueError("handled")

    old = stackless.set_error_handler(handler)
    try:
        assert old is None
        stackless.tasklet(boom)()
        stackless.tasklet(log.append)("still running")
        assert stackless.run() is None
    finally:
        assert stackless.set_error_handler(old) is handler
    assert calls == [(ValueError, ValueError, True)]
    assert log == ["still running"]
    assert stackless.set_error_handler(None) is None


def test_error_handler_not_called_for_tasklet_exit():
    calls = []
    old = stackless.set_error_handler(lambda *a: calls.append(a))
    try:
        t = stackless.tasklet(stackless.schedule_remove)()
        stackless.run()
        t.kill()
        assert not t.alive
    finally:
        stackless.set_error_handler(old)
    assert calls == []


def test_error_handler_raising_goes_to_run_caller():
    def handler(typ, val, tb):
        raise val

    def boom():
        raise ValueError("handler re-raised")

    old = stackless.set_error_handler(handler)
    try:
        stackless.tasklet(boom)()
        with pytest.raises(ValueError, match=_msg("handler re-raised")):
            stackless.run()
    finally:
        stackless.set_error_handler(old)
    assert stackless.getruncount() == 1


# ---------------------------------------------------------------------------
# switch_trap


def test_switch_trap_blocks_switches():
    log = []
    stackless.tasklet(log.append)("ran")
    assert stackless.switch_trap(1) == 0
    try:
        with pytest.raises(RuntimeError, match=_msg("switch_trap")):
            stackless.schedule()
        with pytest.raises(RuntimeError, match=_msg("switch_trap")):
            stackless.run()
        assert stackless.switch_trap(0) == 1
        assert stackless.switch_trap(1) == 1
    finally:
        assert stackless.switch_trap(-1) == 2
        assert stackless.switch_trap(-1) == 1
    assert stackless.switch_trap(0) == 0
    assert log == []
    stackless.run()
    assert log == ["ran"]


def test_switch_trap_channel_operation():
    ch = stackless.channel()
    t = stackless.tasklet(ch.receive)()
    stackless.run()
    stackless.switch_trap(1)
    try:
        with pytest.raises(RuntimeError, match=_msg("switch_trap")):
            ch.send(1)            # pref -1: would switch to the receiver
    finally:
        stackless.switch_trap(-1)
    if t.blocked:
        ch.send(1)
    stackless.run()
    assert not t.alive


def test_switch_trap_exempts_noop_switch():
    stackless.switch_trap(1)
    try:
        assert stackless.schedule(5) == 5     # nothing else runnable: prev is next
    finally:
        stackless.switch_trap(-1)


def test_switch_trap_inside_tasklet():
    errors = []

    def f():
        stackless.switch_trap(1)
        try:
            stackless.schedule()
        except RuntimeError as e:
            errors.append(str(e))
        finally:
            stackless.switch_trap(-1)

    stackless.tasklet(f)()
    stackless.tasklet(lambda: None)()
    stackless.run()
    assert errors == ["switch_trap"]


# ---------------------------------------------------------------------------
# enable_softswitch, run(timeout)


def test_enable_softswitch_always_reports_false():
    try:
        assert stackless.enable_softswitch(None) is False
        assert stackless.enable_softswitch(True) is False
        assert stackless.enable_softswitch(None) is False
        assert stackless.enable_softswitch(False) is False
        assert stackless.enable_softswitch(0) is False
    finally:
        stackless.enable_softswitch(True)


def test_run_timeout_runs_short_tasklets_normally():
    # With a watchdog armed, tasklets that finish quickly just run.
    log = []
    stackless.tasklet(log.append)("x")
    assert stackless.run(timeout=100000) is None
    assert log == ["x"]
    assert stackless.run(0) is None


# ---------------------------------------------------------------------------
# Scale


@pytest.mark.timeout(60)
def test_thousand_tasklets_round_robin():
    n, rounds = 1000, 3
    log = []

    def f(i):
        for r in range(rounds):
            log.append((r, i))
            stackless.schedule()

    for i in range(n):
        stackless.tasklet(f)(i)
    assert stackless.getruncount() == n + 1
    stackless.run()
    assert log == [(r, i) for r in range(rounds) for i in range(n)]
    assert stackless.getruncount() == 1
