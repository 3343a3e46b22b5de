# Every target builds its own .venv when it is missing, so a fresh machine needs only Python.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml examples/llmtap-cost-by-tag/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The example plugin, installed as a real package: the plugin tests find it by entry point.
	$(BIN)/python -m pip install --quiet -e examples/llmtap-cost-by-tag
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/llmtap demo $(ARGS)

test: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  echo "*** NO BROWSER: tests/serve/test_browser.py is SKIPPED (apt-get install chromium chromium-driver) ***"
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  echo "*** NO PROMETHEUS: tests/connectors/test_prometheus_server.py is SKIPPED (apt-get install prometheus) ***"
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check llmtap tests bench examples
	$(BIN)/ruff format --check llmtap tests bench examples
	$(BIN)/mypy
	$(BIN)/mypy examples/llmtap-cost-by-tag/llmtap_cost_by_tag

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
