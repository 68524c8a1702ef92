"""Fixtures of the judge's provider tests, shared with the provider tests: a real local HTTP
server (answering Prometheus' query API as a test scripts it), real demo apps, a real
Prometheus."""

from tests.providers.conftest import (
    LocalHTTPServer,
    http_server,
    module_processes,
    prometheus,
)

__all__ = ["LocalHTTPServer", "http_server", "module_processes", "prometheus"]
