"""The one exception tree of rollwise.

Exceptions are for bugs and for the boundary between rollwise and the person using it; outcomes
of measurements and routers are values, never exceptions. Every class says what the caller should
do next. Errors of third-party libraries are converted where they enter, keeping the cause.
"""

from __future__ import annotations


class RollwiseError(Exception):
    """Root of every error rollwise raises on purpose."""


class UserError(RollwiseError):
    """The input is wrong: show the message to the person and change nothing. Do not retry."""


class ManifestError(UserError):
    """A manifest cannot be read or is invalid; the message names the file, line and field."""


class NotFoundError(UserError):
    """The named object does not exist; tell the person which one and where we looked."""


class ClusterAccessError(UserError):
    """rollwise may not reach the Kubernetes API as configured: the server refused the
    credentials (401), the RBAC rules do not allow the request (403), the server's certificate
    is not trusted, a credential plugin failed. The account or the kubeconfig must change, not
    the object: a person is told; the controller logs it and retries with back-off, without
    marking the object it was working on invalid."""


class UnsupportedError(UserError):
    """The input is valid but asks for something rollwise does not do (yet), such as a traffic
    router it has no implementation of: tell the person what is supported. Do not retry."""


class ConflictError(RollwiseError):
    """A write was based on a stale resourceVersion: read the object again and retry."""


class TransientError(RollwiseError):
    """Something outside rollwise is briefly unavailable (proxy, store lock): retry later."""


class IllegalTransitionError(RollwiseError):
    """The core was asked for a transition its table does not allow: a bug; nothing changed."""
