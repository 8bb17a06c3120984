# Small Frontier Models: a playbook.
#   make course   create the environment, execute every notebook (tiny preset), print a summary
#   make test     create the same environment and run the whole test suite
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

course: env
	$(PY) -m lfm_helpers course

test: env
	$(PY) -m pytest

lab: env
	$(PIP) -e '.[dev,lab]'
	$(VENV)/bin/jupyter lab notebooks/

data: env
	$(PY) -m lfm_helpers data

clean:
	rm -rf runs build
