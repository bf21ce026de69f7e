# Two entry points: `make demo` runs the daemon on its embedded defaults with a
# workflow streamed live; `make test` runs the whole suite. Each creates .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean agent-clis system-packages

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

# The suite mostly waits on real processes (daemons, agent CLIs, Ray), so it runs on
# TEST_WORKERS pytest-xdist workers; a module whose tests share one daemon stays on one
# worker (tests/conftest.py groups it for --dist loadgroup).
TEST_WORKERS ?= 3

# System packages the tests use (Debian's headless Chromium for tests/test_web_ui.py; iproute2's
# ip for the network namespaces of tests/test_ray_multinode.py): installed here, in the test
# set-up, never from inside a test.
SYSTEM_PACKAGES := chromium chromium-driver iproute2
system-packages:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && command -v ip >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q $(SYSTEM_PACKAGES) || \
		{ apt-get update -q && apt-get install -y -q $(SYSTEM_PACKAGES); }; \
	else echo "make test needs: apt-get install -y $(SYSTEM_PACKAGES) (as root)" >&2; exit 1; fi

test: $(VENV)/.installed-test agent-clis system-packages
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

bench: $(VENV)/.installed-test agent-clis
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis .tools
