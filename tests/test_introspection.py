"""cstack objects (tasklet.cstate), cframe, _gc_track/_gc_untrack,
_pickle_moduledict, the module subclass, and dump_tasklets
(docs/api/stackless.rst; docs/guides/diagnostics.rst)."""

import gc
import io
import pickle
import struct
import signal
import sys

import pytest

import stackless_compat as stackless
from stackless_compat import _extras, _stackless

from helpers import describe, run_py

_extras.install(stackless)      # a no-op once stackless_compat/__init__ does it


def test_module_is_wired_by_package_init():
    # Fails until stackless_compat/__init__.py calls _extras.install().
    proc = run_py("""
        import stackless_compat as s
        assert type(s).__name__ == "StacklessModuleType", type(s)
        assert s.PICKLEFLAGS_PRESERVE_TRACING_STATE == 1
        import pickle
        assert pickle.loads(pickle.dumps(s.tasklet(print))).tempval is print
        print("ok")
    """)
    assert proc.returncode == 0 and "ok" in proc.stdout, describe(proc)


def test_module_attributes():
    for name in ("cstack", "cframe", "_gc_track", "_gc_untrack",
                 "_pickle_moduledict", "pickle_flags", "pickle_flags_default",
                 "dump_tasklets", "PICKLEFLAGS_RESET_AG_FINALIZER"):
        assert hasattr(stackless, name), name
    for name in ("cstack", "cframe", "bomb"):
        assert name not in stackless.__all__
    assert stackless.cstack.__module__ == "_stackless"
    assert stackless.cframe.__module__ == "_stackless"
    assert _stackless.cstack is stackless.cstack


def test_live_properties():
    assert stackless.current is stackless.getcurrent()
    assert stackless.main is stackless.getmain()
    assert stackless.runcount == 1
    assert stackless.threads == stackless.getthreads()
    assert stackless.debug == stackless.getdebug()
    assert stackless.uncollectables == []
    seen = []

    def f():
        seen.append((stackless.current, stackless.runcount))
    t = stackless.tasklet(f)()
    assert stackless.runcount == 2
    stackless.run()
    assert seen == [(t, 1)]
    with pytest.raises(AttributeError):
        stackless.current = None
    assert "current" in dir(stackless)


def test_cstate():
    ch = stackless.channel()
    t1 = stackless.tasklet(ch.receive)()
    t2 = stackless.tasklet(ch.receive)()
    idle = stackless.tasklet(print)
    stackless.run()
    cs = t1.cstate
    assert isinstance(cs, stackless.cstack)
    assert cs.task is t1 and cs.startaddr == 0
    # size counts machine words, as Stackless's cstack does; str() has
    # that many words
    word = struct.calcsize("P")
    assert cs.size * word == _stackless._stack_info(t1)[0] > 0
    assert len(str(cs)) == cs.size * word
    assert cs.nesting_level == t1.nesting_level == 0
    # one object per tasklet
    assert cs is t1.cstate and stackless.main.cstate is stackless.main.cstate
    assert cs.serial == t1.cstate.serial and cs.serial != t2.cstate.serial
    # the circular chain of the thread's tasklets holding C state: the walk
    # by identity ends
    chain = [cs]
    c = cs.next
    while c is not cs:
        chain.append(c)
        assert c.task.cstate is c
        c = c.next
        assert len(chain) < 100
    tasks = {x.task for x in chain}
    assert {t1, t2, stackless.main} <= tasks
    assert cs.prev.next is cs and cs.next.prev is cs
    # a tasklet without C state is alone
    assert idle.cstate.next is idle.cstate and idle.cstate.size == 0
    with pytest.raises(TypeError):
        stackless.cstack()
    with pytest.raises(TypeError):
        pickle.dumps(cs)
    with pytest.raises(AttributeError):
        cs.size = 3
    ch.send(None)
    ch.send(None)
    # the cstack outlives its tasklet: task is then None
    del t1, chain, tasks, c
    gc.collect()
    assert cs.task is None and cs.next is cs and cs.size == 0


def test_thread_info_serials_and_watchdog_list():
    import threading
    res = []

    def thread_main():
        info = stackless.get_thread_info(-1, 1 << 31)
        res.append(info[3])                 # no run() yet: None
        stub = stackless.get_thread_info(-1, 1 << 30)[5]
        res.append(stub)
        stackless.run()
        res.append(stackless.get_thread_info(-1, 1 << 31)[3])

    th = threading.Thread(target=thread_main)
    th.start()
    th.join()
    assert res[0] is None and res[2] == [None]
    assert isinstance(res[1], stackless.cstack) and res[1].task is None
    # serial_last_jump is the serial of the stack the current tasklet runs
    # on: the initial stub's for the main tasklet, so it is the same again
    # once main runs again
    serial, last, stub = stackless.get_thread_info(-1, 1 << 30)[3:]
    assert last == stub.serial == stackless.main.cstate.serial
    seen = []

    def f():
        seen.append(stackless.get_thread_info(-1, 1 << 30)[4])
        stackless.schedule()
    t = stackless.tasklet(f)()
    stackless.run()
    assert seen[0] == t.cstate.serial != last
    assert stackless.get_thread_info(-1, 1 << 30)[4] == last
    assert stackless.get_thread_info(-1, 1 << 30)[3] >= seen[0]
    # the watchdog list while run() callers are nested: [irq, callers...]
    lists = []

    def g():
        lists.append(list(stackless.get_thread_info(-1, 1 << 31)[3]))
    live = stackless.get_thread_info(-1, 1 << 31)[3]
    stackless.tasklet(g)()
    stackless.run()
    assert lists == [[None, stackless.main]]
    # the list itself, as Stackless gives it: it changes in place
    assert stackless.get_thread_info(-1, 1 << 31)[3] is live
    assert live == [None]

    # a run(timeout) caller is item 0 (the interrupt watchdog) meanwhile
    def h():
        lists.append(list(live))
    lists.clear()
    stackless.tasklet(h)()
    stackless.run(1000000)
    assert lists == [[stackless.main, stackless.main]] and live == [None]


def test_cframe_placeholder():
    cf = stackless.cframe("tasklet_setup", print, (1,), None)
    assert (cf.f_execute, cf.ob1, cf.ob2, cf.ob3, cf.i, cf.n) == (
        "tasklet_setup", print, (1,), None, 0, 0)
    cf2 = pickle.loads(pickle.dumps(cf))
    assert (cf2.f_execute, cf2.ob1, cf2.ob2) == ("tasklet_setup", print, (1,))


def test_gc_track_untrack():
    t = stackless.tasklet()
    assert stackless._gc_track(t) is None
    assert stackless._gc_untrack(t) is None
    with pytest.raises(TypeError):
        stackless._gc_track()
    with pytest.raises(TypeError):
        stackless._gc_untrack(t, t)


def test_pickle_moduledict():
    red = stackless._pickle_moduledict(None, pickle.__dict__)
    assert red is not NotImplemented
    func, args = red
    assert func(*args) is pickle.__dict__
    assert stackless._pickle_moduledict(None, {}) is NotImplemented
    assert stackless._pickle_moduledict(None, 3) is NotImplemented


# -- dump_tasklets ------------------------------------------------------------

def waiter_on_channel(ch):
    ch.receive()


def pauser():
    stackless.schedule_remove()


def test_dump_tasklets_in_process():
    ch = stackless.channel()
    t1 = stackless.tasklet(waiter_on_channel)(ch)
    t2 = stackless.tasklet(pauser)()
    stackless.run()
    t3 = stackless.tasklet(print)("never")
    before = (t1.blocked, t2.paused, t3.scheduled, stackless.runcount)
    out = io.StringIO()
    text = stackless.dump_tasklets(out)
    assert text == out.getvalue()
    assert (t1.blocked, t2.paused, t3.scheduled, stackless.runcount) == before
    assert not stackless.current.atomic
    assert "waiter_on_channel" in text and "blocked receiving" in text
    assert "pauser" in text and "paused" in text
    assert "tasklet print" in text and "scheduled" in text
    assert "(main)" in text and "current" in text
    assert "test_dump_tasklets_in_process" in text    # the caller's stack
    assert 'line' in text and "ch.receive()" in text
    ch.send(None)
    t2.kill()
    t3.kill()


DUMP_PROGRAM = r"""
import os, signal, sys, threading
import stackless_compat as stackless
from stackless_compat import _extras
_extras.install(stackless)      # a no-op once __init__ does it

stackless.install_dump_signal(signal.SIGUSR1)
# Signals can arrive late (valgrind delivers them asynchronously): the
# spinner waits on the line that sent it until the dump has run.
dump = signal.getsignal(signal.SIGUSR1)
dumped = []
def dump_and_note(signum, frame):
    dump(signum, frame)
    dumped.append(1)
signal.signal(signal.SIGUSR1, dump_and_note)
def until_dumped():
    while not dumped:
        pass
ch = stackless.channel()
out = stackless.channel()

def blocked_receiver():
    ch.receive()

def blocked_sender():
    out.send("x")

def sleeper_paused():
    stackless.schedule_remove()

def spinner():
    for i in range(3):
        stackless.schedule()
    os.kill(os.getpid(), signal.SIGUSR1); until_dumped()
    for i in range(3):
        stackless.schedule()

ready = threading.Event()
stop = threading.Event()
def thread_main():
    c = stackless.channel()
    def in_thread():
        c.receive()
    stackless.tasklet(in_thread)()
    stackless.schedule()
    ready.set()
    stop.wait()
    c.send(None)
    stackless.run()
th = threading.Thread(target=thread_main, name="worker-thread")
th.start()
ready.wait()

ts = [stackless.tasklet(f)() for f in
      (blocked_receiver, blocked_sender, sleeper_paused, spinner)]
stackless.run()
print("after run", [t.blocked for t in ts[:2]], ts[2].paused, flush=True)
stop.set()
th.join()
ch.send(1)
out.receive()
ts[2].kill()
print("done", flush=True)
"""


def test_dump_tasklets_from_signal_handler(tmp_path):
    if not hasattr(signal, "SIGUSR1"):
        pytest.skip("no SIGUSR1")
    prog = tmp_path / "hung_server.py"    # a file: the stacks show source
    prog.write_text(DUMP_PROGRAM)
    proc = run_py("import runpy; runpy.run_path(%r, run_name='__main__')"
                  % str(prog), timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert "after run [True, True] True" in proc.stdout, describe(proc)
    assert "done" in proc.stdout, describe(proc)
    err = proc.stderr
    assert err.count("=== stackless_compat:") == 1, describe(proc)
    lines = err.splitlines()

    def line_of(name):
        hits = [ln for ln in lines if ln.startswith("tasklet ") and name in ln]
        assert hits, "%s not in the dump\n%s" % (name, err)
        return hits[0]
    assert "blocked receiving" in line_of("blocked_receiver")
    assert "blocked sending" in line_of("blocked_sender")
    assert "paused" in line_of("sleeper_paused")
    assert "current" in line_of("spinner")
    assert "blocked receiving" in line_of("in_thread")
    assert "worker-thread" in err
    assert "(main)" in err
    # stacks: the lines the tasklets are suspended on
    assert "ch.receive()" in err and 'out.send("x")' in err
    assert "os.kill(os.getpid(), signal.SIGUSR1)" in err
    assert "c.receive()" in err and "stop.wait()" in err
