"""Scenarios that crashed Stackless, greenlet or gevent at some point.

Each runs in a child interpreter (tests/helpers.py run_py): a crash there
fails one test instead of killing the run.  Every scenario must end cleanly:
the expected return code, the expected output, and no "Fatal Python error"
(a segfault, abort or hang fails too: negative return code or timeout).
"""

import textwrap

from helpers import describe, run_py

PRELUDE = """
import gc, os, signal, sys
import stackless_compat as stackless
"""


def run_clean(code, returncode=0, timeout=60):
    proc = run_py(PRELUDE + textwrap.dedent(code), timeout=timeout)
    assert "Fatal Python error" not in proc.stderr, describe(proc)
    assert "Segmentation fault" not in proc.stderr, describe(proc)
    assert proc.returncode == returncode, describe(proc)
    return proc


def test_gc_during_switches_runs_del_that_switches():
    # Objects in reference cycles whose __del__ calls schedule() are
    # collected by the cyclic GC, triggered by allocations made while
    # tasklets switch and transfer over a channel.
    proc = run_clean("""
        switched = []

        class Switcher:
            def __init__(self):
                self.me = self          # a cycle: only the GC frees it
            def __del__(self):
                switched.append(stackless.schedule() is not None)

        ch = stackless.channel()
        N = 3000

        def producer():
            for i in range(N):
                Switcher()
                ch.send(i)

        def consumer(out):
            for _ in range(N):
                out.append(ch.receive())
                Switcher()
                stackless.schedule()

        def bystander():
            for _ in range(N):
                Switcher()
                stackless.schedule()

        gc.set_threshold(5, 1, 1)
        out = []
        stackless.tasklet(producer)()
        stackless.tasklet(consumer)(out)
        stackless.tasklet(bystander)()
        stackless.run()
        gc.collect()
        assert out == list(range(N)), out[:10]
        assert len(switched) > 100, len(switched)
        assert stackless.getruncount() == 1
        print("done", len(switched) > 0)
    """)
    assert proc.stdout.strip() == "done True"


def test_signal_handler_schedules_while_tasklets_switch():
    proc = run_clean("""
        hits = []

        def handler(signum, frame):
            hits.append(stackless.getcurrent())
            stackless.schedule()

        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
        ch = stackless.channel()
        N = 200000

        def sender():
            for i in range(N):
                ch.send(i)

        def receiver(out):
            total = 0
            for _ in range(N):
                total += ch.receive()
            out.append(total)

        def spinner():
            for _ in range(N // 10):
                stackless.schedule()

        out = []
        stackless.tasklet(sender)()
        stackless.tasklet(receiver)(out)
        stackless.tasklet(spinner)()
        stackless.run()
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        # SIG_IGN, not SIG_DFL: a signal still on its way (valgrind delivers
        # late) must not kill the process.
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        assert out == [N * (N - 1) // 2], out
        assert stackless.getruncount() == 1
        print("done", len(hits) > 0)
    """)
    assert proc.stdout.strip() == "done True"


def test_signal_handler_kills_tasklets_while_they_switch():
    proc = run_clean("""
        victims = []
        killed = []

        def handler(signum, frame):
            # Kill the oldest victim still alive (maybe the current one).
            while victims and not victims[0].alive:
                victims.pop(0)
            if victims:
                t = victims.pop(0)
                killed.append(t)
                t.kill()

        ch = stackless.channel()
        ends = {"exit": 0}

        def worker(i):
            try:
                while True:
                    if i % 2:
                        ch.send(i)
                    else:
                        ch.receive()
                    stackless.schedule()
            except TaskletExit:
                ends["exit"] += 1
                raise

        for i in range(40):
            victims.append(stackless.tasklet(worker)(i))
        all_ = list(victims)
        signal.signal(signal.SIGUSR1, handler)
        pid = os.getpid()

        def shooter():
            for _ in range(200):
                os.kill(pid, signal.SIGUSR1)
                stackless.schedule()

        stackless.tasklet(shooter)()
        while any(t.alive for t in all_):
            try:
                stackless.run()
            except RuntimeError:
                pass
            for t in all_:
                if t.alive and t.paused:
                    t.kill()
            if not any(t.scheduled and not t.blocked for t in all_):
                for t in all_:
                    if t.alive:
                        t.kill()
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)   # late ones are harmless
        assert stackless.getruncount() == 1
        print("done", ends["exit"] == 40, len(killed) > 0)
    """)
    assert proc.stdout.strip() == "done True True"


def test_recursion_error_caught_inside_tasklet():
    proc = run_clean("""
        def down(n):
            return down(n + 1) + 1

        log = []

        def deep(name):
            try:
                down(0)
            except RecursionError:
                log.append(name + " caught")
            stackless.schedule()
            log.append(name + " goes on")

        def other():
            for _ in range(3):
                stackless.schedule()
            log.append("other done")

        stackless.tasklet(deep)("a")
        stackless.tasklet(other)()
        stackless.tasklet(deep)("b")
        stackless.run()
        print(sorted(log))
    """)
    assert proc.stdout.strip() == str(sorted(
        ["a caught", "b caught", "a goes on", "b goes on", "other done"]))


def test_recursion_error_uncaught_goes_to_run():
    proc = run_clean("""
        def down(n):
            return down(n + 1) + 1

        log = []

        def deep():
            stackless.schedule()
            down(0)

        def other():
            for _ in range(5):
                stackless.schedule()
            log.append("other done")

        stackless.tasklet(deep)()
        stackless.tasklet(other)()
        try:
            stackless.run()
        except RecursionError:
            log.append("run raised RecursionError")
        stackless.run()             # the rest of the queue goes on
        # recursion still works normally in main afterwards
        def depth(n):
            return 0 if n == 0 else depth(n - 1) + 1
        log.append(depth(500))
        print(log)
    """)
    assert proc.stdout.strip() == str(["run raised RecursionError", "other done", 500])


def test_kill_current_tasklet_from_its_own_finally():
    proc = run_clean("""
        log = []

        def f():
            try:
                stackless.schedule_remove()
            finally:
                log.append("finally")
                stackless.getcurrent().kill()
                log.append("not reached")

        t = stackless.tasklet(f)()
        stackless.run()
        t.kill()
        log.append(t.alive)
        # and with a pending kill, and from an error path
        t = stackless.tasklet(f)()
        stackless.run()
        t.kill(pending=True)
        stackless.run()
        log.append(t.alive)
        print(log, stackless.getruncount())
    """)
    assert proc.stdout.strip() == "['finally', False, 'finally', False] 1"


def test_tasklet_kills_itself():
    proc = run_clean("""
        log = []

        def f(pending):
            log.append("start")
            stackless.getcurrent().kill(pending=pending)
            log.append("after kill pending=%s" % pending)
            stackless.schedule()
            log.append("not reached")

        a = stackless.tasklet(f)(False)
        b = stackless.tasklet(f)(True)
        stackless.run()
        print(log, a.alive, b.alive, stackless.getruncount())
    """)
    # kill() of the current tasklet raises at once, pending or not.
    assert proc.stdout.strip() == "['start', 'start'] False False 1"


def test_kill_main_from_a_tasklet():
    proc = run_clean("""
        log = []
        main = stackless.getmain()

        def killer(pending):
            main.kill(pending=pending)
            log.append("killer goes on")

        ch = stackless.channel()
        stackless.tasklet(killer)(False)
        try:
            stackless.run()
        except TaskletExit:
            log.append("main got TaskletExit from run")
        stackless.tasklet(killer)(True)
        try:
            ch.receive()
        except TaskletExit:
            log.append("main got TaskletExit from receive")
        stackless.run()
        print(log, stackless.getruncount())
        # Uncaught in main at the top level: TaskletExit is a SystemExit.
        stackless.tasklet(killer)(False)
        stackless.run()
        print("not reached")
    """)
    # The first killer stays runnable after its immediate kill, so it
    # goes on while main is blocked in receive(); the second kill is pending.
    assert proc.stdout.splitlines() == [
        "['main got TaskletExit from run', 'killer goes on', "
        "'killer goes on', 'main got TaskletExit from receive'] 1"]


def test_exceptions_in_del_of_tasklet_subclasses():
    proc = run_clean("""
        class Noisy(stackless.tasklet):
            def __del__(self):
                raise ValueError("from __del__ of %s" % self.tag)

        class Switchy(stackless.tasklet):
            def __del__(self):
                stackless.schedule()
                raise KeyError("switchy")

        ch = stackless.channel()

        def f():
            ch.receive()

        for i in range(20):
            t = Noisy(f)()
            t.tag = "blocked-%d" % i
        for i in range(20):
            t = Noisy(lambda: None)()
            t.tag = "done-%d" % i
        for i in range(20):
            Switchy(stackless.schedule)()
        del t
        stackless.run()
        # the blocked ones: kill them, drop them
        while ch.balance:
            ch.queue.kill()
        gc.collect()
        stackless.run()
        print("done", stackless.getruncount())
    """)
    assert proc.stdout.strip() == "done 1"
    assert "ValueError: from __del__ of" in proc.stderr


def test_exit_while_tasklets_blocked_in_nested_run():
    proc = run_clean("""
        ch = stackless.channel()

        def blocker(name):
            try:
                stackless._test_nostacklesscall(ch.receive)   # C state
            finally:
                print("finally", name, flush=True)

        def nested(name):
            try:
                stackless.tasklet(blocker)(name + "/inner")
                stackless.run()         # stays the watchdog: main runs next
                print("nested run returned", name, flush=True)
                ch.receive()
            finally:
                print("finally", name, flush=True)

        stackless.tasklet(nested)("n1")
        stackless.tasklet(blocker)("b1")
        stackless.schedule()
        stackless.schedule()
        print("main exits", stackless.getruncount(), flush=True)
    """)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("main exits"), describe(proc)
    assert sorted(l for l in lines if l.startswith("finally")) == [
        "finally b1", "finally n1", "finally n1/inner"], describe(proc)


def test_exit_with_100_tasklets_raising_in_finally():
    proc = run_clean("""
        ch = stackless.channel()

        def f(i):
            try:
                stackless._test_nostacklesscall(ch.receive)   # C state
            finally:
                print("finally", i, flush=True)
                raise ValueError("finally %d" % i)

        for i in range(100):
            stackless.tasklet(f)(i)
        stackless.run()
        print("main exits", ch.balance, flush=True)
    """, returncode=0)
    lines = proc.stdout.splitlines()
    assert lines[0] == "main exits -100", describe(proc)
    assert sorted(lines[1:]) == sorted("finally %d" % i for i in range(100)), describe(proc)
    # Each error is reported (unraisable) and the exit goes on.
    assert proc.stderr.count("ValueError: finally ") == 100, describe(proc)


def test_throw_into_tasklet_of_another_thread():
    proc = run_clean("""
        import threading
        ready = threading.Event()
        box = {}
        log = []

        def victim():
            try:
                stackless.channel().receive()
            except KeyError as e:
                log.append("victim got %r" % (e,))

        def worker():
            t = stackless.tasklet(victim)()
            box["t"] = t
            stackless.run()             # victim blocks; run() returns
            ready.set()
            while t.alive:
                stackless.run()         # waits for the throw to arrive

        th = threading.Thread(target=worker)
        th.start()
        ready.wait(10)
        try:
            box["t"].throw(KeyError("from main thread"), pending=True)
        except RuntimeError as e:
            log.append("RuntimeError %s" % e)
        th.join(10)
        print(log, th.is_alive())
    """)
    assert proc.stdout.strip() == (
        '["victim got KeyError(\'from main thread\')"] False')

