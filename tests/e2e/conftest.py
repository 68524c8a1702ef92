"""The end-to-end fixtures live in `support.py`, shared with the reliability tests."""

from support import controller, home

__all__ = ["controller", "home"]
