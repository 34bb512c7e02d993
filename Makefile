# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := PIP_DISABLE_PIP_VERSION_CHECK=1 $(BIN)/pip
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: run test lint typecheck pytest install install-test system-deps bench clean stress

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[fast]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[fast,redis,test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/python -m realtime $(ARGS)

# Debian packages the suite drives for real: redis-server, redis-sentinel
# (a Sentinel setup), chromium, and iptables (tests/test_heartbeat.py makes a
# peer vanish by dropping its packets).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v redis-sentinel >/dev/null 2>&1 || missing="$$missing redis-sentinel"; \
	PATH="$$PATH:/usr/sbin:/sbin" command -v iptables >/dev/null 2>&1 || missing="$$missing iptables"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: install-test
	$(BIN)/ruff check realtime tests benchmarks
	$(BIN)/ruff format --check realtime tests benchmarks

typecheck: install-test
	$(BIN)/mypy --strict realtime benchmarks

pytest: install-test system-deps
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

# The bigger reconnect storm (400 clients, 10 s of publishing).
stress: install-test
	REALTIME_STRESS=1 $(BIN)/pytest -q tests/test_storm.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
