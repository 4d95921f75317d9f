# dtwin — the two commands that matter are `make up` and `make test`.
# Everything slow (Go binaries, the Python venv) is cached outside the repo under
# ~/.cache/dtwin, keyed by version, so a second run starts at once.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV = $(shell hack/venv.sh)
PY = $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/operator:$(CURDIR)/tools/localcp:$(CURDIR)/libs/dtwin_core:$(CURDIR)/services/bridge:$(CURDIR)/services/simulator:$(CURDIR)/bench:$(CURDIR)/services/api:$(CURDIR)/libs/dtwin_ml:$(CURDIR)/services/trainer:$(CURDIR)/services/cli:$(CURDIR)/services/scorer
RUN ?= $(CURDIR)/.run

.PHONY: help venv services control-plane cluster-up cluster-down up down status crds lint test test-unit clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: ## create the cached Python virtualenv
	@hack/venv.sh >/dev/null

services: ## install PostgreSQL 15 and Mosquitto 2 packages if missing (we run our own instances)
	@hack/install-services.sh >/dev/null

control-plane: ## build etcd, kube-*, kubectl, kwok once (cached; ~14 min cold on 2 cores)
	@hack/build-control-plane.sh >/dev/null

cluster-up: venv services control-plane ## start the local control plane (etcd, apiserver, controllers, scheduler, KWOK)
	@$(PY) -m dtwin_localcp up --run-dir $(RUN)/cluster

cluster-down: venv ## stop the local control plane
	@$(PY) -m dtwin_localcp down --run-dir $(RUN)/cluster

up: venv services control-plane ## the embedded platform: control plane, CRDs, operator, demo campus; prints what is Ready
	@$(PY) -m dtwin_localcp.embedded up --run-dir $(RUN)

down: venv ## stop everything `make up` started
	@$(PY) -m dtwin_localcp.embedded down --run-dir $(RUN)

status: venv ## what `make up` is running and what is Ready
	@$(PY) -m dtwin_localcp.embedded status --run-dir $(RUN)

crds: venv ## regenerate crds/*.yaml from operator/dtwin_operator/api
	@$(PY) -m dtwin_operator.api.crds crds

lint: venv ## ruff (lint + format check) and mypy
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

test-unit: venv ## tests that need no cluster
	@$(PY) -m pytest -m "not cluster and not services"

test: venv services control-plane ## every test, against a real local control plane started for the session
	@$(PY) -m pytest

clean: down ## stop everything and remove run state
	@rm -rf $(RUN)

.PHONY: bench bench-ingest bench-api bench-inference
BENCH_ARGS ?=

bench-ingest: venv ## ingest benchmark (issue 3; ~5 min): COPY ceiling, anchors, dtwin bridge; BENCH_ARGS=--quick
	@$(PY) -m dtwin_bench.ingest $(BENCH_ARGS)

bench-api: venv ## API benchmark (issue 5; ~5 min): publish -> WebSocket latency vs the broker's, rollup vs raw queries; BENCH_ARGS=--quick
	@$(PY) -m dtwin_bench.api $(BENCH_ARGS)

bench-inference: venv ## inference benchmark (~2 min): anomaly bento over HTTP vs bundle.predict in process; BENCH_ARGS=--quick
	@$(PY) -m dtwin_bench.inference $(BENCH_ARGS)

bench: bench-ingest bench-api bench-inference ## every benchmark; results in .bench/

.PHONY: eval
EVAL_ARGS ?=

eval: venv ## ML evaluation (issue 4; ~10 min on 2 cores): simulate with faults, train, score vs baselines; EVAL_ARGS=--quick
	@$(PY) -m dtwin_trainer.evaluate $(EVAL_ARGS)
