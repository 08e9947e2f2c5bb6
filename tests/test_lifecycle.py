"""Tasklet life cycle at its ends: garbage collection of suspended tasklets,
and interpreter exit with tasklets still suspended.

Reference: docs/guides/migrating.rst, "Interpreter exit and thread exit"
(after atexit, every suspended tasklet gets TaskletExit).  The exit
scenarios run in a child interpreter: a crash there fails one test only.
"""

import gc
import weakref

import pytest

import stackless_compat as stackless


def _lines(text):
    return text.splitlines()


# ---------------------------------------------------------------------------
# Garbage collection


def test_unreachable_blocked_tasklet_is_killed_by_gc():
    log = []

    def f(ch):
        try:
            ch.receive()
            log.append("not reached")
        except TaskletExit:  # noqa: F821
            log.append("TaskletExit")
            raise
        finally:
            log.append("finally")

    def start():
        ch = stackless.channel()
        t = stackless.tasklet(f)(ch)
        stackless.run()                  # f blocks; nobody else holds ch
        assert t.blocked
        return weakref.ref(t)

    ref = start()
    for _ in range(3):
        gc.collect()
    assert log == ["TaskletExit", "finally"]
    assert ref() is None
    assert stackless.getruncount() == 1


def test_deleted_paused_tasklet_runs_its_finally():
    log = []

    def f():
        try:
            stackless.schedule_remove()
            log.append("not reached")
        finally:
            log.append(("finally", stackless.getcurrent() is not stackless.getmain()))

    t = stackless.tasklet(f)()
    stackless.run()
    assert t.paused
    ref = weakref.ref(t)
    del t
    gc.collect()
    assert log == [("finally", True)]
    assert ref() is None
    assert stackless.getcurrent() is stackless.getmain()


def test_deleted_prepared_tasklet_runs_nothing():
    log = []
    t = stackless.tasklet(log.append, ("never",))
    assert t.alive
    ref = weakref.ref(t)
    del t
    gc.collect()
    assert ref() is None
    assert log == []


def test_dead_tasklet_is_freed():
    t = stackless.tasklet(lambda: None)()
    ref = weakref.ref(t)
    stackless.run()
    del t
    gc.collect()
    assert ref() is None


# ---------------------------------------------------------------------------
# Interpreter exit (child interpreters)


def _check_clean_exit(proc):
    assert proc.returncode == 0, "rc=%s\n%s" % (proc.returncode, proc.stderr)
    assert proc.stderr == ""


@pytest.mark.timeout(90)
def test_exit_kills_tasklets_with_c_state_and_drops_the_others(run_py):
    # As in Stackless: at interpreter exit only tasklets holding C state
    # (not restorable) get TaskletExit; those suspended in plain Python code
    # are dropped silently, their finally blocks do not run.
    proc = run_py("""
        import stackless_compat as stackless
        hold = stackless._test_nostacklesscall     # a call from C: C state
        ch = stackless.channel()

        def blocked(name, how):
            try:
                how(ch.receive)
            finally:
                print("finally", name, flush=True)

        def paused(name, how):
            try:
                how(stackless.schedule_remove)
            finally:
                print("finally", name, flush=True)

        def runnable(name, how):
            try:
                while True:
                    how(stackless.schedule)
            finally:
                print("finally", name, flush=True)

        plain = lambda f: f()
        stackless.tasklet(blocked)("b1", hold)
        stackless.tasklet(blocked)("b2", hold)
        stackless.tasklet(blocked)("plain blocked", plain)
        stackless.tasklet(paused)("paused", hold)
        stackless.tasklet(paused)("plain paused", plain)
        stackless.run()
        stackless.tasklet(runnable)("runnable", hold)
        stackless.tasklet(runnable)("plain runnable", plain)
        stackless.schedule()
        print("main done", flush=True)
    """)
    _check_clean_exit(proc)
    lines = _lines(proc.stdout)
    assert lines[0] == "main done"
    assert sorted(lines[1:]) == ["finally b1", "finally b2", "finally paused",
                                 "finally runnable"]


@pytest.mark.timeout(90)
def test_exit_with_thousand_blocked_tasklets(run_py):
    proc = run_py("""
        import sys
        import stackless_compat as stackless
        ch = stackless.channel()

        def f(i):
            try:
                stackless._test_nostacklesscall(ch.receive)   # C state
            finally:
                sys.stdout.write("F%d\\n" % i)

        for i in range(1000):
            stackless.tasklet(f)(i)
        stackless.run()
        print("blocked:", -ch.balance, flush=True)
    """)
    _check_clean_exit(proc)
    lines = _lines(proc.stdout)
    assert lines[0] == "blocked: 1000"
    assert sorted(lines[1:]) == sorted("F%d" % i for i in range(1000))


@pytest.mark.timeout(90)
def test_exit_with_tasklet_inside_nested_run(run_py):
    proc = run_py("""
        import stackless_compat as stackless
        ch = stackless.channel()
        ch2 = stackless.channel()

        def inner():
            try:
                # main waits: it runs at once (C state: a call from C)
                stackless._test_nostacklesscall(ch.send, "hello from inner")
                ch2.receive()
            finally:
                print("finally inner", flush=True)

        def outer():
            try:
                stackless.tasklet(inner)()
                stackless.run()                 # outer is now a watchdog
            finally:
                print("finally outer", flush=True)

        stackless.tasklet(outer)()
        print(ch.receive(), flush=True)
        print("main done", flush=True)
    """)
    _check_clean_exit(proc)
    lines = _lines(proc.stdout)
    assert lines[:2] == ["hello from inner", "main done"]
    assert sorted(lines[2:]) == ["finally inner", "finally outer"]


@pytest.mark.timeout(90)
def test_exit_kills_tasklets_after_atexit_handlers(run_py):
    proc = run_py("""
        import atexit
        import stackless_compat as stackless

        def f():
            try:
                stackless._test_nostacklesscall(stackless.schedule_remove)
            finally:
                print("finally", flush=True)

        t = stackless.tasklet(f)()
        stackless.run()

        @atexit.register
        def handler():
            print("atexit: alive=%s" % t.alive, flush=True)

        print("main done", flush=True)
    """)
    _check_clean_exit(proc)
    assert _lines(proc.stdout) == ["main done", "atexit: alive=True", "finally"]


@pytest.mark.timeout(90)
def test_exit_with_tasklet_that_swallows_tasklet_exit(run_py):
    # A tasklet that catches TaskletExit and returns still ends; exit is clean.
    proc = run_py("""
        import stackless_compat as stackless
        ch = stackless.channel()

        def f():
            try:
                stackless._test_nostacklesscall(ch.receive)   # C state
            except TaskletExit:
                print("caught TaskletExit", flush=True)

        stackless.tasklet(f)()
        stackless.run()
        print("main done", flush=True)
    """)
    _check_clean_exit(proc)
    assert _lines(proc.stdout) == ["main done", "caught TaskletExit"]


@pytest.mark.timeout(90)
def test_exit_via_sys_exit_with_suspended_tasklets(run_py):
    proc = run_py("""
        import sys
        import stackless_compat as stackless

        def f():
            try:
                stackless._test_nostacklesscall(stackless.schedule_remove)
            finally:
                print("finally", flush=True)

        stackless.tasklet(f)()
        stackless.run()
        sys.exit(0)
    """)
    _check_clean_exit(proc)
    assert _lines(proc.stdout) == ["finally"]
