# Everything a fresh clone needs: Python 3.11+, pip and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The README's Node receiver snippet runs on the npm `standardwebhooks` (tests/receiver_node).
NODE_DIR   := tests/receiver_node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed
MEMBERS := libs/common services/ingress services/router services/forwarder services/provisioner cli
PYPROJECTS := pyproject.toml $(addsuffix /pyproject.toml,$(MEMBERS))

.PHONY: install test lint fmt up bench bench-quick faults mutants schemathesis api-answers compose-test clean

install: $(STAMP)

$(STAMP): $(PYPROJECTS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sayna-sip needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(addprefix -e ,$(MEMBERS)) -e '.[dev]'
	@touch $@

# Two passes: the suite on TEST_JOBS xdist workers (most tests wait on processes and
# sockets: 4 workers keep about 1.1 of 2 cores busy, 2 workers 0.65), then the `serial` tests
# alone, which time rates and elections on the wall clock. Exit 5 (nothing selected, as
# with PYTEST_ARGS naming one file) is not a failure.
TEST_JOBS ?= 4
test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -n $(TEST_JOBS) -m 'not slow and not serial' $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/python -m pytest -m 'serial and not slow' $(PYTEST_ARGS) || [ $$? -eq 5 ]

# Without npm (or the registry) the Node snippet test skips and says so; nothing else needs it.
$(NODE_STAMP): $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1 && timeout 120 npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error; \
	then touch $@; else echo "warning: npm ci in $(NODE_DIR) failed or npm is missing: the Node snippet test will skip" >&2; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

up: $(STAMP)
	$(BIN)/sayna-sip up $(ARGS)

# The image and compose.yaml for real, on podman (tests/compose/run.sh; needs root).
compose-test: $(STAMP)
	timeout --signal=TERM 2400 tests/compose/run.sh

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.records

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

# Real processes, one fault each (kills, nats restart, R3 failover, black hole; then on
# five-event calls with ordered delivery, and the 40-call order test), then the long
# variants of the tests (pytest -m slow: the rate limit's 600-event run); ~8 min.
faults: $(STAMP)
	$(BIN)/python -m bench.run --only faults
	$(BIN)/python -m pytest -m slow -q

# Mutation score of the critical modules (docs/testing.md); MODULES=signing runs one.
mutants: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[mutants]'
	$(BIN)/python -m mutation.run $(MODULES)

# Schemathesis against a real stack's /schema (auth on): every check and phase, 10 examples
# per operation (ST_EXAMPLES, ST_SEED); fails on any failure. ~1 min.
schemathesis: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[schemathesis]'
	tests/schemathesis/run.sh

# docs/api-answers.md from the ingress's OpenAPI schema (tests/docs/test_api_answers.py).
api-answers: $(STAMP)
	$(BIN)/python -m tests.docs.api_answers

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .mutmut-cache .pytest_cache .mypy_cache .ruff_cache
