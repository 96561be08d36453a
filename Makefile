# Postline developer commands. `make run` starts the relay locally; `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install broker run test lint typecheck unit integration e2e bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create the virtualenv and install Postline with its dev tools

broker:  ## make sure RabbitMQ answers on 127.0.0.1:5672 (starts a local rabbitmq-server)
	scripts/ensure-rabbitmq

run: install broker  ## start all four services with examples/postline.local.toml
	scripts/run-local

lint: install  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	scripts/typecheck

typecheck: install
	scripts/typecheck

unit: install
	$(BIN)/pytest tests/unit

integration: install broker
	$(BIN)/pytest tests/integration

e2e: install broker
	$(BIN)/pytest tests/e2e

test: install broker lint  ## everything CI runs
	$(BIN)/pytest

bench: install broker  ## load test (see docs/benchmarks.md)
	bench/run

clean:
	rm -rf $(VENV) build run .pytest_cache .mypy_cache .ruff_cache
