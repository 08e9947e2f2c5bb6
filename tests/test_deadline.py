"""patches/_deadline.py: the deadline and retry loop of the patches' timed
waits, and the timeouts of the patched calls that use it (the stdlib's
exception and message, or its empty result)."""
import time

import pytest

from stackless_compat.patches._deadline import AGAIN, Deadline, retry

import helpers


def test_deadline_without_timeout():
    d = Deadline(None)
    assert d.remaining() is None
    assert not d.passed()
    assert d.slice(0.25) == 0.25


def test_deadline_counts_down_and_passes():
    d = Deadline(0.05)
    left = d.remaining()
    assert 0 < left <= 0.05
    assert 0 < d.slice(10) <= 0.05
    assert d.slice(0.001) == 0.001
    time.sleep(0.06)
    assert d.passed()
    assert d.remaining() <= 0
    assert d.slice(1) == 0.0
    assert Deadline(0).passed()


def test_retry_returns_the_first_result():
    parks = []
    assert retry(lambda: "ok", parks.append, 1.0, lambda: "expired") == "ok"
    assert parks == []


def test_retry_parks_between_attempts():
    results = iter([AGAIN, AGAIN, 42])
    parks = []
    assert retry(lambda: next(results), parks.append, None,
                 lambda: "expired") == 42
    assert parks == [None, None]


def test_retry_parks_with_the_time_left_then_expires():
    parks = []

    def park(remaining):
        parks.append(remaining)
        time.sleep(remaining)

    assert retry(lambda: AGAIN, park, 0.03, lambda: "expired") == "expired"
    assert parks and all(0 < r <= 0.03 for r in parks)
    assert parks == sorted(parks, reverse=True)


def test_retry_expired_may_raise():
    def expired():
        raise TimeoutError("timed out")

    with pytest.raises(TimeoutError, match="^timed out$"):
        retry(lambda: AGAIN, lambda r: None, 0, expired)


def test_retry_attempted_starts_by_parking():
    calls = []

    def attempt():
        calls.append("attempt")
        return "done"

    def park(remaining):
        calls.append("park")

    assert retry(attempt, park, None, lambda: None, attempted=True) == "done"
    assert calls == ["park", "attempt"]
    calls.clear()
    # with no time left, a caller's own attempt was the last one
    assert retry(attempt, park, 0, lambda: "expired",
                 attempted=True) == "expired"
    assert calls == []


def test_patched_timeouts_match_the_stdlib():
    """The patched calls time out as the stdlib's: the same exception and
    message, or the same empty result, while other tasklets keep running."""
    out = helpers.run_patched("""
import select, socket, ssl, time
ticks = [0]
def ticker():
    while ticks[0] >= 0:
        ticks[0] += 1
        time.sleep(0.001)
sl.tasklet(ticker)()
res = {}
def main():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.05)
    try:
        srv.accept()
    except TimeoutError as e:
        res["accept"] = (type(e).__name__, str(e))
    c = socket.create_connection(srv.getsockname())
    c.settimeout(0.05)
    try:
        c.recv(10)
    except TimeoutError as e:
        res["recv"] = (type(e).__name__, str(e))
    res["select"] = select.select([c], [], [], 0.05)
    p = select.poll()
    p.register(c, select.POLLIN)
    res["poll"] = p.poll(50)
    ep = select.epoll()
    ep.register(c.fileno(), select.EPOLLIN)
    res["epoll"] = ep.poll(0.05)
    ep.close()
    res["select_no_fds"] = select.select([], [], [], 0.02)
    c.close()
    srv.close()
    ticks.append(ticks[0])
    ticks[0] = -1
sl.tasklet(main)()
sl.run()
print(repr(res))
print(ticks[-1] > 20)
""")
    lines = out.splitlines()
    res = eval(lines[0])
    assert res == {
        "accept": ("TimeoutError", "timed out"),
        "recv": ("TimeoutError", "timed out"),
        "select": ([], [], []),
        "poll": [],
        "epoll": [],
        "select_no_fds": ([], [], []),
    }
    assert lines[1] == "True", out
