"""Test helpers, the part of Stackless's ``_teststackless`` module that makes
sense on a stock interpreter (README.rst, "Test helpers").

Test suites written for Stackless import these (``import _teststackless``;
the runner's ``--alias _teststackless=stackless_compat._teststackless``
maps the name).  They are for tests only:

``test_cframe(switches, words=0)``
    ``schedule()`` ``switches`` times from C code, holding ``words``
    machine words (0..64000) of C stack meanwhile; returns the last value
    ``schedule()`` returned.
``test_cstate(callable)``
    ``callable()`` called from C code: in Stackless this forced a hard
    switch; here every switch is one.

Stackless's C-API demonstrations (``test_PyEval_EvalFrameEx``,
``softswitchablefunc``, ``SoftSwitchableDemo``) need its patched
interpreter and are not provided.
"""
from ._stackless import test_cframe, test_cstate

__all__ = ["test_cframe", "test_cstate"]
