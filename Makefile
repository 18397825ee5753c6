# The interface for users, CI and contributors. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
CLUSTER := $(PY) -m hack.localcluster
PYTEST_ARGS ?=

.PHONY: help venv tools binaries cluster-up cluster-down cluster-status test unit lint crds operator demo bench clean images

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[runtime,onnx,torch,pickle,dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create or update the virtualenv in .venv/ (operator, runtime, CLI, test tools)

# promtool checks and unit-tests the chart's alert rules (Debian's prometheus package).
tools: ## system tools the tests use (promtool), installed with apt when missing
	@command -v promtool >/dev/null || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y --no-install-recommends prometheus >/dev/null; } || \
	  echo "warning: promtool could not be installed; the alert-rule tests will fail"; }

binaries: ## build the control plane binaries and KEDA from source once (cached in ~/.cache/mlmodel-operator)
	@hack/build/build-binaries.sh >/dev/null
	@hack/build/build-binaries.sh keda >/dev/null

cluster-up: venv binaries ## start the local cluster and object store (idempotent)
	@$(CLUSTER) up

cluster-down: venv ## stop every process cluster-up started
	@$(CLUSTER) down

cluster-status: venv ## is the local cluster running?
	@$(CLUSTER) status

# pytest's fixtures start what the tests need and stop what they started; the trap below also stops
# what this run started when pytest itself dies.
test: venv tools binaries ## run the whole test suite against the local cluster and object store
	@running=$$($(CLUSTER) status | grep -c ': running' || true); \
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ "$$running" = "0" ]; then $(CLUSTER) down >/dev/null; fi; exit $$rc

# The fast tiers: pure functions (tables, golden files) and the operator's Reconciler against a fake API
# (tests/operator/fakeapi.py); nothing that needs the cluster, the object store or seconds per test.
UNIT_TESTS := tests/operator tests/package
unit: venv ## the fast tiers only (pure + fake API), in seconds; no cluster needed
	$(PY) -m pytest -q -m "not cluster and not objectstore and not slow" $(UNIT_TESTS) $(PYTEST_ARGS)

lint: venv ## ruff, mypy, import-linter contracts, hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	@if ls Dockerfile.* >/dev/null 2>&1; then $(VENV)/bin/hadolint Dockerfile.*; fi

crds: venv ## regenerate crds/ from the typed spec, and the chart's CRD copy and values schema
	$(PY) -m mlmodel_operator.crdgen
	$(PY) -m hack.chart
	$(PY) -m hack.docs

protos: venv ## regenerate the runtime's gRPC stubs from runtime/mlmodel_runtime/server/oip/grpc_predict_v2.proto
	cd runtime && ../$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
		mlmodel_runtime/server/oip/grpc_predict_v2.proto

operator: cluster-up ## run the operator in the foreground against the local cluster
	KUBECONFIG=.local/cluster/kubeconfig $(PY) -m mlmodel_operator --config .local/operator/config.yaml

# buildah + mmdebstrap (apt-installed when missing); cached by content, so a second run takes seconds (docs/images.md).
images: venv ## build the runtime (onnx) and operator images; load them into the real node when it runs
	@$(PY) -m hack.images build --load-if-running

demo: venv binaries ## the main job: cluster, package, operator, MLModel, prediction, rollback
	@$(PY) -m hack.demo

bench: venv binaries ## benchmarks (long; prints figures, not part of make test)
	@bench/run.sh

clean: cluster-down ## stop everything and remove .local/ (the binary cache stays)
	rm -rf .local
