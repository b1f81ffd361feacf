# The two commands of the README: `make test` and `make bench`.
# Each creates .venv if it is missing. Without an NVIDIA GPU the environment is pinned by
# constraints.txt (CPU build of torch 2.13.0, triton 3.6.0 for the interpreter, numpy<2.4);
# with one, constraints-gpu.txt and the onnxruntime-gpu extra.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAS_GPU),1)
CONSTRAINTS := constraints-gpu.txt
EXTRAS := gpu,dev,bench
else
CONSTRAINTS := constraints.txt
EXTRAS := cpu,dev,bench
endif
PYTEST_ARGS ?=

.PHONY: test bench env clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt constraints-gpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(VENV)/bin/tritonnx bench

clean:
	rm -rf $(VENV) build *.egg-info
