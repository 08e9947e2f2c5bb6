#!/usr/bin/env python3
"""schedule() switch cost, and greenlet's raw switch() as the reference peer.

Figures (one JSON line each):
  schedule_2      [stackless_compat, sl_emul] 2 tasklets loop on schedule();
                  value = ns per schedule() call (one switch, loop included)
  schedule_1000   [stackless_compat, sl_emul] the same with 1000 tasklets in
                  the round robin (cache pressure, long run queue)
  greenlet_switch [greenlet] two greenlets switch() back and forth; both are
                  started from main at the same stack position, as a scheduler
                  starts them, so every switch saves one stack slice and
                  restores the other; value = ns per switch (one direction)
  greenlet_switch_nested
                  [greenlet] the naive variant: b is started from inside a, so
                  only b's slice is ever copied (about half the copying);
                  informational

Targets (benchmarks/README.md, "Targets"): schedule_2 <= 0.35 x greenlet_switch (same run);
schedule_1000 <= 1.2 x schedule_2.

  python benchmarks/bench_schedule.py                 # every installed impl
  python benchmarks/bench_schedule.py --impl sl_emul --n 1000000
"""
import sys

import _benchlib as B

IMPLS = ("stackless_compat", "sl_emul", "greenlet")
BENCH = "schedule"


def schedule_loop(sl, n, ntasklets):
    """ns per schedule() with `ntasklets` tasklets doing n switches in total.
    The same code runs for every Stackless-API impl (module passed in)."""
    per = max(1, n // ntasklets)
    schedule = sl.schedule
    done = [0]

    def body():
        for _ in range(per):
            schedule()
        done[0] += 1

    tasklet = sl.tasklet
    for _ in range(ntasklets):
        tasklet(body)()
    t0 = B.now()
    sl.run()
    dt = B.now() - t0
    assert done[0] == ntasklets, (done[0], ntasklets)
    return dt * 1e9 / (per * ntasklets)


def greenlet_switch(gmod, n, start="same"):
    """ns per greenlet.switch() between two greenlets (one direction)."""
    greenlet = gmod.greenlet
    main = gmod.getcurrent()
    res = {}

    def a_body():
        if start == "nested":
            gb.switch()        # start b from here: its slice lies below a's
        sw = gb.switch
        t0 = B.now()
        for _ in range(n):
            sw()
        res["dt"] = B.now() - t0

    def b_body():
        if start == "same":
            main.switch()      # park; main then starts a from the same base
        else:
            ga.switch()
        sw = ga.switch
        while True:
            sw()

    ga = greenlet(a_body)
    gb = greenlet(b_body)
    if start == "same":
        gb.switch()
    ga.switch()
    gb.throw()                 # GreenletExit unwinds b
    return res["dt"] * 1e9 / (2 * n)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = B.base_parser(__doc__, IMPLS, 1000000, 100000)
    a = ap.parse_args(argv)
    if a.impl == "all":
        return B.run_all_impls(__file__, IMPLS, argv)
    n = a.n
    mod = B.load_or_skip(BENCH, a.impl)
    if a.impl == "greenlet":
        rounds = n // 2     # round trips: n switches in total
        for start, fig in (("same", "greenlet_switch"), ("nested", "greenlet_switch_nested")):
            v, lo, hi = B.median_of(lambda k: greenlet_switch(mod, k, start), rounds, a.repeat)
            B.emit(BENCH, fig, a.impl, v, "ns/switch", n_switches=2 * rounds, start=start,
                   repeat=a.repeat, min=round(lo, 3), max=round(hi, 3))
        return 0
    for nt in (2, 1000):
        v, lo, hi = B.median_of(lambda k: schedule_loop(mod, k, nt), n, a.repeat)
        B.emit(BENCH, "schedule_%d" % nt, a.impl, v, "ns/switch", n_switches=n,
               tasklets=nt, repeat=a.repeat, min=round(lo, 3), max=round(hi, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
