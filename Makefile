# The two commands: `make up` runs the whole stack on this machine; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt */*/pyproject.toml kernels/pyproject.toml cli/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: up test install stubs bench clean

up: $(STAMP)
	$(BIN)/tmx up

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

stubs: $(STAMP)
	$(BIN)/python libs/tmx-proto/generate.py

bench: $(STAMP)
	$(BIN)/python bench/gateway_throughput.py
	$(BIN)/python bench/stack_start.py
	$(BIN)/python bench/planner_accuracy.py
	$(BIN)/python bench/fault_recovery.py
	$(BIN)/python bench/audit_cost.py
	$(BIN)/python bench/routing_quality.py
	$(BIN)/python bench/peer_overhead.py

clean:
	rm -rf $(VENV) .tmx
