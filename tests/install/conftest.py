"""The test Kubernetes API server (`kube_api`, from tests/kubernetes/apiserver.py) for the
install tests: kubectl and `rollwise install` talk to it over HTTP."""

from tests.kubernetes.apiserver import kube_api

__all__ = ["kube_api"]
