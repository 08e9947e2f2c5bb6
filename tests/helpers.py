"""Helpers shared by the test modules (import as ``from helpers import ...``).

Crash-prone scenarios (a broken switch, interpreter exit with suspended
tasklets, fatal errors) run in a child interpreter so a crash fails one test
instead of killing the whole run.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

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
    return _run_child(
        ["-c", textwrap.dedent(code), *args], timeout, env, cwd, input)


# The start of a child program that runs under the patches: warnings are
# errors, patch_all() has run, ``sl`` is stackless_compat.
PATCHED_PRELUDE = """
import warnings
warnings.simplefilter("error")
from stackless_compat.patches import patch_all
patch_all()
import stackless_compat as sl
"""


def run_patched(code, imports="", **kw):
    """Run ``code`` after PATCHED_PRELUDE and ``imports`` (a line of
    imports) in a fresh interpreter (run_py's keywords); fail unless it
    exits with 0, else return its stdout."""
    proc = run_py(PATCHED_PRELUDE + imports + code, **kw)
    assert proc.returncode == 0, describe(proc)
    return proc.stdout


def run_runner(*args, timeout=60, env=None, cwd=None, input=None):
    """Run ``python -m stackless_compat *args`` and return the CompletedProcess."""
    return _run_child(["-m", "stackless_compat", *args], timeout, env, cwd, input)


def _run_child(argv, timeout, env, cwd, input):
    """``python *FAULTHANDLER_ARGS *argv``, captured as run_py says."""
    return subprocess.run(
        [sys.executable, *FAULTHANDLER_ARGS, *argv],
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


def wait_until(ready, timeout, what, interval=0.05):
    """Poll ``ready()`` every ``interval`` seconds until it is true; fail
    with ``what()`` (a message) once ``timeout`` seconds (scaled) have
    passed."""
    deadline = time.monotonic() + scaled(timeout)
    while not ready():
        assert time.monotonic() < deadline, what()
        time.sleep(interval)


class ChildServer:
    """A long-running child process (a gunicorn master, a Celery worker)
    whose output goes to a log file in a private directory.

    Subclasses set ``label`` (for messages), ``log_name``, ``stop_timeout``
    and ``self.cmd``/``self.env``/``self.cwd``, and define ``start()``,
    which calls ``spawn()`` and then ``wait_ready()``.  ``with`` starts it
    and cleans up (also when the start fails); ``log()`` still answers
    after ``cleanup()``."""

    label = "child"
    log_name = "child.log"
    stop_timeout = 30

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.log_path = os.path.join(self.dir, self.log_name)
        self.proc = None
        self._log = None

    def spawn(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def wait_ready(self, ready, timeout):
        """Poll ``ready()`` until it is true; fail if the child exits first
        or ``timeout`` seconds (scaled) pass."""
        deadline = time.monotonic() + scaled(timeout)
        while not ready():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited %s:\n%s" % (
                    self.label, self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                raise AssertionError("%s not ready:\n%s" % (self.label, self.log()))
            time.sleep(0.05)

    def log(self):
        if self._log is not None:
            return self._log
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s did not exit in %ss:\n%s" % (
                self.label, timeout, self.log())) from None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(scaled(self.stop_timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        if self._log is None:
            self._log = self.log()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()
