# PeerGrid: `make run` starts everything embedded; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE := config.settings

.PHONY: run test lint bench install install-dev migrate seed clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# pip's own output and progress bars: the first install takes a minute or two.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	@echo "== installing PeerGrid's packages into $(VENV) (requirements.txt)"
	$(PY) -m pip install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	@echo "== installing PeerGrid's and the tests' packages into $(VENV) (requirements-dev.txt)"
	$(PY) -m pip install -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	@echo "== migrating the database"
	$(PY) manage.py migrate --noinput

seed: migrate
	@echo "== seeding the demo community"
	$(PY) manage.py seed_demo

# Web server, Celery worker and beat in the foreground under one supervisor
# (simulation/management/commands/run.py); Ctrl-C stops all three and exits 0.
run: seed
	@$(PY) manage.py run --host $(HOST) --port $(PORT)

test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

# The pure cores (plain functions over plain data) are held to mypy --strict.
STRICT_CORES := marketplace/clearing grid/check.py grid/powerflow.py grid/networks.py \
	grid/profiles.py grid/drawing.py grid/linearisation.py grid/losses.py grid/network_use.py \
	grid/strength.py grid/policy.py marketplace/ledger/chain.py units/ simulation/assets.py \
	simulation/strategies.py simulation/games.py marketplace/autopilot.py

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
