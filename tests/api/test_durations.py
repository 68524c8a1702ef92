"""Durations parse as Go's time.ParseDuration does, plus Argo's bare-seconds forms."""

import pytest

from rollwise.api.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (10, 10.0),
        ("10", 10.0),
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("0", 0.0),
        ("-1s", -1.0),
    ],
)
def test_valid_durations(text: int | str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["m", "2 m", "2x", "1h 30m", "abc", "2mm", ""])
def test_invalid_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="Go duration"):
        parse_duration(text)
