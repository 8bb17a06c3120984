# Small Frontier Models: a playbook.
#   make course   create the environment, execute every notebook (tiny preset), print a summary,
#                 and build the book (build/book/index.html)
#   make book     build the book from the notebooks `make course` executed
#   make test     create the same environment and run the whole test suite
#   make llama-cpp  build llama-cpp-python (notebook 09; part of course and test)
#   make lab      open the notebooks in JupyterLab
#   make data     regenerate the shipped data/ (byte-identical)
# Each target bootstraps .venv from requirements/constraints.txt (torch 2.13.0 CPU on Linux).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip install --disable-pip-version-check --quiet -c $(CONSTRAINTS)

.PHONY: env course test lab data clean

env: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@echo ">>> creating $(VENV) from $(CONSTRAINTS) (a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch
	$(PIP) -e '.[dev]'
	$(PY) -c "import lfm_helpers.versions as v; v.print_versions()"
	@touch $(STAMP)

# Unsloth's own environment: it pins older transformers/trl than .venv and its CUDA torchvision
# cannot load on a CPU, so it cannot share .venv. Installed from an exact lock with --no-deps
# (torch 2.13.0 CPU first, as above; no torchvision), about 3 minutes and 3 GB the first time.
# tests/test_unsloth.py runs a LoRA SFT smoke run in it.
UNSLOTH_VENV ?= .venv-unsloth
UNSLOTH_PY := $(UNSLOTH_VENV)/bin/python
UNSLOTH_LOCK := requirements/unsloth-constraints.txt
UNSLOTH_STAMP := $(UNSLOTH_VENV)/.installed
UNSLOTH_PIP := $(UNSLOTH_PY) -m pip --disable-pip-version-check --quiet

.PHONY: unsloth-env
unsloth-env: $(UNSLOTH_STAMP)

$(UNSLOTH_STAMP): pyproject.toml $(UNSLOTH_LOCK)
	@echo ">>> creating $(UNSLOTH_VENV) from $(UNSLOTH_LOCK) (a few minutes the first time)"
	$(PYTHON) -m venv $(UNSLOTH_VENV)
	$(UNSLOTH_PIP) install -c $(UNSLOTH_LOCK) torch
	$(UNSLOTH_PIP) install --no-deps -r $(UNSLOTH_LOCK)
	$(UNSLOTH_PIP) uninstall -y torchvision
	$(UNSLOTH_PIP) install --no-deps -e .
	HF_HUB_OFFLINE=1 $(UNSLOTH_PY) -c "import unsloth, torch, transformers, trl; \
	print('unsloth', unsloth.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)"
	@touch $(UNSLOTH_STAMP)

# The book's environment: Jupyter Book 1.x (builds offline; it pins markdown-it-py 3, so it gets its
# own venv), a local MathJax (npm's mathjax package) and Debian's Chromium for the browser test
# (installed with apt-get where it is missing; tests/test_book.py drives it with Playwright).
BOOK_VENV ?= .venv-book
BOOK_STAMP := $(BOOK_VENV)/.installed
MATHJAX := build/mathjax/es5/tex-chtml.js

.PHONY: book-env book
book-env: $(BOOK_STAMP) $(MATHJAX)
	@command -v chromium >/dev/null || (echo ">>> installing Debian's chromium for the browser test"; \
	  apt-get install -y -q chromium >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) \
	  || echo "!!! could not install chromium: tests/test_book.py's browser check will be skipped")

$(BOOK_STAMP): requirements/book.txt
	@echo ">>> creating $(BOOK_VENV) for the book (Jupyter Book 1.x)"
	$(PYTHON) -m venv $(BOOK_VENV)
	$(BOOK_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r requirements/book.txt
	@touch $(BOOK_STAMP)

$(MATHJAX):
	@echo ">>> fetching MathJax 3 (npm) for the offline book"
	mkdir -p build/mathjax && cd build/mathjax && npm pack --silent mathjax@3.2.2 >/dev/null \
	  && tar xzf mathjax-3.2.2.tgz && rm -rf es5 && mv package/es5 es5 && rm -rf package mathjax-3.2.2.tgz

# llama.cpp for notebook 09: llama-cpp-python built from its source distribution (no binary wheel
# exists for this platform) with only the library the bindings load (no tools, examples, tests,
# server or multimodal library): about 5 minutes on 2 cores, once. The built wheel is kept in
# $(LLAMA_CPP_WHEELS) (outside the checkout, so a fresh clone reuses it: seconds), and the
# converter (convert_hf_to_gguf.py, conversion/, gguf-py/) is unpacked from the same sdist into
# $(LLAMA_CPP_SRC). Nothing of llama.cpp is committed.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP_SRC := build/llama.cpp-$(LLAMA_CPP_VERSION)
LLAMA_CPP_SDIST := build/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
# On x86-64 the CPU kernels are built for AVX2/FMA/F16C (x86-64-v3), not -march=native: on a CPU
# that reports AMX a native build multiplies with AMX tiles, which a virtual machine may not enable
# (SIGILL in ggml_backend_amx_mul_mat, seen on this project's 2-core machine on 2026-11-27), and a
# cached wheel must run on the next machine too. The flavour is part of the cache folder's name.
LLAMA_CPP_ARCH := $(shell uname -m)
ifeq ($(LLAMA_CPP_ARCH),x86_64)
LLAMA_CPP_FLAVOUR := avx2
LLAMA_CPP_CPU := -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON
else
LLAMA_CPP_FLAVOUR := native
LLAMA_CPP_CPU :=
endif
LLAMA_CPP_WHEELS ?= $(HOME)/.cache/lfm-playbook/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(LLAMA_CPP_ARCH)-$(LLAMA_CPP_FLAVOUR)
LLAMA_CPP_STAMP := $(VENV)/.llama-cpp-$(LLAMA_CPP_VERSION)-$(LLAMA_CPP_FLAVOUR)
LLAMA_CPP_CMAKE := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF $(LLAMA_CPP_CPU)

.PHONY: llama-cpp
llama-cpp: $(LLAMA_CPP_STAMP) $(LLAMA_CPP_SRC)/convert_hf_to_gguf.py

$(LLAMA_CPP_SDIST):
	@mkdir -p build
	$(PY) -m pip download --disable-pip-version-check --quiet --no-deps --no-binary :all: \
	  llama-cpp-python==$(LLAMA_CPP_VERSION) -d build

$(LLAMA_CPP_SRC)/convert_hf_to_gguf.py: $(LLAMA_CPP_SDIST)
	rm -rf $(LLAMA_CPP_SRC) build/.llama-cpp-unpack && mkdir -p build/.llama-cpp-unpack
	tar xzf $(LLAMA_CPP_SDIST) -C build/.llama-cpp-unpack --wildcards \
	  '*/vendor/llama.cpp/convert_hf_to_gguf.py' '*/vendor/llama.cpp/conversion/*' '*/vendor/llama.cpp/gguf-py/*'
	mv build/.llama-cpp-unpack/llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp $(LLAMA_CPP_SRC)
	rm -rf build/.llama-cpp-unpack
	touch $@

$(LLAMA_CPP_STAMP): $(STAMP) $(LLAMA_CPP_SDIST)
	@ls $(LLAMA_CPP_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { \
	  echo ">>> building llama-cpp-python $(LLAMA_CPP_VERSION) from source (about 5 minutes on 2 cores, once)"; \
	  CMAKE_ARGS="$(LLAMA_CPP_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	    $(PY) -m pip wheel --disable-pip-version-check --quiet --no-cache-dir --no-deps $(LLAMA_CPP_SDIST) -w $(LLAMA_CPP_WHEELS); }
	$(PY) -m pip uninstall --disable-pip-version-check --quiet -y llama-cpp-python 2>/dev/null || true
	$(PIP) $(LLAMA_CPP_WHEELS)/llama_cpp_python-*.whl
	$(PY) -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
	@touch $(LLAMA_CPP_STAMP)

book: env book-env
	$(PY) -m lfm_helpers book

course: env llama-cpp book-env
	$(PY) -m lfm_helpers course
	$(PY) -m lfm_helpers book

test: env llama-cpp unsloth-env book-env
	$(PY) -m pytest

lab: env
	$(PIP) -e '.[dev,lab]'
	$(VENV)/bin/jupyter lab notebooks/

data: env
	$(PY) -m lfm_helpers data

clean:
	rm -rf runs build
