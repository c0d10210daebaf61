# The two commands of the README (demo, test) and the benchmarks. Each installs what it needs.
SHELL := bash
.PHONY: demo test bench venv lint

# uv from PyPI runs as a module, so no PATH set-up is needed after installing it.
UV := python3 -m uv

venv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install -q uv
	@$(UV) sync -q --frozen

# The demo's Prime Minister portal renders with JavaScript: Chromium is installed as for the tests.
demo: venv
	@bash .ci/system-packages || echo "continuing: the demo will say what it could not crawl" >&2
	$(UV) run presswatch demo

test: venv
	@bash .ci/system-packages || echo "continuing: tests that need the missing programs will say so" >&2
	$(UV) run pytest -n 2

bench: venv
	@for b in tests/bench/bench_*.py; do m=$${b%.py}; $(UV) run python -m $${m//\//.} || exit 1; done

lint: venv
	$(UV) run ruff check crawler pipelines scheduler tests
