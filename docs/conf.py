# Sphinx configuration of the stackless_compat documentation.
#
#     make docs      (sphinx-build -W -b html, then -b doctest)
#
# The API reference is generated from the docstrings of the installed
# package (pip install -e '.[docs]'); the C functions get their signatures
# from their text signatures (tests/test_signatures.py checks them).
import os
import sys

project = "stackless_compat"
author = "the stackless_compat developers"
copyright = "the stackless_compat developers"

try:
    import stackless_compat
    release = stackless_compat.__version__
except ImportError:         # the package must be importable for autodoc
    sys.stderr.write("stackless_compat is not installed: "
                     "pip install -e '.[docs]'\n")
    raise
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
# The API pages list the members explicitly; the C module's internals
# (names starting with "_") stay out.
autodoc_default_options = {}
autodoc_typehints = "signature"

# Offline builds: no inventory is fetched; py:class references to the
# stdlib stay plain text.
intersphinx_mapping = {}

# Names that the reference mentions but does not document.
nitpick_ignore = [
    ("py:class", "_stackless.tasklet"),
    ("py:class", "_stackless.channel"),
]

# The plug-ins need their frameworks (gunicorn, Celery): document those
# that import here, and say which do not.
PLUGINS = [("stackless_compat.gunicorn", "gunicorn"),
           ("stackless_compat.celery", "Celery")]


def _plugins_page():
    import importlib
    out = []
    for mod, framework in PLUGINS:
        try:
            importlib.import_module(mod)
        except ImportError as e:
            out.append("``%s``\n%s\n\nNot importable where this site was "
                       "built (%s needs %s).\n\n"
                       % (mod, "-" * (len(mod) + 4), mod, framework))
            continue
        out.append("``%s``\n%s\n\n.. automodule:: %s\n   :members:\n\n"
                   % (mod, "-" * (len(mod) + 4), mod))
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(here, "_generated"), exist_ok=True)
    with open(os.path.join(here, "_generated", "plugins.inc"), "w") as f:
        f.write("".join(out))


_plugins_page()


# The Internals section: design, then the pages that come with other work
# when they exist (docs/versions.md: interpreter versions), then changes.
def _internals_toc():
    here = os.path.dirname(os.path.abspath(__file__))
    pages = ["design"]
    for name in ("versions",):
        if any(os.path.exists(os.path.join(here, name + ext))
               for ext in (".md", ".rst")):
            pages.append(name)
    pages.append("changes")
    with open(os.path.join(here, "_generated", "internals-toc.inc"), "w") as f:
        f.write(".. toctree::\n   :maxdepth: 2\n   :caption: Internals\n\n")
        f.writelines("   %s\n" % p for p in pages)


_internals_toc()


# The C docstrings are plain text for help(); "f(*args)" in them is not
# reStructuredText emphasis.  Escape "*" outside ``literals`` and literal
# blocks (the indented lines after a "::").
def _plain_stars(app, what, name, obj, options, lines):
    import re
    literal_indent = None
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if not line.strip() or indent > literal_indent:
                continue
            literal_indent = None
        if line.rstrip().endswith("::"):
            literal_indent = indent
        parts = re.split(r"(``.*?``)", line)
        lines[i] = "".join(p if p.startswith("``") else p.replace("*", r"\*")
                           for p in parts)


def setup(app):
    app.connect("autodoc-process-docstring", _plain_stars)

html_theme = "alabaster"
html_title = "stackless_compat %s" % release
html_static_path = []

# Every doctest of the guides runs in a fresh namespace with the module
# imported under its Stackless name.
doctest_global_setup = """
import stackless_compat as stackless
REPO = %r
""" % os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
doctest_test_doctest_blocks = "default"
