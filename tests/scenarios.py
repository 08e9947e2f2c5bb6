"""Run one scenario the same way under three regimes, each in a child
interpreter: ``ours`` (patch_all(), the scenario's workers are tasklets of
one thread), ``stdlib`` (nothing patched, the workers are threads) and
``gevent`` (monkey.patch_all(), greenlets; skipped when gevent is not
installed).

A scenario is the body of ``def scenario():`` (indented by the caller or
not: it is dedented) that returns something JSON can carry.  It may use
``spawn(f, *args)`` -> handle, ``joinall(handles)``, ``time``,
``threading``.  While it runs, a ticker worker sleeps 5 ms in a loop; the
child prints the scenario's result, its wall time and the ticker's count
as JSON (a blocked thread shows as a ticker that stopped).
"""
import json
import textwrap

import pytest

import helpers

_MODES = {
    "ours": """
from stackless_compat.patches import patch_all
patch_all()
import time
import stackless_compat as sl
def spawn(f, *a):
    return sl.tasklet(f)(*a)
def joinall(hs):
    while any(t.alive for t in hs):
        time.sleep(0.002)
def wait_all():
    sl.run()
""",
    "gevent": """
from gevent import monkey
monkey.patch_all()
import time
import gevent
def spawn(f, *a):
    return gevent.spawn(f, *a)
def joinall(hs):
    gevent.joinall(hs)
def wait_all():
    gevent.wait()
""",
    "stdlib": """
import threading, time
_threads = []
def spawn(f, *a):
    t = threading.Thread(target=f, args=a, daemon=True)
    _threads.append(t)
    t.start()
    return t
def joinall(hs):
    for t in hs:
        t.join()
def wait_all():
    while _threads:
        _threads.pop(0).join()
""",
}

_MAIN = """
import json, sys, threading, time
_ticks = [0]
_stop = [False]
def _ticker():
    while not _stop[0]:
        time.sleep(0.005)
        _ticks[0] += 1
_out = {}
def _body():
    t0 = time.monotonic()
    try:
        _out["result"] = scenario()
    finally:
        _out["elapsed"] = time.monotonic() - t0
        _out["ticks"] = _ticks[0]
        _stop[0] = True
spawn(_ticker)
spawn(_body)
wait_all()
print("RESULT " + json.dumps(_out))
"""


def have_gevent():
    proc = helpers.run_py("import gevent")
    return proc.returncode == 0


_GEVENT = []


def run_scenario(mode, body, setup="", timeout=60):
    if mode == "gevent":
        if not _GEVENT:
            _GEVENT.append(have_gevent())
        if not _GEVENT[0]:
            pytest.skip("gevent is not installed (pip install gevent)")
    # the regime's imports first (patching before anything else)
    code = (_MODES[mode] + textwrap.dedent(setup) + "\ndef scenario():\n" +
            textwrap.indent(textwrap.dedent(body), "    ") + _MAIN)
    proc = helpers.run_py(code, timeout=timeout)
    assert proc.returncode == 0, helpers.describe(proc)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, helpers.describe(proc)
    return json.loads(line[-1][len("RESULT "):])


MODES = ["ours", "stdlib", "gevent"]
