# Postline developer commands. `make run` starts the relay locally; `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The oldest and newest supported Pythons: everything runs on PYTHON, the unit tests on PY313 too.
PY313  ?= $(shell for p in python3.13 $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13; do \
            "$$p" -c 'import sys' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV313 ?= .venv-3.13
STAMP313 := $(VENV313)/.installed

.PHONY: install broker run test test-cluster lint typecheck unit unit-3.13 integration e2e bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create the virtualenv and install Postline with its dev tools

$(STAMP313): pyproject.toml requirements.lock
	@test -n "$(PY313)" || { echo "python3.13 not found: install it (pyenv install 3.13) or set PY313=" >&2; exit 1; }
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV313)/bin/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP313)

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

unit-3.13: $(STAMP313)  ## the unit tests on Python 3.13 (the newest supported)
	$(VENV313)/bin/pytest -q -p no:cacheprovider tests/unit

integration: install broker
	$(BIN)/pytest tests/integration

e2e: install broker
	$(BIN)/pytest tests/e2e

test: install broker lint unit-3.13  ## everything CI runs
	$(BIN)/pytest

# A real three-node RabbitMQ cluster on loopback (tests/cluster/rabbit.py starts it; the
# machine's broker is not touched). POSTLINE_CLUSTER_SCALE=small is CI's size.
POSTLINE_CLUSTER_SCALE ?= full
test-cluster: install  ## kill -9 of broker nodes under load, 0 lost (docs/operations.md)
	POSTLINE_CLUSTER_SCALE=$(POSTLINE_CLUSTER_SCALE) $(BIN)/pytest -p no:cacheprovider -rs -s tests/cluster

# Postline against a throw-away Postfix, same load, alternating runs (docs/benchmarks.md);
# e.g. make bench BENCH_ARGS="--messages 2000 --runs 2".
BENCH_ARGS ?=
bench: install broker  ## Postline vs Postfix on this machine: table and RESULT line
	bench/compare $(BENCH_ARGS)

# Scale and stay flat (docs/benchmarks.md): delivery processes against a slow remote,
# 50 concurrent 25 MiB messages, a soak at half the measured rate. Same BENCH_ARGS idea,
# e.g. make bench-soak BENCH_ARGS="--minutes 5".
.PHONY: bench-scale bench-large bench-soak
bench-scale: install broker  ## delivery with 1, 2, 4 processes against a 200 ms sink: RESULT line
	bench/scale $(BENCH_ARGS)
bench-large: install broker  ## 50 concurrent 25 MiB messages: replies, peak RSS, RESULT line
	bench/large $(BENCH_ARGS)
bench-soak: install broker  ## 10 minutes at half the warm-up rate: RSS start/end, RESULT line
	bench/soak $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VENV313) build run .pytest_cache .mypy_cache .ruff_cache
