# Two commands for a fresh machine:
#   make bench   -> installs into .venv, runs the benchmark suite (small default), writes results/report.md + figures
#   make test    -> installs into .venv, runs lint (ruff), types (mypy), the docs build and the tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export MPLBACKEND ?= Agg
export PYTHONHASHSEED ?= 0
export NO_MKDOCS_2_WARNING ?= 1

.PHONY: install bench bench-full speed speed-compare test test-slow lint types docs pytest pytest-default-kernels clean docs-figures mutation

$(STAMP): pyproject.toml requirements/pins.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/pins.txt torch torchaudio
	$(PY) -m pip install --quiet -c requirements/pins.txt -e '.[all]'
	# boat-torch (a peer for one benchmark) pins numpy<=1.26: it lives beside the venv, not in it.
	$(PY) -m pip install --quiet --upgrade --no-deps --target $(VENV)/peers/boat 'boat-torch==1.1.1'
	touch $(STAMP)

install: $(STAMP)

bench: install
	$(PY) -m benchmarks

bench-full: install
	$(PY) -m benchmarks --full

# Per-step speed (pytest-benchmark, benchmarks/speed/, not part of `make test`). Every run is saved under
# .benchmarks/; `make speed-compare` runs again, compares with the last saved run and fails when a median
# is more than 10 % slower. Extra pytest options: make speed SPEED_ARGS="-k aggregator".
SPEED := $(PY) -m pytest benchmarks/speed -p no:xdist --benchmark-only \
	--benchmark-storage=.benchmarks --benchmark-autosave --benchmark-columns=min,median,iqr,rounds
speed: install
	$(SPEED) $(SPEED_ARGS)

speed-compare: install
	$(SPEED) --benchmark-compare --benchmark-compare-fail=median:10% $(SPEED_ARGS)

lint: install
	$(PY) -m ruff check bilevel zoo benchmarks tests
	$(PY) -m ruff format --check bilevel zoo benchmarks tests

types: install
	$(PY) -m mypy

docs: install
	$(PY) -m mkdocs build --strict --site-dir .site

pytest: install
	$(PY) -m pytest -q -n 2 -m "not slow"

# The tests once more on ATen's portable kernels (no AVX2/AVX-512, no fused multiply-add), so that a
# result that depends on the CPU's vector unit shows up here rather than on a user's machine.
pytest-default-kernels: install
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest -q -n 2 -m "not slow"

# Copy a suite run's figures and verdicts into the docs (docs/figures/, the claims table of
# docs/benchmarks.md, the claim blocks of the pages): make docs-figures RESULTS=results
RESULTS ?= results
docs-figures: install
	$(PY) -m benchmarks.publish $(RESULTS)

# Mutation testing of the core math ([tool.mutmut] in pyproject.toml: CAGrad, MGDA, the penalty gradients,
# the SRS theory and sampler) with the fast tests of those modules; a fresh copy under mutants/, not part
# of `make test`. `$(VENV)/bin/mutmut results` lists the survivors, `mutmut show NAME` shows one.
mutation: install
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut export-cicd-stats 2>/dev/null || true

test: lint types docs pytest

test-slow: install
	$(PY) -m pytest -q -n 2 -m slow

clean:
	rm -rf $(VENV) .site results .pytest_cache .mypy_cache .ruff_cache
