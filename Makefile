# initserve developer entry points (GNU make; needs python3 >= 3.11).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv serve test bench openapi

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when a pyproject.toml is newer than the stamp. The Python client goes into the same venv
# with the extras that install offline (progress bars, bfloat16); torch comes from .ci/run.
$(STAMP): pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	$(BIN)/pip install -e 'clients/python[progress,bfloat16]'
	touch $(STAMP)

serve: venv
	$(BIN)/initserve serve

# Two runs: each suite has its own rootdir and conftest (test module names may repeat across them).
test: venv
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest clients/python/tests

bench: venv
	$(BIN)/python -m bench $(ARGS)

openapi: venv
	$(BIN)/python -m initserve.api.openapi_export
