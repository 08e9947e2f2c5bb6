"""Every public name of the package has an entry in the API reference
(docs/api/*.rst), so that a new function cannot land undocumented.  The
site itself is built by `make docs` (Sphinx, warnings are errors)."""
import os
import re
import types

import pytest

import stackless_compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = os.path.join(ROOT, "docs", "api")

DIRECTIVE = re.compile(
    r"^\s*\.\. (?:auto)?(?:function|class|exception|data|attribute|method|"
    r"classmethod)::\s+([\w.]+)(.*)$")
MODULE = re.compile(r"^\.\. module::\s+([\w.]+)")
# continuation lines of a multi-name directive (".. data:: a\n          b")
CONTINUATION = re.compile(r"^\s{6,}([A-Za-z_][\w.]*)(\(.*)?$")


def documented():
    """{module: set of names} from the API pages."""
    names = {}
    for fn in sorted(os.listdir(API)):
        if not fn.endswith(".rst"):
            continue
        module = None
        in_multi = False
        with open(os.path.join(API, fn)) as f:
            for line in f:
                m = MODULE.match(line)
                if m:
                    module = m.group(1)
                    continue
                m = DIRECTIVE.match(line)
                if m and module:
                    names.setdefault(module, set()).add(
                        m.group(1).split(".")[-1])
                    in_multi = True
                    continue
                m = CONTINUATION.match(line) if in_multi else None
                if m and module:
                    names[module].add(m.group(1).split(".")[-1])
                    continue
                in_multi = False
    return names


def public(module, names=None):
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]
    out = set()
    for n in names:
        obj = getattr(module, n)
        if isinstance(obj, types.ModuleType) and n != "stackless":
            continue            # submodules have their own pages
        out.add(n)
    return out


def test_the_parser_finds_the_reference():
    docs = documented()
    assert {"tasklet", "channel", "run", "current",
            "PICKLEFLAGS_RESET_AG_FINALIZER"} <= docs["stackless_compat"]
    assert "Timeout" in docs["stackless_compat.hub"]
    assert "patch_all" in docs["stackless_compat.patches"]


@pytest.mark.parametrize("modname", [
    "stackless_compat", "stackless_compat.hub", "stackless_compat.patches",
    "stackless_compat.patches.dns", "stackless_compat.patches.thread",
    "stackless_compat.patches.pg", "stackless_compat.patches.zmq"])
def test_every_public_name_is_documented(modname):
    import importlib
    if modname == "stackless_compat.patches.zmq":
        pytest.importorskip("zmq", reason="the zmq patch needs pyzmq")
    mod = importlib.import_module(modname)
    if modname == "stackless_compat":
        expected = public(mod)
        # the hub's names are re-exported; they are documented on its page
        expected -= set(stackless_compat.hub.__all__)
    elif modname == "stackless_compat.patches.dns":
        expected = {"configure", "set_resolver", "get_resolver",
                    *mod.__implements__}
    elif modname == "stackless_compat.patches.pg":
        expected = {n for n in vars(mod)
                    if not n.startswith("_") and callable(getattr(mod, n))}
    elif modname == "stackless_compat.patches.zmq":
        # the rest of the namespace is pyzmq's own
        expected = {"Context", "Socket", "Poller", "select"}
    else:
        expected = public(mod, mod.__all__)
    missing = expected - documented().get(modname, set())
    assert not missing, (
        "add these names of %s to docs/api/*.rst: %s"
        % (modname, ", ".join(sorted(missing))))
