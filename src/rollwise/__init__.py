"""rollwise: a progressive-delivery controller that reads Argo Rollouts resources unchanged."""

__version__ = "0.1.0"
