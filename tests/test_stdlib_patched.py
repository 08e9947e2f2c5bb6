"""CPython's own socket/select/ssl/http, threading/queue and
subprocess/signal suites under patch_all().

Each module of the interpreter's ``test`` package runs in its own child
process through tests/stdlib/run_patched.py (patch_all() first, then the
stdlib's regression-test runner), with the cases listed in
tests/stdlib/skips.txt left out (each with its reason there).

The normal run keeps CI time small: the big suites (test_socket, test_ssl)
run a subset of their test classes, chosen to cover what the hub patches;
``SLP_STDLIB_FULL=1`` runs every module whole.  A pass/fail line per module
is printed at the end of the session.
"""
import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, TESTS_DIR, child_env

STDLIB_DIR = os.path.join(TESTS_DIR, "stdlib")
RUNNER = os.path.join(STDLIB_DIR, "run_patched.py")
FULL = os.environ.get("SLP_STDLIB_FULL", "") not in ("", "0")

sys.path.insert(0, STDLIB_DIR)
import run_patched  # noqa: E402

# module -> regrtest -m patterns for the normal (subset) run; None: whole
SUBSETS = {
    "test_select": None,
    "test_selectors": None,
    "test_timeout": None,
    "test_socket": [
        "GeneralModuleTests", "BasicTCPTest", "BasicTCPTest2",
        "BasicUDPTest", "TCPCloserTest", "BasicSocketPairTest",
        "NonBlockingTCPTests", "FileObjectClassTestCase",
        "UnbufferedFileObjectClassTestCase", "NetworkConnectionNoServer",
        "NetworkConnectionAttributesTest", "NetworkConnectionBehaviourTest",
        "TCPTimeoutTest", "UDPTimeoutTest", "TestSocketSharing",
        "SendfileUsingSendTest", "InterruptedRecvTimeoutTest",
        "ContextManagersTest", "InheritanceTest", "CreateServerTest",
        "CreateServerFunctionalTest",
    ],
    "test_httplib": None,
    "test_socketserver": None,
    "test_urllib2_localnet": None,
    "test_ssl": [
        "BasicSocketTests", "ContextTests", "SSLErrorTests",
        "SimpleBackgroundTests", "ThreadedTests", "TestPostHandshakeAuth",
        "TestEnumerations",
    ],
    "test_threading": None,
    "test_queue": None,
    "test_subprocess": None,
    "test_signal": None,
}
TIMEOUT = {"test_socket": 600, "test_ssl": 600, "test_subprocess": 600}   # per module, seconds

_summary = []


@pytest.fixture(scope="module", autouse=True)
def _print_summary(request):
    yield
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    if tr is None or not _summary:
        return
    tr.write_line("")
    tr.write_line("stdlib suites under patch_all() (%s):"
                  % ("full" if FULL else "subset; SLP_STDLIB_FULL=1 for all"))
    for line in _summary:
        tr.write_line("  " + line)


def test_skip_list_has_a_reason_for_every_entry():
    # the common list and every version's (skips-3.X.txt), whichever runs
    entries = []
    for name in sorted(os.listdir(STDLIB_DIR)):
        if name == "skips.txt" or re.fullmatch(r"skips-3\.\d+\.txt", name):
            # raises on an entry without reason
            entries += run_patched.read_skips(os.path.join(STDLIB_DIR, name))
    for pattern, reason in entries:
        module = pattern.split(".")[1] if pattern.startswith("test.") else None
        assert module in SUBSETS, pattern
        assert len(reason) > 10, (pattern, reason)


@pytest.mark.noleakcheck    # only a child process; the check adds nothing
@pytest.mark.timeout(900)
@pytest.mark.parametrize("module", sorted(SUBSETS))
def test_stdlib_module_under_patch_all(module):
    args = [sys.executable, RUNNER, module, "-v", "--timeout", "120"]
    if not FULL and SUBSETS[module]:
        for cls in SUBSETS[module]:
            args += ["-m", cls]
    t = TIMEOUT.get(module, 300)
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=t, cwd=ROOT, env=child_env(),
                          stdin=subprocess.DEVNULL)
    out = proc.stdout
    totals = re.search(r"Total tests: (.*)", out)
    result = re.search(r"Result: (\S+)", out)
    line = "%-22s %-10s %s" % (module, result.group(1) if result else "rc=%d" % proc.returncode,
                               totals.group(1) if totals else "")
    _summary.append(line)
    failed = [m for m in re.findall(r"^(?:FAIL|ERROR): (.*)$", out, re.M)]
    assert proc.returncode == 0 and result and result.group(1) == "SUCCESS", (
        "%s\nfailed cases:\n  %s\n--- tail ---\n%s"
        % (line, "\n  ".join(failed), out[-6000:]))
