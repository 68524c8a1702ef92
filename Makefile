# The two front-door commands are `make demo` and `make test`; both install what they need.
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null)

.PHONY: setup demo test check lint bench

setup:
ifndef UV
	python3 -m pip install --quiet "uv==$(UV_VERSION)"
endif
	uv sync --frozen --quiet

demo: setup
	uv run rollwise demo

lint: setup
	uv run ruff check src tests
	uv run ruff format --check src tests
	uv run mypy
	uv run lint-imports

test: lint
	uv run pytest

bench: setup
	uv run python -m bench
