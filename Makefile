# Two entry points (see README): `make run` starts the app on the demo data, `make test` runs every test.
# Each does all of its own set-up: a .venv in the project root, pinned requirements, and for the
# browser tests Debian's chromium and CJK fonts.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test deps dev-deps chromium bench clean-data

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.deps: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt requirements-scale.txt $(VENV)/.deps
	$(PY) -m pip install --quiet -r requirements-dev.txt -r requirements-scale.txt
	touch $@

deps: $(VENV)/.deps
dev-deps: $(VENV)/.dev-deps

# Chromium for the browser tests, and Noto CJK so their screenshots show Chinese text (not boxes).
chromium:
	@{ command -v chromium >/dev/null 2>&1 && dpkg -s fonts-noto-cjk >/dev/null 2>&1; } || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }
	@chromium --version

run: $(VENV)/.deps
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

test: $(VENV)/.dev-deps chromium
	$(PY) -m pytest

bench: $(VENV)/.dev-deps
	for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean-data:
	rm -f data/quality.duckdb data/quality.duckdb.wal
