"""The version layer: every CPython-version difference and every private
CPython name lives in csrc/compat.h and the csrc/py*.c files, nowhere else
in the C sources (csrc/, hub/).  Porting to a new interpreter version then
means editing the layer only (docs/versions.md).

These tests read the sources; they need no build.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
C_DIRS = ("csrc", "hub")

# The layer itself.
LAYER = {"csrc/compat.h"} | {
    p.relative_to(ROOT).as_posix() for p in (ROOT / "csrc").glob("py*.c")}

# Files allowed to keep version-specific code for now, each with the
# reason.  This list must only shrink.
EXCEPTIONS = set()

# Private CPython functions with a public spelling in compat.h, or that
# only the layer may call.
PRIVATE_NAMES = (
    "_Py_IsFinalizing",
    "_PyLong_AsInt",
    "_PyErr_WriteUnraisableMsg",
    "_PyUnicode_EqualToASCIIString",
    "_PyEval_SetTrace",
    "_PyEval_SetProfile",
    "_PyThreadState_UpdateTracingState",
    "_PyInterpreterState_GET",
    "_PyInterpreterFrame",
    "_PyCFrame",
    "_PyStackChunk",
    "_PyErr_StackItem",
)

# Fields of PyThreadState / frames a tasklet owns or that moved between
# versions; "->" so that our own structs' fields of other names pass.
PRIVATE_FIELDS = (
    "cframe", "root_cframe", "current_frame", "datastack_chunk",
    "datastack_top", "datastack_limit", "exc_state", "exc_info",
    "context_ver", "c_tracefunc", "c_profilefunc", "c_traceobj",
    "c_profileobj", "recursion_remaining", "recursion_limit",
    "py_recursion_remaining", "c_recursion_remaining",
    "trash_delete_nesting", "delete_later", "f_code", "f_executable",
    "f_funcobj", "prev_instr", "instr_ptr",
)

PATTERNS = [
    ("PY_VERSION_HEX", re.compile(r"\bPY_VERSION_HEX\b")),
    ("PY_MINOR_VERSION", re.compile(r"\bPY_MINOR_VERSION\b")),
    ("Py_BUILD_CORE", re.compile(r"\bPy_BUILD_CORE")),
    ("an internal/ include",
     re.compile(r'#\s*include\s*[<"](internal/|pycore_)')),
] + [(name, re.compile(r"\b%s\b" % name)) for name in PRIVATE_NAMES] + [
    ("->" + f, re.compile(r"->\s*%s\b" % f)) for f in PRIVATE_FIELDS]


def _strip_comments(text):
    # Comments may name anything (they explain the layer).
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n"),
                  text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def c_sources():
    for d in C_DIRS:
        for p in sorted((ROOT / d).rglob("*")):
            if p.suffix in (".c", ".h") and p.is_file():
                yield p.relative_to(ROOT).as_posix(), p


def violations(rel, path):
    text = _strip_comments(path.read_text())
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for what, rx in PATTERNS:
            if rx.search(line):
                found.append("%s:%d: %s" % (rel, lineno, what))
    return found


def test_the_layer_files_exist():
    assert "csrc/compat.h" in LAYER and "csrc/pystate.c" in LAYER
    for rel in LAYER:
        assert (ROOT / rel).is_file(), rel


@pytest.mark.parametrize("rel", [rel for rel, _ in c_sources()
                                 if rel not in LAYER | EXCEPTIONS])
def test_no_version_code_outside_the_layer(rel):
    assert violations(rel, ROOT / rel) == []


def test_exceptions_still_need_their_exception():
    # An exception that is no longer needed must be removed from the list.
    for rel in EXCEPTIONS:
        assert (ROOT / rel).is_file(), rel
        assert violations(rel, ROOT / rel), (
            "%s is layer-clean now: drop it from EXCEPTIONS" % rel)


def test_the_checker_sees_what_it_must():
    # The patterns catch each kind of leak (so the tests above can fail).
    samples = [
        "#if PY_VERSION_HEX >= 0x030C0000",
        "#define Py_BUILD_CORE 1",
        '#include "internal/pycore_frame.h"',
        "if (_Py_IsFinalizing())",
        "ts->cframe = &ts->root_cframe;",
        "n = _PyLong_AsInt(o);",
        "f = tstate->c_tracefunc;",
    ]
    for line in samples:
        assert any(rx.search(line) for _, rx in PATTERNS), line
    # ... and not our own names.
    for line in ["ts->current = next;", "slp_is_finalizing()",
                 "/* _PyCFrame lives here */"]:
        assert not any(rx.search(_strip_comments(line))
                       for _, rx in PATTERNS), line


def test_saved_state_is_opaque_outside_pystate():
    # pystate.h publishes storage only; the fields are pystate.c's.
    header = _strip_comments((ROOT / "csrc/pystate.h").read_text())
    body = re.search(r"typedef struct pystate_saved \{(.*?)\} pystate_saved;",
                     header, re.S)
    assert body is not None
    assert body.group(1).split() == ["void", "*opaque[PYSTATE_SAVED_WORDS];"]
    for rel, path in c_sources():
        if rel in LAYER:
            continue
        text = _strip_comments(path.read_text())
        assert not re.search(r"\bps\s*\.\s*\w", text), rel


# --- refusal of other interpreter versions ---------------------------------
# The checks run in a child whose sys.version_info claims another version:
# the same code paths a real 3.10 or 3.14 takes, before any C is involved.

import subprocess  # noqa: E402
import sys  # noqa: E402

FAKE = "import sys; sys.version_info = (3, {minor}, 0, 'final', 0); "


@pytest.mark.parametrize("minor", [10, 14])
def test_import_refuses_other_versions(minor):
    code = FAKE.format(minor=minor) + "import stackless_compat"
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert ("ImportError: stackless_compat supports CPython 3.11, 3.12, "
            "3.13 only" in proc.stderr), proc.stderr


@pytest.mark.parametrize("minor", [10, 14])
def test_setup_refuses_other_versions(minor):
    code = (FAKE.format(minor=minor) + "sys.argv = ['setup.py', '--version']; "
            "exec(compile(open('setup.py').read(), 'setup.py', 'exec'), "
            "{'__file__': 'setup.py', '__name__': '__main__'})")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "stackless_compat supports CPython 3.11, 3.12, 3.13 only" in (
        proc.stderr), proc.stderr


def test_python_requires_names_the_supported_versions():
    cfg = (ROOT / "setup.cfg").read_text()
    assert "python_requires = >=3.11, <3.14" in cfg
    for minor in (11, 12, 13):
        assert "Programming Language :: Python :: 3.%d\n" % minor in cfg
