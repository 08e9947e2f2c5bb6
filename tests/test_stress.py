"""Stress: many tasklets at once, many channel operations, random kills of
blocked tasklets -- on channels, and parked in the hub on sockets, fds and
timers -- and memory/object/fd/watcher counts that stay flat over rounds;
kills from another thread racing with the completion of hub waits.

The normal suite keeps this file to a few seconds; ``SLP_STRESS=1`` runs the
big versions (10,000,000 channel operations, more rounds).
"""

import collections
import gc
import os
import random
import socket as stdsocket
import sys
import time

import pytest

import stackless_compat as stackless
from stackless_compat import _stackless
from stackless_compat.hub import Timeout, sleep, wait_read
from stackless_compat.patches import socket as cosocket

import helpers

BIG = os.environ.get("SLP_STRESS", "") not in ("", "0")


def rss_says_nothing():
    """RSS cannot show a leak under AddressSanitizer or valgrind: both hold
    freed memory back on purpose (quarantine, memcheck's freed-blocks
    queue).  The object, fd and watcher counts still do."""
    return ("asan" in os.environ.get("LD_PRELOAD", "")
            or os.environ.get("SLP_VALGRIND", "") not in ("", "0"))


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def our_objects():
    types = (stackless.tasklet, stackless.channel, stackless.bomb)
    return sum(1 for o in gc.get_objects() if issubclass(type(o), types))


def test_100k_tasklets_blocked_at_once_then_released():
    n = 100_000
    ch = stackless.channel()
    got = []

    def waiter():
        got.append(ch.receive())

    tasklets = [stackless.tasklet(waiter)() for _ in range(n)]
    stackless.run()
    assert ch.balance == -n
    assert all(t.blocked for t in tasklets[:: n // 100])
    assert stackless.getruncount() == 1
    ch.preference = 1                   # the sender goes on; receivers queue up
    assert ch.send_sequence(range(n)) == n
    assert ch.balance == 0
    assert stackless.getruncount() == n + 1
    stackless.run()
    assert got == list(range(n))
    assert not any(t.alive for t in tasklets)


@pytest.mark.parametrize("pref", [-1, 0, 1])
def test_many_channel_operations(pref):
    # 1,000,000 operations (each transfer is a send and a receive), or
    # 10,000,000 with SLP_STRESS=1.
    transfers = (5_000_000 if BIG else 500_000) // 3
    ch = stackless.channel()
    ch.preference = pref
    result = []

    def sender():
        for i in range(transfers):
            ch.send(i)

    def receiver():
        total = 0
        for _ in range(transfers):
            total += ch.receive()
        result.append(total)

    stackless.tasklet(sender)()
    stackless.tasklet(receiver)()
    stackless.run()
    assert result == [transfers * (transfers - 1) // 2]
    assert ch.balance == 0


def random_kill_round(rng, n=2000, nchannels=4):
    """n tasklets blocked on channels (both directions); kill a random half
    (pending or immediate, in random order), then pair up the survivors."""
    chans = [stackless.channel() for _ in range(nchannels)]
    ends = {"exit": 0, "done": 0}

    def worker(ch, sending, i):
        try:
            if sending:
                ch.send(i)
            else:
                ch.receive()
            ends["done"] += 1
        except stackless.TaskletExit:
            ends["exit"] += 1
            raise

    plan = []
    for i in range(n):
        k = rng.randrange(nchannels)
        # a channel's queue holds one direction at a time
        plan.append((chans[k], k % 2 == 0, i))
    tasklets = [stackless.tasklet(worker)(*p) for p in plan]
    stackless.run()
    assert all(t.blocked for t in tasklets)
    assert sum(abs(c.balance) for c in chans) == n

    victims = rng.sample(tasklets, n // 2)
    for t in victims:
        t.kill(pending=rng.random() < 0.5)
        assert not t.blocked
    stackless.run()
    assert ends["exit"] == n // 2
    assert not any(t.alive for t in victims)
    survivors = [t for t in tasklets if t.alive]
    assert len(survivors) == n - n // 2
    assert sum(abs(c.balance) for c in chans) == len(survivors)

    # Release the survivors: the opposite operation on each channel.
    for c in chans:
        while c.balance > 0:
            c.receive()
        while c.balance < 0:
            c.send(None)
    stackless.run()
    assert ends["done"] == len(survivors)
    assert not any(t.alive for t in tasklets)
    assert stackless.getruncount() == 1


def test_random_kills_of_blocked_tasklets():
    rng = random.Random(1234)
    for _ in range(3):
        random_kill_round(rng)


def nested_run_round(n=200):
    """Tasklets that each run a nested scheduler over their own children."""
    ch = stackless.channel()

    def child():
        ch.receive()

    def parent():
        for _ in range(3):
            stackless.tasklet(child)()
        stackless.run()

    for _ in range(n):
        stackless.tasklet(parent)()
    stackless.run()
    while ch.balance < 0:
        ch.send(None)
    stackless.run()


def test_memory_and_object_counts_flat_after_warmup():
    rounds = 8 if BIG else 5
    rng = random.Random(99)
    rss, objs = [], []
    for _ in range(rounds):
        random_kill_round(rng, n=5000)
        nested_run_round()
        gc.collect()
        rss.append(rss_bytes())
        objs.append(our_objects())
    # Round 1 is warm-up (allocator pools, stack buffers); from round 2 on,
    # nothing may grow: no object of ours at all, and RSS by less than 4 MiB
    # (the noise between rounds is about 1 MiB; one leaked round of 5000
    # suspended tasklets would be about 7 MiB).
    growth_rss = rss[-1] - rss[1]
    growth_objs = objs[-1] - objs[1]
    assert growth_objs <= 0, objs
    if rss_says_nothing():
        return
    assert growth_rss < 4 << 20, [r >> 10 for r in rss]


# ---------------------------------------------------------------------------
# Tasklets parked in the hub (sleep, wait_read, recv, accept, Timeout) mixed
# with channel waiters, killed and thrown into at random while they wait.

class Boom(Exception):
    pass


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def live_hub_timers():
    """The hub's Timeout timers are not tracked by the collector; each one
    holds a reference to its (heap) type."""
    return sys.getrefcount(_stackless._hub_timer)


def hub_counts():
    info = _stackless._hub_info()
    return info["active"], info["nparked"]


def wait_until(cond, limit=30.0):
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        sleep(0.002)


HUB_KINDS = ("sleep", "wait_read", "recv", "accept", "timeout",
             "timeout_channel", "receive", "send")


def hub_kill_round(rng, n=240):
    """n tasklets, each blocked in one of HUB_KINDS; kill or throw into a
    random half of them while they wait (kill, kill pending, throw,
    throw pending), then let the others end the normal way: their fd
    becomes ready, a client connects, their timer or Timeout expires, a
    channel partner comes."""
    chans = [stackless.channel() for _ in range(3)]
    ends = collections.Counter()
    closers = []
    releases = {}
    plan = []

    def pair():
        a, b = stdsocket.socketpair()
        a = cosocket.socket(fileno=a.detach())
        closers.extend((a, b))
        return a, b

    def body(kind, arg):
        try:
            if kind == "sleep":
                sleep(arg)
            elif kind == "wait_read":
                wait_read(arg)
            elif kind == "recv":
                assert arg.recv(10) == b"x"
            elif kind == "accept":
                arg.accept()[0].close()
            elif kind == "timeout":
                with Timeout(arg):
                    sleep(30)
            elif kind == "timeout_channel":
                with Timeout(arg):
                    chans[0].receive()
            elif kind == "receive":
                chans[1].receive()
            else:
                chans[2].send(None)
            ends["done", kind] += 1
        except stackless.TaskletExit:
            ends["exit"] += 1
            raise
        except Boom:
            ends["boom"] += 1
        except Timeout:
            ends["done", kind] += 1

    for i in range(n):
        kind = HUB_KINDS[i % len(HUB_KINDS)]
        arg = None
        if kind in ("sleep", "timeout", "timeout_channel"):
            arg = rng.uniform(0.03, 0.1)
        elif kind == "wait_read":
            a, b = pair()
            arg = a.fileno()
            releases[i] = (b.send, b"x")
        elif kind == "recv":
            a, b = pair()
            arg = a
            releases[i] = (b.send, b"x")
        elif kind == "accept" and i % 3 == 0:     # not too many listeners
            lst = cosocket.socket()
            lst.bind(("127.0.0.1", 0))
            lst.listen(1)
            closers.append(lst)
            arg = lst

            def connect(addr=lst.getsockname()):
                c = stdsocket.create_connection(addr)
                closers.append(c)
            releases[i] = (connect,)
        elif kind == "accept":
            kind, arg = "sleep", rng.uniform(0.03, 0.1)
        plan.append((kind, arg))
    tasklets = [stackless.tasklet(body)(*p) for p in plan]
    while not all(t.blocked for t in tasklets):
        stackless.schedule()
    assert hub_counts() != (0, 0)

    victims = set(rng.sample(range(n), n // 2))
    expect = collections.Counter()
    for i in sorted(victims, key=lambda _: rng.random()):
        t, how = tasklets[i], rng.randrange(4)
        if how < 2:
            t.kill(pending=how == 1)
            expect["exit"] += 1
        else:
            t.throw(Boom, pending=how == 3)
            expect["boom"] += 1
        assert not t.blocked
    while any(tasklets[i].alive for i in victims):
        stackless.schedule()

    survivors = [i for i in range(n) if i not in victims]
    for i in survivors:
        expect["done", plan[i][0]] += 1
        if i in releases:
            f, *args = releases[i]
            f(*args)
    for ch in chans[1:]:
        while ch.balance > 0:
            ch.receive()
        while ch.balance < 0:
            ch.send(None)
    wait_until(lambda: not any(t.alive for t in tasklets))
    for c in closers:
        c.close()
    assert ends == expect
    assert [ch.balance for ch in chans] == [0, 0, 0]
    assert stackless.getruncount() == 1


def test_random_kills_of_hub_waiters_counts_stay_flat():
    """Rounds of hub_kill_round (and channel-only rounds): after each, no
    watcher is active and no tasklet parked; after the first (warm-up),
    the counts of our objects (Timeout timers included) and open fds do
    not move and RSS grows by less than 4 MiB."""
    rounds = 12 if BIG else 5
    n = 1200 if BIG else 240
    rng = random.Random(2024)
    rss, objs, fds = [], [], []
    for _ in range(rounds):
        hub_kill_round(rng, n)
        random_kill_round(rng, n=n)
        assert hub_counts() == (0, 0)
        gc.collect()
        rss.append(rss_bytes())
        objs.append((our_objects(), live_hub_timers()))
        fds.append(open_fds())
    assert objs[1:] == [objs[1]] * (rounds - 1), objs
    assert fds[1:] == [fds[1]] * (rounds - 1), fds
    if rss_says_nothing():
        return
    assert rss[-1] - rss[1] < 4 << 20, [r >> 10 for r in rss]


# ---------------------------------------------------------------------------
# Kills from another thread racing with the completion of hub waits.

CROSS_KILL = r"""
import os, random, socket, sys, threading, time
import stackless_compat as sl
from stackless_compat import _stackless
from stackless_compat.hub import Timeout, sleep
from stackless_compat.patches.socket import socket as cosocket

ROUNDS = int(sys.argv[1])
KINDS = sys.argv[2].split(",")
rng = random.Random(int(sys.argv[3]))


def victim(kind, log, sock, ch):
    # Loops until killed: only a kill ends it.
    try:
        while True:
            if kind == "sleep":                 # its timer fires meanwhile
                sleep(rng.random() * 0.001)
            elif kind == "recv":                # its fd becomes readable
                sock.recv(10)
            elif kind == "timeout":             # a Timeout fires meanwhile
                with Timeout(rng.random() * 0.001, False):
                    sleep(rng.random() * 0.001)
            elif kind == "busy":                # killed while running:
                t0 = time.perf_counter()        # longer than the GIL's
                while time.perf_counter() - t0 < 0.006:  # switch interval
                    pass
                sleep(0.0005)
            elif kind == "channel":             # on a channel, maybe current
                ch.receive()
            elif kind == "cleanup":
                sleep(rng.random() * 0.001)
    except TaskletExit:
        if kind == "cleanup":
            # a wait in cleanup code is not cut short by the kill
            t0 = time.monotonic()
            sleep(0.005)
            if time.monotonic() - t0 < 0.004:
                log.append("cleanup wait cut short")
        log.append("TaskletExit")
        raise


box = {}
started, done, go = threading.Event(), threading.Event(), threading.Event()


def worker():
    while True:
        go.wait()
        go.clear()
        kind = box.get("kind")
        if kind is None:
            return
        log, helpers = box["log"], []
        a, b = socket.socketpair()
        a = cosocket(fileno=a.detach())
        ch = sl.channel()
        ch.preference = 1               # the feeder goes on after a send
        box["b"] = b
        t = box["t"] = sl.tasklet(victim)(kind, log, a, ch)

        def feeder():                   # parks in the hub, so that the
            while t.alive:              # victim often blocks last
                sleep(rng.random() * 0.001)
                if ch.balance < 0:
                    ch.send(None)

        def spinner():                  # polls the hub from schedule()
            while t.alive:
                sl.schedule()

        if kind == "channel":
            helpers.append(sl.tasklet(feeder)())
        if kind == "cleanup":
            helpers.append(sl.tasklet(spinner)())
        started.set()
        sl.run()
        box["alive_after_run"] = t.alive
        for h in helpers:
            h.kill()
        a.close()
        b.close()
        info = _stackless._hub_info()           # this thread's hub
        box["hub"] = (info["active"], info["nparked"])
        done.set()


th = threading.Thread(target=worker)
th.start()
lost = []
try:
    for i in range(ROUNDS):
        kind = KINDS[i % len(KINDS)]
        box.update(kind=kind, log=[])
        go.set()
        assert started.wait(10)
        started.clear()
        time.sleep(rng.random() * 0.002)
        if kind == "recv":
            box["b"].send(b"x")         # its wait completes ...
            if rng.random() < 0.5:
                time.sleep(rng.random() * 0.0005)
        t = box["t"]
        t.kill()                        # ... while it is killed
        if not done.wait(10):
            # lost: the victim loops on; no way to stop that thread
            print("rounds", i + 1, "failures",
                  [(i, kind, "still alive 10 s after the kill")], flush=True)
            os._exit(1)
        done.clear()
        if box["log"] != ["TaskletExit"] or box["alive_after_run"]:
            lost.append((i, kind, box["log"]))
        if box["hub"] != (0, 0):
            lost.append((i, kind, "hub (active, nparked)", box["hub"]))
        if lost:
            break
finally:
    box["kind"] = None
    go.set()
    th.join(30)
print("rounds", i + 1, "failures", lost)
"""

CROSS_KILL_KINDS = ("sleep", "recv", "timeout", "busy", "channel", "cleanup")


@pytest.mark.parametrize("kind", CROSS_KILL_KINDS)
def test_cross_thread_kill_racing_with_hub_wait_is_never_lost(kind):
    """Another thread kills a tasklet parked in the hub (or running, or on
    a channel) at random moments, typically just as its wait completes:
    every kill ends it with TaskletExit, a wait in its cleanup code is not
    cut short, its thread's hub is left with nothing active, nothing
    hangs, no crash (child process).  Each kind failed within a few rounds
    before its fix -- timeout: fixed as well by the running-tasklet fix
    (test_hub.py has the deterministic case); cleanup: only while the
    fairness poll let go of the GIL, which opened the window (that poll
    now keeps the GIL, so this kind no longer fails without the inbox
    fix) -- and the cleanup kind also hung on that starvation."""
    rounds = 1000 if BIG else 60
    proc = helpers.run_py(CROSS_KILL, args=(str(rounds), kind, "7"),
                          timeout=600)
    assert proc.stdout.splitlines() == ["rounds %d failures []" % rounds], \
        helpers.describe(proc)
    assert proc.returncode == 0, helpers.describe(proc)
