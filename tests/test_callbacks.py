"""Channel and schedule callbacks (docs/api/stackless.rst, "Callbacks and
threads"; docs/guides/migrating.rst, "Callbacks")."""

import re
import sys
import threading

import pytest

import stackless_compat as stackless


@pytest.fixture
def channel_cb():
    calls = []

    def cb(ch, t, sending, willblock):
        calls.append((ch, t, sending, willblock))

    old = stackless.set_channel_callback(cb)
    assert stackless.get_channel_callback() is cb
    try:
        yield calls
    finally:
        assert stackless.set_channel_callback(old) is cb


def test_set_channel_callback_returns_previous():
    assert stackless.get_channel_callback() is None
    f = lambda *a: None   # noqa: E731
    assert stackless.set_channel_callback(f) is None
    assert stackless.set_channel_callback(None) is f
    assert stackless.get_channel_callback() is None


def test_channel_callback_arguments(channel_cb):
    ch = stackless.channel()
    receiver = stackless.tasklet(ch.receive)()
    stackless.run()                           # receive blocks
    main = stackless.getcurrent()
    ch.send(42)                               # a receiver is waiting
    assert channel_cb == [(ch, receiver, 0, 1), (ch, main, 1, 0)]
    channel_cb.clear()


def test_channel_action_inside_the_callback_is_refused():
    seen = []
    other = stackless.channel()

    def cb(ch, t, sending, willblock):
        try:
            other.send(1)
        except RuntimeError as e:
            seen.append(str(e))

    old = stackless.set_channel_callback(cb)
    try:
        ch = stackless.channel()
        stackless.tasklet(ch.send)("x")
        assert ch.receive() == "x"
    finally:
        stackless.set_channel_callback(old)
    stackless.run()
    assert seen and set(seen) == {"Recursive channel call due to callbacks!"}


def test_channel_callback_errors_are_swallowed():
    def cb(*args):
        raise ValueError("ignored")

    old = stackless.set_channel_callback(cb)
    try:
        ch = stackless.channel()
        stackless.tasklet(ch.send)("ok")
        assert ch.receive() == "ok"
    finally:
        stackless.set_channel_callback(old)
    stackless.run()


def test_schedule_callback_sees_every_switch():
    events = []

    def cb(prev, nxt):
        events.append((prev, nxt))

    assert stackless.set_schedule_callback(cb) is None
    try:
        assert stackless.get_schedule_callback() is cb
        main = stackless.getcurrent()
        t = stackless.tasklet(stackless.schedule)()
        stackless.run()
    finally:
        assert stackless.set_schedule_callback(None) is cb
    assert events[0] == (main, t)
    assert (t, main) in events or events[-1][1] is main
    for prev, nxt in events:
        assert prev is not nxt


def test_schedule_callback_prev_none_for_a_new_threads_main():
    events = []
    old = stackless.set_schedule_callback(lambda p, n: events.append((p, n)))
    try:
        box = {}
        th = threading.Thread(target=lambda: box.setdefault(
            "main", stackless.getmain()))
        th.start()
        th.join(10)
    finally:
        stackless.set_schedule_callback(old)
    assert (None, box["main"]) in events


def test_schedule_callback_errors_are_reported_as_unraisable(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    def cb(prev, nxt):
        raise KeyError("from the callback")

    old = stackless.set_schedule_callback(cb)
    try:
        stackless.tasklet(lambda: None)()
        stackless.run()
    finally:
        stackless.set_schedule_callback(old)
    assert reported
    assert isinstance(reported[0].exc_value, KeyError)
    assert "scheduling callback" in reported[0].err_msg
    reported.clear()


def test_switching_inside_the_schedule_callback_is_refused():
    errors = []

    def cb(prev, nxt):
        try:
            stackless.schedule()
        except RuntimeError as e:
            errors.append(str(e))

    old = stackless.set_schedule_callback(cb)
    try:
        t = stackless.tasklet(stackless.schedule)()
        stackless.run()
    finally:
        stackless.set_schedule_callback(old)
    assert errors and all(re.search("schedule callback", m) for m in errors)
    assert not t.alive


def test_channel_callback_sees_the_value_in_the_senders_tempval():
    # as in Stackless: the sender's tempval is the value being sent, a
    # receiver's is None, while the callback runs
    seen = []

    def cb(ch, t, sending, willblock):
        seen.append((sending, willblock, t.tempval))

    ch = stackless.channel()
    stackless.getcurrent().tempval = "old"
    receiver = stackless.tasklet(ch.receive)()
    receiver.tempval = "unused"
    old = stackless.set_channel_callback(cb)
    try:
        stackless.run()                       # receive blocks
        ch.send(42)                           # a receiver is waiting
        sender = stackless.tasklet(ch.send)("x")
        stackless.run()                       # send blocks
        assert ch.receive() == "x"
    finally:
        stackless.set_channel_callback(old)
    assert seen == [(0, 1, None), (1, 0, 42), (1, 1, "x"), (0, 0, None)]
    stackless.run()
    assert not receiver.alive and not sender.alive


def test_schedule_callback_at_a_tasklets_end_sees_its_tracing():
    # as in Stackless: the callback for the switch out of a tasklet that has
    # just returned runs while it is current: sys.gettrace() and
    # prev.trace_function are its trace function, next.trace_function is
    # next's own
    def tr(frame, event, arg):
        return None

    def tr2(frame, event, arg):
        return None

    seen = []

    def cb(prev, next):
        if prev is t:
            seen.append((stackless.getcurrent() is t, sys.gettrace(),
                         prev.trace_function, next.trace_function))

    def f():
        sys.settrace(tr2)

    old_trace = sys.gettrace()
    sys.settrace(tr)
    try:
        t = stackless.tasklet(f)()
        old = stackless.set_schedule_callback(cb)
        try:
            stackless.run()
        finally:
            stackless.set_schedule_callback(old)
    finally:
        sys.settrace(old_trace)
    assert seen == [(True, tr2, tr2, tr)]
    assert not t.alive and t.trace_function is None
