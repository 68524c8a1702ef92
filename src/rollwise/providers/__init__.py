"""Metric providers: one module per metrics source, one async protocol (see `base`).

Importing this package imports nothing else: the CLI's read-only commands stay fast, and
`rollwise.providers.base.provider_for` loads each provider module on first use.
"""
