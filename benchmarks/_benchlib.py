"""Shared helpers for stackless_compat's benchmark scenarios.

Every figure is printed as ONE JSON line on stdout:

  {"bench": ..., "figure": ..., "impl": ..., "value": <float>, "unit": ..., ...extra}

Implementations ("impls"):

  stackless_compat  our C extension (``import stackless_compat``)
  sl_emul           the pure-Python Stackless emulation on greenlet
                    (benchmarks/peers/sl_emul.py), the baseline peer
  greenlet          greenlet's raw switch() (only where a scenario has a
                    greenlet form)

A scenario script run with ``--impl all`` (the default) re-runs itself once per
impl in a child process, so the peers are measured in the same run but every
impl gets a fresh interpreter.  An impl that cannot be imported makes its child
exit with SKIP_RC (77) after a note on stderr; ``all`` mode and run_all.py then
report it as skipped instead of failing.
"""
import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")

SKIP_RC = 77
PY = "%s %s" % (platform.python_implementation(), platform.python_version())

now = time.perf_counter


class ImplUnavailable(Exception):
    pass


def emit(bench, figure, impl, value, unit, **extra):
    rec = {"bench": bench, "figure": figure, "impl": impl,
           "value": round(float(value), 3), "unit": unit, "python": PY,
           "machine": platform.machine()}
    rec.update(extra)
    sys.stdout.write(json.dumps(rec, sort_keys=True) + "\n")
    sys.stdout.flush()
    return rec


def _import_stackless_compat():
    try:
        import stackless_compat as mod
    except ImportError as first:
        # Not installed: try the repository checkout (an in-place build).  The
        # repo root goes to the END of sys.path so that an installed copy wins.
        sys.modules.pop("stackless_compat", None)
        if REPO not in sys.path:
            sys.path.append(REPO)
        try:
            import stackless_compat as mod
        except ImportError as e:
            raise ImplUnavailable("stackless_compat: %s (first try: %s)" % (e, first))
    for name in ("tasklet", "channel", "schedule", "run"):
        if not hasattr(mod, name):
            raise ImplUnavailable("stackless_compat has no %r yet" % name)
    return mod


def load_impl(name):
    """Return the module object for an impl, or raise ImplUnavailable."""
    if name == "stackless_compat":
        return _import_stackless_compat()
    if name == "sl_emul":
        if PEERS not in sys.path:
            sys.path.insert(0, PEERS)
        try:
            import sl_emul as mod
        except ImportError as e:
            raise ImplUnavailable("sl_emul needs greenlet: %s" % e)
        return mod
    if name == "greenlet":
        try:
            import greenlet as mod
        except ImportError as e:
            raise ImplUnavailable("greenlet not installed: %s" % e)
        return mod
    raise ImplUnavailable("unknown impl %r" % name)


def load_or_skip(bench, impl):
    """load_impl(impl), or skip() the benchmark when it is unavailable."""
    try:
        return load_impl(impl)
    except ImplUnavailable as e:
        skip(bench, impl, e)


def skip(bench, impl, reason):
    sys.stderr.write("[%s] skipping impl %s: %s\n" % (bench, impl, reason))
    sys.stderr.flush()
    sys.exit(SKIP_RC)


def rss_kib():
    """Current VmRSS of this process in KiB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def settle():
    """Collect garbage and hand freed heap back before an RSS reading."""
    for _ in range(3):
        gc.collect()
    try:  # glibc only: return free heap pages so that RSS deltas are honest
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:
        pass


_sp_getcontext = None


def c_stack_pointer():
    """The machine stack pointer as seen from Python (x86-64 Linux/glibc only,
    via getcontext(): the saved RSP is gregs[REG_RSP=15] at offset
    40 + 15*8 of ucontext_t).  Only differences between two readings taken the
    same way mean anything.  None where unsupported."""
    global _sp_getcontext
    if platform.machine() != "x86_64" or not sys.platform.startswith("linux"):
        return None
    if _sp_getcontext is None:
        try:
            import ctypes
            fn = ctypes.CDLL("libc.so.6").getcontext
            fn.argtypes = [ctypes.c_void_p]
            _sp_getcontext = (fn, ctypes.create_string_buffer(4096))
        except Exception:
            _sp_getcontext = False
    if not _sp_getcontext:
        return None
    fn, buf = _sp_getcontext
    if fn(buf) != 0:
        return None
    return int.from_bytes(buf.raw[160:168], "little")


def hard_exit(code=0):
    """Exit without interpreter teardown (tearing down 100k suspended
    coroutines is slow and is not what is measured)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def median_of(fn, n, repeat, warmup=True):
    """Run fn(n) `repeat` times (after a small warm-up); return (median, min, max)."""
    if warmup:
        fn(max(1, n // 20))
    vals = sorted(fn(n) for _ in range(max(1, repeat)))
    return vals[len(vals) // 2], vals[0], vals[-1]


def base_parser(doc, impls, full_n, quick_n):
    """Common options.  After parse_args, a.n is resolved: an explicit --n
    wins, else quick_n with --quick, else full_n."""
    ap = _Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.sizes = (full_n, quick_n)
    ap.add_argument("--impl", default="all", choices=list(impls) + ["all"],
                    help="implementation to measure; 'all' (default) measures every "
                         "installed one, each in its own child process")
    ap.add_argument("--n", type=int, default=None,
                    help="problem size (default %d, --quick: %d)" % (full_n, quick_n))
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed repetitions inside the process; value = their median")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes for a smoke run (overridden by an explicit --n)")
    return ap


class _Parser(argparse.ArgumentParser):
    sizes = (None, None)

    def parse_args(self, args=None, namespace=None):
        a = super().parse_args(args, namespace)
        if getattr(a, "n", None) is None:
            a.n = self.sizes[1] if a.quick else self.sizes[0]
        if a.quick and "--repeat" not in (args or sys.argv[1:]):
            a.repeat = 1
        return a


def run_all_impls(script, impls, argv):
    """--impl all: re-run `script` once per impl in a child process, pass the
    JSON lines through, note skipped impls.  Returns the exit code."""
    rest = []
    skip_next = False
    for i, a in enumerate(argv):
        if skip_next:
            skip_next = False
            continue
        if a == "--impl":
            skip_next = True
            continue
        if a.startswith("--impl="):
            continue
        rest.append(a)
    rc = 0
    for impl in impls:
        p = subprocess.run([sys.executable, script, "--impl", impl] + rest,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        sys.stdout.write(p.stdout)
        sys.stdout.flush()
        if p.returncode == SKIP_RC:
            sys.stderr.write(p.stderr)
        elif p.returncode != 0:
            sys.stderr.write(p.stderr)
            sys.stderr.write("[%s] impl %s FAILED (rc=%d)\n"
                             % (os.path.basename(script), impl, p.returncode))
            rc = 1
    return rc
