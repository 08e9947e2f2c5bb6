"""Allocation failures (fault injection): MemoryError, and the scheduler
stays consistent -- no crash, no lost tasklet, no lost message."""

import pytest

import stackless_compat as stackless
from stackless_compat import _stackless


@pytest.fixture(autouse=True)
def no_faults_left():
    yield
    _stackless._fault_inject(0)


def test_tasklet_and_channel_creation_fail_cleanly():
    _stackless._fault_inject(1)
    with pytest.raises(MemoryError):
        stackless.tasklet(lambda: None)
    _stackless._fault_inject(1)
    with pytest.raises(MemoryError):
        stackless.channel()
    assert stackless.getruncount() == 1
    t = stackless.tasklet(lambda: None)()
    stackless.run()
    assert not t.alive


def test_switch_save_failure_raises_in_the_switching_tasklet():
    log = []

    def f(tag):
        log.append(tag + "1")
        stackless.schedule()
        log.append(tag + "2")

    a = stackless.tasklet(f)("a")
    b = stackless.tasklet(f)("b")
    stackless.schedule()        # a runs, schedules to b, b to main: both
    assert log == ["a1", "b1"]  # now hold C stack copies
    # main's next switch needs no new memory, a's would: make a fail.
    log.clear()
    seen = []

    def g():
        try:
            _stackless._fault_inject(1)
            stackless.schedule()     # reserving the stack copy fails
        except MemoryError:
            seen.append("MemoryError")
        stackless.schedule()
        seen.append("done")

    c = stackless.tasklet(g)()
    d = stackless.tasklet(lambda: None)()   # so that g's schedule() switches
    stackless.run()
    assert seen == ["MemoryError", "done"]
    assert not d.alive
    assert log == ["a2", "b2"]
    assert not (a.alive or b.alive or c.alive)
    assert stackless.getruncount() == 1


def test_blocking_failure_loses_no_message():
    ch = stackless.channel()
    got = []

    def receiver():
        try:
            _stackless._fault_inject(1)
            got.append(ch.receive())         # blocking needs the copy
        except MemoryError:
            got.append("MemoryError")
        got.append(ch.receive())             # second try works

    t = stackless.tasklet(receiver)()
    stackless.run()
    assert got == ["MemoryError"]
    assert ch.balance == -1                  # blocked exactly once
    ch.send("hello")
    stackless.run()
    assert got == ["MemoryError", "hello"]
    assert not t.alive and ch.balance == 0


def test_first_data_stack_chunk_failure_falls_back():
    # the small first chunk of a new tasklet cannot be allocated: CPython
    # allocates its own, and the tasklet runs normally
    out = []

    def deep(n):
        return n if n == 0 else deep(n - 1) + 1

    def body():
        out.append(deep(50))

    for countdown in (1, 2, 3):
        stackless.tasklet(body)()
        _stackless._fault_inject(countdown)
        try:
            stackless.run()
        except MemoryError:
            pass
        _stackless._fault_inject(0)
        stackless.run()
    assert out == [50, 50, 50]


def test_many_injection_points_never_crash():
    """Fail the k-th allocation for k = 1..40 in a small program; every run
    ends with a consistent scheduler."""
    for k in range(1, 41):
        ch = stackless.channel()
        results = []

        def prod():
            for i in range(3):
                ch.send(i)

        def cons():
            for _ in range(3):
                results.append(ch.receive())

        try:
            _stackless._fault_inject(k)
            stackless.tasklet(prod)()
            stackless.tasklet(cons)()
            stackless.run()
        except MemoryError:
            pass
        finally:
            _stackless._fault_inject(0)
        # whatever failed, the rest can finish and nothing is lost
        stackless.run()
        while ch.balance > 0:
            results.append(ch.receive())
        while ch.balance < 0:
            ch.send(None)
            stackless.run()
        for t in list(_alive_tasklets()):
            t.kill()
        assert stackless.getruncount() == 1
        assert [r for r in results if r is not None] in ([0, 1, 2], [0, 1], [0], [])


def _alive_tasklets():
    import gc
    for o in gc.get_objects():
        if isinstance(o, stackless.tasklet) and o.alive and not o.is_main:
            yield o
