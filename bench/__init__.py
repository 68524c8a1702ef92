"""rollwise's benchmarks, measured against DESIGN.md's performance budgets.

Run them with `make bench` (= `uv run python -m bench`); the results go to `docs/benchmarks.md`.
One module per benchmark (`cli`, `core`, `reconcile`, `traffic`, `memory`), each with a `run()`
that returns a `report.Section`; `seed` builds the settled seed rollout they share.
"""
