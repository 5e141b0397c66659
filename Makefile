# The two commands of README.md: `make demo` (the main job) and `make test` (what CI runs).
# Both create the virtual environment on first use, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit simulate fuzz bench clean

$(STAMP): pyproject.toml setup.py .ci/build-constraints.txt agent/ledgersync/_riblt_kernel.c agent/ledger/_ed25519.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --build-constraint .ci/build-constraints.txt pyjolokia==0.3.1
	touch $(STAMP)

# The JavaScript clients the tests drive (jolokia.js, @grafana/schema), exactly as locked.
JS := tests/js/node_modules/.installed
$(JS): tests/js/package.json tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund --silent
	touch $(JS)

demo: $(STAMP)
	$(BIN)/ledger-agent demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# A worker per core; a test file stays on one worker (its module fixtures, such as the demo's run, are
# made once). PYTEST_WORKERS=0 runs in this process, for a debugger.
PYTEST_WORKERS ?= auto
unit: $(STAMP) $(JS)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

# The seeded network simulation beyond CI's 200 seeds (docs/simulation.md): make simulate SEEDS=20000
SEEDS ?= 5000
simulate: $(STAMP)
	$(BIN)/python -m tests.simulation --seeds $(SEEDS)

# The fuzzers beyond CI's 150 inputs a target (docs/security.md): make fuzz FUZZ_EXAMPLES=20000
FUZZ_EXAMPLES ?= 5000
fuzz: $(STAMP) $(JS)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile tests/fuzz

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
