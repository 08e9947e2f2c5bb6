"""The deadline and retry loop of every timed wait in the patches.

A patched call that may block makes a non-blocking attempt, parks the
tasklet on the hub until the fd (or lock, or child) may be ready, and tries
again until it succeeds or its timeout passes.  ``Deadline`` is the one
place that measures the time left (on ``time.monotonic``, the clock the
stdlib's own timed waits use); ``retry`` is the loop itself.  What happens
when the time is up stays with the caller (``expired``), so each patch
raises the stdlib's exception with the stdlib's message, or returns the
stdlib's empty result.  docs/design.md ("Python on top") describes
the patches.
"""
import time as _time

__all__ = ["AGAIN", "Deadline", "retry"]

_monotonic = _time.monotonic

#: returned by an ``attempt`` of ``retry`` that would have blocked
AGAIN = object()


class Deadline:
    """The point ``timeout`` seconds from now; no point when it is None."""

    __slots__ = ("_end",)

    def __init__(self, timeout):
        self._end = None if timeout is None else _monotonic() + timeout

    def remaining(self):
        """Seconds left: None without a deadline, else end - now (zero or
        less once it has passed)."""
        end = self._end
        return None if end is None else end - _monotonic()

    def passed(self):
        """True once a deadline was given and it has passed."""
        end = self._end
        return end is not None and _monotonic() >= end

    def slice(self, most):
        """``most`` seconds, or fewer if fewer are left (never below 0)."""
        end = self._end
        if end is None:
            return most
        return max(0.0, min(most, end - _monotonic()))


def retry(attempt, park, timeout, expired, attempted=False):
    """``attempt()`` until it returns something other than ``AGAIN``, and
    return that.  Between attempts ``park(remaining)`` waits (``remaining``
    is None without a timeout, else the seconds left, more than zero);
    once ``timeout`` seconds have passed, return ``expired()`` (which may
    raise instead).  ``attempted=True``: the caller has just made the
    first attempt itself (it got nothing), so the loop starts by parking."""
    deadline = Deadline(timeout)
    if attempted:
        result = AGAIN
    else:
        result = attempt()
    while True:
        if result is not AGAIN:
            return result
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            return expired()
        park(remaining)
        result = attempt()
