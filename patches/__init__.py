"""Cooperative replacements for blocking stdlib calls.

    from stackless_compat.patches import patch_all
    patch_all()            # first thing, on the main thread

After patching, socket, time.sleep, select (epoll too), selectors, ssl,
threading's locks (and everything built on them: Condition, Event,
Semaphore, Barrier, queue, Thread.join, concurrent.futures), os.waitpid
and os.read/os.write on pipes, subprocess and the C PostgreSQL drivers
park the calling tasklet instead of blocking the thread; the hub (one
libev loop per thread) wakes it.  Signal handlers that fire while the
scheduler polls get a tasklet of their own.  Importing this package
never patches anything.

``patch_all(socket=True, dns=True, time=True, select=True, ssl=True,
thread=True, os=True, subprocess=True, signal=True, drivers=True)`` and
``patch_socket()``, ``patch_dns()``, ``patch_time()``, ``patch_select()``,
``patch_selectors()``, ``patch_ssl()``, ``patch_thread()``,
``patch_os()``, ``patch_subprocess()``, ``patch_signal()``,
``patch_drivers()`` are idempotent;
``get_original(module, name)`` returns what was there before;
``is_module_patched(name)`` / ``is_object_patched(module, name)`` tell.
"""
import importlib
import sys
import threading
import warnings

__all__ = ["patch_all", "patch_socket", "patch_dns", "patch_time",
           "patch_select", "patch_selectors", "patch_ssl", "patch_thread",
           "patch_os", "patch_subprocess", "patch_signal", "patch_drivers",
           "get_original",
           "is_module_patched", "is_object_patched", "PatchWarning"]


class PatchWarning(RuntimeWarning):
    """Patching happened in a way that may not take full effect."""


# {module name: {attribute: original}}
_saved = {}
_patched_modules = set()
_pending_warnings = []


def get_original(module_name, item_name):
    """The stdlib object ``module_name.item_name`` before patching (a
    list of names gives a list)."""
    if isinstance(item_name, (list, tuple)):
        return [get_original(module_name, n) for n in item_name]
    saved = _saved.get(module_name, {})
    if item_name in saved:
        return saved[item_name]
    return getattr(importlib.import_module(module_name), item_name)


def is_module_patched(name):
    return name in _patched_modules


def is_object_patched(module_name, item_name):
    return item_name in _saved.get(module_name, {})


def _patch_item(module, name, value, key=None):
    saved = _saved.setdefault(key or module.__name__, {})
    if name not in saved:
        saved[name] = getattr(module, name, None)
    setattr(module, name, value)


def _patch_module(name, items=None, target=None):
    """Copy the names in patches/<name>.py's __implements__ onto its
    target module."""
    ours = importlib.import_module("stackless_compat.patches." + name)
    target = target or getattr(ours, "__target__", name)
    mod = importlib.import_module(target)
    for item in (items or ours.__implements__):
        if hasattr(ours, item):
            _patch_item(mod, item, getattr(ours, item))
    _patched_modules.add(name)
    return mod


def _check_thread(what):
    if threading.current_thread() is not threading.main_thread():
        _pending_warnings.append(
            "Patching %s outside the main thread: other threads keep using "
            "what they already looked up. Patch first thing, on the main "
            "thread." % what)


def _users_of(module_name, names):
    """Modules other than the target and ours that hold an original."""
    mod = sys.modules.get(module_name)
    if mod is None:
        return []
    originals = [getattr(mod, n, None) for n in names]
    originals = [o for o in originals if o is not None]
    users = []
    for mname, m in list(sys.modules.items()):
        top = mname.partition(".")[0]
        if m is None or mname == module_name or top in (
                "stackless_compat", "test") or (
                top in sys.stdlib_module_names and mname != "__main__"):
            continue
        d = getattr(m, "__dict__", None)
        if not isinstance(d, dict):
            continue
        for v in list(d.values()):
            if any(v is o for o in originals):
                users.append(mname)
                break
    return users


def _warn_late(module_name, names):
    users = _users_of(module_name, names)
    if users:
        _pending_warnings.append(
            "%s was patched after %s imported names from it; they keep the "
            "blocking originals. Patch first thing." % (
                module_name, ", ".join(sorted(users)[:10])))


def patch_time():
    if is_module_patched("time"):
        return
    _check_thread("time")
    _patch_module("time")


def patch_socket(dns=True):
    if not is_module_patched("socket"):
        _check_thread("socket")
        _warn_late("socket", ["socket", "SocketType"])
        _patch_module("socket")
    if dns:
        patch_dns()


def patch_dns():
    if is_module_patched("dns"):
        return
    _patch_module("dns")


def patch_select():
    if not is_module_patched("select"):
        _check_thread("select")
        _warn_late("select", ["select", "poll"])
        mod = _patch_module("select")
        # Readiness APIs the hub does not provide go away, so that
        # libraries fall back to the patched select/poll/epoll.
        for name in ("devpoll", "kqueue", "kevent"):
            if hasattr(mod, name):
                _patch_item(mod, name, None)
                delattr(mod, name)
    patch_selectors()


def patch_selectors():
    if is_module_patched("selectors"):
        return
    mod = _patch_module("selectors")
    for name in ("DevpollSelector", "KqueueSelector"):
        if hasattr(mod, name):
            _patch_item(mod, name, None)
            delattr(mod, name)


def patch_ssl():
    if is_module_patched("ssl"):
        return
    _check_thread("ssl")
    if "ssl" in sys.modules:
        _warn_late("ssl", ["SSLContext", "SSLSocket"])
    # Only SSLContext: ssl.py refers to its own SSLSocket via super()
    _patch_module("ssl", items=["SSLContext"])


def patch_thread():
    """Locks park tasklets: ``threading.Lock``/``RLock``/``_allocate_lock``,
    ``_thread.allocate_lock``/``LockType``/``RLock``, ``queue.SimpleQueue``;
    ``Thread.join()`` parks the joiner.  Threads stay real threads."""
    if is_module_patched("thread"):
        return
    _check_thread("thread")
    import _thread
    import queue
    from . import thread as ours
    _warn_late("threading", ["Lock", "RLock"])
    _patch_item(_thread, "allocate_lock", ours.allocate_lock)
    _patch_item(_thread, "allocate", ours.allocate_lock)
    _patch_item(_thread, "RLock", ours.RLock)
    _patch_item(_thread, "LockType", ours.LockType)
    for module, name in ((_thread, "lock"), (threading, "_LockType")):
        if hasattr(module, name):          # 3.13: the lock type is public
            _patch_item(module, name, ours.LockType)
    _patch_item(threading, "Lock", ours.Lock)
    _patch_item(threading, "_allocate_lock", ours.allocate_lock)
    _patch_item(threading, "_CRLock", ours.RLock)
    for name, value in (("start", ours._start), ("join", ours._join),
                        ("_bootstrap_inner", ours._bootstrap_inner)):
        _patch_item(threading.Thread, name, value, key="threading.Thread")
    _patch_item(queue, "SimpleQueue", ours.SimpleQueue)
    _patched_modules.add("thread")
    _patched_modules.add("queue")


def patch_os():
    """os.waitpid/os.wait park the tasklet (pidfd); os.read/os.write park
    it on blocking pipes; the hub is reset in a forked child."""
    if is_module_patched("os"):
        return
    _check_thread("os")
    import os
    _patch_module("os")
    from stackless_compat import _stackless
    os.register_at_fork(after_in_child=_stackless._hub_after_fork)


def patch_subprocess():
    """Popen.wait()/communicate() and run()/call()/check_output() park the
    tasklet (needs patch_os(), which it applies)."""
    patch_os()
    if is_module_patched("subprocess"):
        return
    _check_thread("subprocess")
    import subprocess
    from . import subprocess as ours
    _patch_module("subprocess")
    _patch_item(subprocess.Popen, "_wait", ours._wait, key="subprocess.Popen")


def patch_signal():
    """signal.signal handlers that fire while the scheduler polls run in
    a tasklet of their own (patches/signal.py)."""
    if is_module_patched("signal"):
        return
    _check_thread("signal")
    _patch_module("signal")


class _AfterImport:
    """A meta-path finder that runs a patch function right after a module
    is first imported (so patch_all() imports no driver itself)."""

    def __init__(self):
        self.hooks = {}         # module name: patch function

    def find_spec(self, name, path=None, target=None):
        if name not in self.hooks:
            return None
        import importlib.util
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader, hook = spec.loader, self.hooks.pop(name)
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            hook()
        spec.loader = type("_PatchingLoader", (), {
            "create_module": staticmethod(loader.create_module),
            "exec_module": staticmethod(exec_and_patch)})()
        if not self.hooks:
            sys.meta_path.remove(self)
        return spec


_after_import = _AfterImport()


def _when_imported(name, hook):
    if name in sys.modules:
        hook()
        return
    _after_import.hooks[name] = hook
    if _after_import not in sys.meta_path:
        sys.meta_path.insert(0, _after_import)


def patch_drivers():
    """The C database drivers wait on the hub: psycopg2 (a wait callback)
    and psycopg 3 (its wait functions); see patches/pg.py.  A driver
    already imported is patched now, the others right after their first
    import (patching imports none of them)."""
    from . import pg
    for name, module, patch in (("psycopg2", "psycopg2.extensions",
                                 pg.patch_psycopg2),
                                ("psycopg", "psycopg.waiting",
                                 pg.patch_psycopg)):
        if name in _patched_modules:
            continue
        _patched_modules.add(name)
        _when_imported(module, patch)


def patch_all(socket=True, dns=True, time=True, select=True, ssl=True,
              thread=True, os=True, subprocess=True, signal=True,
              drivers=True, **kwargs):
    """Patch the stdlib so blocking calls park tasklets.  Idempotent:
    calling it again only adds.  Unknown keywords are accepted and
    ignored (gevent's names, for drop-in calls)."""
    if thread:
        patch_thread()
    if os:
        patch_os()
    if subprocess:
        patch_subprocess()
    if signal:
        patch_signal()
    if time:
        patch_time()
    if socket:
        patch_socket(dns=dns)
    elif dns:
        patch_dns()
    if select:
        patch_select()
    if ssl:
        patch_ssl()
    if drivers:
        patch_drivers()
    _flush_warnings()
    return True


def _flush_warnings():
    while _pending_warnings:
        warnings.warn(_pending_warnings.pop(0), PatchWarning, stacklevel=3)
