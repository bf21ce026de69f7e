# Two entry points: `make demo` runs the daemon on its embedded defaults with a
# workflow streamed live; `make test` runs the whole suite. Each creates .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/animus: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,ray]'
	touch $(BIN)/animus

demo: $(BIN)/animus
	$(BIN)/python scripts/demo.py

test: $(BIN)/animus
	$(BIN)/pytest -q

bench: $(BIN)/animus
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis
