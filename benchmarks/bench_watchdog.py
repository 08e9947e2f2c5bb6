#!/usr/bin/env python3
"""What the watchdog (run(timeout)) costs.

Figures (ns, stackless_compat only; each pair measured in one process):
  sched2_plain / sched2_armed
      2 tasklets loop on schedule() under run() / under run(10**9) (an
      interrupt watchdog armed for the whole loop, never firing)
  loop_plain / loop_armed
      a plain Python loop (ns per iteration) in a tasklet under run() / under
      run(10**9)
  interrupt_latency_us
      run(1000) with a busy tasklet: microseconds from run() to the interrupt
      (the armed slice is 100 us; the rest is the wait for the GIL, about
      one switch interval)

  python benchmarks/bench_watchdog.py [--n N]
"""
import argparse
import time

import stackless_compat as sl

from _benchlib import emit


def sched2(n, timeout):
    def body():
        for _ in range(n):
            sl.schedule()
    sl.tasklet(body)()
    sl.tasklet(body)()
    t0 = time.perf_counter()
    r = sl.run(timeout)
    dt = time.perf_counter() - t0
    assert r is None
    return dt * 1e9 / (2 * n)


def loop(n, timeout):
    res = {}

    def body():
        t0 = time.perf_counter()
        x = 0
        for i in range(n):
            x += i
        res["dt"] = time.perf_counter() - t0
    sl.tasklet(body)()
    assert sl.run(timeout) is None
    return res["dt"] * 1e9 / n


def latency():
    def busy():
        while True:
            pass
    t = sl.tasklet(busy)()
    t0 = time.perf_counter()
    r = sl.run(1000)
    dt = time.perf_counter() - t0
    assert r is t
    t.kill()
    return dt * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    figs = {"sched2_plain": [], "sched2_armed": [], "loop_plain": [],
            "loop_armed": [], "interrupt_latency_us": []}
    for _ in range(a.rounds):
        figs["sched2_plain"].append(sched2(a.n, 0))
        figs["sched2_armed"].append(sched2(a.n, 10 ** 9))
        figs["loop_plain"].append(loop(a.n * 4, 0))
        figs["loop_armed"].append(loop(a.n * 4, 10 ** 9))
        figs["interrupt_latency_us"].append(latency())
    for name, vals in figs.items():
        vals.sort()
        emit("watchdog", name, "stackless_compat", vals[len(vals) // 2],
             "us" if name.endswith("_us") else "ns")


if __name__ == "__main__":
    main()
