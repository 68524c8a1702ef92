# The two front-door commands are `make demo` and `make test`; both install what they need.
UV_VERSION := 0.13.8
# `python3 -m uv` rather than `uv`: a pip-installed script may not be on PATH yet (pyenv shims).
UV := python3 -m uv

.PHONY: setup demo test lint bench system-deps manifests

setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --quiet

demo: setup
	$(UV) run rollwise demo

lint: setup
	$(UV) run ruff check src tests
	$(UV) run ruff format --check src tests
	$(UV) run mypy
	$(UV) run lint-imports

# The analysis tests query a real Prometheus (Debian's package), started by the tests on loopback;
# the dashboard's browser test drives Debian's headless Chromium.
system-deps:
	@command -v prometheus >/dev/null 2>&1 || { \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# Two workers, one test file each at a time (the e2e tests of a file share their processes'
# timing): ~4 min on 2 cores instead of ~8 min serially.
test: lint system-deps
	$(UV) run pytest -n 2 --dist loadfile

bench: setup
	$(UV) run python -m bench

# deploy/*.yaml are generated from the models and the install code (tests/install checks them).
manifests: setup
	$(UV) run rollwise install --dry-run > deploy/install.yaml
	$(UV) run rollwise install --dry-run --namespaced > deploy/namespace-install.yaml
	$(UV) run rollwise install --dry-run --crds-only > deploy/crds.yaml
