"""The arithmetic of the rollwise/builtin plugin: reading Traefik's exposition text, counter
differences (with resets), and Prometheus' histogram quantile."""

from __future__ import annotations

import math

import pytest

from rollwise.providers.builtin import Counters, counters_of, histogram_quantile, measure_for
from rollwise.providers.exposition import Sample, parse_samples

TRAEFIK_TEXT = """\
# HELP traefik_service_requests_total How many HTTP requests processed on a service.
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{code="200",method="GET",protocol="http",service="default-a@file"} 10
traefik_service_requests_total{code="200",method="POST",protocol="http",service="default-a@file"} 5
traefik_service_requests_total{code="503",method="GET",protocol="http",service="default-a@file"} 3
traefik_service_requests_total{code="200",method="GET",protocol="http",service="default-b@file"} 99
traefik_service_request_duration_seconds_bucket{code="200",service="default-a@file",le="0.1"} 8
traefik_service_request_duration_seconds_bucket{code="200",service="default-a@file",le="+Inf"} 10
traefik_service_request_duration_seconds_bucket{code="503",service="default-a@file",le="0.1"} 0
traefik_service_request_duration_seconds_bucket{code="503",service="default-a@file",le="+Inf"} 3
traefik_service_request_duration_seconds_sum{code="200",service="default-a@file"} 0.5
"""


def test_the_exposition_format_is_read_with_escapes_and_odd_lines() -> None:
    text = (
        "# a comment\n"
        'm{a="x \\"quoted\\" \\\\ back\\nline",} 1.5 1700000000000\n'
        "bare 2\n"
        "empty{} 3\n"
        "broken{a=} 4\n"
        "nan NaN\n"
        'no_value{a="b"}\n'
    )
    samples = list(parse_samples(text))
    assert samples[:3] == [
        Sample("m", {"a": 'x "quoted" \\ back\nline'}, 1.5),
        Sample("bare", {}, 2.0),
        Sample("empty", {}, 3.0),
    ]
    assert [s.name for s in samples] == ["m", "bare", "empty", "nan"]
    assert math.isnan(samples[3].value)


def test_a_services_counters_sum_methods_and_codes_apart() -> None:
    counters = counters_of(TRAEFIK_TEXT, "default-a@file")
    assert counters == Counters(codes={"200": 15.0, "503": 3.0}, buckets={"0.1": 8.0, "+Inf": 13.0})
    assert counters.requests == 18.0
    assert counters.errors == 3.0
    assert counters_of(TRAEFIK_TEXT, "default-c@file") == Counters()


def test_the_difference_of_two_scrapes_is_the_traffic_between_them() -> None:
    before = Counters(codes={"200": 10.0}, buckets={"0.1": 8.0, "+Inf": 10.0})
    after = Counters(codes={"200": 14.0, "500": 2.0}, buckets={"0.1": 9.0, "+Inf": 16.0})
    assert after.since(before) == Counters(
        codes={"200": 4.0, "500": 2.0}, buckets={"0.1": 1.0, "+Inf": 6.0}
    )
    assert Counters.from_json(before.to_json()) == before


def test_after_a_counter_reset_everything_since_the_restart_counts() -> None:
    before = Counters(codes={"200": 100.0}, buckets={"+Inf": 100.0})
    restarted = Counters(codes={"200": 7.0}, buckets={"+Inf": 7.0})
    assert restarted.since(before) == restarted


@pytest.mark.parametrize(
    ("quantile", "buckets", "expected"),
    [
        # 10 requests, all in (0.025, 0.05]: the median interpolates to the middle.
        (0.5, {"0.025": 0, "0.05": 10, "+Inf": 10}, 0.0375),
        # The first bucket starts at 0.
        (0.5, {"0.01": 4, "+Inf": 4}, 0.005),
        # In the +Inf bucket: the highest finite bound, as Prometheus answers.
        (0.99, {"0.1": 5, "+Inf": 10}, 0.1),
        (0.5, {"0.1": 0, "+Inf": 0}, None),
        (0.5, {"0.1": 3}, None),  # no +Inf bucket: not a histogram
    ],
)
def test_histogram_quantile_interpolates_like_prometheus(
    quantile: float, buckets: dict[str, float], expected: float | None
) -> None:
    result = histogram_quantile(quantile, buckets)
    assert result == (pytest.approx(expected) if expected is not None else None)


def test_rates_without_requests_are_nil_and_latency_is_milliseconds() -> None:
    nothing = Counters(codes={"200": 0.0}, buckets={"+Inf": 0.0})
    assert measure_for("success-rate")(nothing) is None
    assert measure_for("error-rate")(nothing) is None
    assert measure_for("latency-p99")(nothing) is None
    assert measure_for("request-count")(nothing) == 0.0
    some = Counters(codes={"200": 3.0, "502": 1.0}, buckets={"0.05": 0.0, "0.1": 4.0, "+Inf": 4.0})
    assert measure_for("success-rate")(some) == 0.75
    assert measure_for("error-rate")(some) == 0.25
    assert measure_for("latency-p50")(some) == pytest.approx(75.0)
    assert measure_for("latency-p99.9")(some) == pytest.approx(99.95)
