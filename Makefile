# Two entry points: `make demo` runs the daemon on its embedded defaults with a
# workflow streamed live; `make test` runs the whole suite. Each creates .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean agent-clis

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

# the test extras include Ray (~380 MB) so that CI exercises the ray runner backend
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test,ray]'
	touch $@

# the four agent CLIs at pinned versions, project-local (.tools/agent-clis), cached
agent-clis:
	scripts/install-agent-clis

demo: $(VENV)/.installed
	$(BIN)/python scripts/demo.py

test: $(VENV)/.installed-test agent-clis
	$(BIN)/pytest -q

bench: $(VENV)/.installed-test agent-clis
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis .tools
