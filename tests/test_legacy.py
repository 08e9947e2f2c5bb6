"""Legacy-style Stackless programs run unchanged through the runner.

Each ``tests/legacy/NAME.py`` is written the way Stackless code was written
between 2005 and 2015 (``import stackless``, ``from stackless import *``,
``TaskletExit`` without an import, ...).  It is run as
``python -m stackless_compat tests/legacy/NAME.py`` and its output must match
``tests/legacy/NAME.out`` exactly, with nothing on stderr and exit status 0.
The expected outputs follow from Stackless's scheduling rules
(docs/api/stackless.rst: FIFO run queue, channel preference -1).
"""

import glob
import os

import pytest

from helpers import LEGACY_DIR, ROOT, describe, run_runner

PROGRAMS = sorted(os.path.splitext(os.path.basename(p))[0]
                  for p in glob.glob(os.path.join(LEGACY_DIR, "*.py")))


def test_there_are_enough_legacy_programs():
    assert len(PROGRAMS) >= 5
    for name in PROGRAMS:
        assert os.path.exists(os.path.join(LEGACY_DIR, name + ".out")), name


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", PROGRAMS)
def test_legacy_program(name):
    script = os.path.join("tests", "legacy", name + ".py")
    with open(os.path.join(LEGACY_DIR, name + ".out")) as f:
        expected = f.read()
    proc = run_runner(script, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, describe(proc)
    assert proc.stderr == "", describe(proc)
    assert proc.stdout == expected
