# Two commands do all the set-up on a fresh machine:
#   make demo   installs, then runs the main job on the built-in synthetic corpus
#   make test   installs, then runs the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install system test test-fast demo bench clean

# uv installs the same pinned versions as pip would, in less time (it downloads the CUDA build
# of torch and its libraries in parallel; README has the measured times). Set UV_INDEX_URL for a
# package mirror (uv does not read pip.conf). --compile-bytecode, as pip does: where
# PYTHONDONTWRITEBYTECODE is set (or Ray starts a worker with -B), a package without .pyc files
# is compiled from source by every process that imports it: the test suite, 23 minutes with
# bytecode, was still running at 38 minutes without it.
UV_VERSION := 0.9.30

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --compile-bytecode --python $(PY) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

system:  # Debian packages of the MLflow UI test and the cluster rehearsal (they skip, saying why, without)
	bash tests/install-system.sh

test: install system  # tests/run.py: why not `python -m pytest`
	PYTHONFAULTHANDLER=1 $(PY) tests/run.py -q --durations=30

test-fast: install  # the unit and config tier (tests/conftest.py, FAST), about 1.5 minutes
	PYTHONFAULTHANDLER=1 $(PY) tests/run.py -q -m fast

demo: install
	$(PY) -m runner.tune ipr

bench: install  # benchmarks side by side, ratios printed (BENCHMARKS.md)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache runs
