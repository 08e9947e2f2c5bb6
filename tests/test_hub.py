"""The hub: sleep, fd waits, Timeout, kill/throw of waiting tasklets,
idle = poll, KeyboardInterrupt during a poll."""
import os
import signal
import socket
import time

import pytest

import stackless_compat as sl
from stackless_compat import _stackless
from stackless_compat.hub import Timeout, sleep, wait_read, wait_write, with_timeout

import helpers


def active():
    return _stackless._hub_info()["active"]


def test_sleep_main_alone_sleeps():
    t0 = time.monotonic()
    sleep(0.05)
    assert 0.045 <= time.monotonic() - t0 < 1.0
    assert active() == 0


def test_sleep_zero_is_schedule():
    order = []

    def f(n):
        for i in range(3):
            order.append((n, i))
            sleep(0)

    sl.tasklet(f)(1)
    sl.tasklet(f)(2)
    sl.run()
    assert order == [(1, 0), (2, 0), (1, 1), (2, 1), (1, 2), (2, 2)]


def test_sleep_errors():
    with pytest.raises(ValueError):
        sleep(-1)
    with pytest.raises(TypeError):
        sleep("x")


def test_sleepers_wake_in_deadline_order():
    out = []

    def f(n):
        sleep(n * 0.01)
        out.append(n)

    for n in (5, 1, 3, 2, 4):
        sl.tasklet(f)(n)
    sl.run()
    assert out == [1, 2, 3, 4, 5]
    assert active() == 0


def test_many_sleepers_run_returns_after_all():
    out = []

    def f(i):
        sleep(0.001 * (i % 7))
        out.append(i)

    for i in range(1000):
        sl.tasklet(f)(i)
    sl.run()
    assert sorted(out) == list(range(1000))


def test_wait_read_pipe():
    r, w = os.pipe()
    got = []
    try:
        def reader():
            wait_read(r)
            got.append(os.read(r, 10))

        sl.tasklet(reader)()
        sl.schedule()
        assert got == []
        os.write(w, b"hi")
        sleep(0.01)
        assert got == [b"hi"]
        with pytest.raises(TimeoutError):
            wait_read(r, timeout=0.01)
        wait_write(w, timeout=1)
    finally:
        os.close(r)
        os.close(w)


def test_wait_accepts_fileno_objects():
    a, b = socket.socketpair()
    with a, b:
        b.send(b"x")
        wait_read(a, 1)
        wait_write(a, 1)


def test_kill_sleeping_tasklet_stops_timer():
    seen = []

    def f():
        try:
            sleep(10)
        except sl.TaskletExit:
            seen.append("exit")
            raise

    t = sl.tasklet(f)()
    sl.schedule()
    assert active() == 1
    t.kill()
    assert seen == ["exit"]
    assert active() == 0


def test_throw_into_fd_waiter_stops_watcher():
    r, w = os.pipe()
    seen = []
    try:
        def f():
            try:
                wait_read(r)
            except ZeroDivisionError:
                seen.append("zde")

        t = sl.tasklet(f)()
        sl.schedule()
        assert active() == 1
        t.throw(ZeroDivisionError)
        assert seen == ["zde"]
        assert active() == 0
        # the fd can be waited on again: no stale waiter
        os.write(w, b"x")
        wait_read(r, 1)
    finally:
        os.close(r)
        os.close(w)


def test_two_readers_on_one_fd_is_an_error():
    r, w = os.pipe()
    try:
        t = sl.tasklet(wait_read)(r)
        sl.schedule()
        with pytest.raises(RuntimeError, match="already waiting"):
            wait_read(r)
        t.kill()
    finally:
        os.close(r)
        os.close(w)


def test_cancel_fd_wakes_with_ebadf():
    r, w = os.pipe()
    errs = []
    try:
        def f():
            try:
                wait_read(r)
            except OSError as e:
                errs.append(e.errno)

        sl.tasklet(f)()
        sl.schedule()
        assert _stackless._cancel_fd(r) == 1
        sl.schedule()
        import errno
        assert errs == [errno.EBADF]
    finally:
        os.close(r)
        os.close(w)


def test_timeout_context_manager():
    t0 = time.monotonic()
    with pytest.raises(Timeout) as info:
        with Timeout(0.02):
            sleep(5)
    assert time.monotonic() - t0 < 1
    assert str(info.value) == "0.02 seconds"
    assert active() == 0


def test_timeout_not_expired_is_cancelled():
    with Timeout(5) as t:
        sleep(0.001)
    assert not t.pending
    assert active() == 0


def test_timeout_custom_exception_and_false():
    with pytest.raises(KeyError):
        with Timeout(0.01, KeyError("k")):
            sleep(1)
    with pytest.raises(ValueError):
        with Timeout(0.01, ValueError):
            sleep(1)
    with Timeout(0.01, False):
        sleep(1)
    assert with_timeout(0.01, sleep, 1, timeout_value="tv") == "tv"


def test_timeout_on_channel_receive():
    ch = sl.channel()
    with pytest.raises(Timeout):
        with Timeout(0.01):
            ch.receive()
    assert ch.balance == 0


def test_timeout_in_other_tasklet_on_fd_wait():
    r, w = os.pipe()
    res = []
    try:
        def f():
            try:
                with Timeout(0.01):
                    wait_read(r)
            except Timeout:
                res.append("timeout")

        sl.tasklet(f)()
        sl.run()
        sleep(0.05)
        assert res == ["timeout"]
        assert active() == 0
    finally:
        os.close(r)
        os.close(w)


def test_timeout_none_never_expires():
    with Timeout(None) as t:
        sleep(0.001)
    assert not t.pending


def test_sleep0_spinner_does_not_starve_io():
    a, b = socket.socketpair()
    done = []
    with a, b:
        def reader():
            wait_read(a)
            done.append(a.recv(10))

        def spinner():
            while not done:
                sleep(0)

        sl.tasklet(reader)()
        sl.tasklet(spinner)()
        sl.schedule()
        b.send(b"go")
        sl.run()
        assert done == [b"go"]


def test_keyboard_interrupt_during_poll_reaches_main():
    code = r'''
import os, signal, threading, time
import stackless_compat as sl
from stackless_compat.hub import sleep
# A process started in the background by a non-interactive shell inherits
# SIGINT ignored, and Python then installs no handler: install it here.
signal.signal(signal.SIGINT, signal.default_int_handler)
threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
def other():
    sleep(30)
sl.tasklet(other)()
t0 = time.monotonic()
try:
    sl.run()
    sleep(30)
except KeyboardInterrupt:
    print("KI", round(time.monotonic() - t0, 1) < 5)
'''
    proc = helpers.run_py(code)
    assert "KI True" in proc.stdout, helpers.describe(proc)


def test_run_waits_for_sleeping_tasklets():
    # run() goes on while hub waits can still complete (no deadlock, no
    # early return): main only calls run().
    log = []

    def sleeper(d, tag):
        sl.sleep(d)
        log.append(tag)

    sl.tasklet(sleeper)(0.05, "late")
    sl.tasklet(sleeper)(0.01, "early")
    start = time.monotonic()
    assert sl.run() is None
    assert log == ["early", "late"]
    assert time.monotonic() - start >= 0.04


def test_schedule_loop_does_not_starve_timers():
    log = []

    def spinner():
        while not log:
            sl.schedule()

    def sleeper():
        sl.sleep(0.01)
        log.append("woke")

    sl.tasklet(spinner)()
    sl.tasklet(sleeper)()
    sl.run()
    assert log == ["woke"]


def test_pending_kill_wins_over_a_timeout_that_fires_before_it_runs():
    """A Timeout expiring after its tasklet was killed (pending), before
    the kill is delivered, used to replace the TaskletExit."""
    r, w = os.pipe()
    log = []

    def victim():
        try:
            with Timeout(0.01):
                wait_read(r)
        except TaskletExit:             # noqa: F821 - a builtin
            log.append("TaskletExit")
            raise
        except Timeout:
            log.append("Timeout")

    try:
        t = sl.tasklet(victim)()
        sl.schedule()                   # it waits in wait_read
        t.kill(pending=True)            # runnable, TaskletExit on its way
        time.sleep(0.03)                # the Timeout is due ...
        sleep(0)                        # ... and fires in this poll
        sl.run()
        assert log == ["TaskletExit"]
        assert active() == 0
    finally:
        os.close(r)
        os.close(w)


def test_timeout_timers_are_freed():
    """Each _hub_timer holds a reference to its heap type, released when
    it is freed (it used to be leaked: the type's refcount grew by one per
    Timeout)."""
    import gc
    import sys
    gc.collect()
    before = sys.getrefcount(_stackless._hub_timer)
    for i in range(50):
        t = Timeout(10)
        t.start()
        t.cancel()                      # cancelled
        try:
            with Timeout(0.001):        # expired and delivered
                sleep(1)
        except Timeout:
            pass
    del t
    gc.collect()
    after = sys.getrefcount(_stackless._hub_timer)
    assert after == before
