"""examples/checkpoint.py and examples/migrate.py, run as a user would:
real child interpreters, a real loopback socket."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EX = os.path.join(ROOT, "examples")


def run(*args, limit="20000"):
    env = dict(os.environ, CHECKPOINT_LIMIT=limit)
    p = subprocess.run([sys.executable] + list(args), capture_output=True,
                       text=True, env=env, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_checkpoint_resumes_in_a_new_process_with_the_same_result(tmp_path):
    script = os.path.join(EX, "checkpoint.py")
    whole = run(script, "run")
    assert whole.startswith("longest chain below 20000: n=17647, 278 steps")
    state = str(tmp_path / "state.pickle")
    out = run(script, "start", state, "3")
    assert out.startswith("checkpoint saved")
    assert os.path.getsize(state) > 0
    assert run(script, "resume", state) == whole
    # a checkpoint is reusable: resuming it again gives the same again
    assert run(script, "resume", state) == whole


def test_migrate_moves_a_blocked_server_tasklet_to_another_process():
    out = run(os.path.join(EX, "migrate.py"))
    lines = out.splitlines()
    assert lines[:3] == ["parent: (3, 3)", "parent: (4, 7)",
                         "parent: (10, 17)"]
    assert lines[3:] == ["child: (-2, 15)", "child: (7, 22)",
                         "child: (1, 23)",
                         "child: ('closed', 23, [3, 7, 17, 15, 22, 23])"]
