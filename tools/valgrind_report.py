"""Summarise memcheck logs written by ``make valgrind``.

Usage: python3 tools/valgrind_report.py LOGDIR

Every process of the run (pytest and each child interpreter a test starts)
writes ``LOGDIR/vg.<pid>.log``.  This prints each distinct error once, with
its stack and the processes that hit it, and exits 1 if there was any
error at all (0 when every log ends with "ERROR SUMMARY: 0 errors").
"""

import os
import re
import sys

_LINE = re.compile(r"^==(\d+)== ?(.*)$")
_SUMMARY = re.compile(r"ERROR SUMMARY: (\d+) errors")
# Report headers memcheck writes for errors (everything else is chatter).
_KINDS = ("Invalid ", "Conditional jump", "Use of uninitialised",
          "Syscall param", "Mismatched free", "Source and destination",
          "Argument ", "Jump to ", "Invalid free")


def _errors(path):
    """(n_errors_in_summary, [error block lines], command) of one log."""
    blocks, cur, total, command = [], None, None, "?"
    with open(path, errors="replace") as f:
        for raw in f:
            m = _LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            body = m.group(2)
            if body.startswith("Command: "):
                command = body[len("Command: "):]
            s = _SUMMARY.search(body)
            if s:
                total = int(s.group(1))
                continue
            if body.startswith(_KINDS):
                cur = [body]
                blocks.append(cur)
            elif cur is not None and body.strip():
                cur.append(body.strip())
            else:
                cur = None
    return total, blocks, command


def main(logdir):
    names = sorted(n for n in os.listdir(logdir) if n.endswith(".log"))
    if not names:
        print("valgrind_report: no logs in %s" % logdir)
        return 1
    seen = {}
    unfinished = []
    errors = 0
    for name in names:
        total, blocks, command = _errors(os.path.join(logdir, name))
        if total is None:
            # The process did not reach memcheck's exit summary (killed by a
            # test on purpose, e.g. a timeout or os._exit from a child).
            unfinished.append((name, command))
        errors += total or 0
        for b in blocks:
            key = "\n".join(re.sub(r"0x[0-9A-Fa-f]+", "0x", line)
                            for line in b[:12])
            seen.setdefault(key, []).append(name)
    print("valgrind_report: %d processes, %d errors, %d distinct"
          % (len(names), errors, len(seen)))
    for key, where in seen.items():
        print("\n---- %d x (first in %s)\n%s" % (len(where), where[0], key))
    if unfinished:
        print("\n%d processes without an exit summary (killed or exec'd):"
              % len(unfinished))
        for name, command in unfinished[:20]:
            print("  %s: %s" % (name, command[:150]))
    return 1 if errors or seen else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
