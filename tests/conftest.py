"""Shared pytest setup: the leak check every test runs under.

The strict settings (warnings are errors, strict xfail and markers,
faulthandler and per-test timeouts) live in pyproject.toml.

Every test runs under ``_leak_check`` (autouse).  After the test it fails
the test when it left behind:

* objects of our types (tasklet, channel, bomb, and their subclasses) that
  did not exist before the test and survive garbage collection;
* file descriptors that were not open before the test;
* tasklets in the run queue (``getruncount() != 1``), or a current tasklet
  that is not main.

``sys.gettotalrefcount`` exists only in debug builds of CPython, so objects
are counted with ``gc.get_objects()``: this sees every GC-tracked instance,
which includes tasklets and channels (they take part in GC).

Opt out with ``@pytest.mark.noleakcheck`` (say why in the test).
"""

import gc
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402  (tests/helpers.py)

try:
    import stackless_compat as _slp
except ImportError as _exc:  # the extension is not built: tests report it
    _slp = None
    _IMPORT_ERROR = _exc
else:
    _IMPORT_ERROR = None

_TYPE_NAMES = ("tasklet", "channel", "bomb")
_GC_RETRIES = 5
_MAX_SHOWN = 10
_FD_DIR = "/proc/self/fd"


def _tracked_types():
    if _slp is None:
        return ()
    return tuple(t for t in (getattr(_slp, n, None) for n in _TYPE_NAMES)
                 if isinstance(t, type))


def _our_objects(types):
    if not types:
        return []
    # type() rather than isinstance(): isinstance() consults __class__, which
    # raises on a dead weakref.proxy found among gc's objects.
    return [o for o in gc.get_objects() if issubclass(type(o), types)]


def _open_fds():
    try:
        names = os.listdir(_FD_DIR)
    except OSError:  # no /proc: fd check unavailable
        return {}
    fds = {}
    for name in names:
        try:
            fds[int(name)] = os.readlink(os.path.join(_FD_DIR, name))
        except (OSError, ValueError):
            pass  # the fd listdir used itself, already closed
    return fds


def _safe_repr(obj):
    try:
        text = repr(obj)
    except Exception as exc:  # a broken __repr__ must not hide the leak
        text = "<%s object at %#x (repr failed: %r)>" % (type(obj).__name__, id(obj), exc)
    return text if len(text) <= 200 else text[:197] + "..."


def _runqueue_problems():
    """Describe (and clean up) leftover runnable tasklets; [] when clean."""
    if _slp is None:
        return []
    problems = []
    main = _slp.getmain()
    current = _slp.getcurrent()
    if current is not main:
        problems.append("the current tasklet is %s, not main" % _safe_repr(current))
    count = _slp.getruncount()
    if count != 1:
        leftover = []
        t = main.next
        while t is not None and t is not main and len(leftover) < 1000:
            leftover.append(t)
            t = t.next
        problems.append("getruncount() is %d after the test (expected 1); runnable: %s"
                        % (count, ", ".join(_safe_repr(t) for t in leftover[:_MAX_SHOWN])))
        # Kill them so the following tests start from a clean scheduler.
        for t in leftover:
            try:
                t.kill()
            except BaseException:
                pass
    return problems


def pytest_collection_modifyitems(config, items):
    # SLP_SHARD=i/n keeps every n-th test from the i-th on: make valgrind
    # runs the suite as n such shards side by side.
    shard = os.environ.get("SLP_SHARD", "")
    if shard:
        i, n = (int(x) for x in shard.split("/"))
        if not 0 <= i < n:
            raise pytest.UsageError("SLP_SHARD=%s: want i/n with 0 <= i < n"
                                    % shard)
        keep = [it for k, it in enumerate(items) if k % n == i]
        drop = [it for k, it in enumerate(items) if k % n != i]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
    # Per-test timeout markers stretch with the run's slowdown (make
    # valgrind sets SLP_TIMEOUT_SCALE); the closest marker wins, so the
    # scaled one is put first.
    if helpers.TIMEOUT_SCALE == 1:
        return
    for item in items:
        m = item.get_closest_marker("timeout")
        if m is not None and m.args:
            item.add_marker(pytest.mark.timeout(
                helpers.scaled(m.args[0]), *m.args[1:], **m.kwargs),
                append=False)


def pytest_collection_finish(session):
    # The leak check below collects garbage and walks gc.get_objects()
    # twice per test; with every test module and its imports loaded that
    # is most of the suite's time (about 60% of a run was fixture set-up
    # and teardown, the test bodies 40%).  What exists now -- the imported
    # modules, the collected items -- lives the whole session: it moves to
    # gc's permanent generation, which gc.collect() and gc.get_objects()
    # skip.  The check is as strict as before: every object a test creates
    # is younger than this, so gc.get_objects() still lists it and
    # gc.collect() still frees its cycles.
    gc.collect()
    gc.freeze()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        # Any exception out of the test body (failure, xfail, skip) keeps its
        # frames alive through the traceback: no leak verdict then.
        item._slp_call_raised = call.excinfo is not None
    return report


@pytest.fixture(autouse=True)
def _leak_check(request):
    if request.node.get_closest_marker("noleakcheck") is not None:
        yield
        return

    types = _tracked_types()
    if _slp is not None:
        # main is created lazily on first use; make sure that happens before
        # the snapshot so it does not count as a leak of the first test.
        _slp.getmain()
    gc.collect()
    before_ids = {id(o) for o in _our_objects(types)}
    before_fds = _open_fds()

    yield

    if getattr(request.node, "_slp_call_raised", False):
        # The test already failed (or xfailed/skipped); its traceback keeps
        # frames, and so our objects, alive.  Still clean the run queue.
        _runqueue_problems()
        return

    problems = _runqueue_problems()

    leaked = []
    new_fds = {}
    for attempt in range(_GC_RETRIES):
        gc.collect()
        leaked = [o for o in _our_objects(types) if id(o) not in before_ids]
        now_fds = _open_fds()
        new_fds = {fd: target for fd, target in now_fds.items()
                   if before_fds.get(fd) != target}
        if not leaked and not new_fds:
            break
        leaked = []  # do not keep them alive across the retry
        # Give finishing threads a moment to drop their tasklets and fds.
        time.sleep(0.02 * (attempt + 1))
    else:
        leaked = [o for o in _our_objects(types) if id(o) not in before_ids]

    if leaked:
        shown = "\n    ".join(_safe_repr(o) for o in leaked[:_MAX_SHOWN])
        more = "" if len(leaked) <= _MAX_SHOWN else "\n    ... and %d more" % (
            len(leaked) - _MAX_SHOWN)
        problems.append("%d object(s) of stackless_compat types leaked:\n    %s%s"
                        % (len(leaked), shown, more))
    del leaked
    if new_fds:
        problems.append("file descriptor(s) left open: %s" % ", ".join(
            "%d -> %s" % item for item in sorted(new_fds.items())))

    if problems:
        pytest.fail("leak check (use @pytest.mark.noleakcheck to opt out):\n  "
                    + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def run_py():
    """The helpers.run_py function as a fixture."""
    return helpers.run_py


@pytest.fixture
def run_runner():
    """The helpers.run_runner function as a fixture."""
    return helpers.run_runner


def pytest_report_header(config):
    if _slp is None:
        return "stackless_compat: NOT importable (%s)" % (_IMPORT_ERROR,)
    return "stackless_compat: %s" % (getattr(_slp, "__file__", "?"),)
