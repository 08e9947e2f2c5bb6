"""Checkpoint a long computation, stop, and resume it in a new process.

    python examples/checkpoint.py run                 # to the end
    python examples/checkpoint.py start STATE 5       # 5 slices, save, exit
    python examples/checkpoint.py resume STATE        # go on from STATE

The computation runs in a tasklet; the main loop gives it slices of
interpreter time with the watchdog (stackless.run(budget) returns the
tasklet, interrupted wherever it was).  Between two slices the tasklet is a
suspended Python frame chain, which pickles: its locals, its loop iterators,
its value stack.  `resume` loads it in a fresh interpreter and continues;
all three ways print the same result.
"""

import os
import pickle
import sys

import stackless_compat as stackless

BUDGET = 20000          # instructions per slice


def collatz_length(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def longest_chain(limit: int) -> tuple[int, int]:
    best, best_n = 0, 1
    for n in range(1, limit):
        length = collatz_length(n)
        if length > best:
            best, best_n = length, n
    return best_n, best


result: list[tuple[int, int]] = []


def job(limit: int) -> None:
    # (not result.append(longest_chain(limit)): the bound method would be on
    # the value stack during the call and travel with the pickle as a copy
    # of `result`; a global looked up after the call is this process's)
    found = longest_chain(limit)
    result.append(found)


def drive(t: stackless.tasklet, slices: int | None = None) -> bool:
    """Run t for `slices` slices (None: to the end); True if it finished."""
    done = 0
    while t.alive:
        if slices is not None and done >= slices:
            return False
        if not t.scheduled:
            t.insert()
        stackless.run(BUDGET)
        done += 1
    return True


def main(argv: list[str]) -> int:
    limit = int(os.environ.get("CHECKPOINT_LIMIT", "30000"))
    cmd = argv[1] if len(argv) > 1 else "run"
    if cmd == "run":
        drive(stackless.tasklet(job)(limit))
    elif cmd == "start":
        path, slices = argv[2], int(argv[3])
        t = stackless.tasklet(job)(limit)
        if drive(t, slices):
            print("finished before the checkpoint")
        else:
            with open(path, "wb") as f:
                pickle.dump(t, f)
            t.kill()
            print("checkpoint saved to %s" % path)
            return 0
    elif cmd == "resume":
        with open(argv[2], "rb") as f:
            t = pickle.load(f)
        drive(t)
    else:
        print(__doc__)
        return 2
    print("longest chain below %d: n=%d, %d steps" % ((limit,) + result[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
