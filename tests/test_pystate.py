"""Per-tasklet interpreter state kept across switches: exception state,
contextvars, recursion depth, generators/coroutines, tracing.

Reference: docs/versions.md and docs/design.md ("The version layer").
"""

import contextvars
import random
import sys
import types

import pytest

import stackless_compat as stackless


# ---------------------------------------------------------------------------
# sys.exc_info()


def test_exc_info_is_per_tasklet():
    log = []

    def f():
        log.append(("t start", sys.exc_info()[0]))
        try:
            raise KeyError("t")
        except KeyError:
            stackless.schedule()
            log.append(("t in except", sys.exc_info()[0]))
            stackless.schedule()
            log.append(("t in except again", sys.exc_info()[0]))
        log.append(("t after", sys.exc_info()[0]))

    stackless.tasklet(f)()
    try:
        raise IndexError("main")
    except IndexError:
        stackless.schedule()           # f starts, raises KeyError, switches back
        log.append(("main in except", sys.exc_info()[0]))
        stackless.schedule()
        log.append(("main in except again", sys.exc_info()[0]))
    log.append(("main after", sys.exc_info()[0]))
    stackless.run()
    assert log == [
        ("t start", None),
        ("main in except", IndexError),
        ("t in except", KeyError),
        ("main in except again", IndexError),
        ("main after", None),
        ("t in except again", KeyError),
        ("t after", None),
    ]


def test_exc_info_inside_handler_survives_channel_wait():
    ch = stackless.channel()
    seen = []

    def f():
        try:
            1 / 0
        except ZeroDivisionError:
            v = ch.receive()
            seen.append((v, sys.exc_info()[0]))
            try:
                raise
            except ZeroDivisionError:
                seen.append("bare raise re-raised the right exception")

    stackless.tasklet(f)()
    stackless.run()
    try:
        raise OSError("main")
    except OSError:
        ch.send("v")
        assert sys.exc_info()[0] is OSError
    assert seen == [("v", ZeroDivisionError), "bare raise re-raised the right exception"]


# ---------------------------------------------------------------------------
# contextvars


def test_tasklet_context_is_a_copy_of_its_creators():
    var = contextvars.ContextVar("test_pystate_var")
    token = var.set("main-before")
    try:
        seen = []

        def f(name):
            seen.append((name, "start", var.get()))
            var.set(name)
            stackless.schedule()
            seen.append((name, "after switch", var.get()))

        stackless.tasklet(f)("a")
        stackless.tasklet(f)("b")
        var.set("main-after")           # later changes in main are not seen
        stackless.run()
        assert var.get() == "main-after"
        assert seen == [
            ("a", "start", "main-before"),
            ("b", "start", "main-before"),
            ("a", "after switch", "a"),
            ("b", "after switch", "b"),
        ]
    finally:
        var.reset(token)


def test_tasklet_created_by_tasklet_copies_that_tasklets_context():
    var = contextvars.ContextVar("test_pystate_nested", default="default")
    seen = []

    def child():
        seen.append(("child", var.get()))
        var.set("child")

    def parent():
        var.set("parent")
        stackless.tasklet(child)()
        stackless.schedule()
        seen.append(("parent", var.get()))

    stackless.tasklet(parent)()
    stackless.run()
    assert seen == [("child", "parent"), ("parent", "parent")]
    assert var.get() == "default"


def test_context_id_differs_between_tasklets():
    ids = []

    def f():
        ids.append(stackless.getcurrent().context_id)

    stackless.tasklet(f)()
    stackless.tasklet(f)()
    stackless.run()
    assert len(set(ids)) == 2
    assert stackless.getcurrent().context_id not in ids


# ---------------------------------------------------------------------------
# Recursion depth


def _max_depth():
    """How many more frames fit on top of the caller's before RecursionError."""
    depth = [0]

    def probe(n):
        depth[0] = n
        probe(n + 1)

    try:
        probe(0)
    except RecursionError:
        pass
    return depth[0]


@pytest.mark.timeout(60)
def test_recursion_error_inside_tasklet_then_everyone_keeps_working():
    results = {}

    def f():
        results["tasklet max"] = _max_depth()
        stackless.schedule()
        results["tasklet again"] = _max_depth()

    def g():
        stackless.schedule()
        results["other"] = _max_depth()

    stackless.tasklet(f)()
    stackless.tasklet(g)()
    results["main before"] = _max_depth()
    stackless.run()
    results["main after"] = _max_depth()
    limit = sys.getrecursionlimit()
    # a tasklet starts with a fresh depth: deeper than main inside pytest
    assert results["tasklet max"] > results["main before"]
    assert results["tasklet max"] > limit - 50
    assert results["tasklet again"] == results["tasklet max"]
    assert results["other"] == results["tasklet max"]
    assert results["main after"] == results["main before"]


@pytest.mark.timeout(120)
def test_ten_thousand_tasklets_recursing_and_switching():
    rng = random.Random(20050501)
    depths = [rng.randrange(0, 60) for _ in range(10000)]
    results = [None] * len(depths)

    def rec(i, n):
        if n == 0:
            stackless.schedule()
            return i
        return rec(i, n - 1) + 1

    def f(i, n):
        results[i] = rec(i, n)

    for i, n in enumerate(depths):
        stackless.tasklet(f)(i, n)
    stackless.run()
    assert results == [i + n for i, n in enumerate(depths)]


# ---------------------------------------------------------------------------
# Generators and coroutines


def test_generators_suspended_across_switches():
    log = []

    def gen(name):
        for i in range(3):
            yield "%s%d" % (name, i)
            stackless.schedule()        # switch while the generator runs

    def f(name):
        g = gen(name)
        for item in g:
            log.append(item)
            stackless.schedule()        # switch while the generator is suspended

    stackless.tasklet(f)("a")
    stackless.tasklet(f)("b")
    stackless.run()
    assert sorted(log) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert [x for x in log if x[0] == "a"] == ["a0", "a1", "a2"]
    assert log[:2] == ["a0", "b0"]


def test_generator_created_in_one_tasklet_resumed_in_another():
    def counter():
        n = 0
        while True:
            n += 1
            yield n

    g = counter()
    got = []
    ch = stackless.channel()

    def a():
        got.append(next(g))
        ch.send("go")

    def b():
        ch.receive()
        got.append(next(g))

    stackless.tasklet(a)()
    stackless.tasklet(b)()
    stackless.run()
    assert got == [1, 2]


@types.coroutine
def _switch_point():
    value = yield "suspended"
    return value


def test_coroutines_driven_inside_tasklets():
    log = []

    async def job(name):
        total = 0
        for i in range(3):
            total += await _switch_point()
            stackless.schedule()          # switch while the coroutine runs
        return name, total

    def driver(name, step):
        coro = job(name)
        value = coro.send(None)
        assert value == "suspended"
        try:
            while True:
                stackless.schedule()      # switch while the coroutine is suspended
                coro.send(step)
        except StopIteration as stop:
            log.append(stop.value)

    stackless.tasklet(driver)("x", 1)
    stackless.tasklet(driver)("y", 10)
    stackless.run()
    assert sorted(log) == [("x", 3), ("y", 30)]


# ---------------------------------------------------------------------------
# Tracing


def test_settrace_applies_to_one_tasklet_only():
    calls = []

    def tracer(frame, event, arg):
        if event == "call":
            calls.append(frame.f_code.co_name)
        return None

    def traced_in_a():
        return 1

    def untraced_in_b():
        return 2

    seen_in_b = []

    def a():
        sys.settrace(tracer)
        try:
            traced_in_a()
            stackless.schedule()
            traced_in_a()
        finally:
            sys.settrace(None)

    def b():
        seen_in_b.append(sys.gettrace())
        untraced_in_b()
        stackless.schedule()
        untraced_in_b()

    stackless.tasklet(a)()
    stackless.tasklet(b)()
    stackless.run()
    assert calls.count("traced_in_a") == 2
    assert "untraced_in_b" not in calls
    assert "b" not in calls
    assert seen_in_b == [None]
    assert sys.gettrace() is None
