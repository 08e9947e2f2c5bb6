"""Run a legacy Stackless Python program on stock CPython.

    python -m stackless_compat [--patch] program.py [args...]
    python -m stackless_compat [--patch] -m package.module [args...]

Before the program starts, ``import stackless`` (and ``from stackless import
*``) is made to resolve to the ``stackless_compat`` module object itself, so
module attributes such as ``stackless.current`` stay live.  The program then
runs as ``__main__`` with ``sys.argv`` and ``sys.path[0]`` set the way the
plain interpreter would set them.
"""

import importlib
import importlib.util
import os
import sys

PROG = "python -m stackless_compat"

USAGE = """\
usage: {prog} [--patch] program.py [args...]
       {prog} [--patch] -m module [args...]

Run a program written for Stackless Python on stock CPython: inside it,
`import stackless` gives the stackless_compat module.

options:
  -h, --help   show this help and exit
  --patch      call stackless_compat.patches.patch_all() first, so blocking
               I/O (socket, time.sleep, select, ...) parks the calling tasklet
               instead of the whole thread
  -m module    run a module (like `python -m module`) instead of a file;
               everything after the module name goes to the program
  --           end of options; the next argument is the program
""".format(prog=PROG)

PATCH_MISSING = "--patch needs stackless_compat.patches (not available in this build)"


class UsageError(Exception):
    pass


def _parse(argv):
    """Return (patch, kind, target, args); kind is "path" or "module".

    Options are only recognised before the program: everything from the
    program (or module) name on belongs to the program.
    """
    patch = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return None
        if arg == "--patch":
            patch = True
            i += 1
            continue
        if arg == "-m":
            if i + 1 >= len(argv):
                raise UsageError("argument -m: expected a module name")
            return patch, "module", argv[i + 1], argv[i + 2:]
        if arg.startswith("-m") and not arg.startswith("--"):
            return patch, "module", arg[2:], argv[i + 1:]
        if arg == "--":
            if i + 1 >= len(argv):
                raise UsageError("expected a program after --")
            return patch, "path", argv[i + 1], argv[i + 2:]
        if arg.startswith("-") and arg != "-":
            raise UsageError("unrecognized option: %s" % arg)
        return patch, "path", arg, argv[i + 1:]
    raise UsageError("no program given")


def install_alias():
    """Make ``import stackless`` return the stackless_compat module object."""
    importlib.import_module("stackless_compat")
    # Look it up in sys.modules rather than using the import's result: the
    # package may replace its own entry (e.g. with a module subclass).
    module = sys.modules["stackless_compat"]
    sys.modules["stackless"] = module
    return module


def apply_patches():
    """Run patch_all(); exit with a clear message if patches are not built."""
    try:
        spec = importlib.util.find_spec("stackless_compat.patches")
    except ImportError:
        spec = None
    if spec is None:
        raise UsageError(PATCH_MISSING)
    # A patches module that exists but fails to import is a real error: let
    # its exception through rather than hiding it behind the message above.
    patches = importlib.import_module("stackless_compat.patches")
    patches.patch_all()


def _run_path(path, args):
    import runpy

    if not os.path.exists(path):
        raise UsageError("can't open file %r: no such file or directory" % path)
    sys.argv[:] = [path, *args]
    # What `python program.py` puts first on sys.path: the program's directory
    # (for a directory or zip with __main__.py, runpy inserts that itself).
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isfile(path) and not _is_zip(path):
        if sys.path:
            sys.path[0] = directory
        else:
            sys.path.insert(0, directory)
    # Like `python3 program.py` (3.9+): the code's file name is absolute.
    runpy.run_path(os.path.abspath(path), run_name="__main__")


def _is_zip(path):
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _run_module(name, args):
    import runpy

    # runpy replaces argv[0] with the module's file once it is found.
    sys.argv[:] = [name, *args]
    # Like `python -m`: sys.path[0] stays the current directory.
    cwd = os.getcwd()
    if sys.path:
        sys.path[0] = cwd
    else:
        sys.path.insert(0, cwd)
    runpy.run_module(name, run_name="__main__", alter_sys=True)


def _runner_files():
    import runpy

    files = {os.path.abspath(__file__), "<frozen runpy>"}
    if getattr(runpy, "__file__", None):
        files.add(os.path.abspath(runpy.__file__))
    return files


def _strip_runner_frames(tb, files):
    """The traceback without its leading frames of this runner and of
    runpy, when the program's own frames follow."""
    t = tb
    while t is not None and (t.tb_frame.f_code.co_filename in files or
                             os.path.abspath(t.tb_frame.f_code.co_filename)
                             in files):
        t = t.tb_next
    return t if t is not None else tb


def _install_excepthook():
    """Uncaught exceptions print the traceback `python3 program.py` would:
    without the frames of this runner and of runpy."""
    files = _runner_files()
    previous = sys.excepthook

    def excepthook(typ, value, tb):
        tb = _strip_runner_frames(tb, files)
        if value is not None and value.__traceback__ is not tb:
            try:
                value.__traceback__ = tb
            except (AttributeError, TypeError):
                pass
        previous(typ, value, tb)

    sys.excepthook = excepthook


def main(argv=None):
    """Entry point; ``argv`` excludes the program name (default sys.argv[1:]).

    Returns 0 when the program finishes; a SystemExit raised by the program
    propagates unchanged, so its exit code is the process's exit code.
    """
    if argv is None:
        argv = sys.argv[1:]
    argv = list(argv)
    try:
        parsed = _parse(argv)
        if parsed is None:
            sys.stdout.write(USAGE)
            return 0
        patch, kind, target, args = parsed
        if not target:
            raise UsageError("empty program name")
        install_alias()
        if patch:
            apply_patches()
        _install_excepthook()
        if kind == "module":
            _run_module(target, args)
        else:
            _run_path(target, args)
    except UsageError as exc:
        sys.stderr.write("%s: error: %s\n" % (PROG, exc))
        if str(exc) != PATCH_MISSING:
            sys.stderr.write("usage: %s [--patch] program.py [args...] | -m module [args...]\n"
                             % PROG)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
