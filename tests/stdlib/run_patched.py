"""Run one of CPython's own test modules under stackless_compat's patch_all().

    python3 tests/stdlib/run_patched.py test_socket [--timeout 300] [-v]
    python3 tests/stdlib/run_patched.py test_ssl --no-skips   # see what fails

patch_all() runs first, on the main thread, before the test module (or
anything it imports) is loaded; then the interpreter's own regression-test
runner (``test.libregrtest``, from the ``test`` package that pyenv and the
python.org builds ship in Lib/test; Debian: ``python3.11-dev`` /
``libpython3.11-testsuite``) runs the module in this process, so the code
under test and the test's helper threads use the cooperative socket, time,
select, selectors and ssl.  Every test case listed in skips.txt (next to
this file) is left out (regrtest ``-i``), and so is every case listed in
skips-3.X.txt for the running interpreter 3.X (the stdlib's suites and
behaviour differ between versions); each entry has its reason.
Other options go to regrtest unchanged (``-v``, ``-m PATTERN``, ...).

Exit status is regrtest's: 0 when everything ran passed.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SKIPS = os.path.join(HERE, "skips.txt")
VERSION_SKIPS = os.path.join(HERE, "skips-%d.%d.txt" % sys.version_info[:2])


# regrtest resources a module needs to run at all; all of them loopback
# only here ("network" guards test_socketserver as a whole, although it never
# leaves 127.0.0.1).  Internet tests elsewhere stay disabled.
RESOURCES = {"test_socketserver": "network"}


def read_skips(path=None):
    """[(pattern, reason)] from skips.txt and this version's skips-3.X.txt
    (or from `path`): ``pattern  # reason`` lines; the pattern is a
    regrtest test id or glob (test.test_x.Class.method, test.test_x.Class.*)."""
    if path is None:
        entries = read_skips(SKIPS)
        if os.path.exists(VERSION_SKIPS):
            entries += read_skips(VERSION_SKIPS)
        return entries
    entries = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pattern, sep, reason = line.partition("#")
            pattern, reason = pattern.strip(), reason.strip()
            if not sep or not reason:
                raise SystemExit("%s:%d: skip without a reason: %r" % (path, n, line))
            entries.append((pattern, reason))
    return entries


def skips_for(module, entries=None):
    prefix = "test.%s." % module
    return [(p, r) for p, r in (read_skips() if entries is None else entries)
            if p.startswith(prefix)]


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    use_skips = "--no-skips" not in argv
    argv = [a for a in argv if a != "--no-skips"]
    modules = [a for a in argv if a.startswith("test_")]
    if not modules:
        raise SystemExit(__doc__)

    # this checkout when it has an in-place build, else what is installed
    pkg = os.path.join(REPO, "stackless_compat")
    if any(f.startswith("_stackless.") for f in os.listdir(pkg)):
        sys.path.insert(0, REPO)
    from stackless_compat.patches import patch_all
    patch_all()
    import stackless_compat
    sys.stderr.write("run_patched: patch_all() from %s\n"
                     % os.path.dirname(stackless_compat.__file__))

    regrtest_args = list(argv)
    wanted = sorted({RESOURCES[m] for m in modules if m in RESOURCES})
    if wanted and "-u" not in argv:
        regrtest_args += ["-u", ",".join(wanted)]
    if use_skips:
        for module in modules:
            for pattern, _ in skips_for(module):
                regrtest_args += ["-i", pattern]
    from test.libregrtest.main import main as regrtest_main
    sys.argv[1:] = regrtest_args
    regrtest_main()                  # parses sys.argv; exits


if __name__ == "__main__":
    main()
