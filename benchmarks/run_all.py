#!/usr/bin/env python3
"""Run every benchmark scenario for every installed impl, side by side.

Each (scenario, impl) pair runs in its own child process, --rounds times
(default 3); the rounds are interleaved (round 1 of everything, then round 2,
...) so that a slow phase of a noisy machine hits every impl alike.  The value
reported for a figure is the median over the rounds.  Prints a table of the
figures, the ratios the targets (benchmarks/README.md) are stated in (PASS / MISS, or n/a
when an impl is missing), and writes everything to benchmarks/results.json.

Impls that are not installed (greenlet, hence also sl_emul; or a
stackless_compat that does not import yet) are skipped with a note; they do
not make the run fail.  A child that crashes or times out does (exit 1).

  python benchmarks/run_all.py              # full run, ~1-3 minutes
  python benchmarks/run_all.py --quick      # smoke run: small sizes, < 30 s
                                            # (does not write results.json
                                            # unless --json is given)
  python benchmarks/run_all.py --echo       # also the hub's loopback echo
                                            # (bench_echo.py: loadgen against
                                            # stackless_compat, gevent, asyncio,
                                            # uvloop, C epoll; ~1 min a round)
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import _benchlib as B

SCENARIOS = [  # (script, impls)
    ("bench_schedule.py", ("stackless_compat", "sl_emul", "greenlet")),
    ("bench_channel.py", ("stackless_compat", "sl_emul")),
    ("bench_create.py", ("stackless_compat", "sl_emul")),
    ("bench_rss.py", ("stackless_compat", "sl_emul", "greenlet")),
    ("bench_cstack.py", ("stackless_compat", "sl_emul", "greenlet")),
]
IMPL_COLUMNS = ("stackless_compat", "sl_emul", "greenlet")
SC = "stackless_compat"

# (label, numerator (figure, impl), denominator (figure, impl) or None for an
#  absolute figure, limit, unit of an absolute limit)
TARGETS = [
    ("schedule() 2 tasklets / greenlet raw switch",
     ("schedule_2", SC), ("greenlet_switch", "greenlet"), 0.35),
    ("schedule() 1000 tasklets / 2 tasklets",
     ("schedule_1000", SC), ("schedule_2", SC), 1.1),
    ("channel pair, one channel / sl_emul",
     ("chan_stream", SC), ("chan_stream", "sl_emul"), 0.15),
    ("channel pair, ping-pong / sl_emul",
     ("chan_pingpong", SC), ("chan_pingpong", "sl_emul"), 0.15),
    ("create+run tasklet / sl_emul",
     ("create_run", SC), ("create_run", "sl_emul"), 0.1),
    ("RSS per tasklet blocked on receive(), tasklet(f)(ch) [bytes]",
     ("rss_blocked", SC), None, 1000.0),
    ("RSS per tasklet blocked on receive(), tasklet(ch.receive)() [bytes]",
     ("rss_blocked_builtin", SC), None, 1000.0),
]
# echo (bench_echo.py, only with --echo): the echo targets, round trips/s
# (higher is better) as (label, numerator, denominator, lower bound)
ECHO_IMPLS = ("stackless_compat", "gevent", "asyncio-streams", "uvloop-streams",
              "uvloop-proto", "c")
ECHO_TARGETS = [
    ("echo 100 conns / gevent", ("echo_c100", SC), ("echo_c100", "gevent"), 1.5),
    ("echo 1000 conns / gevent", ("echo_c1000", SC), ("echo_c1000", "gevent"), 1.5),
    ("echo 100 conns / uvloop streams",
     ("echo_c100", SC), ("echo_c100", "uvloop-streams"), 1.0),
    ("echo 1000 conns / uvloop streams",
     ("echo_c1000", SC), ("echo_c1000", "uvloop-streams"), 1.0),
    ("echo 100 conns / C epoll", ("echo_c100", SC), ("echo_c100", "c"), 0.8),
    ("echo 1000 conns / C epoll", ("echo_c1000", SC), ("echo_c1000", "c"), 0.8),
]

# the same ratios for the baseline, for context (no target)
REFERENCE = [
    ("sl_emul schedule() 2 tasklets / greenlet raw switch",
     ("schedule_2", "sl_emul"), ("greenlet_switch", "greenlet")),
    ("sl_emul schedule() 1000 tasklets / 2 tasklets",
     ("schedule_1000", "sl_emul"), ("schedule_2", "sl_emul")),
]


def run_child(script, impl, args):
    cmd = [sys.executable, os.path.join(B.HERE, script), "--impl", impl]
    if args.quick:
        cmd.append("--quick")
    t0 = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return "failed", [], "timeout after %ss" % args.timeout, time.time() - t0
    recs = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    if p.returncode == B.SKIP_RC:
        return "skipped", [], p.stderr.strip().splitlines()[-1:] or ["?"], time.time() - t0
    if p.returncode != 0:
        tail = p.stderr.strip().splitlines()[-8:]
        return "failed", recs, "rc=%d: %s" % (p.returncode, " | ".join(tail)), time.time() - t0
    return "ok", recs, None, time.time() - t0


def run_echo(args):
    """One bench_echo.py child measuring every echo impl; its records."""
    cmd = [sys.executable, os.path.join(B.HERE, "bench_echo.py")]
    if args.quick:
        cmd.append("--quick")
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True,
                           timeout=max(args.timeout, 900.0))
    except subprocess.TimeoutExpired:
        return [], "timeout", []
    recs = [json.loads(line) for line in p.stdout.splitlines()
            if line.startswith("{")]
    notes = [line[len("note: "):] for line in p.stderr.splitlines()
             if line.startswith("note: ")]
    err = None
    if p.returncode not in (0, B.SKIP_RC):
        err = "rc=%d: %s" % (p.returncode,
                             " | ".join(p.stderr.strip().splitlines()[-8:]))
    return recs, err, notes


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.3g" % v


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: small sizes (each scenario's --quick), < 30 s")
    ap.add_argument("--rounds", type=int, default=3,
                    help="child processes per (scenario, impl); median reported (default 3)")
    ap.add_argument("--only", default="",
                    help="comma-separated scenario names, e.g. schedule,channel")
    ap.add_argument("--impls", default=",".join(IMPL_COLUMNS),
                    help="comma-separated impls to run (default: all)")
    ap.add_argument("--echo", action="store_true",
                    help="also run bench_echo.py (loopback echo against the peers)")
    ap.add_argument("--json", default=None,
                    help="where to write the results (default benchmarks/results.json; "
                         "with --quick nothing is written unless this is given)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="per child, seconds (default 600, --quick: 20)")
    args = ap.parse_args(argv)
    if args.timeout is None:
        args.timeout = 20.0 if args.quick else 600.0
    json_path = args.json or (None if args.quick else os.path.join(B.HERE, "results.json"))
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    want = {s.strip() for s in args.impls.split(",") if s.strip()}

    started = time.time()
    print("stackless_compat benchmarks -- %s, %s, %s (%d cpus)%s"
          % (B.PY, platform.machine(), cpu_model(), os.cpu_count() or 0,
             " -- QUICK smoke run, figures are not meaningful" if args.quick else ""))
    sys.stdout.flush()

    runs = {}        # (bench, figure, impl) -> list of records
    notes = {}       # impl -> skip reason
    failures = []
    skipped_pairs = set()
    for rnd in range(max(1, args.rounds)):
        for script, impls in SCENARIOS:
            name = script[len("bench_"):-len(".py")]
            if only and name not in only:
                continue
            for impl in impls:
                if impl not in want or (script, impl) in skipped_pairs:
                    continue
                status, recs, err, dt = run_child(script, impl, args)
                if status == "skipped":
                    skipped_pairs.add((script, impl))
                    notes.setdefault(impl, err[0] if isinstance(err, list) else err)
                    continue
                if status == "failed":
                    failures.append({"scenario": name, "impl": impl, "round": rnd + 1,
                                     "error": err})
                    sys.stderr.write("FAILED %s --impl %s (round %d): %s\n"
                                     % (script, impl, rnd + 1, err))
                for r in recs:
                    runs.setdefault((r["bench"], r["figure"], r["impl"]), []).append(r)
        if args.echo:
            recs, err, echo_notes = run_echo(args)
            for n in echo_notes:
                impl, _, why = n.partition(" not measured -- ")
                notes.setdefault(impl, why)
            if err:
                failures.append({"scenario": "echo", "impl": "all", "round": rnd + 1,
                                 "error": err})
                sys.stderr.write("FAILED bench_echo.py (round %d): %s\n" % (rnd + 1, err))
            for r in recs:
                runs.setdefault((r["bench"], r["figure"], r["impl"]), []).append(r)

    # medians
    med = {}
    for key, recs in runs.items():
        vals = [r["value"] for r in recs]
        rec = dict(recs[0])
        rec["value"] = statistics.median(vals)
        rec["rounds"] = vals
        rec["round_min"] = min(vals)
        rec["round_max"] = max(vals)
        for k in ("min", "max"):
            rec.pop(k, None)
        for k in ("p50_us", "p99_us"):       # echo: latency medians too
            if all(k in r for r in recs):
                rec[k] = statistics.median(r[k] for r in recs)
        med[key] = rec
    by_fig = {}
    for (bench, fig, impl), rec in med.items():
        by_fig.setdefault((bench, fig), {})[impl] = rec

    def value(fig, impl):
        for (bench, f), d in by_fig.items():
            if f == fig and impl in d:
                return d[impl]["value"]
        return None

    # figures table
    order = [s[len("bench_"):-3] for s, _ in SCENARIOS]
    rows = sorted(by_fig, key=lambda bf: (order.index(bf[0]) if bf[0] in order else 99,
                                          _fig_order(bf[1])))
    print()
    hdr = "%-10s %-24s %-14s" % ("scenario", "figure", "unit") + "".join(
        "%18s" % c for c in IMPL_COLUMNS)
    print(hdr)
    print("-" * len(hdr))
    echo_rows = [bf for bf in rows if bf[0] == "echo"]
    rows = [bf for bf in rows if bf[0] != "echo"]
    for bench, fig in rows:
        d = by_fig[(bench, fig)]
        unit = next(iter(d.values()))["unit"]
        extra = ""
        cb = next(iter(d.values())).get("cstack_bytes")
        if bench == "cstack" and cb is not None:
            extra = "   (C stack %s B)" % "{:,}".format(cb)
        print("%-10s %-24s %-14s" % (bench, fig, unit) + "".join(
            "%18s" % fmt(d[c]["value"] if c in d else None) for c in IMPL_COLUMNS) + extra)

    if echo_rows:
        print()
        hdr = "%-12s %-16s" % ("echo", "") + "".join("%17s" % c for c in ECHO_IMPLS)
        print(hdr)
        print("-" * len(hdr))
        for _, fig in sorted(echo_rows, key=lambda bf: int(bf[1][len("echo_c"):])):
            d = by_fig[("echo", fig)]
            for label, key in (("rt/s", "value"), ("p50 us", "p50_us"),
                               ("p99 us", "p99_us")):
                print("%-12s %-16s" % (fig if key == "value" else "", label) + "".join(
                    "%17s" % fmt(d[c].get(key) if c in d else None) for c in ECHO_IMPLS))

    # targets
    ratios = []
    print()
    print("%-50s %12s %8s  %s" % ("target", "value", "limit", "status"))
    print("-" * 82)
    for label, num, den, limit in TARGETS:
        nv = value(*num)
        dv = value(*den) if den else 1.0
        if nv is None or dv is None or dv == 0:
            missing = [i for (f, i) in ([num] + ([den] if den else []))
                       if value(f, i) is None]
            v, status = None, "n/a (missing: %s)" % ", ".join(sorted(set(missing)))
        else:
            v = nv / dv
            status = "PASS" if v <= limit else "MISS"
        shown = "-" if v is None else (fmt(v) if den is None else "%.3f" % v)
        print("%-50s %12s %8s  %s" % (label, shown, ("<= %g" % limit), status))
        ratios.append({"target": label, "numerator": list(num),
                       "denominator": list(den) if den else None, "value": v,
                       "limit": limit, "status": status.split(" ")[0]})
    for label, num, den, bound in (ECHO_TARGETS if echo_rows else []):
        nv, dv = value(*num), value(*den)
        if nv is None or not dv:
            v, status = None, "n/a"
        else:
            v = nv / dv
            status = "PASS" if v >= bound else "MISS"
        print("%-50s %12s %8s  %s" % (label, "-" if v is None else "%.3f" % v,
                                      ">= %g" % bound, status))
        ratios.append({"target": label, "numerator": list(num),
                       "denominator": list(den), "value": v, "lower_bound": bound,
                       "status": status})
    if echo_rows:
        for conns in (100, 1000):
            fig = "echo_c%d" % conns
            d = by_fig.get(("echo", fig), {})
            if SC in d and "gevent" in d:
                ok = d[SC]["p99_us"] <= d["gevent"]["p99_us"]
                print("%-50s %12s %8s  %s" % (
                    "echo %d conns p99 / gevent p99" % conns,
                    "%.3f" % (d[SC]["p99_us"] / d["gevent"]["p99_us"]), "<= 1",
                    "PASS" if ok else "MISS"))
                ratios.append({"target": "echo %d conns p99 <= gevent p99" % conns,
                               "value": d[SC]["p99_us"] / d["gevent"]["p99_us"],
                               "limit": 1.0, "status": "PASS" if ok else "MISS"})
    for label, num, den in REFERENCE:
        nv, dv = value(*num), value(*den)
        v = nv / dv if nv is not None and dv else None
        print("%-50s %12s %8s  %s" % (label, "-" if v is None else "%.3f" % v, "", "(reference)"))
        ratios.append({"target": label, "numerator": list(num), "denominator": list(den),
                       "value": v, "limit": None, "status": "reference"})

    for impl, why in sorted(notes.items()):
        print("note: %s not measured -- %s" % (impl, why))
    for f in failures:
        print("FAILED: %(scenario)s --impl %(impl)s round %(round)d: %(error)s" % f)
    elapsed = time.time() - started
    print("(%d round(s), medians; %.1f s)" % (max(1, args.rounds), elapsed))

    if json_path:
        out = {"python": B.PY, "machine": platform.machine(), "cpu": cpu_model(),
               "ncpu": os.cpu_count(), "quick": args.quick, "rounds": args.rounds,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "elapsed_s": round(elapsed, 1),
               "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
               "figures": [med[k] for k in sorted(med)], "targets": ratios,
               "skipped": notes, "failures": failures}
        with open(json_path, "w") as fh:
            json.dump(out, fh, indent=1, sort_keys=True)
            fh.write("\n")
        print("wrote %s" % json_path)
    return 1 if failures else 0


def _fig_order(fig):
    if fig.startswith("switch_depth"):
        return (1, int(fig[len("switch_depth"):]))
    return (0, fig)


if __name__ == "__main__":
    sys.exit(main())
