# Quick start: `make demo` (the shipped voice end to end) and `make test` (the test suite).
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
DATA    ?= data/demo
RUN     ?= runs/demo
VOICE   ?= demo
# TF.js: the converter's own venv (tensorflowjs pins packaging<24, which pytest 9 rejects),
# the web demo's npm packages, and the export folder `make web` serves.
TFJS_VENV ?= .venv-tfjs
TFJS_PKGS := tensorflowjs==4.22.0 tensorflow==2.16.2 numpy==1.26.4 tf-keras==2.16.0 \
             tensorflow-decision-forests==1.9.2
WEB     := export/web
TFJS    ?= exported/tfjs
TFJS_FLAGS ?= --quantize float16

.PHONY: setup system-deps demo test test-slow lint docs clean tfjs-deps web-system-deps web-deps web-build tfjs web

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

# TF.js converter in its own venv (same TensorFlow as .venv; pins keep pip from upgrading it).
$(TFJS_VENV)/.installed:
	$(PY) -m venv $(TFJS_VENV)
	$(TFJS_VENV)/bin/pip install -q --upgrade pip
	$(TFJS_VENV)/bin/pip install -q $(TFJS_PKGS)
	touch $@

tfjs-deps: $(TFJS_VENV)/.installed

# Debian packages for the browser demo and its test: Node.js/npm and Chromium.
web-system-deps:
	@pkgs=""; command -v node >/dev/null 2>&1 || pkgs="nodejs npm"; \
	[ -x /usr/bin/chromium ] || pkgs="$$pkgs chromium"; \
	if [ -n "$$pkgs" ]; then \
	  echo "installing Debian packages: $$pkgs"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$pkgs >/dev/null; fi

$(WEB)/node_modules/.installed: $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web-deps: web-system-deps $(WEB)/node_modules/.installed

setup: system-deps $(VENV)/.installed

# The shipped voice: speak held-out and new sentences, score them against the flite
# recordings, export TFLite and TF.js into $(RUN).
demo: setup tfjs-deps
	$(BIN)/python -m gradtts_tf.demo_data --out $(DATA) --jobs 2
	$(BIN)/python -m gradtts_tf.demo --voice $(VOICE) --data $(DATA) --out $(RUN)

# The export tests also need the TF.js converter venv, npm packages and Chromium.
test: setup tfjs-deps web-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow" --durations=15

# The tests marked slow (whole training runs: XLA, mixed precision, two replicas,
# Ctrl-C/SIGKILL and resume, the demo command); CI runs them after `make test`.
test-slow: setup tfjs-deps web-deps
	$(BIN)/python -m pytest -q -m slow --durations=15

# TF.js export of the voice (float16 weights) and the browser demo on localhost:8000
# (after `make demo`: `make web TFJS=runs/demo/tfjs` serves its export as it is).
$(TFJS)/model_info.json: | setup tfjs-deps
	$(BIN)/python -m export.tfjs --checkpoint $(VOICE) --out $(TFJS) $(TFJS_FLAGS)

tfjs: $(TFJS)/model_info.json

web-build: web-deps
	cd $(WEB) && node build.mjs

web: web-build $(TFJS)/model_info.json
	$(BIN)/python -m export.web --model-dir $(TFJS)

lint: setup
	$(BIN)/ruff check .

# The documentation site (mkdocs.yml, docs/) into site/; `$(BIN)/mkdocs serve` previews it.
docs: setup
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) $(TFJS_VENV) runs exported site .pytest_cache
