#!/usr/bin/env python3
"""Channel send+receive pairs.

Figures (one JSON line each; impls stackless_compat and sl_emul run the very
same scenario functions, the module object is passed in):
  chan_stream    one producer and one consumer tasklet on ONE channel; the
                 producer sends n values, the consumer receives them (default
                 preference -1).  value = ns per send+receive pair
  chan_pingpong  ping-pong over TWO channels: ping does a.send(i); b.receive(),
                 pong does b.send(a.receive()).  n pairs = n/2 round trips.
                 value = ns per send+receive pair (round trip = 2 pairs)

Timing starts inside the producer/ping tasklet once both tasklets exist, so
tasklet creation is not included.

Target (benchmarks/README.md, "Targets"): pair <= 0.15 x the sl_emul pair, measured in the same run.

  python benchmarks/bench_channel.py                  # every installed impl
  python benchmarks/bench_channel.py --impl stackless_compat --n 2000000
"""
import sys

import _benchlib as B

IMPLS = ("stackless_compat", "sl_emul")
BENCH = "channel"


def chan_stream(sl, n):
    ch = sl.channel()
    res = {}

    def producer():
        send = ch.send
        t0 = B.now()
        for i in range(n):
            send(i)
        res["dt"] = B.now() - t0

    def consumer():
        recv = ch.receive
        for _ in range(n):
            recv()
        res["got"] = n

    sl.tasklet(consumer)()      # consumer blocks first: every send finds a receiver
    sl.tasklet(producer)()
    sl.run()
    assert res.get("got") == n and ch.balance == 0
    return res["dt"] * 1e9 / n


def chan_pingpong(sl, n):
    rounds = max(1, n // 2)
    a, b = sl.channel(), sl.channel()
    res = {}

    def ping():
        send, recv = a.send, b.receive
        t0 = B.now()
        for i in range(rounds):
            send(i)
            recv()
        res["dt"] = B.now() - t0

    def pong():
        recv, send = a.receive, b.send
        for _ in range(rounds):
            send(recv())
        res["done"] = True

    sl.tasklet(pong)()
    sl.tasklet(ping)()
    sl.run()
    assert res.get("done") and a.balance == 0 and b.balance == 0
    return res["dt"] * 1e9 / (2 * rounds)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = B.base_parser(__doc__, IMPLS, 1000000, 20000).parse_args(argv)
    if a.impl == "all":
        return B.run_all_impls(__file__, IMPLS, argv)
    sl = B.load_or_skip(BENCH, a.impl)
    for fig, fn in (("chan_stream", chan_stream), ("chan_pingpong", chan_pingpong)):
        v, lo, hi = B.median_of(lambda k: fn(sl, k), a.n, a.repeat)
        B.emit(BENCH, fig, a.impl, v, "ns/pair", n_pairs=a.n, repeat=a.repeat,
               min=round(lo, 3), max=round(hi, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
