"""signal.signal handlers that run in a tasklet of their own.

CPython runs a Python signal handler in the main thread at its next check
point -- which, with the hub, may be the scheduler's idle poll, where a
handler that blocks (a lock, a queue, a sleep) cannot switch.  The
patched ``signal.signal`` installs a small trampoline instead: called
from ordinary code, it runs the handler there, in the current tasklet,
as the stdlib does (so ``raise`` in a handler interrupts that code);
called from the idle poll, it starts a new tasklet on the main thread
running the handler with ``(signum, frame)``, so the handler may block
like any other tasklet; an exception it raises there is an uncaught
tasklet error (it surfaces in the main tasklet, as Stackless does).  ``SIG_DFL``, ``SIG_IGN`` and
``signal.default_int_handler`` (KeyboardInterrupt) are installed as they
are.  ``signal.getsignal`` returns the handler that was set.
"""
import signal as _stdsignal

from stackless_compat import _stackless

__implements__ = ["signal", "getsignal"]
__target__ = "signal"

_signal = _stdsignal.signal
_getsignal = _stdsignal.getsignal
_in_scheduler = _stackless._hub_in_scheduler


class _Trampoline:
    __slots__ = ("handler",)

    def __init__(self, handler):
        self.handler = handler

    def __call__(self, signum, frame):
        if _in_scheduler():
            # the idle poll: the handler gets a tasklet of its own
            _stackless.tasklet(self.handler)(signum, frame)
        else:
            # ordinary code of the current tasklet: as the stdlib does
            self.handler(signum, frame)

    def __repr__(self):
        return "<signal trampoline for %r>" % (self.handler,)


def signal(signalnum, handler):
    """signal.signal: a callable handler runs in a new tasklet."""
    if callable(handler) and handler is not _stdsignal.default_int_handler:
        old = _signal(signalnum, _Trampoline(handler))
    else:
        old = _signal(signalnum, handler)
    if isinstance(old, _Trampoline):
        old = old.handler
    return old


def getsignal(signalnum):
    h = _getsignal(signalnum)
    if isinstance(h, _Trampoline):
        return h.handler
    return h
