"""Interpreter exit and thread exit with tasklets parked in the hub: on
sockets (recv, accept, sendall to a full peer), timers (sleep, a pending
Timeout), DNS lookups to a server that never answers, and channels, in the
main thread and in other threads.

Each tasklet must get TaskletExit (its ``finally`` runs; at interpreter exit
those blocked on a channel in plain Python code are dropped instead, as in
Stackless), the process or
thread must end without a crash or a hang, and a thread's hub must give its
fds and watchers back when the thread ends.
"""
import os
import socket
import threading

import pytest

import stackless_compat as sl
from stackless_compat import _stackless
from stackless_compat.hub import sleep

from helpers import describe, run_py

PARKERS = r'''
from stackless_compat.patches import patch_all
patch_all()
import os, socket, sys, threading
import stackless_compat as sl
from stackless_compat.hub import sleep, Timeout
from stackless_compat.patches import dns
cosocket = socket

mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # never answers
mute.bind(("127.0.0.1", 0))
dns.configure(["127.0.0.1:%d" % mute.getsockname()[1]], timeout=30, tries=1)

def parkers(tag, done):
    """Start one tasklet per kind of wait; each reports its finally."""
    a, b = cosocket.socketpair()
    lst = cosocket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    full_a, full_b = cosocket.socketpair()
    ch = sl.channel()
    keep = [a, b, lst, full_a, full_b, ch]

    started = []

    def guard(kind, f, *args):
        started.append(kind)
        try:
            f(*args)
            print(tag, kind, "RETURNED", flush=True)
        except TaskletExit:
            done.append((tag, kind))
            raise
    def timeout_wait():
        with Timeout(60):
            ch.receive()
    waits = [
        ("recv", b.recv, 10),
        ("accept", lst.accept),
        ("sendall", full_a.sendall, b"x" * (8 << 20)),
        ("sleep", sleep, 60),
        ("timeout", timeout_wait),
        ("dns", dns.getaddrinfo, "never.test", 80),
        ("channel", ch.receive),
    ]
    for w in waits:
        sl.tasklet(guard)(w[0], *w[1:])
    # everyone parks (sendall fills the socket buffers); a timed sleep
    # alone could be due before the last one ran (due timers go first)
    while len(started) < len(waits):
        sl.schedule()
    sleep(0.05)
    return keep
'''


KINDS = sorted(["recv", "accept", "sendall", "sleep", "timeout", "dns",
                "channel"])


def test_interpreter_exit_with_tasklets_parked_in_the_hub(tmp_path):
    """Tasklets parked in every kind of hub wait, in the main thread and in
    a second thread, when the program ends: the second thread's are killed
    when it ends, the main thread's at interpreter exit; every finally runs
    (each writes a line to a report file) and the process exits cleanly."""
    report = tmp_path / "report"
    report.write_text("")
    proc = run_py(PARKERS + r'''
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)

class Report:
    # bound now: the main thread's tasklets die during interpreter exit
    def append(self, item, _write=os.write, _fd=fd):
        _write(_fd, ("%s %s\n" % item).encode())

def thread_main():
    keep = parkers("thread", Report())
    # returns with its tasklets parked: the thread's end kills them

keep = parkers("main", Report())
t = threading.Thread(target=thread_main)
t.start()
t.join()
print("exiting", flush=True)
''', args=(str(report),), timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert "RETURNED" not in proc.stdout, describe(proc)
    assert "exiting" in proc.stdout, describe(proc)
    assert proc.stderr == "", describe(proc)
    lines = report.read_text().split("\n")
    got = {"main": [], "thread": []}
    for line in filter(None, lines):
        tag, kind = line.split()
        got[tag].append(kind)
    assert sorted(got["thread"]) == KINDS, (got, describe(proc))
    # at interpreter exit, as in Stackless, tasklets blocked on a channel in
    # plain Python code are dropped silently; hub waits are killed
    assert sorted(got["main"]) == sorted(set(KINDS) - {"channel", "timeout"}), (
        got, describe(proc))
    # the thread's tasklets died when it ended, before the program's end
    assert lines.index("thread " + got["thread"][-1]) < lines.index(
        "main " + got["main"][0])


def _fds():
    return len(os.listdir("/proc/self/fd"))


def test_thread_exit_with_tasklets_parked_in_the_hub_gives_everything_back():
    """Threads whose tasklets are parked in socket, timer and channel waits
    end; the tasklets get TaskletExit and each thread's hub closes its fds."""
    def thread_main(out):
        a, b = socket.socketpair()
        from stackless_compat.patches import socket as cosocket
        ca = cosocket.socket(fileno=a.detach())
        cb = cosocket.socket(fileno=b.detach())
        ch = sl.channel()

        started = []

        def guard(kind, f, *args):
            started.append(kind)
            try:
                f(*args)
                out.append((kind, "returned"))
            except TaskletExit:
                out.append((kind, "exit"))
                raise
        sl.tasklet(guard)("recv", cb.recv, 10)
        sl.tasklet(guard)("sleep", sleep, 60)
        sl.tasklet(guard)("channel", ch.receive)
        # every guard parked in its wait (a timed sleep of this tasklet
        # could be due before the last guard ran: due timers go first)
        while len(started) < 3:
            sl.schedule()
        out.append(("hub", _stackless._hub_info()["active"]))
        # return with three tasklets parked: the thread's end kills them
        out.append(("socks", (ca, cb)))

    base = None
    for i in range(12):
        out = []
        t = threading.Thread(target=thread_main, args=(out,))
        t.start()
        t.join(30)
        assert not t.is_alive()
        results = dict(o for o in out if o[0] not in ("socks",))
        assert results["recv"] == "exit", out
        assert results["sleep"] == "exit", out
        assert results["channel"] == "exit", out
        assert results["hub"] >= 2, out       # recv and sleep were parked
        for s in dict(out)["socks"]:
            s.close()
        del out, results
        if i == 1:
            base = _fds()
        elif i > 1:
            assert _fds() == base, (i, base, _fds())
