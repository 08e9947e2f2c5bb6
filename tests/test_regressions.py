"""Disagreements between stackless_compat and Stackless's behaviour found by
the model-based tests (tests/test_model.py) and the crash/stress tests.

A bug that is not fixed yet is a strict xfail here with a minimal repro
(none open at the moment);
when the C core is fixed the xfail turns into a failure (XPASS strict):
drop the marker, and drop the matching name from KNOWN_QUIRKS in
tests/test_model.py so the random search checks the fixed rule too.
"""

import pytest

import stackless_compat as stackless

import test_model


def test_blocking_sender_bomb_moves_to_watchdog():
    # Stackless's rule: the last runnable tasklet blocks carrying a bomb
    # (send_exception, nobody receiving): the watchdog is revived and the
    # bomb moves to it.  Found by the model; fixed in 5bd538a.
    ch = stackless.channel()

    def sender():
        ch.send_exception(ValueError, "boom")

    t = stackless.tasklet(sender)()
    try:
        with pytest.raises(ValueError, match="^boom$"):
            stackless.run()
    finally:
        t.kill()


def test_model_without_quirks_bomb_to_watchdog():
    # The same through the model, then the blocked sender is killed.
    test_model.check(test_model.prog([("run",)], [("send_exc", 0)]), quirks=())
