"""TaskletExit, kill/throw/raise_exception, bomb, atomic.

Reference: docs/api/stackless.rst, "Tasklets" (kill, throw, raise_exception)
and "Callbacks and threads" (the error handler).
"""

import builtins
import re
import sys

import pytest

import stackless_compat as stackless

DEAD = "You cannot throw to a dead tasklet"


def _msg(text):
    return "^" + re.escape(text) + "$"


def _tb_names(tb):
    names = []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


# ---------------------------------------------------------------------------
# TaskletExit


def test_tasklet_exit_is_a_builtin_system_exit():
    assert "TaskletExit" in vars(builtins)
    assert issubclass(builtins.TaskletExit, SystemExit)
    assert not issubclass(builtins.TaskletExit, Exception)
    # usable without an import, as legacy code does
    assert TaskletExit is builtins.TaskletExit  # noqa: F821


def test_tasklet_exit_swallowed_lets_tasklet_continue():
    ch = stackless.channel()
    log = []

    def f():
        try:
            ch.receive()
        except TaskletExit:  # noqa: F821
            log.append("swallowed")
        stackless.schedule()
        log.append("continued")

    t = stackless.tasklet(f)()
    stackless.run()
    t.kill()
    assert log == ["swallowed"]
    assert t.alive and t.scheduled and not t.blocked
    assert ch.balance == 0
    stackless.run()
    assert log == ["swallowed", "continued"]
    assert not t.alive


# ---------------------------------------------------------------------------
# Target is current (7.1)


def test_kill_current_raises_immediately():
    log = []

    def f():
        try:
            stackless.getcurrent().kill()
            log.append("not reached")
        except TaskletExit:  # noqa: F821
            log.append("got TaskletExit")
            raise

    t = stackless.tasklet(f)()
    stackless.run()
    assert log == ["got TaskletExit"]
    assert not t.alive


def test_throw_and_raise_exception_on_current():
    log = []

    def f():
        me = stackless.getcurrent()
        try:
            me.throw(ValueError("v"))
        except ValueError as e:
            log.append(("throw", e.args))
        try:
            me.raise_exception(KeyError, "a", 1)
        except KeyError as e:
            log.append(("raise_exception", e.args))

    stackless.tasklet(f)()
    stackless.run()
    assert log == [("throw", ("v",)), ("raise_exception", ("a", 1))]


def test_throw_on_main_from_main():
    with pytest.raises(IndexError, match="main"):
        stackless.getmain().throw(IndexError, "main")


# ---------------------------------------------------------------------------
# Target not alive (7.2)


def test_dead_target():
    t = stackless.tasklet(lambda: None)()
    stackless.run()
    assert not t.alive
    assert t.kill() is None
    assert t.kill(pending=True) is None
    with pytest.raises(RuntimeError, match=_msg(DEAD)):
        t.throw(ValueError)
    with pytest.raises(RuntimeError, match=_msg(DEAD)):
        t.throw(ValueError, pending=True)
    with pytest.raises(RuntimeError, match=_msg(DEAD)):
        t.raise_exception(ValueError, "x")


def test_bound_but_never_set_up_is_not_alive():
    log = []
    t = stackless.tasklet(log.append)
    assert t.kill() is None
    assert not t.alive
    with pytest.raises(RuntimeError, match=_msg(DEAD)):
        t.throw(KeyError)
    # still usable afterwards
    t("ran")
    stackless.run()
    assert log == ["ran"]


# ---------------------------------------------------------------------------
# Set up but never run (7.3)


def test_kill_before_first_run_runs_no_code():
    log = []

    def f():
        try:
            log.append("body")
        finally:
            log.append("finally")

    t = stackless.tasklet(f)()
    assert t.alive
    assert t.kill() is None
    assert not t.alive
    assert log == []
    assert stackless.getruncount() == 1


def test_kill_paused_never_run_tasklet():
    log = []
    t = stackless.tasklet(log.append, ("never",))
    assert t.paused
    t.kill()
    assert not t.alive
    assert log == []


def test_throw_before_first_run_reaches_the_caller():
    log = []

    def f():
        log.append("body")

    t = stackless.tasklet(f)()
    with pytest.raises(ValueError, match="before start"):
        t.throw(ValueError("before start"))
    assert not t.alive
    assert log == []


# ---------------------------------------------------------------------------
# Immediate delivery (7.4)


def test_kill_blocked_tasklet_removes_it_from_channel():
    ch = stackless.channel()
    log = []

    def f():
        try:
            ch.receive()
        finally:
            log.append(("finally", stackless.getcurrent().blocked))

    t = stackless.tasklet(f)()
    stackless.run()
    assert ch.balance == -1
    t.kill()
    assert log == [("finally", False)]
    assert not t.alive
    assert ch.balance == 0
    assert ch.queue is None


def test_throw_immediate_caller_stays_runnable():
    log = []

    def f():
        try:
            stackless.schedule_remove()
        except KeyError:
            log.append("caught")
        stackless.schedule()
        log.append("f done")

    t = stackless.tasklet(f)()
    stackless.run()
    assert t.paused
    t.throw(KeyError)
    log.append("main resumed")
    stackless.run()
    assert log == ["caught", "main resumed", "f done"]


def _raiser_in_main():
    raise KeyError("from main")


def test_throw_with_traceback():
    seen = []

    def f():
        try:
            stackless.schedule_remove()
        except KeyError as e:
            seen.append(str(e))
            seen.extend(_tb_names(e.__traceback__))

    t = stackless.tasklet(f)()
    stackless.run()
    try:
        _raiser_in_main()
    except KeyError:
        t.throw(*sys.exc_info())
    assert not t.alive
    assert seen[0] == "'from main'"
    assert "_raiser_in_main" in seen


def test_throw_instance_with_val_none():
    seen = []

    def f():
        try:
            stackless.schedule_remove()
        except Exception as e:
            seen.append((type(e), e.args))

    t = stackless.tasklet(f)()
    stackless.run()
    t.throw(IndexError("inst"), None, None)
    assert seen == [(IndexError, ("inst",))]


def test_raise_exception_with_args():
    ch = stackless.channel()
    seen = []

    def f():
        try:
            ch.receive()
        except ValueError as e:
            seen.append(e.args)

    t = stackless.tasklet(f)()
    stackless.run()
    t.raise_exception(ValueError, 1, 2)
    assert seen == [(1, 2)]
    assert not t.alive
    assert ch.balance == 0


def test_uncaught_throw_goes_to_caller():
    t = stackless.tasklet(stackless.schedule_remove)()
    stackless.run()
    with pytest.raises(LookupError, match="unhandled"):
        t.throw(LookupError("unhandled"))
    assert not t.alive


# ---------------------------------------------------------------------------
# Pending delivery (7.5)


def test_kill_pending_keeps_target_alive_until_it_runs():
    ch = stackless.channel()
    log = []

    def f():
        try:
            ch.receive()
        except TaskletExit:  # noqa: F821
            log.append("TaskletExit")
            raise

    t = stackless.tasklet(f)()
    stackless.run()
    assert t.blocked
    assert t.kill(pending=True) is None
    assert t.alive and t.scheduled and not t.blocked
    assert ch.balance == 0
    assert log == []
    stackless.run()
    assert log == ["TaskletExit"]
    assert not t.alive


def test_throw_pending_is_delivered_in_queue_order():
    log = []

    def f():
        try:
            stackless.schedule_remove()
        except ValueError as e:
            log.append(("f", e.args))

    t = stackless.tasklet(f)()
    stackless.run()
    stackless.tasklet(log.append)("queued before")
    t.throw(ValueError, ("pending",), None, True)
    log.append("caller continues")
    stackless.run()
    assert log == ["caller continues", "queued before", ("f", ("pending",))]


# ---------------------------------------------------------------------------
# bomb


def test_bomb_constructor_forms():
    b = stackless.bomb()
    assert (b.type, b.value, b.traceback) == (None, None, None)
    b = stackless.bomb(ValueError)
    assert b.type is ValueError and b.value is None and b.traceback is None
    exc = ValueError("v")
    b = stackless.bomb(ValueError, exc)
    assert b.type is ValueError and b.value is exc
    try:
        raise KeyError("k")
    except KeyError:
        info = sys.exc_info()
        b = stackless.bomb(*info)
        b2 = stackless.bomb(info)
    assert (b.type, b.value, b.traceback) == info
    assert (b2.type, b2.value, b2.traceback) == info
    del info, b, b2


def test_bomb_members_are_read_only():
    b = stackless.bomb(ValueError, ValueError("x"))
    for name in ("type", "value", "traceback"):
        with pytest.raises(AttributeError):
            setattr(b, name, None)
    assert b.type is ValueError


def test_bomb_as_tempval_is_raised_on_resume():
    seen = []

    def f():
        try:
            stackless.schedule_remove()
        except ZeroDivisionError as e:
            seen.append(e.args)

    t = stackless.tasklet(f)()
    stackless.run()
    t.tempval = stackless.bomb(ZeroDivisionError, ZeroDivisionError("via tempval"))
    t.insert()
    stackless.run()
    assert seen == [("via tempval",)]


# ---------------------------------------------------------------------------
# atomic


def test_atomic_context_manager_restores_and_nests():
    cur = stackless.getcurrent()
    assert not cur.atomic
    with stackless.atomic():
        assert cur.atomic
        with stackless.atomic():
            assert cur.atomic
        assert cur.atomic
    assert not cur.atomic
    old = cur.set_atomic(True)
    try:
        with stackless.atomic():
            assert cur.atomic
        assert cur.atomic          # restored to the previous (set) value
    finally:
        cur.set_atomic(old)
    assert not cur.atomic


def test_atomic_restored_on_exception():
    cur = stackless.getcurrent()
    with pytest.raises(KeyError):
        with stackless.atomic():
            raise KeyError
    assert not cur.atomic


def test_atomic_is_per_tasklet_and_switches_still_happen():
    log = []

    def f(name):
        with stackless.atomic():
            log.append((name, stackless.getcurrent().atomic))
            stackless.schedule()        # explicit switches are allowed
            log.append((name, stackless.getcurrent().atomic))
        log.append((name, stackless.getcurrent().atomic))

    stackless.tasklet(f)("a")
    stackless.tasklet(lambda: log.append(("b", stackless.getcurrent().atomic)))()
    stackless.run()
    assert log == [("a", True), ("b", False), ("a", True), ("a", False)]
    assert not stackless.getcurrent().atomic


# ---------------------------------------------------------------------------
# Exceptions leaving tasklets


def test_system_exit_in_tasklet_exits_process(run_py):
    proc = run_py("""
        import stackless_compat as stackless
        def f():
            print("tasklet", flush=True)
            raise SystemExit(3)
        stackless.tasklet(f)()
        stackless.run()
        print("not reached")
    """)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "tasklet\n"


def test_uncaught_exception_text_reaches_run_caller(run_py):
    proc = run_py("""
        import stackless_compat as stackless
        def failing_worker():
            raise ValueError("worker failed: 42")
        stackless.tasklet(failing_worker)()
        stackless.run()
        print("not reached")
    """)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.rstrip().endswith("ValueError: worker failed: 42")
    assert "failing_worker" in proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr


def test_uncaught_exception_caught_by_run_caller():
    def worker():
        raise OSError(5, "io trouble")

    stackless.tasklet(worker)()
    with pytest.raises(OSError) as info:
        stackless.run()
    assert info.value.errno == 5
    assert str(info.value) == "[Errno 5] io trouble"
    assert "worker" in _tb_names(info.value.__traceback__)
