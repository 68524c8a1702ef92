"""Where the vendor providers find their credentials in local mode.

Where it sits: used by `datadog`, `newrelic`, `wavefront` and `influxdb`. Argo Rollouts reads
these credentials from Kubernetes Secrets in the controller's namespace (`datadog`, `newrelic`,
`wavefront-api-tokens`, `influxdb`, or the secret a metric names). rollwise looks in two places,
in the order each provider documents:

1. `ProviderContext.secrets`, the secrets the shell resolved for this run, under the key
   `"<secret name>/<secret key>"`, e.g. `datadog/api-key` or `newrelic/personal-api-key`
   (locally: `rollwise create secret generic datadog --from-literal api-key=...`);
2. environment variables of the controller (or of `rollwise analyze`), named per provider
   (`DD_API_KEY`, `NEW_RELIC_API_KEY`, `WAVEFRONT_API_TOKEN`, `INFLUX_TOKEN`, ...).

Values read from `secrets` are masked as `*****` in measurement messages by the caller
(`rollwise.providers.base.measure`); the providers never put a credential into a message
themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from rollwise.providers.base import ProviderContext


def secret_key(secret: str, key: str) -> str:
    """The `ProviderContext.secrets` key of one key of one secret."""
    return f"{secret}/{key}"


def from_secret(context: ProviderContext, secret: str, key: str) -> str | None:
    """The value of `key` in `secret`, or None when the secret or key is absent or empty."""
    return context.secret(secret_key(secret, key))


def from_environment(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of an environment variable, or None when unset or empty."""
    value = (os.environ if environ is None else environ).get(name)
    return value or None
