"""DNS faults: a server that stops answering, dies, and comes back, while
tasklets resolve through it; random kills of tasklets parked in lookups.

Each test starts its own dnsmasq (tests/dns/server.py) so it can stop,
freeze (SIGSTOP) and restart it without disturbing tests/test_dns.py.
What must hold, whatever the server does:

* a lookup in flight ends, with its answer or with the error glibc gives
  for a server that does not answer (``EAI_AGAIN``, "Temporary failure in
  name resolution"), never hangs and never gets another name's answer;
* the other tasklets keep running while lookups wait;
* once the server answers again, lookups succeed again on the same channel;
* nothing leaks: pending requests, libev watchers, fds, our objects.
"""
import gc
import os
import random
import signal
import socket as S
import time

import pytest

import helpers
import stackless_compat as sl
from stackless_compat import _stackless
from stackless_compat.hub import sleep
from stackless_compat.patches import dns

from helpers import UNDER_VALGRIND, scaled

Dnsmasq = helpers.dns_server_module().Dnsmasq

EAI_AGAIN = (S.EAI_AGAIN, "Temporary failure in name resolution")
TaskletExit = sl.TaskletExit
# Served from a hosts file written by the fixture, one address each.
NAMES = ["f%03d.faults.test" % i for i in range(200)]


def expected(name):
    return "10.4.%d.%d" % divmod(int(name[1:4]) + 1, 256)


@pytest.fixture
def server(tmp_path):
    hosts = tmp_path / "faults.hosts"
    hosts.write_text("".join("%s %s\n" % (expected(n), n) for n in NAMES))
    d = Dnsmasq(extra=["--addn-hosts=%s" % hosts])
    try:
        d.start()
    except Exception as exc:      # not installed, cannot bind...
        pytest.skip("cannot start dnsmasq: %s" % exc)
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGCONT)
        d.stop()
        dns.configure()


def active_watchers():
    return _stackless._hub_info()["active"]


def pending():
    return _stackless._dns_info()["pending"]


def settle(deadline=5.0):
    """Let c-ares finish whatever is still in flight."""
    end = time.monotonic() + scaled(deadline)
    while pending() and time.monotonic() < end:
        sleep(0.01)
    assert pending() == 0


def lookups(names, out):
    """Start one tasklet per name, recording (name, outcome) in out."""
    def look(name):
        try:
            out.append((name, True, dns.gethostbyname(name)))
        except S.gaierror as exc:
            out.append((name, False, exc.args))
    return [sl.tasklet(look)(n) for n in names]


def wait_for(cond, limit):
    end = time.monotonic() + scaled(limit)
    while not cond():
        assert time.monotonic() < end, "timed out"
        sleep(0.005)


def check_outcomes(out, allow_fail=True):
    for name, ok, value in out:
        if ok:
            assert value == expected(name), (name, value)   # never mixed up
        else:
            assert allow_fail, (name, value)
            assert value == EAI_AGAIN, (name, value)


def test_server_frozen_then_thawed(server):
    dns.configure([server.server], timeout=0.3, tries=1)
    assert dns.gethostbyname(NAMES[0]) == expected(NAMES[0])
    ticks = []

    def ticker():
        while True:
            ticks.append(1)
            sleep(0.005)
    tk = sl.tasklet(ticker)()
    server.proc.send_signal(signal.SIGSTOP)       # stops answering
    try:
        out = []
        ts = lookups(NAMES[1:21], out)
        wait_for(lambda: len(out) == 20, 10)
        # The server did not answer: every lookup failed as glibc fails,
        # and the scheduler went on meanwhile.
        assert sorted(o[2] for o in out) == [EAI_AGAIN] * 20
        assert len(ticks) >= 10, "the scheduler was blocked"
        assert not any(t.alive for t in ts)
    finally:
        server.proc.send_signal(signal.SIGCONT)
    # Answers again: the same channel recovers.
    out = []
    lookups(NAMES[21:41], out)
    wait_for(lambda: len(out) == 20, 10)
    check_outcomes(out, allow_fail=False)
    tk.kill()
    settle()


def test_server_frozen_and_thawed_while_lookups_are_in_flight(server):
    # Ten tasklets resolve ten names each, one after the other; the server
    # freezes after 30 answers (ten lookups are then in flight) and thaws
    # after 30 more outcomes.  Each lookup ends with its own answer or
    # EAI_AGAIN, none hangs, none is lost, and lookups after the thaw work.
    dns.configure([server.server], timeout=0.2, tries=1)
    out = []

    def record(item):
        # Synchronous with the outcomes: a local dnsmasq answers the whole
        # run faster than a poll loop could look.
        out.append(item)
        if len(out) == 30:
            server.proc.send_signal(signal.SIGSTOP)
        elif len(out) == 60:
            server.proc.send_signal(signal.SIGCONT)

    def worker(names):
        for name in names:
            try:
                record((name, True, dns.gethostbyname(name)))
            except S.gaierror as exc:
                record((name, False, exc.args))
    names = NAMES[:100]
    for k in range(10):
        sl.tasklet(worker)(names[k::10])
    wait_for(lambda: len(out) == 100, 20)
    assert sorted(o[0] for o in out) == sorted(names)
    check_outcomes(out)
    failed = [o for o in out if not o[1]]
    assert 10 <= len(failed) <= 70, len(failed)
    assert all(o[1] for o in out[-10:]), out[-10:]     # recovered
    settle()


def test_server_dies_and_comes_back_on_the_same_port(server):
    dns.configure([server.server], timeout=0.3, tries=2)
    assert dns.gethostbyname(NAMES[0]) == expected(NAMES[0])
    port = server.port
    server.stop()                 # the port is closed: ICMP unreachable
    t0 = time.monotonic()
    with pytest.raises(S.gaierror) as ei:
        dns.getaddrinfo(NAMES[1], 80, S.AF_INET)
    assert ei.value.args == EAI_AGAIN
    assert time.monotonic() - t0 < scaled(3)
    out = []
    lookups(NAMES[2:12], out)
    wait_for(lambda: len(out) == 10, 10)
    assert [o[2] for o in out] == [EAI_AGAIN] * 10
    # Back on the same port: lookups work again without reconfiguring.
    server.fixed_port = port
    server.start()
    out = []
    lookups(NAMES[12:32], out)
    wait_for(lambda: len(out) == 20, 10)
    check_outcomes(out, allow_fail=False)
    settle()


def _kill_round(rng, server_name, n):
    """Tasklets parked in lookups, sleeps and channel receives; a random
    subset is killed or thrown into; the rest must finish normally."""
    ch = sl.channel()
    results = {}
    kinds = {}

    def dns_waiter(i, name):
        try:
            results[i] = dns.gethostbyname(name)
        except TaskletExit:
            results[i] = "killed"
            raise
        except ValueError:
            results[i] = "thrown"

    def sleeper(i):
        try:
            sleep(0.02)
            results[i] = "slept"
        except TaskletExit:
            results[i] = "killed"
            raise
        except ValueError:
            results[i] = "thrown"

    def receiver(i):
        try:
            results[i] = ch.receive()
        except TaskletExit:
            results[i] = "killed"
            raise
        except ValueError:
            results[i] = "thrown"

    ts = []
    for i in range(n):
        k = rng.choice(("dns", "dns", "sleep", "chan"))
        kinds[i] = k
        if k == "dns":
            name = rng.choice(NAMES)
            kinds[i] = ("dns", name)
            ts.append(sl.tasklet(dns_waiter)(i, name))
        elif k == "sleep":
            ts.append(sl.tasklet(sleeper)(i))
        else:
            ts.append(sl.tasklet(receiver)(i))
    sleep(0)                                  # everyone parks
    victims = rng.sample(range(n), n // 3)
    for i in victims:
        t = ts[i]
        if not t.alive:
            continue
        if rng.random() < 0.5:
            t.kill()
        else:
            t.throw(ValueError("x"), pending=rng.random() < 0.5)
    for i in range(n):
        # Still in the channel's queue, in creation order (a pending
        # throw took its target out of the queue already).
        if kinds[i] == "chan" and ts[i].blocked:
            ch.send("msg%d" % i)
    wait_for(lambda: not any(t.alive for t in ts), 10)
    for i in range(n):
        r = results.get(i)
        k = kinds[i]
        if i in victims and r in ("killed", "thrown"):
            continue
        if k == "sleep":
            assert r == "slept", (i, r)
        elif k == "chan":
            assert r == "msg%d" % i, (i, r)
        else:
            assert r == expected(k[1]), (i, k, r)
    return ts


def _fds():
    return len(os.listdir("/proc/self/fd"))


def _ours():
    types = (sl.tasklet, sl.channel, sl.bomb)
    return sum(1 for o in gc.get_objects() if issubclass(type(o), types))


def test_random_kills_of_tasklets_parked_in_lookups(server):
    dns.configure([server.server], timeout=1.0, tries=2)
    rng = random.Random(4321)
    rounds = 4 if UNDER_VALGRIND else 8
    n = 60 if UNDER_VALGRIND else 200
    if os.environ.get("SLP_STRESS", "") not in ("", "0"):
        rounds, n = 30, 1000
    counts = []
    for _ in range(rounds):
        _kill_round(rng, server.server, n)
        settle()          # killed lookups are cancelled, not left running
        gc.collect()
        counts.append((_fds(), active_watchers(), pending(),
                       _stackless._hub_info()["nparked"], _ours()))
    # Round 1 warms up (c-ares opens its sockets); then nothing may grow.
    assert all(c == counts[1] for c in counts[1:]), counts
    assert counts[-1][2] == 0 and counts[-1][3] == 0, counts
