#!/usr/bin/env python3
"""Resident memory per suspended tasklet.

Figures (one JSON line each; every impl is measured in its own fresh child
interpreter, so earlier allocations do not pollute the reading):
  rss_blocked  [stackless_compat, sl_emul] n (default 100,000) tasklets, each
               running `def blocked(ch): ch.receive()`, all blocked on one
               channel (balance == -n).  value = bytes of RSS per tasklet
  rss_blocked_builtin  [stackless_compat, sl_emul] the same with the
               channel's own method as the tasklet's callable,
               `tasklet(ch.receive)()` (no Python frame: the shared bench
               kit's rss_blocked figure)
  rss_parked   [greenlet] n greenlets, each running `def parked(): main.switch()`,
               started once and parked in that switch.  value = bytes of RSS
               per greenlet

Method: gc.collect() x3 + malloc_trim(0), read VmRSS; create and block the n
coroutines; collect + trim again, read VmRSS; value = delta / n.  Only the
channel (or, for greenlet, a list) keeps them alive.  The process ends with
os._exit() so tearing down n suspended coroutines is neither measured nor
waited for.

Target (benchmarks/README.md, "Targets"): rss_blocked <= 1.5 KB (1,500 B) for stackless_compat.

  python benchmarks/bench_rss.py                      # every installed impl
  python benchmarks/bench_rss.py --impl greenlet --n 100000
  python benchmarks/bench_rss.py --impl stackless_compat --million
      # one million tasklets blocked on channels (both forms, one process
      # each): total RSS growth against the 1.2 GB goal; not run by run_all
  python benchmarks/bench_rss.py --impl stackless_compat --breakdown
      # where the bytes of one blocked tasklet go (object, saved C stack,
      # data stack chunk, arguments), as allocated
"""
import sys

import _benchlib as B

IMPLS = ("stackless_compat", "sl_emul", "greenlet")
BENCH = "rss"


def rss_blocked(sl, n, builtin=False):
    ch = sl.channel()

    def blocked(ch):
        ch.receive()

    tasklet = sl.tasklet
    B.settle()
    before = B.rss_kib()
    t0 = B.now()
    if builtin:
        keep = [tasklet(ch.receive)() for _ in range(n)]
    else:
        for _ in range(n):
            tasklet(blocked)(ch)
    sl.run()                        # every tasklet runs until it blocks
    dt = B.now() - t0
    assert ch.balance == -n, (ch.balance, n)
    B.settle()
    after = B.rss_kib()
    return (after - before) * 1024.0 / n, before, after, dt * 1e6 / n, ch


def _malloc_block(n):
    # glibc: an n-byte request takes a chunk of max(32, n + 8 rounded up to 16)
    return max(32, (n + 8 + 15) // 16 * 16)


def _obmalloc_block(n):
    # CPython's small-object allocator: 16-byte size classes up to 512 bytes
    return (n + 15) // 16 * 16 if n <= 512 else _malloc_block(n)


def breakdown(sl, builtin):
    """Bytes of one blocked tasklet, component by component (as allocated:
    request size and the block the allocator hands out)."""
    from stackless_compat import _stackless
    ch = sl.channel()

    def blocked(ch):
        ch.receive()

    # warm up first so that the eval loop's call is specialised, as it is
    # for all but the first few of 100,000 tasklets
    ts = [sl.tasklet(ch.receive)() if builtin else sl.tasklet(blocked)(ch)
          for _ in range(64)]
    sl.run()
    t = ts[-1]
    slice_bytes, capacity = _stackless._stack_info(t)
    code = blocked.__code__
    parts = [("tasklet object (GC header + struct)", sys.getsizeof(t),
              _obmalloc_block(sys.getsizeof(t)))]
    parts.append(("saved C stack slice (heap copy)", capacity,
                  _malloc_block(capacity)))
    if builtin:
        parts.append(("bound method ch.receive (the callable)",
                      sys.getsizeof(ch.receive), _obmalloc_block(sys.getsizeof(ch.receive))))
        parts.append(("first data stack chunk (none: no Python frame)", 0, 0))
    else:
        # 3 header words, 1 skipped slot, the frame (7 special words +
        # locals + value stack), 1 free word
        words = 3 + 1 + 7 + code.co_nlocals + code.co_stacksize + 1
        parts.append(("first data stack chunk (holds the frame)", words * 8,
                      _obmalloc_block(words * 8)))
        args = _stackless._tasklet_bound(t)[1]
        if args is None:
            # the frame holds the arguments: dropped at the first switch
            parts.append(("argument tuple (ch,) (none: dropped)", 0, 0))
        else:
            parts.append(("argument tuple (ch,)", sys.getsizeof(args),
                          _obmalloc_block(sys.getsizeof(args))))
    parts.append(("the benchmark's own reference (list slot or queue)", 8, 8))
    for name, req, blk in parts:
        print("%-52s %6d B requested %6d B allocated" % (name, req, blk))
    print("%-52s %6s   %18d B" % ("total", "", sum(p[2] for p in parts)))
    print("slice: %d bytes of C stack from the thread's base down to the "
          "switch" % slice_bytes)


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
    ap = B.base_parser(__doc__, IMPLS, 100000, 5000)
    ap.add_argument("--million", action="store_true",
                    help="1,000,000 tasklets blocked on channels, both forms "
                         "(stackless_compat only; needs ~2.5 GB free)")
    ap.add_argument("--form", choices=("func", "builtin", "both"), default="both",
                    help="which rss_blocked figure(s) to measure")
    ap.add_argument("--breakdown", action="store_true",
                    help="print where one blocked tasklet's bytes go")
    a = ap.parse_args(argv)
    if a.million:
        import subprocess
        rc = 0
        for form in ("func", "builtin"):
            rc |= subprocess.call([sys.executable, __file__, "--impl",
                                   "stackless_compat", "--n", "1000000",
                                   "--form", form])
        return rc
    if a.breakdown:
        mod = B.load_impl("stackless_compat")
        for builtin in (False, True):
            print("== tasklet(%s" % ("ch.receive)()" if builtin else "blocked)(ch)"))
            breakdown(mod, builtin)
        return 0
    if a.impl == "all":
        return B.run_all_impls(__file__, IMPLS, argv)
    mod = B.load_or_skip(BENCH, a.impl)
    if a.impl == "greenlet":
        per, before, after, us, keep = rss_parked_greenlets(mod, a.n)
        B.emit(BENCH, "rss_parked", a.impl, per, "bytes/greenlet", n=a.n,
               rss_before_kib=before, rss_after_kib=after, us_per_create_and_park=round(us, 3))
    else:
        forms = ("func", "builtin") if a.form == "both" else (a.form,)
        if len(forms) > 1:
            # each figure in its own fresh interpreter
            import subprocess
            rc = 0
            for form in forms:
                rc |= subprocess.call([sys.executable, __file__] +
                                      [x for x in argv if x != "--form"] +
                                      ["--form", form])
            B.hard_exit(rc)
        builtin = forms[0] == "builtin"
        per, before, after, us, keep = rss_blocked(mod, a.n, builtin)
        B.emit(BENCH, "rss_blocked_builtin" if builtin else "rss_blocked",
               a.impl, per, "bytes/tasklet", n=a.n,
               rss_before_kib=before, rss_after_kib=after,
               rss_growth_mb=round((after - before) * 1024 / 1e6, 1),
               us_per_create_and_block=round(us, 3))
    B.hard_exit(0)


if __name__ == "__main__":
    sys.exit(main())
