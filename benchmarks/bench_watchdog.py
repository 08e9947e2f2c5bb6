#!/usr/bin/env python3
"""What the watchdog (run(timeout)) costs, and how precisely it interrupts.

A tick is about one bytecode instruction (README, "Watchdog").  Budgets up
to 100,000 ticks are counted by a trace hook (exact, costs tracing); larger
ones are time, 20 ns a tick, delivered by a timer thread (free until due).

Figures (stackless_compat only; every pair is measured in one process,
rounds alternating; times are the thread's CPU time, which a loaded machine
does not inflate):
  overshoot_p50_us / _p90_us / _p99_us / _max_us
      timed mode: run(B) over a busy tasklet (B = 100,001 .. 500,000 ticks,
      2-10 ms), the thread's CPU time (the watchdog's clock: ticks are work
      done) from the tasklet's first instruction in the slice to its last
      one, minus the budget (the tasklet stamps time.thread_time() in its
      loop); one sample per interrupt (--samples of them)
  wall_overshoot_p50_us / _p99_us
      run()'s wall-clock time past the budget: on a loaded machine it also
      counts the time other processes had the CPU
  overshoot_thread_p50_us / _p99_us
      the same in a thread other than the main one
  loop_plain / loop_armed / loop_sliced  (ns per iteration)
      a busy loop in a tasklet under run() / under run(10**9) (armed, never
      due) / under run(10**6) (interrupted every 20 ms and re-inserted, the
      round-robin use); loop_sliced_ratio = loop_sliced / loop_plain
  loop_counted_ratio
      the same loop under run(1000) (counted mode, interrupted every ~150
      iterations) over loop_plain
  sched2_plain / sched2_armed  (ns per switch)
      2 tasklets loop on schedule() under run() / under run(10**9)

  python benchmarks/bench_watchdog.py [--n N] [--rounds R] [--samples S]
"""
import argparse
import threading
import time

import stackless_compat as sl

from _benchlib import emit

TICK_NS = 20


def spin():
    while True:
        pass


def clocked(rec):
    """Busy, stamping the thread's CPU time: rec[0] at the first
    instruction of its slice, rec[1] at the last one."""
    tt = time.thread_time
    while True:
        if rec[0] is None:
            rec[0] = tt()
        rec[1] = tt()


def overshoots(samples, budgets):
    """How far (us) the busy tasklet ran past its budget, in the thread's
    CPU time (the watchdog's clock), and run()'s wall-clock time past it."""
    cpu, wall = [], []
    rec = [None, None]
    t = sl.tasklet(clocked)(rec)
    t.remove()
    for i in range(samples):
        b = budgets[i % len(budgets)]
        rec[0] = None
        t.insert()
        c0 = time.thread_time()
        t0 = time.perf_counter()
        r = sl.run(b)
        dt = time.perf_counter() - t0
        assert r is t
        wall.append(dt * 1e6 - b * TICK_NS / 1000.0)
        if rec[0] is None or rec[0] < c0:
            # interrupted between reading the clock and storing it: the
            # stamp is the previous slice's (rare: once per slice)
            continue
        cpu.append((rec[1] - rec[0]) * 1e6 - b * TICK_NS / 1000.0)
    t.kill()
    return cpu, wall


def pct(vals, p):
    vals = sorted(vals)
    return vals[min(len(vals) - 1, int(len(vals) * p / 100.0))]


def loop(n, timeout):
    res = {}

    def body():
        t0 = time.thread_time()
        x = 0
        for i in range(n):
            x += i
        res["dt"] = time.thread_time() - t0
    t = sl.tasklet(body)()
    t.set_ignore_nesting(1)
    while t.alive:
        r = sl.run(timeout)
        if r is not None:
            r.insert()
    return res["dt"] * 1e9 / n


def sched2(n, timeout):
    def body():
        for _ in range(n):
            sl.schedule()
    sl.tasklet(body)()
    sl.tasklet(body)()
    t0 = time.thread_time()
    r = sl.run(timeout)
    dt = time.thread_time() - t0
    assert r is None
    return dt * 1e9 / (2 * n)


def median(vals):
    vals = sorted(vals)
    return vals[len(vals) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=1000)
    a = ap.parse_args()
    budgets = [100001, 200000, 300000, 500000]

    ov, wall = overshoots(a.samples, budgets)
    for p in (50, 90, 99):
        emit("watchdog", "overshoot_p%d_us" % p, "stackless_compat",
             pct(ov, p), "us", samples=len(ov))
    emit("watchdog", "overshoot_max_us", "stackless_compat", max(ov), "us")
    for p in (50, 99):
        emit("watchdog", "wall_overshoot_p%d_us" % p, "stackless_compat",
             pct(wall, p), "us", samples=len(wall))

    res = {}

    def in_thread():
        res["ov"] = overshoots(max(100, a.samples // 4), budgets)[0]
    th = threading.Thread(target=in_thread)
    th.start()
    th.join()
    for p in (50, 99):
        emit("watchdog", "overshoot_thread_p%d_us" % p, "stackless_compat",
             pct(res["ov"], p), "us", samples=len(res["ov"]))

    figs = {k: [] for k in ("loop_plain", "loop_armed", "loop_sliced",
                            "loop_counted", "sched2_plain", "sched2_armed")}
    for _ in range(a.rounds):
        figs["loop_plain"].append(loop(a.n, 0))
        figs["loop_armed"].append(loop(a.n, 10 ** 9))
        figs["loop_sliced"].append(loop(a.n, 10 ** 6))
        figs["loop_counted"].append(loop(a.n // 10, 1000))
        figs["sched2_plain"].append(sched2(a.n // 4, 0))
        figs["sched2_armed"].append(sched2(a.n // 4, 10 ** 9))
    m = {k: median(v) for k, v in figs.items()}
    for k in ("loop_plain", "loop_armed", "loop_sliced", "sched2_plain",
              "sched2_armed"):
        emit("watchdog", k, "stackless_compat", m[k], "ns")
    emit("watchdog", "loop_armed_ratio", "stackless_compat",
         m["loop_armed"] / m["loop_plain"], "x")
    emit("watchdog", "loop_sliced_ratio", "stackless_compat",
         m["loop_sliced"] / m["loop_plain"], "x")
    emit("watchdog", "loop_counted_ratio", "stackless_compat",
         m["loop_counted"] / m["loop_plain"], "x")


if __name__ == "__main__":
    main()
