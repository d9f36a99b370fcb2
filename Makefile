# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
JOBS ?= 2

.PHONY: install install-test system-deps demo test lint typecheck unit test-compiled

install:
	$(PIP) install -q -e .

install-test:
	$(PIP) install -q -e '.[test]'

system-deps:
	bash scripts/install-system-deps.sh

## demo: install capdebug and run it on the bundled sample capture
demo: install
	capdebug triage samples/tls13-premature-close.pcapng; test $$? -le 1
	capdebug decrypt samples/tls13-premature-close.pcapng

lint:
	ruff check capdebug tests scripts
	ruff format --check capdebug tests scripts

typecheck:
	mypy

unit:
	$(PYTHON) -m pytest -n $(JOBS) -q

## test-compiled: build the mypyc-compiled variant in a venv of its own (scripts/build_compiled.sh)
## and test it against the pure package: identical output on every fixture, decode/net/wire/crypto
test-compiled:
	JOBS=$(JOBS) PYTHON=$(PYTHON) bash scripts/build_compiled.sh

## test: install everything the tests need, lint, type-check, run the whole suite, then build the
## compiled variant and test it against the pure package
test: system-deps install-test lint typecheck unit test-compiled
