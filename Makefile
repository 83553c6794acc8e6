# `make demo` and `make test` do all the set-up on a fresh machine: a virtualenv,
# foxden installed into it, and a browser if none is found (Debian: apt-get).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup browsers demo test clean

setup: $(VENV)/.installed browsers

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

browsers:
	bash scripts/ensure-browsers.sh

demo: setup
	$(VENV)/bin/foxden demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .foxden .pytest_cache build *.egg-info
