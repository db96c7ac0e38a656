# Quick start: `make demo` (the main job end to end) and `make test` (the test suite).
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
DATA    ?= data/demo
RUN     ?= runs/demo
CONFIG  ?= configs/demo.yaml

.PHONY: setup system-deps demo test lint clean

# Debian packages: flite speaks the demo dataset; python3.11-venv where Python is Debian's.
system-deps:
	@pkgs=""; command -v flite >/dev/null 2>&1 || pkgs="flite"; \
	$(PY) -c "import ensurepip" 2>/dev/null || pkgs="$$pkgs python3.11-venv"; \
	if [ -n "$$pkgs" ]; then \
	  echo "installing Debian packages:$$pkgs"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$pkgs; fi

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@

setup: system-deps $(VENV)/.installed

demo: setup
	$(BIN)/python -m gradtts_tf.demo_data --out $(DATA) --jobs 2
	$(BIN)/python -m gradtts_tf.demo --data $(DATA) --config $(CONFIG) --out $(RUN)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
