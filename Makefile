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
EXTRAS := cpu,dev,bench,ml,serve
endif
PYTEST_ARGS ?=

# The GPU machine's versions (constraints-skew.txt: Python 3.12, torch 2.11, numpy 2.5, onnx 1.23)
# on the CPU: the tests that need no Triton interpreter (3.6's needs numpy < 2.4), so the first
# GPU lease meets no API difference. CI runs it after `make test`.
SKEW_VENV ?= .venv-gpu312
PYTHON312 ?= $(shell for p in $$(command -v python3.12) /root/.pyenv/versions/3.12*/bin/python3.12; do \
	"$$p" -c "import sys" 2>/dev/null && { echo "$$p"; break; }; done)
SKEW_SKIP := --ignore=tests/triton_kernels --ignore=tests/runtime/test_conformance.py \
	--ignore=tests/runtime/test_capture_simulation.py --ignore=tests/runtime/test_fuse_conv.py \
	--ignore=tests/runtime/test_fuse_conv_zoo.py --ignore=tests/runtime/test_prepare.py \
	--ignore=tests/bench/test_on_gpu_dry_run.py \
	--deselect=tests/runtime/test_cli_run_inspect.py::test_run_fused_with_triton_kernels \
	--deselect=tests/bench/test_bench_conv.py::test_bench_block_rows_on_cpu \
	--deselect=tests/bench/test_bench_files.py::test_a_fused_file_under_the_interpreter_in_a_fresh_process \
	--deselect=tests/runtime/test_fused_conv_family.py::test_absent_activation_and_pool_mean_none \
	--deselect=tests/runtime/test_fused_conv_family.py::test_shape_inference_and_handler_agree

.PHONY: test test-skew bench env clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt constraints-gpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

$(SKEW_VENV)/.installed: pyproject.toml constraints-skew.txt
	test -x $(SKEW_VENV)/bin/python || $(PYTHON312) -m venv $(SKEW_VENV)
	$(SKEW_VENV)/bin/python -m pip install -q -c constraints-skew.txt -e ".[cpu,dev,bench]"
	touch $@

ifeq ($(PYTHON312),)
test-skew:
	@echo "test-skew: SKIPPED: no Python 3.12 on this machine (set PYTHON312)"
else
test-skew: $(SKEW_VENV)/.installed
	TRITONNX_KERNELS=torch $(SKEW_VENV)/bin/python -m pytest -n 2 --dist loadgroup -q $(SKEW_SKIP) $(PYTEST_ARGS)
endif

bench: $(VENV)/.installed
	$(VENV)/bin/tritonnx bench

clean:
	rm -rf $(VENV) $(SKEW_VENV) build *.egg-info
