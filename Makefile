# The two commands of the README: `make demo` (the main job) and `make test`.
# Both create the virtual environment at .venv/ on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test venv
venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --editable '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/nsad demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 --durations=15
