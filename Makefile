# PeerGrid: `make run` starts everything embedded; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
CELERY_APP := config
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE := config.settings

.PHONY: run test lint bench install install-dev migrate seed clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

# Web server, Celery worker and beat in the foreground; Ctrl-C stops all three.
run: seed
	@echo ""
	@echo "PeerGrid is starting at http://$(HOST):$(PORT)/  (health: http://$(HOST):$(PORT)/healthz)"
	@echo "Press Ctrl-C to stop the web server, the worker and beat."
	@trap 'kill 0' INT TERM EXIT; \
	$(PY) manage.py runserver $(HOST):$(PORT) --noreload & \
	$(BIN)/celery -A $(CELERY_APP) worker --loglevel=INFO --concurrency=2 & \
	$(BIN)/celery -A $(CELERY_APP) beat --loglevel=INFO & \
	wait

test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

# The pure cores (plain functions over plain data) are held to mypy --strict.
STRICT_CORES := marketplace/clearing grid/check.py grid/networks.py grid/profiles.py \
	grid/drawing.py grid/linearisation.py grid/losses.py grid/network_use.py grid/strength.py \
	marketplace/ledger/chain.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/mypy --strict $(STRICT_CORES)
	$(BIN)/lint-imports --no-logo

bench: install-dev
	@for script in bench/bench_*.py; do \
		[ -e "$$script" ] || { echo "no benchmarks yet"; break; }; \
		echo "== $$script"; $(PY) "$$script" || exit 1; \
	done

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
