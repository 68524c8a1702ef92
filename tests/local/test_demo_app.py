"""The demo app as a real process: what it answers, the trouble it injects, the metrics it
exposes, and how it stops."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from rollwise.demo.app import behaviour_from
from rollwise.platforms.local.traefik import free_port

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    """Prometheus text format: ({metric: type}, [(sample name, labels, value)])."""
    types: dict[str, str] = {}
    samples = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            labels = {m["key"]: m["value"] for m in LABEL.finditer(match["labels"] or "")}
            samples.append((match["name"], labels, float(match["value"])))
    return types, samples


@contextmanager
def demo_app(*args: str, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "rollwise.demo.app", *args],
        env={**os.environ, "PORT": str(port), **env},
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    break
            except OSError:
                assert app.poll() is None, "the demo app exited"
                assert time.monotonic() < deadline, "the demo app never became healthy"
                time.sleep(0.01)
        yield app, url
    finally:
        app.kill()
        app.wait(timeout=10)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_root_names_color_version_and_pod() -> None:
    env = {"ROLLWISE_POD_TEMPLATE_HASH": "6d9b5c7f4b", "POD_NAME": "myapp-6d9b5c7f4b-x2k9p"}
    with demo_app("--color", "yellow", **env) as (_, url):
        status, body = get(f"{url}/")
        assert status == 200
        assert json.loads(body) == {
            "color": "yellow",
            "version": "6d9b5c7f4b",
            "pod": "myapp-6d9b5c7f4b-x2k9p",
        }
        assert get(f"{url}/color") == (200, b'"yellow"')
        assert get(f"{url}/healthz") == (200, b"ok\n")
        assert get(f"{url}/nope")[0] == 404


def test_a_bad_color_fails_half_of_the_requests_and_counts_them() -> None:
    with demo_app("--color", "bad-red", SERVICE_NAME="checkout") as (_, url):
        statuses = [get(f"{url}/")[0] for _ in range(10)]
        assert sorted(statuses) == [200] * 5 + [500] * 5
        assert get(f"{url}/healthz")[0] == 200  # still ready: only analysis can catch it
        types, samples = parse_metrics(get(f"{url}/metrics")[1].decode())

    assert types == {
        "http_requests_total": "counter",
        "http_request_duration_seconds": "histogram",
    }
    counts = {
        labels["status"]: value for name, labels, value in samples if name == "http_requests_total"
    }
    assert counts == {"200": 5.0, "500": 5.0}
    assert {(labels["service"], labels["version"]) for _, labels, _ in samples} == {
        ("checkout", "bad-red")
    }


def test_the_error_rate_can_be_set_for_any_color() -> None:
    with demo_app("--color", "green", "--error-rate", "0.25") as (_, url):
        statuses = [get(f"{url}/color")[0] for _ in range(8)]
    assert statuses.count(500) == 2


def test_a_slow_color_adds_latency_and_the_histogram_shows_it() -> None:
    with demo_app("--color", "slow-blue", "--latency", "300") as (_, url):
        for _ in range(3):
            assert get(f"{url}/")[0] == 200
        _, samples = parse_metrics(get(f"{url}/metrics")[1].decode())

    buckets = {
        labels["le"]: value
        for name, labels, value in samples
        if name == "http_request_duration_seconds_bucket"
    }
    count = next(v for n, _, v in samples if n == "http_request_duration_seconds_count")
    total = next(v for n, _, v in samples if n == "http_request_duration_seconds_sum")
    assert count == 3
    assert buckets["+Inf"] == 3
    assert buckets["0.25"] == 0  # every request waited at least 300 ms
    assert total >= 0.9
    bounds = [float(le) for le in buckets if le != "+Inf"]
    assert bounds == sorted(bounds)
    cumulative = [buckets[le] for le in buckets]
    assert cumulative == sorted(cumulative)


def test_metrics_and_health_checks_are_not_counted() -> None:
    with demo_app("--color", "blue") as (_, url):
        get(f"{url}/healthz")
        get(f"{url}/metrics")
        _, samples = parse_metrics(get(f"{url}/metrics")[1].decode())
    assert sum(v for n, _, v in samples if n == "http_requests_total") == 0


def test_sigterm_stops_the_app_cleanly() -> None:
    with demo_app("--color", "blue") as (app, url):
        assert get(f"{url}/")[0] == 200
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("argv", "env", "error_rate", "latency_s"),
    [
        (["--color", "blue"], {}, 0.0, 0.0),
        (["--color", "bad-blue"], {}, 0.5, 0.0),
        (["--color", "slow-blue"], {}, 0.0, 0.3),
        (["--color", "bad-blue"], {"ERROR_RATE": "20"}, 0.2, 0.0),  # rollouts-demo: percent
        (["--color", "blue"], {"ERROR_RATE": "0.1", "LATENCY_MS": "50"}, 0.1, 0.05),
        (["--color", "bad-blue", "--error-rate", "0"], {"ERROR_RATE": "0.9"}, 0.0, 0.0),
        (["--color", "slow-blue", "--latency", "0"], {}, 0.0, 0.0),
    ],
)
def test_trouble_defaults_by_color_and_is_overridden_by_env_then_flags(
    argv: list[str], env: dict[str, str], error_rate: float, latency_s: float
) -> None:
    behaviour, _, _ = behaviour_from(argv, env)
    assert behaviour.error_rate == pytest.approx(error_rate)
    assert behaviour.latency_s == pytest.approx(latency_s)


def test_version_and_service_default_to_the_color_and_rollouts_demo() -> None:
    behaviour, host, port = behaviour_from(["--color", "purple"], {"PORT": "9123"})
    assert (behaviour.version, behaviour.service, host, port) == (
        "purple",
        "rollouts-demo",
        "127.0.0.1",
        9123,
    )
