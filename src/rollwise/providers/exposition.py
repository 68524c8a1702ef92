"""Prometheus' text exposition format, read: `name{label="value",...} 12.5 [timestamp]`.

Who calls it: the `rollwise/builtin` and `rollwise/judge` providers, on Traefik's `/metrics`.
Pure. Comments, HELP and TYPE lines are skipped; a line that does not parse is skipped too (a
scrape is never refused for one odd line), but a text in which no line parses is refused
(`scrape_samples`): a real `/metrics` always has samples, so an empty answer or an HTML page is
a broken endpoint, not "no traffic". Label values are unescaped (`\\"`, `\\\\`, `\\n`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|\})')
_UNESCAPE = {"n": "\n", "\\": "\\", '"': '"'}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def value_text(value: float) -> str:
    """A sample value as the exposition format writes it (`NaN`, `+Inf`, `-Inf`, `12.5`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:g}"


class ExpositionError(ValueError):
    """The text is not a Prometheus exposition at all (no line of it is a sample)."""


def scrape_samples(text: str, *, source: str = "the metrics endpoint") -> list[Sample]:
    """Every sample of a whole scrape; ExpositionError when there is none."""
    samples = list(parse_samples(text))
    if not samples:
        flat = " ".join(text.split())
        shown = flat if len(flat) <= 200 else flat[:200] + "..."
        raise ExpositionError(
            f"{source} answered no metrics in the Prometheus text format: {shown or '(empty)'}"
        )
    return samples


def parse_samples(text: str) -> Iterator[Sample]:
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        sample = _parse_line(line)
        if sample is not None:
            yield sample


def _parse_line(line: str) -> Sample | None:
    name = _NAME.match(line)
    if name is None:
        return None
    position = name.end()
    labels: dict[str, str] = {}
    if line[position : position + 1] == "{":
        position += 1
        if line[position : position + 1] == "}":
            position += 1
        else:
            while True:
                if line[position:].lstrip().startswith("}"):  # a trailing comma
                    position = line.index("}", position) + 1
                    break
                label = _LABEL.match(line, position)
                if label is None:
                    return None
                labels[label.group(1)] = re.sub(
                    r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), m.group(1)), label.group(2)
                )
                position = label.end()
                if label.group(3) == "}":
                    break
    fields = line[position:].split()
    if not fields:
        return None
    try:
        value = float(fields[0])
    except ValueError:
        return None
    return Sample(name=name.group(), labels=labels, value=value)
