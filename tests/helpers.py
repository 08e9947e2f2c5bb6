"""Helpers shared by the test modules (import as ``from helpers import ...``).

Crash-prone scenarios (a broken switch, interpreter exit with suspended
tasklets, fatal errors) run in a child interpreter so a crash fails one test
instead of killing the whole run.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)
LEGACY_DIR = os.path.join(TESTS_DIR, "legacy")


# ``make valgrind`` runs everything about 30-50 times slower; wall-clock
# limits (child timeouts, waits for threads) are multiplied by this.
TIMEOUT_SCALE = float(os.environ.get("SLP_TIMEOUT_SCALE", "1") or 1)
# Set by ``make valgrind``: the heaviest tests shrink their iteration counts.
UNDER_VALGRIND = os.environ.get("SLP_VALGRIND", "") not in ("", "0")


# faulthandler's alternate signal stack is heap memory that memcheck takes
# for stack once a signal ran on it, and reports when it is freed; under
# valgrind, memcheck reports crashes itself.
FAULTHANDLER_ARGS = () if UNDER_VALGRIND else ("-X", "faulthandler")


def scaled(seconds):
    """A wall-clock limit, stretched under ``make valgrind``."""
    return seconds * TIMEOUT_SCALE


def _package_parent():
    """Directory the parent process imports stackless_compat from (or None)."""
    try:
        spec = importlib.util.find_spec("stackless_compat")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.dirname(os.path.abspath(list(spec.submodule_search_locations)[0]))


def child_env(extra=None):
    """Environment for a child interpreter that imports the same
    stackless_compat as this process, with faulthandler on."""
    env = dict(os.environ)
    if UNDER_VALGRIND:
        env.pop("PYTHONFAULTHANDLER", None)
    else:
        env["PYTHONFAULTHANDLER"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    parent = _package_parent()
    if parent:
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = parent if not old else parent + os.pathsep + old
    if extra:
        env.update(extra)
    return env


def run_py(code, timeout=60, args=(), env=None, cwd=None, input=None):
    """Run a Python snippet in a fresh interpreter.

    ``code`` is dedented, so it can be written indented inside a test.
    Returns the CompletedProcess (``stdout``/``stderr`` as text, and
    ``returncode``: negative for a signal, e.g. -6 for abort, -11 for SIGSEGV).
    A hang raises subprocess.TimeoutExpired, which fails the test.
    """
    cmd = [sys.executable, *FAULTHANDLER_ARGS, "-c", textwrap.dedent(code), *args]
    return subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL if input is None else None,
        input=input,
        text=True,
        timeout=scaled(timeout),
        env=child_env(env),
        cwd=cwd,
    )


def run_runner(*args, timeout=60, env=None, cwd=None, input=None):
    """Run ``python -m stackless_compat *args`` and return the CompletedProcess."""
    cmd = [sys.executable, *FAULTHANDLER_ARGS, "-m", "stackless_compat", *args]
    return subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL if input is None else None,
        input=input,
        text=True,
        timeout=scaled(timeout),
        env=child_env(env),
        cwd=cwd,
    )


def describe(proc):
    """A readable summary of a CompletedProcess for assertion messages."""
    return "returncode=%s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
        proc.returncode, proc.stdout, proc.stderr)


def dns_server_module():
    """tests/dns/server.py (the private dnsmasq the DNS tests start),
    loaded once; tests/dns is not a package."""
    mod = sys.modules.get("_dns_test_server")
    if mod is None:
        spec = importlib.util.spec_from_file_location(
            "_dns_test_server", os.path.join(TESTS_DIR, "dns", "server.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["_dns_test_server"] = mod
    return mod
