# The front door: make demo, make test, make bench, make lint.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-data
# e.g. make demo DEMO_ARGS="--port 9000 --feedback-port 9001 --sql-port 5433"
DEMO_ARGS ?=
EXAMPLE := docs/examples/custview-csv-connector
EXAMPLE_STAMP := $(VENV)/.plugin-example

.PHONY: demo test lint typecheck layers pytest plugin-example bench soak venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# The example third-party connector, installed like any plugin (its own package).
$(EXAMPLE_STAMP): $(EXAMPLE)/pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e $(EXAMPLE)
	touch $(EXAMPLE_STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/custview demo --data-dir $(DEMO_DIR) $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gateway connectors resolvers tests docs/examples
	$(BIN)/ruff format --check gateway connectors resolvers tests docs/examples

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

# pytest-xdist: one worker per core by default; each test file stays on one worker
# (module fixtures such as a loaded database are built once). PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= auto
pytest: $(STAMP) $(EXAMPLE_STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

plugin-example: $(EXAMPLE_STAMP)
	$(BIN)/mypy --strict $(EXAMPLE)/custview_csv $(EXAMPLE)/tests
	$(BIN)/pytest -q $(EXAMPLE)/tests

test: lint typecheck layers plugin-example pytest

# e.g. make bench BENCH_HOT_ARGS="--million" (adds 1M customers) or "--quick --no-http";
# BENCH_EXPORT_ARGS="--sizes 1000000 --workers 0 2" measures exports at the goal's size.
bench: $(STAMP)
	$(BIN)/python -m tests.bench.hot $(BENCH_HOT_ARGS)
	$(BIN)/python -m tests.bench.sqlite_driver
	$(BIN)/python -m tests.bench.run
	$(BIN)/python -m tests.bench.export $(BENCH_EXPORT_ARGS)
	$(BIN)/python -m tests.bench.identity
	$(BIN)/python -m tests.bench.planner

# A bounded load run on loopback with one source flapping (needs PostgreSQL);
# e.g. make soak SOAK_ARGS="--duration 30 --concurrency 10".
soak: $(STAMP)
	$(BIN)/python -m tests.bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .mypy_cache .ruff_cache .pytest_cache
