#!/usr/bin/env python3
"""Create + run trivial tasklets.

Figure (one JSON line; impls stackless_compat and sl_emul run the same code):
  create_run   create n (default 100,000) tasklets with tasklet(body)(i) -- bind,
               setup, append to the run queue -- then one run() that runs them
               all to completion.  value = us per tasklet (create + run);
               create_us / run_us split it.

The body is `def body(i): pass`.  The cyclic GC stays enabled (as in a real
program).

Target (benchmarks/README.md, "Targets"): create_run <= 0.1 x sl_emul's, measured in the same run.

  python benchmarks/bench_create.py                   # every installed impl
  python benchmarks/bench_create.py --impl sl_emul --n 100000
"""
import sys

import _benchlib as B

IMPLS = ("stackless_compat", "sl_emul")
BENCH = "create"


def create_run(sl, n):
    done = [0]

    def body(i):
        pass

    def last(i):
        done[0] = i

    tasklet = sl.tasklet
    t0 = B.now()
    for i in range(n - 1):
        tasklet(body)(i)
    tasklet(last)(n)
    t1 = B.now()
    sl.run()
    t2 = B.now()
    assert done[0] == n and sl.getruncount() == 1
    return (t2 - t0) * 1e6 / n, (t1 - t0) * 1e6 / n, (t2 - t1) * 1e6 / n


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = B.base_parser(__doc__, IMPLS, 100000, 5000).parse_args(argv)
    if a.impl == "all":
        return B.run_all_impls(__file__, IMPLS, argv)
    sl = B.load_or_skip(BENCH, a.impl)
    create_run(sl, max(2, a.n // 10))   # warm-up
    runs = sorted(create_run(sl, a.n) for _ in range(max(1, a.repeat)))
    tot, cr, rn = runs[len(runs) // 2]
    B.emit(BENCH, "create_run", a.impl, tot, "us/tasklet", n=a.n, repeat=a.repeat,
           create_us=round(cr, 3), run_us=round(rn, 3),
           min=round(runs[0][0], 3), max=round(runs[-1][0], 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
