#!/usr/bin/env python3
"""Raw switch cost as the C stack under the switching code grows.

Two coroutines each first nest D levels, every level going through a C call
boundary (`operator.call(nest, depth - 1, fn)`: the C function re-enters the
eval loop, so CPython 3.11 starts a fresh _PyEval_EvalFrameDefault C frame per
level), and then switch back and forth.  A stack-slicing switch has to save
and restore that C stack, so the cost grows with D.

Figures (one JSON line per depth, D in --depths, default 0,10,50,200):
  switch_depth<D>  [stackless_compat, sl_emul] tasklet a does b.switch(), b does
                   a.switch() (tasklet.switch(): the caller is paused, the target
                   runs now).  value = ns per switch (one direction, loop included)
                   [greenlet] the same with greenlet.switch(); both greenlets are
                   started from main at the same stack position, as a scheduler
                   starts them (so each switch saves one slice and restores the
                   other, like the tasklets)
Extra fields: depth, nest, cstack_bytes (C stack consumed by D levels of the
nesting, measured in the main tasklet with getcontext(); x86-64 only, else
null), nesting_level (tasklet.nesting_level seen inside a, where the impl has it).

--nest py nests through plain Python calls instead (no C stack growth on 3.11),
for comparison.

  python benchmarks/bench_cstack.py                   # every installed impl
  python benchmarks/bench_cstack.py --impl greenlet --depths 0,50,500
"""
import operator
import sys

import _benchlib as B

IMPLS = ("stackless_compat", "sl_emul", "greenlet")
BENCH = "cstack"

sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

_call = getattr(operator, "call", None) or (lambda f, *a: f(*a))


def nest_c(depth, fn):
    if depth <= 0:
        return fn()
    return _call(nest_c, depth - 1, fn)


def nest_py(depth, fn):
    if depth <= 0:
        return fn()
    return nest_py(depth - 1, fn)


NEST = {"c": nest_c, "py": nest_py}


def cstack_bytes(nest, depth):
    base = B.c_stack_pointer()
    inner = nest(depth, B.c_stack_pointer)
    if base is None or inner is None:
        return None
    return base - inner


def switch_tasklets(sl, n, depth, nest, info=None):
    """ns per tasklet.switch() between two tasklets nested `depth` levels."""
    res = {}
    box = {}

    def a_body():
        if info is not None:
            info["nesting_level"] = getattr(sl.getcurrent(), "nesting_level", None)
        sw = box["b"].switch
        t0 = B.now()
        for _ in range(n):
            sw()
        res["dt"] = B.now() - t0

    def b_body():
        sw = box["a"].switch
        while True:
            sw()

    box["a"] = sl.tasklet(lambda: nest(depth, a_body))()
    box["b"] = sl.tasklet(lambda: nest(depth, b_body))()
    sl.run()
    if box["b"].alive:
        box["b"].kill()
    assert not box["a"].alive and not box["b"].alive
    return res["dt"] * 1e9 / (2 * n)


def switch_greenlets(gmod, n, depth, nest, info=None):
    """ns per greenlet.switch() between two greenlets nested `depth` levels."""
    greenlet = gmod.greenlet
    main = gmod.getcurrent()
    res = {}

    def a_body():
        sw = gb.switch
        t0 = B.now()
        for _ in range(n):
            sw()
        res["dt"] = B.now() - t0

    def b_body():
        main.switch()          # park; main starts a from the same stack base
        sw = ga.switch
        while True:
            sw()

    ga = greenlet(lambda: nest(depth, a_body))
    gb = greenlet(lambda: nest(depth, b_body))
    gb.switch()
    ga.switch()
    gb.throw()                 # GreenletExit unwinds b
    return res["dt"] * 1e9 / (2 * n)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = B.base_parser(__doc__, IMPLS, 1000000, 20000)
    ap.add_argument("--depths", default="0,10,50,200",
                    help="comma-separated nesting depths (default %(default)s)")
    ap.add_argument("--nest", choices=sorted(NEST), default="c",
                    help="c: each level crosses a C call boundary (default); py: plain calls")
    a = ap.parse_args(argv)
    if a.impl == "all":
        return B.run_all_impls(__file__, IMPLS, argv)
    mod = B.load_or_skip(BENCH, a.impl)
    nest = NEST[a.nest]
    fn = switch_greenlets if a.impl == "greenlet" else switch_tasklets
    for depth in [int(d) for d in a.depths.split(",") if d.strip()]:
        # deeper stacks cost more per switch: fewer switches keep the run short
        n = max(1000, a.n // (1 + depth // 5))
        rounds = n // 2
        info = {}
        fn(mod, max(100, rounds // 20), depth, nest, info)   # warm-up
        vals = sorted(fn(mod, rounds, depth, nest) for _ in range(max(1, a.repeat)))
        B.emit(BENCH, "switch_depth%d" % depth, a.impl, vals[len(vals) // 2], "ns/switch",
               depth=depth, nest=a.nest, n_switches=2 * rounds, repeat=a.repeat,
               min=round(vals[0], 3), max=round(vals[-1], 3),
               cstack_bytes=cstack_bytes(nest, depth),
               nesting_level=info.get("nesting_level"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
