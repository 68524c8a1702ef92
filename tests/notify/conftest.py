"""Fixtures of the notification tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.notify.receiving import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as started:
        yield started
