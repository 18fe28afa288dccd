# The two set-up commands (README): `make demo` and `make test`.
# Each creates the virtual environment in .venv/ if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench smoke clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,bench,mlflow]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/rapidseval run jobs/nyc_taxi_2020.yaml

# Debian's chromium + chromium-driver for the report's browser test (idempotent; skips itself without root/apt)
browser:
	bash .ci/install-browser

test: $(VENV)/.installed-test browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

smoke: $(VENV)/.installed
	$(BIN)/rapidseval run jobs/smoke.yaml

bench: $(VENV)/.installed-test
	$(BIN)/python -m pytest benchmarks -p no:cacheprovider --benchmark-only

clean:
	rm -rf runs .rapidseval

# Evidently 0.7.23 (pins pandas < 2.4) for benchmarks/bench_shift.py, in its own environment
EVIDENTLY_VENV ?= $(HOME)/.cache/rapidseval/venv-evidently
.PHONY: bench-evidently-env
bench-evidently-env:
	test -x $(EVIDENTLY_VENV)/bin/python || $(PYTHON) -m venv $(EVIDENTLY_VENV)
	$(EVIDENTLY_VENV)/bin/python -m pip install -q "evidently==0.7.23" "pandas>=2.3,<2.4" pyarrow

# NannyML 0.13.1 for benchmarks/bench_power.py, in its own environment (it imports statsmodels
# without declaring it, so that comes too)
NANNYML_VENV ?= $(HOME)/.cache/rapidseval/venv-nannyml
.PHONY: bench-nannyml-env
bench-nannyml-env:
	test -x $(NANNYML_VENV)/bin/python || $(PYTHON) -m venv $(NANNYML_VENV)
	$(NANNYML_VENV)/bin/python -m pip install -q "nannyml==0.13.1" statsmodels pyarrow
