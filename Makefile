# Trasos recommender platform. Targets are the interface; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS ?= $(shell command -v python3.11 || command -v python3)
VENV       := .venv
PY         := $(VENV)/bin/python
UV         := $(VENV)/bin/uv
WHEELS     := .state/wheels
LIGHTFM    := $(WHEELS)/lightfm-1.17-cp311-cp311-linux_$(shell uname -m).whl
SYNCED     := $(VENV)/.synced
CTL        := $(PY) -m include.airflowctl
DATASET    ?= simulator
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False

# PHONY list
.PHONY: up-cluster down-cluster spark-thrift
.PHONY: help prepare setup run up land test lint format dbt-build dbt-docs bench clean simulate browser report owners serve evaluate rollback sql sample mlflow notebook setup-scale test-scale

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON_SYS) -m venv $(VENV)

$(UV): | $(PY)
	$(PY) -m pip install --quiet uv

# LightFM 1.17 does not build under PEP 517 (STACK.md): build its wheel once with the
# venv's old pip (< 25.3) and no build isolation, then install it from the wheelhouse.
$(LIGHTFM): | $(UV)
	$(UV) pip install --quiet --python $(PY) setuptools wheel cython "numpy>=2.4,<2.5" "scipy>=1.17,<1.18" "pip<25.3"
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation lightfm==1.17 -w $(WHEELS)

# --compile-bytecode: every Airflow task, dbt call and test worker is a new interpreter; with
# PYTHONDONTWRITEBYTECODE set (as on these machines) none would ever write a .pyc and each
# would compile its imports again (dbt's import: 5.7 s without .pyc, 3.2 s with).
$(SYNCED): requirements.lock $(LIGHTFM) | $(UV)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) --find-links $(WHEELS) requirements.lock
	@# the repo's packages (include, recsys, expectations) importable from every process
	@echo "$(CURDIR)" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/trasos.pth
	@touch $@

# setup without Airflow's metadata DB (`run` initialises it beside the simulation)
prepare: $(SYNCED)
	@$(PY) -m compileall -q -j 0 include recsys expectations dags common >/dev/null  # the repo's own .pyc (see above)
	@$(PY) -m expectations.docs vendor  # checks the committed Data Docs front-end files (no npm)
	@$(PY) -m include.transform ls >/dev/null

setup: prepare  ## create .venv with the locked stack and initialise Airflow (idempotent)
	@$(CTL) init

run: prepare  ## simulate 30 days (or DATASET=rees46|hm|...) and run every DAG in data order
	$(CTL) run --dataset $(DATASET)

rollback: setup  ## serve the previously promoted model again (published/CURRENT and models/current)
	eval "$$($(CTL) env)" && $(PY) -m include.tasks.training rollback

up: setup  ## start Airflow (UI + scheduler) on 127.0.0.1:8080; Ctrl-C stops it
	$(CTL) up

DAYS ?= 1
land: setup  ## land the next DAYS simulated day(s) (default 1); with `make up` running, the chain follows
	$(CTL) land --days $(DAYS)

browser:  ## Chromium from Debian for the browser tests (needs root)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: setup browser  ## install everything and run the whole test suite
	$(PY) -m pytest

SCALE_SYNCED := $(VENV)/.synced-scale
$(SCALE_SYNCED): requirements-scale.lock $(SYNCED)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) --find-links $(WHEELS) requirements-scale.lock
	@touch $@ $(SYNCED)

setup-scale: setup $(SCALE_SYNCED)  ## add the scale-out stack (Celery, Postgres/Redis clients, S3, Spark) to .venv

test-scale: setup-scale  ## the scale-out tests (tests/scale/: cluster profile, object store, Spark)
	$(PY) -m pytest tests/scale -m scale -n 0

up-cluster: setup-scale  ## cluster profile on loopback: Postgres, Redis, SeaweedFS (S3), Airflow with 2 Celery workers (docs/scale-out.md)
	$(CTL) up-cluster

down-cluster:  ## stop everything make up-cluster started
	$(CTL) down-cluster

lint: setup  ## ruff (Python) and sqlfluff (dbt SQL)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd dbt_project && ../$(VENV)/bin/sqlfluff lint models

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

TARGET ?= $(or $(TRASOS_DBT_TARGET),dev)
dbt-build: setup  ## dbt build on the local warehouse (TARGET=spark: local Spark; TARGET=spark_thrift: make spark-thrift's server)
	eval "$$($(CTL) env)" && cd dbt_project && TRASOS_DBT_TARGET=$(TARGET) SPARK_LOCAL_IP=127.0.0.1 \
	  ../$(VENV)/bin/dbt build

spark-thrift: setup-scale  ## a Spark Thrift Server on the spark target's warehouse, in the foreground (TARGET=spark_thrift reaches it)
	eval "$$($(CTL) env)" && $(PY) -m include.cluster spark-thrift

dbt-docs: setup  ## generate dbt docs (one self-contained page) into the reports and serve them on loopback
	eval "$$($(CTL) env)" && $(PY) -m include.transform docs && \
	  $(PY) -m http.server 8081 --bind 127.0.0.1 -d "$$TRASOS_DATA_DIR/reports/dbt_docs"

LAPSED_DAYS ?= 14
report: setup  ## rebuild the business report by hand (DA marts, export, HTML, lapsed CSV)
	eval "$$($(CTL) env)" && $(PY) -m include.reporting.business --lapsed-days $(LAPSED_DAYS)

EVAL_DATASETS ?= amazon_grocery rees46 yoochoose retailrocket hm
evaluate: setup  ## evaluate model and baselines on real datasets through the loaders -> docs/evaluation.md
	$(PY) -m include.tasks.evaluation $(EVAL_DATASETS)

sql: setup  ## SQL prompt on the read-only analyst copy of the marts (never locks the warehouse)
	eval "$$($(CTL) env)" && $(PY) -m include.analyst sql

MLFLOW_PORT ?= 5000
mlflow: setup  ## MLflow UI on 127.0.0.1:5000: training/evaluation runs, the champion alias (Ctrl-C stops)
	eval "$$($(CTL) env)" && $(PY) -m recsys.tracking ui --port $(MLFLOW_PORT)

notebook: setup  ## the research notebook (marimo) on 127.0.0.1; see README "Experiment tracking"
	eval "$$($(CTL) env)" && $(VENV)/bin/marimo edit notebooks/research.py --headless --host 127.0.0.1 --port 2718

owners: setup  ## print the ownership map (DAGs, dbt models, GX suites, models) and write it as a page
	eval "$$($(CTL) env)" && $(PY) -m include.tasks.owners

sample: setup  ## a sample for DS/DA in $$TRASOS_DATA_DIR/samples/<id>/ (ARGS="--sources fct_sessions --fraction 0.1 --seed 7"; --help)
	eval "$$($(CTL) env)" && $(PY) -m include.tasks.samples $(ARGS)

serve: setup  ## recommendations API on 127.0.0.1:8000 (keys and endpoints: docs/serving.md)
	$(PY) -m include.serving serve --host 127.0.0.1 --port 8000

simulate: setup  ## write 30 simulated days (about 1M events) into the landing zone
	$(PY) -m include.simulator

bench: setup  ## run every benchmark under bench/ and write bench/RESULTS.md
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) || true
	$(PY) bench/run_all.py

clean:  ## remove the data directory, Airflow home and caches (keeps .venv)
	rm -rf data .state/airflow .state/cosmos dbt_project/target dbt_project/logs .pytest_cache
