# Developer entry points.  CI runs .ci/run, which uses the same targets.

PYTHON ?= python3
PYTEST_ARGS ?=
# tests/c/Makefile targets run by `make ctest` (CI adds check-aarch64).
CTEST_TARGETS ?= check
# The sanitizer runtimes must match the compiler that built the extension.
SAN_CC ?= gcc

ASAN_RUNTIME = $(shell $(SAN_CC) -print-file-name=libasan.so) $(shell $(SAN_CC) -print-file-name=libubsan.so)
ASAN_ENV = \
	LD_PRELOAD="$(ASAN_RUNTIME)" \
	ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0:abort_on_error=1:strict_init_order=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	PYTHONMALLOC=malloc

.PHONY: debug-test all build inplace test ctest asan valgrind soak bench clean help \
	versions test-all soak-fuzz docs typecheck

# Supported interpreters.  `make venv-3.12` makes build/venv-3.12 from that
# CPython (PYTHON3_12=/path/to/python3.12, else the newest pyenv 3.12.x,
# else python3.12 on PATH) with the test extras installed (editable, so
# the extension for each version sits side by side in stackless_compat/);
# `make test-3.12` runs the suite there, `make test-all` on every version.
# Any other target runs on one of them with PYTHON=build/venv-3.12/bin/python.
SUPPORTED_VERSIONS = 3.11 3.12 3.13
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
py_for = $(or $(PYTHON$(subst .,_,$(1))),$(lastword $(sort $(wildcard \
	$(PYENV_ROOT)/versions/$(1).*/bin/python$(1)))),$(shell command -v python$(1) 2>/dev/null))
VENV_DIR ?= build

versions:
	@$(foreach v,$(SUPPORTED_VERSIONS),echo "$(v): $(or $(call py_for,$(v)),NOT FOUND)";)

VENV_TARGETS = $(addprefix venv-,$(SUPPORTED_VERSIONS))
TEST_TARGETS = $(addprefix test-,$(SUPPORTED_VERSIONS))
.PHONY: $(VENV_TARGETS) $(TEST_TARGETS)

$(VENV_TARGETS): venv-%:
	@py="$(call py_for,$*)"; \
	if [ -z "$$py" ]; then echo "no CPython $* (set PYTHON$(subst .,_,$*))" >&2; exit 1; fi; \
	if [ ! -x $(VENV_DIR)/venv-$*/bin/python ]; then "$$py" -m venv $(VENV_DIR)/venv-$*; fi
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(VENV_DIR)/venv-$*/bin/python -m pip install -q -e '.[test]'

$(TEST_TARGETS): test-%: venv-%
	$(VENV_DIR)/venv-$*/bin/python -m pytest $(PYTEST_ARGS)

test-all: $(TEST_TARGETS)

all: build

help:
	@echo "make build   - editable install with the test extras (pip install -e '.[test]')"
	@echo "make inplace - rebuild the extension in place (python setup.py build_ext --inplace)"
	@echo "make test    - run the pytest suite"
	@echo "make test-3.12 - the suite in build/venv-3.12 (made by make venv-3.12); test-all: 3.11-3.13"
	@echo "make versions - which interpreter each supported version uses"
	@echo "make ctest   - C-only switch torture test (tests/c; CTEST_TARGETS='$(CTEST_TARGETS)')"
	@echo "make asan    - ASan+UBSan build of the extension, whole suite under it, normal rebuild"
	@echo "make valgrind - valgrind build, whole suite (and its child interpreters) under memcheck"
	@echo "make soak    - long stress/kill/model runs (SLP_STRESS=1, 100,000 model programs,"
	@echo "               100,000 mutated pickles under ASan+UBSan: make soak-fuzz)"
	@echo "make bench   - benchmarks (pip install -e '.[bench]' to compare with peers)"
	@echo "make docs    - the Sphinx site in build/docs/html, warnings are errors, and the"
	@echo "               guides' code examples run as doctests (pip install -e '.[docs]')"
	@echo "make typecheck - mypy.stubtest on the stubs and mypy --strict examples/"
	@echo "               (pip install -e '.[typecheck,drivers,serve]': the zmq, gunicorn and"
	@echo "               Celery modules are checked against the installed packages)"
	@echo "make clean   - remove build products"

build:
	$(PYTHON) -m pip install -e '.[test]'

inplace:
	$(PYTHON) setup.py build_ext --inplace

test:
	$(PYTHON) -m pytest $(PYTEST_ARGS)

ctest:
	$(MAKE) -C tests/c $(CTEST_TARGETS)

# The stock interpreter is not instrumented, so the sanitizer runtimes are
# preloaded into it; PYTHONMALLOC=malloc lets ASan see every allocation.
# Stack-use-after-return detection is off: it moves locals to a fake stack
# that the stack-slicing switch cannot copy.  Leak detection is off: the
# interpreter itself does not free everything at exit.  The normal build is
# restored whatever the outcome, and the suite's status is the target's.
# CPython's own suites are left out of the sanitizer run: they test the
# stdlib and the patches (Python), not our C, and take most of the time.
# So are the tests that drive outside engines in many child processes
# (gunicorn, Celery, PostgreSQL, ZeroMQ): the runtimes would be preloaded
# into those servers too, and the hub and socket paths they use are the
# ones tests/test_socket_hub.py, test_hub.py and test_io_faults.py cover.
ENGINE_TESTS = --ignore=tests/test_gunicorn.py --ignore=tests/test_celery.py \
	--ignore=tests/test_patches_drivers.py
ASAN_PYTEST_ARGS ?= --ignore=tests/test_stdlib_patched.py $(ENGINE_TESTS)

# asan, debug-test and valgrind rebuild the normal extension when they are
# done (whatever the outcome), so the tree is left as it was.
# RESTORE_NORMAL_BUILD=0 skips that rebuild: CI (.ci/run) does not use the
# tree's extension for that interpreter again afterwards.
RESTORE_NORMAL_BUILD ?= 1
RESTORE_BUILD = if [ "$(RESTORE_NORMAL_BUILD)" != 0 ]; then \
	echo "== restoring the normal build"; \
	$(PYTHON) setup.py build_ext --inplace --force; \
	else echo "== RESTORE_NORMAL_BUILD=0: the tree keeps this build"; fi

asan:
	STACKLESS_COMPAT_SANITIZE=1 $(PYTHON) setup.py build_ext --inplace --force
	@status=0; \
	$(ASAN_ENV) $(PYTHON) -m pytest $(ASAN_PYTEST_ARGS) $(PYTEST_ARGS) || status=$$?; \
	$(RESTORE_BUILD) || exit 1; \
	if [ $$status -ne 0 ]; then echo "== sanitizer run FAILED (pytest exit $$status)"; fi; \
	exit $$status

# A debug build (-O0, assertions on, SLP_DEBUG) running the core suite.
debug-test:
	STACKLESS_COMPAT_DEBUG=1 $(PYTHON) setup.py build_ext --inplace --force
	@status=0; \
	$(PYTHON) -m pytest $(ASAN_PYTEST_ARGS) $(PYTEST_ARGS) || status=$$?; \
	$(RESTORE_BUILD) || exit 1; \
	exit $$status

# The whole suite under valgrind memcheck (CPython's own suites aside, as
# for the sanitizers).  Every Python child a test starts is traced too (the
# crash scenarios run in children); other programs are not.  Each process
# logs to $(VALGRIND_LOGS)/vg.<pid>.log and tools/valgrind_report.py fails
# the target on any error in any of them.  No suppression file: the two
# known false positives of this stack are avoided at the source instead:
#  - PYTHONMALLOC=malloc_debug: CPython 3.11 reads the uninitialised digit
#    of a zero int (fixed in 3.12) and the taint spreads everywhere; the
#    debug allocator fills new blocks, which defines them.  Every block is
#    still a real malloc/free that memcheck tracks.
#  - glibc.cpu.hwcaps=-AVX2: glibc's AVX2 wmemcmp reads whole 32-byte words
#    past the end of a string, which valgrind 3.19 does not intercept.
#  - no faulthandler in the child interpreters (PYTHONFAULTHANDLER, -X
#    faulthandler): its alternate signal stack is heap memory that memcheck
#    takes for stack once a handler ran on it, and reports when it is freed
#    (the signal tests run in children).  memcheck reports crashes itself.
# SLP_VALGRIND=1 lets the heaviest tests shrink their iteration counts (the
# code paths stay the same); timeouts are stretched for the slowdown.
VALGRIND ?= valgrind
# absolute: children that run in another directory log here too
VALGRIND_LOGS ?= $(CURDIR)/build/valgrind-logs
VALGRIND_PYTEST_ARGS ?= --ignore=tests/test_stdlib_patched.py $(ENGINE_TESTS) \
	--deselect=tests/test_dns.py::test_same_as_stdlib_pointed_at_the_same_server
VALGRIND_SKIP = */dnsmasq,*/unshare,*/ip,*/sh,*/bash,*/dash,*/make,*/gcc,*/cc,*/cc1,*/as,*/ld,*/collect2,*/torture-*,*/openssl,*/env,*/qemu-*
VALGRIND_FLAGS = --tool=memcheck --error-exitcode=99 --leak-check=no \
	--num-callers=40 --trace-children=yes --trace-children-skip='$(VALGRIND_SKIP)' \
	--log-file=$(VALGRIND_LOGS)/vg.%p.log
VALGRIND_ENV = PYTHONMALLOC=malloc_debug GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2 \
	PYTHONFAULTHANDLER= SLP_VALGRIND=1 SLP_TIMEOUT_SCALE=10 SLP_MODEL_EXAMPLES=40
PY_EXE = $(shell $(PYTHON) -c 'import sys; print(sys.executable)')

# The suite runs as VALGRIND_JOBS shards side by side (SLP_SHARD=i/n in
# tests/conftest.py); each shard's pytest output is in
# $(VALGRIND_LOGS)/pytest.<i>.out and is printed at the end.
VALGRIND_JOBS ?= 2

valgrind:
	STACKLESS_COMPAT_VALGRIND=1 $(PYTHON) setup.py build_ext --inplace --force
	rm -rf $(VALGRIND_LOGS) && mkdir -p $(VALGRIND_LOGS)
	@status=0; pids=""; i=0; \
	while [ $$i -lt $(VALGRIND_JOBS) ]; do \
	    SLP_SHARD=$$i/$(VALGRIND_JOBS) $(VALGRIND_ENV) $(VALGRIND) $(VALGRIND_FLAGS) \
	        $(PY_EXE) -m pytest -p no:cacheprovider \
	        -o faulthandler_timeout=0 -o timeout=3000 \
	        $(VALGRIND_PYTEST_ARGS) $(PYTEST_ARGS) > $(VALGRIND_LOGS)/pytest.$$i.out 2>&1 & \
	    pids="$$pids $$!"; i=$$((i + 1)); \
	done; \
	for p in $$pids; do wait $$p || status=$$?; done; \
	for f in $(VALGRIND_LOGS)/pytest.*.out; do echo "== $$f"; cat $$f; done; \
	echo "== memcheck report"; \
	$(PYTHON) tools/valgrind_report.py $(VALGRIND_LOGS) || { [ $$status -ne 0 ] || status=99; }; \
	$(RESTORE_BUILD) || exit 1; \
	if [ $$status -ne 0 ]; then echo "== valgrind run FAILED (status $$status)"; fi; \
	exit $$status

# The long versions of the reliability tests (not in CI): 10,000,000
# channel operations and more rounds of random kills (SLP_STRESS=1), and
# 100,000 model programs.
SOAK_MODEL_EXAMPLES ?= 100000

soak:
	SLP_STRESS=1 $(PYTHON) -m pytest -o timeout=3600 $(PYTEST_ARGS) \
	    tests/test_stress.py tests/test_dns_faults.py $(wildcard tests/test_io_faults.py)
	SLP_MODEL_EXAMPLES=$(SOAK_MODEL_EXAMPLES) $(PYTHON) -m pytest -o timeout=36000 \
	    $(PYTEST_ARGS) tests/test_model.py -k random_programs
	$(MAKE) soak-fuzz

# 100,000 mutated pickles of suspended tasklets under ASan+UBSan (the
# suite runs 2,000 natively).  allocator_may_return_null: a mutated memo
# index makes pickle itself ask for gigabytes, which must be MemoryError.
SOAK_FUZZ_N ?= 100000
soak-fuzz:
	STACKLESS_COMPAT_SANITIZE=1 $(PYTHON) setup.py build_ext --inplace --force
	@status=0; \
	$(ASAN_ENV) ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0:abort_on_error=1:allocator_may_return_null=1 \
	SLP_FUZZ_N=$(SOAK_FUZZ_N) $(PYTHON) -m pytest -o timeout=36000 -o faulthandler_timeout=0 \
	    $(PYTEST_ARGS) tests/test_pickle_fuzz.py || status=$$?; \
	echo "== restoring the normal build"; \
	$(PYTHON) setup.py build_ext --inplace --force || exit 1; \
	exit $$status

bench:
	$(PYTHON) benchmarks/run_all.py

# The documentation (docs/): HTML with every warning an error, then the
# code examples of the guides run as doctests.
SPHINXBUILD ?= $(PYTHON) -m sphinx
DOCS_OUT ?= build/docs

docs:
	$(SPHINXBUILD) -W --keep-going -b html docs $(DOCS_OUT)/html
	$(SPHINXBUILD) -W --keep-going -b doctest docs $(DOCS_OUT)/doctest

# The type stubs against the runtime (mypy.stubtest), and the examples under
# mypy --strict.  The package is installed in editable mode through an
# import hook that mypy cannot follow, and stackless_compat.patches lives in
# patches/, so mypy reads the stubs from a tree of links in build/typecheck
# (typings/stackless.pyi makes `import stackless` of legacy programs typed).
TYPECHECK_DIR = build/typecheck

typecheck:
	rm -rf $(TYPECHECK_DIR) && mkdir -p $(TYPECHECK_DIR)/stackless_compat
	ln -s $(CURDIR)/stackless_compat/*.pyi $(CURDIR)/stackless_compat/py.typed \
	    $(TYPECHECK_DIR)/stackless_compat/
	ln -s $(CURDIR)/patches $(TYPECHECK_DIR)/stackless_compat/patches
	ln -s $(CURDIR)/typings/stackless.pyi $(TYPECHECK_DIR)/stackless.pyi
	MYPYPATH=$(TYPECHECK_DIR) $(PYTHON) -m mypy.stubtest stackless_compat \
	    --allowlist stackless_compat/stubtest-allowlist.txt
	MYPYPATH=$(TYPECHECK_DIR) $(PYTHON) -m mypy --strict --no-incremental \
	    $(TYPECHECK_DIR)/stackless_compat/ $(TYPECHECK_DIR)/stackless.pyi examples/

clean:
	rm -rf build dist *.egg-info .eggs .pytest_cache .hypothesis
	find . -name '__pycache__' -type d -prune -exec rm -rf {} +
	rm -f stackless_compat/*.so
	-[ -f tests/c/Makefile ] && $(MAKE) -C tests/c clean
