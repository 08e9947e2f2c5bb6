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
exclude_patterns = ["_build"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
# The API pages list the members explicitly; the C module's internals
# (names starting with "_") stay out.
autodoc_typehints = "signature"

# Offline builds: no inventory is fetched; py:class references to the
# stdlib stay plain text.
intersphinx_mapping = {}

# Names that the reference mentions but does not document.
nitpick_ignore = [
    ("py:class", "_stackless.tasklet"),
    ("py:class", "_stackless.channel"),
]

html_theme = "alabaster"
html_title = "stackless_compat %s" % release
html_static_path = []

# Every doctest of the guides runs in a fresh namespace with the module
# imported under its Stackless name.
doctest_global_setup = """
import stackless_compat as stackless
"""
doctest_test_doctest_blocks = "default"
