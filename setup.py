"""Build script for the stackless_compat C extension.

Metadata lives in setup.cfg; this file only describes the one extension,
``stackless_compat._stackless``, because its sources and flags are computed.

Environment knobs (read at build time, also through ``pip install``):

``STACKLESS_COMPAT_SANITIZE=1``
    Build with AddressSanitizer and UndefinedBehaviorSanitizer and define
    ``SLP_ASAN=1`` so the switch core announces its stack switches to ASan.
    The stock interpreter is not instrumented: run it with the sanitizer
    runtimes in ``LD_PRELOAD`` (see ``make asan``).
``STACKLESS_COMPAT_DEBUG=1``
    ``-O0 -g`` with assertions on, and ``SLP_DEBUG=1``.
``STACKLESS_COMPAT_VALGRIND=1``
    ``-O1 -g`` with assertions on, and ``SLP_VALGRIND=1``: the switch core
    tells memcheck which stack copies are stale (``make valgrind``).
"""

import os
import sys
from glob import glob

# The switch core saves the interpreter's internal per-thread state; each
# supported minor version has its entry in the version layer (csrc/pystate.c,
# csrc/compat.h).  python_requires says the same to pip.
SUPPORTED = ((3, 11), (3, 12), (3, 13))
if sys.version_info[:2] not in SUPPORTED or sys.implementation.name != "cpython":
    sys.exit("stackless_compat supports CPython %s only; this is %s %s"
             % (", ".join("%d.%d" % v for v in SUPPORTED),
                sys.implementation.name, sys.version.split()[0]))

from setuptools import Extension, setup  # noqa: E402  (after the version check)

HERE = os.path.dirname(os.path.abspath(__file__))


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")


def _rel(pattern):
    # setuptools wants paths relative to the project root, with "/".
    root = HERE + os.sep
    return sorted(p[len(root):] if p.startswith(root) else p
                  for p in glob(os.path.join(HERE, pattern)))



sources = _rel("csrc/*.c")
depends = _rel("csrc/*.h") + _rel("csrc/platform/*")
include_dirs = ["csrc"]
libraries = []

# The hub (libev + c-ares) is compiled into the same extension once hub/
# exists.  It is picked up here so adding it needs no packaging change.
hub_sources = [] if _flag("STACKLESS_COMPAT_NO_HUB") else _rel("hub/*.c")
if hub_sources:
    sources += hub_sources
    depends += _rel("hub/*.h")
    include_dirs.append("hub")
    libraries += ["ev", "cares"]

define_macros = [("SLP_WITH_HUB", "1")] if hub_sources else []
extra_compile_args = [
    "-Wall",
    "-Wextra",
    "-fvisibility=hidden",
    # The stack switch moves SP under the compiler's feet: no CET shadow
    # stack, no LTO (which could inline across the switch).
    "-fcf-protection=none",
    "-fno-lto",
    "-fno-strict-aliasing",
    "-std=gnu11",
]
extra_link_args = ["-fno-lto"]

if _flag("STACKLESS_COMPAT_DEBUG"):
    # Appended after the interpreter's own CFLAGS (-O3 -DNDEBUG), so these win.
    extra_compile_args += ["-O0", "-g", "-UNDEBUG"]
    define_macros.append(("SLP_DEBUG", "1"))

if _flag("STACKLESS_COMPAT_VALGRIND"):
    # Symbols and line numbers for memcheck's reports, assertions on, and
    # the switch core's memcheck client requests (SLP_VALGRIND).
    extra_compile_args += ["-O1", "-g", "-fno-omit-frame-pointer", "-UNDEBUG"]
    define_macros.append(("SLP_VALGRIND", "1"))

if _flag("STACKLESS_COMPAT_SANITIZE"):
    sanitize = [
        "-fsanitize=address,undefined",
        "-fno-omit-frame-pointer",
        "-fno-sanitize-recover=undefined",
    ]
    extra_compile_args += sanitize
    extra_link_args += sanitize
    define_macros.append(("SLP_ASAN", "1"))

if not sources:
    sys.stderr.write("warning: no C sources found in csrc/; "
                     "the _stackless extension will be empty\n")

ext = Extension(
    "stackless_compat._stackless",
    sources=sources,
    depends=depends,
    include_dirs=include_dirs,
    libraries=libraries,
    define_macros=define_macros,
    extra_compile_args=extra_compile_args,
    extra_link_args=extra_link_args,
)

# patches/ (the cooperative stdlib patches) is installed as
# stackless_compat.patches.
packages = ["stackless_compat"]
package_dir = {}
if os.path.isfile(os.path.join(HERE, "patches", "__init__.py")):
    packages.append("stackless_compat.patches")
    package_dir["stackless_compat.patches"] = "patches"

setup(
    packages=packages,
    package_dir=package_dir,
    ext_modules=[ext] if sources else [],
)
