"""pdb inside tasklets (docs/guides/migrating.rst, "Tracing, profiling and
debuggers"): tracing is per tasklet, so pdb steps through
the tasklet that called set_trace() while the other tasklets switch, and
never stops in them.  pdb is driven through stdin in a child process."""

import sys

import pytest

from helpers import describe, run_py

PROGRAM = r'''
import stackless_compat as stackless
log = []

def other(name, n):
    for i in range(n):
        log.append(name)
        stackless.schedule()

def target():
    x = 41
    {stop}
    x = x + 1
    stackless.schedule()
    y = x * 2
    print("result", y, flush=True)

stackless.tasklet(other)("a", 5)
stackless.tasklet(target)()
stackless.tasklet(other)("b", 5)
stackless.run()
print("others ran", len(log), "".join(log), flush=True)
print("finished", flush=True)
'''

COMMANDS = "n\np x\nn\nn\np x\np y\np len(log)\nwhere\nc\n"
if sys.version_info >= (3, 13):
    # 3.13's pdb stops on the set_trace()/breakpoint() line itself first
    # (a change of the stdlib, not ours); one more `n` gets to the same line.
    COMMANDS = "n\n" + COMMANDS


def run_pdb(tmp_path, stop, env=None):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM.replace("{stop}", stop))
    return run_py("import runpy; runpy.run_path(%r, run_name='__main__')"
                  % str(prog), input=COMMANDS, timeout=60, env=env)


def check(proc):
    out = proc.stdout
    assert proc.returncode == 0, describe(proc)
    assert "finished" in out, describe(proc)
    # stepping: line by line inside target(), across stackless.schedule()
    for lineno, text in ((13, "x = x + 1"), (14, "stackless.schedule()"),
                         (15, "y = x * 2"),
                         (16, 'print("result", y, flush=True)')):
        assert "prog.py(%d)target()\n-> %s" % (lineno, text) in out, describe(proc)
    # p x before and after the increment, p y
    assert "(Pdb) 41\n" not in out       # x was printed after `n` ran line 13
    assert out.count("(Pdb) 42\n") == 2 and "(Pdb) 84\n" in out, describe(proc)
    # the other tasklets ran while target() was stopped at schedule()
    after_schedule = out.split("(Pdb) 84\n", 1)[1]
    assert after_schedule.startswith("(Pdb) "), describe(proc)
    n_seen = int(after_schedule.split("\n", 1)[0].split()[-1])
    assert n_seen >= 2, describe(proc)
    # pdb never stopped in the other tasklets
    assert "other()" not in out, describe(proc)
    assert "result 84" in out
    assert "others ran 10" in out, describe(proc)
    # `where` shows the tasklet's own stack: target() is its bottom frame
    where = out.split("(Pdb) > ", 1)[-1]
    assert "target()" in where


@pytest.mark.parametrize("stop", ["import pdb; pdb.set_trace()", "breakpoint()"])
def test_pdb_steps_inside_tasklet(tmp_path, stop):
    check(run_pdb(tmp_path, stop, env={"PYTHONBREAKPOINT": "pdb.set_trace"}))
