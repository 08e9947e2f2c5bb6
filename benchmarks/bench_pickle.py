#!/usr/bin/env python3
"""Pickling a suspended tasklet against pickling the same data plainly.

Figures (one JSON line each, stackless_compat only: no peer can pickle a
running tasklet):
  pickle_tasklet  a tasklet suspended 10 frames deep, each frame with four
                  small locals (ints, a short string, a small tuple);
                  value = us per pickle.dumps() + pickle.loads()
  pickle_locals   the same locals as plain data (a list of 10 tuples of
                  the frames' values); value = us per dumps() + loads()
  ratio           pickle_tasklet / pickle_locals
  pickle_generator  a generator suspended at a yield with the same four
                  locals; value = us per dumps() + loads()
  gen_ratio       pickle_generator / pickling its four locals as a tuple

Target: ratio <= 2 (same run).

  python benchmarks/bench_pickle.py [--n 2000] [--repeat 5]
"""
import pickle
import sys

import _benchlib as B

BENCH = "pickle"
DEPTH = 10


def frames(level, sl):
    a = level
    b = level * 3 + 1
    name = "frame%d" % level
    pair = (a, b)
    if level + 1 < DEPTH:
        return frames(level + 1, sl) + a + b + len(name) + len(pair)
    sl.schedule_remove()
    return a


def gen_frame(level):
    a = level
    b = level * 3 + 1
    name = "frame%d" % level
    pair = (a, b)
    while True:
        yield a + b + len(name) + len(pair)


def plain_locals():
    return [(level, level * 3 + 1, "frame%d" % level,
             (level, level * 3 + 1)) for level in range(DEPTH)]


def timed(fn, n):
    t0 = B.now()
    for _ in range(n):
        fn()
    return (B.now() - t0) * 1e6 / n


def interleaved(fn, peer, n, repeat):
    """The medians of timed(fn, n) and timed(peer, n) over ``repeat``
    rounds, taken in turn so that both see the same conditions."""
    a, b = [], []
    for _ in range(max(1, repeat)):
        a.append(timed(fn, n))
        b.append(timed(peer, n))
    a.sort()
    b.sort()
    return a[len(a) // 2], b[len(b) // 2]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = B.base_parser(__doc__, ("stackless_compat",), 2000, 200).parse_args(
        argv)
    sl = B.load_or_skip(BENCH, "stackless_compat")
    # the benchmark's own module must be importable by name for the frames'
    # code to be found on load
    sys.modules.setdefault("bench_pickle", sys.modules[__name__])
    t = sl.tasklet(frames)(0, sl)
    t.run()
    assert t.paused and len(t.__reduce__()[2][3]) == DEPTH
    data = plain_locals()
    proto = pickle.HIGHEST_PROTOCOL

    def tasklet_round():
        u = pickle.loads(pickle.dumps(t, proto))
        u.kill()

    def plain_round():
        pickle.loads(pickle.dumps(data, proto))

    tasklet_round()
    plain_round()
    tv, pv = interleaved(tasklet_round, plain_round, a.n, a.repeat)
    B.emit(BENCH, "pickle_tasklet", "stackless_compat", tv, "us/round",
           n=a.n, depth=DEPTH, bytes=len(pickle.dumps(t, proto)))
    B.emit(BENCH, "pickle_locals", "stackless_compat", pv, "us/round",
           n=a.n, bytes=len(pickle.dumps(data, proto)))
    B.emit(BENCH, "ratio", "stackless_compat", tv / pv, "x", target=2.0)
    g = gen_frame(3)
    next(g)
    gdata = data[3]

    def gen_round():
        pickle.loads(pickle.dumps(g, proto))

    def gplain_round():
        pickle.loads(pickle.dumps(gdata, proto))

    gen_round()
    gv, gpv = interleaved(gen_round, gplain_round, a.n, a.repeat)
    B.emit(BENCH, "pickle_generator", "stackless_compat", gv, "us/round",
           n=a.n, bytes=len(pickle.dumps(g, proto)))
    B.emit(BENCH, "gen_ratio", "stackless_compat", gv / gpv, "x")
    t.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
