# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU build by default; GPU users: make TORCH_SPEC="torch>=2.3" (or a CUDA wheel index).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: setup copick-venv demo serve test lint typecheck check bench device-kit clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	# The torch spec again: without it pip's resolver, backtracking over s3fs/fsspec pins, can swap
	# the CPU build for a multi-GB CUDA one.
	$(PY) -m pip install -q -e ".[dev]" "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	touch $@

demo: setup
	$(VENV)/bin/octopi-serve demo

serve: setup
	$(VENV)/bin/octopi-serve serve

# copick in a venv of its own: copick 1.31 pins zarr<3 and numcodecs<0.16, .venv needs zarr 3. The tests run
# tests/fixtures/copick/load_picks.py in it to check copick reads the picks octopi writes (skipped without it).
# Its dependencies pull no torch (about 780 MB, 2-3 minutes once).
COPICK_VENV := .venv-copick
COPICK_SPEC ?= copick==1.31.0

copick-venv: $(COPICK_VENV)/.installed

$(COPICK_VENV)/.installed:
	$(PYTHON) -m venv $(COPICK_VENV)
	$(COPICK_VENV)/bin/python -m pip install -q "$(COPICK_SPEC)"
	touch $@

test: setup copick-venv
	$(PY) -m pytest

# The project's own checks; .ci/run runs both before the tests.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

check: lint typecheck test

bench: setup
	$(PY) bench/bench_pipeline.py

# Wheels of what the lent GPU machines' image lacks (they reach no index), carried by bench/device/run.sh.
device-kit: setup
	$(PY) bench/device/kit.py wheels

clean:
	rm -rf $(VENV) $(COPICK_VENV) demo-output .pytest_cache
