# Raksha: `make help` lists the targets.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
DAY    ?= 2026-11-01
HISTORY_START := $(shell $(PYTHON) -c "import datetime as d; print(d.date.fromisoformat('$(DAY)') - d.timedelta(days=4))")
HISTORY_END   := $(shell $(PYTHON) -c "import datetime as d; print(d.date.fromisoformat('$(DAY)') - d.timedelta(days=1))")
DEMO   := data/demo
DEMO_SETS := --set paths.sessions=$(DEMO)/raw/sessions --set paths.actions=$(DEMO)/raw/action_log \
	--set paths.labels=$(DEMO)/raw/labels --set paths.warehouse=$(DEMO)/warehouse \
	--set paths.metastore=$(DEMO)/metastore

.DEFAULT_GOAL := help
.PHONY: help setup demo test cluster-test lint format bench models clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create .venv with the pinned dependencies and raksha installed

$(VENV)/.installed: setup.py raksha/platform/jars.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	# Keras 2 for the tests that write model files as the notebooks did (no second TensorFlow)
	$(BIN)/pip install -q --no-deps tf-keras==2.21.0
	# the Delta Lake and PostgreSQL JDBC jars, once, into jars/ (nothing is fetched at run time)
	$(BIN)/python -m raksha.platform.jars
	touch $@

demo: setup ## generate four days of history and a day of sample data, build the users' baselines from the history, score the day with the shipped models, print a summary
	$(BIN)/raksha generate --start-date $(HISTORY_START) --days 5 --sessions-per-day 20000 $(DEMO_SETS)
	$(BIN)/raksha baseline build --start-date $(HISTORY_START) --end-date $(HISTORY_END) $(DEMO_SETS)
	$(BIN)/raksha score --date $(DAY) $(DEMO_SETS)

TEST_WORKERS ?= 2
test: setup ## run the test suite (TEST_WORKERS=2 processes, each with its own shared SparkSession; a file stays in one; the longest files first, tests/conftest.py)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 tests

cluster-test: setup ## only the cluster test: a standalone master and two workers on 127.0.0.1, raksha submit, output equal to local mode
	$(BIN)/python -m pytest -q -m cluster tests

bench: setup ## time the nightly job against the bare floor, its pipeline floor, the Spark-docs recipe and the notebooks (BENCH_ARGS="--day both ...")
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: setup ## ruff lint and format check, mypy on the pure modules (CI runs it)
	$(BIN)/ruff check raksha jobs tests bench
	$(BIN)/ruff format --check raksha jobs tests bench
	$(BIN)/mypy

format: setup ## ruff format in place
	$(BIN)/ruff format raksha jobs tests bench

models: setup ## retrain the shipped default models in models/ on generated data
	$(BIN)/python -m raksha.models.shipped

.PHONY: postgres postgres-stop
PG_DIR ?= data/postgres
postgres: setup ## start a local PostgreSQL (127.0.0.1, PG_PORT=...) under data/postgres for a shared catalog; prints the --set lines
	$(BIN)/python -m raksha.platform.local_postgres start --dir $(PG_DIR) $(if $(PG_PORT),--port $(PG_PORT))

postgres-stop: ## stop the PostgreSQL of `make postgres`
	$(BIN)/python -m raksha.platform.local_postgres stop --dir $(PG_DIR)

clean: ## remove generated data (not the venv)
	rm -rf data spark-warehouse metastore_db derby.log
