"""The watchdog: run(timeout) pre-empts a busy tasklet (docs/guides/watchdog.rst).  A tick is about one instruction (README, "Watchdog"): budgets up to
100,000 ticks are counted by a trace hook, so those tests assert exact,
repeatable counts; larger budgets are CPU time, so those tests assert
"interrupted", never when.
"""

import os
import threading
import time
import warnings

import pytest

import stackless_compat as stackless
from stackless_compat import _stackless

from helpers import scaled
from stackless_compat.hub import sleep as hub_sleep

# The largest budget the hook counts; larger ones are timed.
COUNTED_MAX = 100000
TIMED = COUNTED_MAX + 1

# A spin far longer than the watchdog's slice and its timer thread's latency
# (stretched under make valgrind, where threads run far less often).
LONG = scaled(0.05)


def spin_until_deferred():
    """Busy until the watchdog has tried to interrupt and had to wait
    (atomic, nesting...): no guess at how long its timer thread takes."""
    start = _stackless._watchdog_deferred()
    end = time.monotonic() + scaled(10)
    while _stackless._watchdog_deferred() == start:
        if time.monotonic() > end:
            raise AssertionError("the watchdog never tried to interrupt")


def busy(counter):
    while True:
        counter[0] += 1


def spin():
    while True:
        pass


def test_busy_tasklet_is_interrupted_and_returned_paused():
    n = [0]
    t = stackless.tasklet(busy)(n)
    r = stackless.run(1000)
    assert r is t
    assert t.alive and t.paused and not t.scheduled
    assert n[0] > 0
    assert stackless.getruncount() == 1
    # it can be resumed and interrupted again
    t.insert()
    before = n[0]
    assert stackless.run(1000) is t
    assert n[0] > before
    t.kill()


def test_single_instruction_loop_is_interrupted():
    t = stackless.tasklet(spin)()
    assert stackless.run(100) is t
    t.kill()


def test_interrupt_waits_for_atomic():
    log = []

    def f():
        with stackless.atomic():
            spin_until_deferred()
            log.append("atomic done")
        log.append("after")
        spin()

    t = stackless.tasklet(f)()
    assert stackless.run(1000) is t
    # interrupted right after the atomic block, before the next line ran
    assert log == ["atomic done"]
    t.kill()


def test_set_atomic_defers_too():
    log = []

    def f():
        old = stackless.getcurrent().set_atomic(True)
        spin_until_deferred()
        log.append("done")
        stackless.getcurrent().set_atomic(old)
        spin()

    t = stackless.tasklet(f)()
    assert stackless.run(1000) is t
    assert log == ["done"]
    t.kill()


def test_cooperative_tasklets_are_not_interrupted_without_totaltimeout():
    counts = [0, 0]

    def sched(i, rounds):
        for _ in range(rounds):
            counts[i] += 1
            stackless.schedule()

    stackless.tasklet(sched)(0, 20000)
    stackless.tasklet(sched)(1, 20000)
    # each slice is microseconds long; 10**6 ticks is 20 ms (robust even
    # on a loaded machine or under a sanitizer)
    assert stackless.run(10 ** 6) is None
    assert counts == [20000, 20000]


def test_totaltimeout_interrupts_schedulers():
    def sched():
        while True:
            stackless.schedule()

    a, b = stackless.tasklet(sched)(), stackless.tasklet(sched)()
    r = stackless.run(10000, totaltimeout=True)
    assert r in (a, b)
    assert r.paused
    other = b if r is a else a
    assert other.scheduled
    a.kill()
    b.kill()


def test_soft_returns_none_and_leaves_the_victim_queued():
    t = stackless.tasklet(lambda: [stackless.schedule() for _ in iter(int, 1)])()
    r = stackless.run(1000, soft=True)
    assert r is None
    assert t.scheduled
    t.kill()


def test_nesting_defers_unless_ignore_nesting():
    import operator
    ready = []

    def nested():
        # a C-level re-entry: nesting_level 1 while inside
        operator.call(spin_nested, ready, True)

    def spin_nested(r, until_deferred=False):
        r.append(stackless.getcurrent().nesting_level)
        if until_deferred:
            spin_until_deferred()
        else:
            end = time.monotonic() + LONG
            while time.monotonic() < end:
                pass
        r.append("left")
        # back at nesting 0 after this returns

    def body():
        nested()
        spin()

    t = stackless.tasklet(body)()
    assert stackless.run(1000) is t
    assert ready == [1, "left"]             # not interrupted while nested
    t.kill()

    ready2 = []

    def body2():
        operator.call(spin_nested, ready2)
        spin()

    t2 = stackless.tasklet(body2)()
    assert stackless.run(1000, ignore_nesting=True) is t2
    assert ready2 == [1]                    # interrupted inside the C call
    t2.kill()


def test_inner_run_with_timeout_acts_as_plain_run():
    inner = []

    def watcher():
        stackless.tasklet(spin)()
        inner.append(stackless.run(10 ** 9))     # not an interrupt watchdog

    stackless.tasklet(watcher)()
    r = stackless.run(1000)                     # the outer one interrupts
    assert r is not None and r.paused
    # the inner run() caller went back to the queue: nothing is lost
    assert stackless.getruncount() == 2
    stackless.run()
    assert inner == [None]
    r.kill()


def test_interrupted_tasklet_can_be_killed_with_finally():
    log = []

    def f():
        try:
            spin()
        finally:
            log.append("finally")

    t = stackless.tasklet(f)()
    assert stackless.run(1000) is t
    t.kill()
    assert log == ["finally"] and not t.alive


def test_watchdog_in_another_thread():
    box = {}

    def worker():
        t = stackless.tasklet(spin)()
        box["r"] = stackless.run(1000) is t
        t.kill()

    th = threading.Thread(target=worker)
    th.start()
    th.join(30)
    assert not th.is_alive()
    assert box["r"] is True


def test_threadblock_waits_for_work_from_another_thread():
    got = []

    def other(main_t):
        time.sleep(0.1)
        main_t.insert()

    target = stackless.tasklet(got.append, ("inserted",))   # bound, paused
    th = threading.Thread(target=other, args=(target,))
    th.start()
    try:
        assert stackless.run(10 ** 9, threadblock=True) is None
        assert got == ["inserted"]
    finally:
        th.join(30)


# --- counted budgets: Stackless's tick semantics ---------------------------

def counting_loop(n, seen):
    for i in range(n):
        seen[0] = i + 1


def test_run_100_stops_a_1000_iteration_loop_part_way():
    seen = [0]
    t = stackless.tasklet(counting_loop)(1000, seen)
    assert stackless.run(100) is t
    first = seen[0]
    assert 0 < first < 1000
    # the count is exact: a fresh tasklet stops at the same iteration
    seen2 = [0]
    t2 = stackless.tasklet(counting_loop)(1000, seen2)
    t.remove() if t.scheduled else None
    assert stackless.run(100) is t2
    assert seen2[0] == first
    # and resuming it runs one more budget's worth
    t2.insert()
    assert stackless.run(100) is t2
    assert 2 * first - 2 <= seen2[0] <= 2 * first + 2
    t.kill()
    t2.kill()


def round_robin(timeout, tasklets):
    interrupts = {t: 0 for t in tasklets}
    while stackless.getruncount() > 1:
        r = stackless.run(timeout)
        if r is not None:
            interrupts[r] += 1
            r.insert()
    return interrupts


def busy_loop(n, done):
    x = 0
    for i in range(n):
        x += i
    done.append(x)


def test_round_robin_of_run_1000_interrupts_each_busy_loop_many_times():
    done = []
    ts = [stackless.tasklet(busy_loop)(300000, done) for _ in range(3)]
    counts = round_robin(1000, ts)
    assert len(done) == 3 and not any(t.alive for t in ts)
    values = sorted(counts.values())
    assert values[0] >= 100
    # fair: the same code gets the same number of slices
    assert values[-1] - values[0] <= 1


def test_totaltimeout_counted_interrupts_tasklets_that_schedule():
    counts = [0, 0]

    def sched(i):
        while True:
            counts[i] += 1
            stackless.schedule()

    a, b = stackless.tasklet(sched)(0), stackless.tasklet(sched)(1)
    assert stackless.run(3000, totaltimeout=True) in (a, b)
    assert counts[0] > 10 and counts[1] > 10
    # without totaltimeout every switch starts a new slice
    c = [0]

    def few():
        for _ in range(2000):
            c[0] += 1
            stackless.schedule()

    a.kill()
    b.kill()
    stackless.tasklet(few)()
    stackless.tasklet(few)()
    assert stackless.run(3000) is None
    assert c[0] == 4000


def test_atomic_defers_a_counted_interrupt_to_the_end_of_the_block():
    log = []

    def f():
        with stackless.atomic():
            for i in range(1000):
                pass
            log.append("atomic done")
        log.append("after")
        spin()

    t = stackless.tasklet(f)()
    deferred = _stackless._watchdog_deferred()
    assert stackless.run(100) is t
    assert log == ["atomic done"]
    assert _stackless._watchdog_deferred() > deferred
    t.kill()


def test_nesting_defers_a_counted_interrupt_unless_ignore_nesting():
    import operator
    log = []

    def inner():
        for i in range(1000):
            pass
        log.append("inner done")

    def body():
        operator.call(inner)        # nesting_level 1 inside
        log.append("back")
        spin()

    t = stackless.tasklet(body)()
    deferred = _stackless._watchdog_deferred()
    assert stackless.run(100) is t
    # deferred (budget after budget) while nested, then interrupted in spin()
    assert log == ["inner done", "back"]
    assert _stackless._watchdog_deferred() - deferred >= 10
    t.kill()
    log.clear()
    t = stackless.tasklet(body)()
    assert stackless.run(100, ignore_nesting=True) is t
    assert log == []                # interrupted inside the C call
    t.kill()


def test_counted_interrupt_in_another_thread():
    box = {}

    def worker():
        seen = [0]
        t = stackless.tasklet(counting_loop)(1000, seen)
        box["r"] = stackless.run(100) is t
        box["seen"] = seen[0]
        t.kill()

    th = threading.Thread(target=worker)
    th.start()
    th.join(30)
    assert not th.is_alive()
    assert box["r"] is True and 0 < box["seen"] < 1000


def test_the_tasklets_own_trace_function_keeps_its_events():
    import sys
    lines = []

    def tracer(frame, event, arg):
        if event == "line" and frame.f_code.co_name == "counting_loop":
            lines.append(frame.f_lineno)
        return tracer

    seen = [0]

    def traced():
        assert sys.gettrace() is tracer
        counting_loop(1000, seen)
        assert sys.gettrace() is tracer     # still its own under the hook

    t = stackless.tasklet(traced)()
    t.trace_function = tracer
    t.set_ignore_nesting(1)
    n = 0
    while t.alive:
        r = stackless.run(500)
        if r is not None:
            n += 1
            r.insert()
    assert n > 0
    assert seen[0] == 1000
    # both lines of the loop, every iteration, and no opcode events
    assert len(lines) >= 2000


def test_no_opcode_events_leak_to_a_later_tracer():
    import sys
    events = []

    def tracer(frame, event, arg):
        events.append(event)
        return tracer

    def f():
        stackless.schedule()            # suspended while flagged
        for i in range(50):
            pass

    t = stackless.tasklet(f)()
    stackless.run(100)                  # runs f up to its schedule()
    assert t.alive
    t.remove()
    sys.settrace(tracer)
    try:
        t.run()
    finally:
        sys.settrace(None)
    assert not t.alive
    assert "opcode" not in events


def test_a_watchdog_woken_by_hand_releases_the_inner_ones():
    done = []

    def wakeup():
        stackless.main.run()
        done.append("wakeup")

    def runner():
        stackless.tasklet(wakeup)()
        stackless.run()
        done.append("runner")

    stackless.tasklet(runner)()
    stackless.run()
    assert done == []
    stackless.run()
    assert sorted(done) == ["runner", "wakeup"]


# --- soft interrupts: taken at the next switch of any kind -----------------

def channel_ring(n_rounds=None):
    chans = [stackless.channel() for _ in range(3)]

    def member(i):
        a, b = i, (i + 1) % 3
        first = i == 0
        while True:
            if not first:
                chans[a].receive()
            first = False
            j = 0
            for k in range(300):
                j = k + k
            chans[b].send(j)

    ts = [stackless.tasklet(member) for _ in range(3)]
    for i, t in enumerate(reversed(ts)):
        t(i)
    return ts


@pytest.mark.parametrize("budget", [50000, 5 * TIMED])
def test_soft_totaltimeout_returns_over_channel_only_tasklets(budget):
    ts = channel_ring()
    try:
        for _ in range(5):
            r = stackless.run(budget, soft=True, totaltimeout=True,
                              ignore_nesting=True)
            assert r is None
            assert stackless.getruncount() in (3, 4)
            assert all(t.alive for t in ts)
    finally:
        for t in ts:
            t.kill()


def test_soft_interrupt_at_a_hub_wait():
    rounds = [0]

    def waiter():
        while True:
            for i in range(1000):
                pass
            rounds[0] += 1
            hub_sleep(0)

    t = stackless.tasklet(waiter)()
    assert stackless.run(500, soft=True) is None
    assert t.alive and rounds[0] == 1       # returned at its first wait
    t.kill()


def test_soft_interrupt_at_the_end_of_a_tasklet():
    done = []

    def work(i):
        for k in range(1000):
            pass
        done.append(i)

    for i in range(5):
        stackless.tasklet(work)(i)
    assert stackless.run(500, soft=True) is None
    assert done == [0]                      # run() returned at its end
    stackless.run()
    assert done == [0, 1, 2, 3, 4]


def test_soft_without_a_switch_waits_for_one():
    log = []

    def f():
        for i in range(1000):
            pass
        log.append("loop done")
        stackless.schedule()
        log.append("resumed")

    t = stackless.tasklet(f)()
    assert stackless.run(100, soft=True) is None
    assert log == ["loop done"]
    assert t.scheduled
    stackless.run()
    assert log == ["loop done", "resumed"]


# --- timed budgets ---------------------------------------------------------

def test_timed_round_robin_interrupts_each_loop():
    done = []
    ts = [stackless.tasklet(busy_loop)(2000000, done) for _ in range(3)]
    counts = round_robin(TIMED, ts)     # 2 ms of CPU time per slice
    assert len(done) == 3
    assert min(counts.values()) >= 2


def test_timed_interrupt_in_another_thread_with_its_own_trace():
    import sys
    box = {}

    def tracer(frame, event, arg):
        return tracer

    def worker():
        sys.settrace(tracer)
        try:
            t = stackless.tasklet(spin)()
            box["r"] = stackless.run(TIMED) is t
            t.kill()
            box["trace"] = sys.gettrace() is tracer
        finally:
            sys.settrace(None)

    th = threading.Thread(target=worker)
    th.start()
    th.join(30)
    assert not th.is_alive()
    assert box == {"r": True, "trace": True}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_timed_watchdog_in_a_forked_child():
    # the timer thread is started in the parent first; the child needs its own
    t = stackless.tasklet(spin)()
    assert stackless.run(TIMED) is t
    t.kill()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            c = stackless.tasklet(spin)()
            code = 0 if stackless.run(TIMED) is c else 2
            c.kill()
        finally:
            os._exit(code)
    end = time.monotonic() + scaled(30)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > end:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the child's watchdog never fired")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
