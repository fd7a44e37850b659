# Everything a newcomer needs: `make run` (install + main DAG), `make test` (install + tests),
# `make test-quick` (the edit loop: unit tests, no Spark, no end-to-end runs).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RECBOLE_VERSION := 1.2.1
ML100K := .state/data/ml-100k/ml-100k.inter
PYTEST_ARGS ?=
# pytest-xdist worker processes for make test and test-quick (0: none, all in one process)
TEST_WORKERS ?= 2
AIRFLOW_PORT ?= 8080
SERVE_PORT ?= 8000

export GX_ANALYTICS_ENABLED := false
export FEAST_USAGE := False
export SCARF_ANALYTICS := false
export DO_NOT_TRACK := 1

.PHONY: help install run run-movielens report report-counts report-movielens report-movielens-per-user report-repeat ablate probe test test-quick lint format data movielens dag-test airflow-ui serve spark-cluster spark-cluster-stop run-cluster redis postgres chromium airflow-postgres airflow-postgres-stop clean clean-state lock

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{gsub(/\$$\$$/, "$$", $$2); printf "  make %-25s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and alone: the pinned CPU wheel; anything unpinned would pull a CUDA build
$(STAMP): $(BIN)/python pyproject.toml requirements/constraints.txt
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) movielens ## Create .venv (reused when present) and install the locked stack

# MovieLens-100K ships inside the recbole wheel; its licence forbids redistribution,
# so it is fetched from the package registry at set-up time and never committed.
$(ML100K):
	mkdir -p .state/downloads .state/data
	$(BIN)/pip download --quiet --no-deps recbole==$(RECBOLE_VERSION) -d .state/downloads
	$(BIN)/python -m zipfile -e .state/downloads/recbole-$(RECBOLE_VERSION)-py3-none-any.whl .state/downloads/recbole
	cp -r .state/downloads/recbole/recbole/dataset_example/ml-100k .state/data/
	rm -rf .state/downloads/recbole

movielens: $(BIN)/python $(ML100K) ## Put MovieLens-100K under .state/data (from the recbole wheel)

# Debian's redis-server: the Redis online store (conf/redis.yaml) and its tests, which start
# their own server on a free loopback port; a no-op when one is already on PATH
redis: ## Install redis-server when missing (apt-get; through sudo when not root)
	@command -v redis-server >/dev/null || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; }
	@redis-server --version

# Debian's Chromium: the browser tests (Playwright drives it: tests/browser.py); a no-op when present
chromium: ## Install Debian's chromium when missing (apt-get; through sudo when not root)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# Debian's PostgreSQL server, whose binaries stay off PATH (/usr/lib/postgresql/<v>/bin):
# Airflow's metadata in conf/airflow-postgres.yaml and its test; a no-op when present
postgres: ## Install the PostgreSQL server when missing (apt-get; through sudo when not root)
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; }
	@ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null || command -v initdb

data: install ## Generate the default synthetic data set (skipped when present)
	$(BIN)/vista ingest-events

run: install ## Install, then run the main DAG end to end on the embedded default
	$(BIN)/vista dag-test

airflow-ui: install ## Airflow UI on http://localhost:$(AIRFLOW_PORT) (admin password: $$VISTA_AIRFLOW_ADMIN_PASSWORD or generated, printed)
	$(BIN)/vista airflow-ui --port $(AIRFLOW_PORT)

airflow-postgres: install postgres ## Airflow UI, LocalExecutor + PostgreSQL in .state/postgres (conf/airflow-postgres.yaml)
	$(BIN)/vista postgres start
	$(BIN)/vista airflow-ui --profile airflow-postgres --port $(AIRFLOW_PORT)

airflow-postgres-stop: install ## Stop that PostgreSQL (its data stays in .state/postgres)
	$(BIN)/vista postgres stop

spark-cluster: install ## Start a Spark standalone cluster on loopback (master + 2 workers; UI :8180)
	$(BIN)/vista spark-cluster start

spark-cluster-stop: install ## Stop it
	$(BIN)/vista spark-cluster stop

run-cluster: spark-cluster ## The pipeline on that cluster (conf/cluster.yaml: only spark.master differs)
	VISTA_PROFILE=cluster $(BIN)/vista run

serve: install ## Online scoring on http://localhost:$(SERVE_PORT) (POST /score; after make run)
	$(BIN)/vista serve --port $(SERVE_PORT)

run-movielens: install ## The main DAG on MovieLens-100K (conf/movielens.yaml)
	$(BIN)/vista dag-test --profile movielens

report: install ## VISTA vs raw-history baselines on the lifelong world (conf/lifelong.yaml, 3 seeds, intervals): reports/lifelong/<as_of>/report.md
	$(BIN)/vista run -p lifelong
	$(BIN)/vista evaluate-and-report -p lifelong

report-counts: install ## The same comparison on the counts world of the embedded default (after make run)
	$(BIN)/vista evaluate-and-report

ablate: install ## VISTA ablations (recon, K 32/64/128, memory design parts, staleness): reports/<as_of>/ablations.md
	$(BIN)/vista ablate

probe: install ## Linear probes on frozen summaries vs history length (counts, needles, recency): reports/<as_of>/probes.md
	$(BIN)/vista probe

report-movielens: install movielens ## The same evaluation on MovieLens-100K
	$(BIN)/vista dag-test --profile movielens --evaluate

report-movielens-per-user: install movielens ## The same, each user's last 20% of ratings held out (conf/movielens-per-user.yaml)
	$(BIN)/vista dag-test --profile movielens-per-user --evaluate

report-repeat: install ## A repeat label (grocery `reordered`) through the generic CSV loader: do summaries remember which items? (conf/repeat.yaml)
	$(BIN)/python bench/repeat_world.py
	$(BIN)/vista dag-test --profile repeat --evaluate

lint: $(STAMP) ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install redis postgres chromium lint ## Install (plus Debian's redis-server, PostgreSQL and chromium when missing), lint, then the whole test suite
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-quick: install ## The edit loop, < 3 min: unit tests and in-process checks (-m "not slow and not integration"), no lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow and not integration" $(PYTEST_ARGS)

lock: $(STAMP) ## Rewrite requirements/constraints.txt from the venv
	(echo "# Full lock of the venv (pip freeze), used as pip constraints by the Makefile. Regenerate: make lock"; \
	 $(BIN)/pip freeze --exclude-editable) > requirements/constraints.txt

clean-state: ## Delete local state and reports (lake, Airflow DB, Feast registry)
	rm -rf .state reports

clean: clean-state ## Also delete the virtual environment
	rm -rf $(VENV)
