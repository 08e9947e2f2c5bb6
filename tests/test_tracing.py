"""Per-tasklet tracing (docs/guides/migrating.rst, "Tracing,
profiling and debuggers"): sys.settrace()/setprofile()
inside a tasklet apply to that tasklet only; tasklet.trace_function and
profile_function read and set them for any tasklet of the thread."""

import sys

import pytest

import stackless_compat as stackless


def traced_calls(log):
    def tracer(frame, event, arg):
        if event == "call":
            log.append((frame.f_code.co_name, stackless.getcurrent()))
        return tracer
    return tracer


def work_a():
    return 1


def work_b():
    return 2


def test_settrace_applies_to_the_calling_tasklet_only():
    log = []
    tracer = traced_calls(log)

    def a():
        sys.settrace(tracer)
        stackless.schedule()        # b and main run untraced meanwhile
        work_a()
        sys.settrace(None)

    def b():
        stackless.schedule()
        work_b()

    ta = stackless.tasklet(a)()
    tb = stackless.tasklet(b)()
    stackless.schedule()
    assert ta.trace_function is tracer
    assert tb.trace_function is None
    assert sys.gettrace() is None           # main is not traced
    stackless.run()
    assert [name for name, _ in log] == ["work_a"]
    assert all(t is ta for _, t in log)


def test_trace_function_set_before_start():
    log = []
    tracer = traced_calls(log)

    def body():
        work_a()

    t = stackless.tasklet(body)
    # as in Stackless: a tasklet that is not alive has no tracing state
    with pytest.raises(RuntimeError, match="tasklet is not alive"):
        t.trace_function = tracer
    with pytest.raises(RuntimeError, match="tasklet is not alive"):
        t.profile_function = tracer
    t.trace_function = None
    assert t.trace_function is None
    t.bind(body, ())
    t.trace_function = tracer
    assert t.trace_function is tracer
    t.insert()
    other = stackless.tasklet(work_b)()
    stackless.run()
    assert [name for name, _ in log] == ["body", "work_a"]
    assert t.trace_function is None and not other.alive


def test_trace_function_of_a_suspended_tasklet():
    log = []
    tracer = traced_calls(log)
    ch = stackless.channel()

    def body():
        ch.receive()
        work_a()

    t = stackless.tasklet(body)()
    stackless.run()
    t.trace_function = tracer
    ch.send(None)
    stackless.run()
    assert [name for name, _ in log] == ["work_a"]


def test_profile_function_per_tasklet():
    log = []

    def profiler(frame, event, arg):
        if event == "call":
            log.append(frame.f_code.co_name)

    def body():
        sys.setprofile(profiler)
        stackless.schedule()
        work_a()
        sys.setprofile(None)

    t = stackless.tasklet(body)()
    other = stackless.tasklet(work_b)()
    stackless.schedule()
    assert t.profile_function is profiler
    assert sys.getprofile() is None
    stackless.run()
    assert "work_a" in log and "work_b" not in log
    del other


def test_trace_function_validation():
    t = stackless.tasklet(work_a)
    with pytest.raises(TypeError, match="callable"):
        t.trace_function = 42
    t.trace_function = None
    assert t.trace_function is None
