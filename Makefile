# initserve developer entry points (GNU make; needs python3 >= 3.11).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv serve test bench openapi

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

serve: venv
	$(BIN)/initserve serve

test: venv
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python -m bench $(ARGS)

openapi: venv
	$(BIN)/python -m initserve.api.openapi_export
