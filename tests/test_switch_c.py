"""The switch core's C-only torture test (tests/c/torture.c), run by make.

``make -C tests/c check`` builds the test with gcc at -O0 and -O2 (and clang
-O2 when clang is installed) against csrc/switch.c and runs each build.  The
AArch64 (qemu-user), ASan+UBSan and valgrind variants are separate make
targets that CI runs directly (see tests/c/Makefile and .ci/run).
"""

import os
import re
import shutil
import subprocess

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
C_DIR = os.path.join(TESTS_DIR, "c")

# Totals every run must report as non-zero.
_NONZERO = ("switches", "starts", "restarts", "finishes", "levels",
            "buffers_verified", "stack_reads", "final_reads", "drained")

_RUN_HEADER = re.compile(r"^== (.+)$", re.M)
_TOTAL = re.compile(r"\b([a-z_]+)=([0-9a-f]+)\b")


def _runs(output):
    """Split make's output into {build name: {total: value}}."""
    runs = {}
    headers = list(_RUN_HEADER.finditer(output))
    for i, m in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(output)
        body = output[m.end():end]
        totals = {}
        for line in body.splitlines():
            if line.startswith("torture: "):
                totals.update(_TOTAL.findall(line))
        runs[m.group(1).strip()] = (totals, body)
    return runs


# Pure C in a child process: it creates no Python objects, and it must run
# (and pass) even while the extension itself cannot be imported.
@pytest.mark.noleakcheck
def test_switch_torture_native(tmp_path):
    missing = [tool for tool in ("make", "gcc") if shutil.which(tool) is None]
    if missing:
        pytest.skip("the C switch torture test needs %s on PATH"
                    % " and ".join(missing))
    # Build out of tree: the checkout may be read-only or shared.
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", C_DIR, "check",
         "BUILD=" + str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=110)
    out = proc.stdout
    assert proc.returncode == 0, "make check failed (exit %d):\n%s" % (
        proc.returncode, out[-6000:])

    runs = _runs(out)
    expected = ["gcc -O0", "gcc -O2"]
    if shutil.which("clang"):
        expected.append("clang -O2")
    else:
        assert "clang -O2: SKIPPED (clang is not installed)" in runs, out
    for name in expected:
        assert name in runs, "no run of %r in:\n%s" % (name, out)

    schedules = set()
    for name in expected:
        totals, body = runs[name]
        assert "torture: OK" in body, body
        assert totals.get("errors") == "0", body
        for key in _NONZERO:
            assert int(totals.get(key, "0")) > 0, "%s: %s is zero:\n%s" % (
                name, key, body)
        if os.uname().machine in ("x86_64", "aarch64"):
            assert int(totals.get("register_checks", "0")) > 0, body
        schedules.add(totals["schedule"])
    # One seeded schedule, whatever the compiler and optimisation level.
    assert len(schedules) == 1, out
