#!/usr/bin/env python3
"""Channel pairs and create+run in CPU time, for comparing two builds on a
loaded machine (stackless_compat only; wall-clock figures and the peers
are in bench_channel.py / bench_create.py).

Each figure is timed with the thread's CPU clock (time.thread_time_ns())
inside the timing tasklet, minimum of 7 runs, the collector off; one JSON
line: {"stream": ns per send+receive pair on one channel, "pingpong": ns
per pair on two channels, "create": ns per tasklet created and run}.
Alternate the builds in one shell loop (PYTHONPATH=BUILD_DIR):

  python benchmarks/bench_cpu.py
"""
import gc
import json
import time

import stackless_compat as sl


def tt(): return time.thread_time_ns()
def stream(n):
    ch = sl.channel(); r = {}
    def prod():
        t0 = tt()
        for i in range(n): ch.send(i)
        r['dt'] = tt() - t0
    def cons():
        for i in range(n): ch.receive()
    sl.tasklet(cons)(); sl.tasklet(prod)(); sl.run()
    return r['dt'] / n
def pingpong(n):
    a = sl.channel(); b = sl.channel(); r = {}
    def ping():
        t0 = tt()
        for i in range(n // 2):
            a.send(i); b.receive()
        r['dt'] = tt() - t0
    def pong():
        for i in range(n // 2):
            b.send(a.receive())
    sl.tasklet(pong)(); sl.tasklet(ping)(); sl.run()
    return r['dt'] / n
def create(n):
    def body(i): pass
    t0 = tt()
    for i in range(n): sl.tasklet(body)(i)
    sl.run()
    return (tt() - t0) / n
res = {}
gc.disable()
for name, fn, n in (("stream", stream, 100000), ("pingpong", pingpong, 100000), ("create", create, 20000)):
    fn(n // 10)
    res[name] = round(min(fn(n) for _ in range(7)), 1)
print(json.dumps(res))
