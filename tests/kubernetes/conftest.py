"""The Kubernetes API server for tests lives in `apiserver.py`; its fixture is exposed here."""

from tests.kubernetes.apiserver import kube_api

__all__ = ["kube_api"]
