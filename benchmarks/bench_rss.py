#!/usr/bin/env python3
"""Resident memory per suspended tasklet.

Figures (one JSON line each; every impl is measured in its own fresh child
interpreter, so earlier allocations do not pollute the reading):
  rss_blocked  [stackless_compat, sl_emul] n (default 100,000) tasklets, each
               running `def blocked(ch): ch.receive()`, all blocked on one
               channel (balance == -n).  value = bytes of RSS per tasklet
  rss_parked   [greenlet] n greenlets, each running `def parked(): main.switch()`,
               started once and parked in that switch.  value = bytes of RSS
               per greenlet

Method: gc.collect() x3 + malloc_trim(0), read VmRSS; create and block the n
coroutines; collect + trim again, read VmRSS; value = delta / n.  Only the
channel (or, for greenlet, a list) keeps them alive.  The process ends with
os._exit() so tearing down n suspended coroutines is neither measured nor
waited for.

Target (issue 2): rss_blocked <= 1.5 KB (1,500 B) for stackless_compat.

  python benchmarks/bench_rss.py                      # every installed impl
  python benchmarks/bench_rss.py --impl greenlet --n 100000
"""
import sys

import _benchlib as B

IMPLS = ("stackless_compat", "sl_emul", "greenlet")
BENCH = "rss"


def rss_blocked(sl, n):
    ch = sl.channel()

    def blocked(ch):
        ch.receive()

    tasklet = sl.tasklet
    B.settle()
    before = B.rss_kib()
    t0 = B.now()
    for _ in range(n):
        tasklet(blocked)(ch)
    sl.run()                        # every tasklet runs until it blocks
    dt = B.now() - t0
    assert ch.balance == -n, (ch.balance, n)
    B.settle()
    after = B.rss_kib()
    return (after - before) * 1024.0 / n, before, after, dt * 1e6 / n, ch


def rss_parked_greenlets(gmod, n):
    greenlet = gmod.greenlet
    main = gmod.getcurrent()

    def parked():
        main.switch()

    B.settle()
    before = B.rss_kib()
    t0 = B.now()
    gs = [greenlet(parked) for _ in range(n)]
    for g in gs:
        g.switch()
    dt = B.now() - t0
    assert all(not g.dead for g in gs[:10])
    B.settle()
    after = B.rss_kib()
    return (after - before) * 1024.0 / n, before, after, dt * 1e6 / n, gs


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = B.base_parser(__doc__, IMPLS, 100000, 5000).parse_args(argv)
    if a.impl == "all":
        return B.run_all_impls(__file__, IMPLS, argv)
    try:
        mod = B.load_impl(a.impl)
    except B.ImplUnavailable as e:
        B.skip(BENCH, a.impl, e)
    if a.impl == "greenlet":
        per, before, after, us, keep = rss_parked_greenlets(mod, a.n)
        B.emit(BENCH, "rss_parked", a.impl, per, "bytes/greenlet", n=a.n,
               rss_before_kib=before, rss_after_kib=after, us_per_create_and_park=round(us, 3))
    else:
        per, before, after, us, keep = rss_blocked(mod, a.n)
        B.emit(BENCH, "rss_blocked", a.impl, per, "bytes/tasklet", n=a.n,
               rss_before_kib=before, rss_after_kib=after, us_per_create_and_block=round(us, 3))
    B.hard_exit(0)


if __name__ == "__main__":
    sys.exit(main())
