"""rollwise's demo app: one colour, one version, Prometheus metrics, and injectable trouble.

Who runs it: the local platform, as the process behind the built-in demo images
(`argoproj/rollouts-demo:<color>` and rollwise's own), once per pod, with `PORT` set; people, by
hand: `PORT=8080 python -m rollwise.demo.app --color blue`. Standard library only, so a replica
is up in a few tens of milliseconds and the demo can roll a new version in seconds.

Endpoints:
- `GET /` -> `{"color": ..., "version": ..., "pod": ...}` (JSON)
- `GET /color` -> the colour as a JSON string, like argoproj/rollouts-demo
- `GET /healthz` -> `ok` (always healthy: a bad version still passes readiness, as in
  rollouts-demo, so only traffic analysis can catch it)
- `GET /metrics` -> `http_requests_total{service,version,status}` and
  `http_request_duration_seconds{service,version}` (histogram), the names the seed's
  AnalysisTemplates query; only `/` and `/color` are counted.

Trouble, for demos of automatic rollback: a colour starting with `bad-` answers 500 to half of
the requests, one starting with `slow-` waits 300 ms before answering. `--error-rate` /
`ERROR_RATE` (a fraction, or a percentage when above 1) and `--latency` / `LATENCY_MS` override
both defaults for any colour. Errors are spread evenly (an error whenever the running share
falls behind the rate), not drawn at random, so a short demo shows the configured rate.

Environment: `PORT` (default 8080), `HOST` (default 127.0.0.1), `POD_NAME`,
`ROLLWISE_POD_TEMPLATE_HASH` (the `version` label; default: the colour), `SERVICE_NAME` (the
`service` label; default `rollouts-demo`). SIGTERM stops accepting connections, lets requests in
flight finish (at most a few seconds) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DEFAULT_BAD_ERROR_RATE = 0.5
DEFAULT_SLOW_LATENCY_MS = 300.0
DRAIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Behaviour:
    color: str
    version: str
    pod: str
    service: str
    error_rate: float
    latency_s: float


def behaviour_from(argv: Sequence[str], env: dict[str, str]) -> tuple[Behaviour, str, int]:
    """The app's behaviour and address from its arguments and environment."""
    parser = argparse.ArgumentParser(prog="python -m rollwise.demo.app", description=__doc__)
    parser.add_argument("--color", default=env.get("COLOR", "blue"))
    parser.add_argument("--port", type=int, default=int(env.get("PORT", "8080")))
    parser.add_argument("--host", default=env.get("HOST", "127.0.0.1"))
    parser.add_argument(
        "--error-rate", type=float, default=None, help="share of 500s: 0..1, or a percentage"
    )
    parser.add_argument("--latency", type=float, default=None, help="added latency, ms")
    args = parser.parse_args(argv)
    color: str = args.color

    error_rate = DEFAULT_BAD_ERROR_RATE if color.startswith("bad-") else 0.0
    if "ERROR_RATE" in env:
        error_rate = float(env["ERROR_RATE"])
    if args.error_rate is not None:
        error_rate = args.error_rate
    if error_rate > 1:
        error_rate /= 100  # rollouts-demo takes a percentage
    latency_ms = DEFAULT_SLOW_LATENCY_MS if color.startswith("slow-") else 0.0
    if "LATENCY_MS" in env:
        latency_ms = float(env["LATENCY_MS"])
    if args.latency is not None:
        latency_ms = args.latency

    behaviour = Behaviour(
        color=color,
        version=env.get("ROLLWISE_POD_TEMPLATE_HASH") or color,
        pod=env.get("POD_NAME", ""),
        service=env.get("SERVICE_NAME", "rollouts-demo"),
        error_rate=min(max(error_rate, 0.0), 1.0),
        latency_s=max(latency_ms, 0.0) / 1000,
    )
    return behaviour, args.host, args.port


@dataclass
class Metrics:
    """Counters and one histogram, rendered in Prometheus' text format."""

    behaviour: Behaviour
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Both codes exist from the start: a series born at its first error loses that error
    # to rate() in Prometheus.
    requests: dict[int, int] = field(default_factory=lambda: {200: 0, 500: 0})
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    duration_sum: float = 0.0
    duration_count: int = 0
    error_budget: float = 0.0
    in_flight: int = 0

    def should_fail(self) -> bool:
        """Whether the next request fails: errors spread evenly at `error_rate`."""
        with self.lock:
            self.error_budget += self.behaviour.error_rate
            if self.error_budget >= 1.0 - 1e-9:
                self.error_budget -= 1.0
                return True
            return False

    def observe(self, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[status] = self.requests.get(status, 0) + 1
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.bucket_counts[index] += 1
            self.duration_sum += seconds
            self.duration_count += 1

    def render(self) -> str:
        b = self.behaviour
        base = f'service="{_escape(b.service)}",version="{_escape(b.version)}"'
        with self.lock:
            lines = [
                "# HELP http_requests_total Requests answered, by status code.",
                "# TYPE http_requests_total counter",
                *(
                    f'http_requests_total{{{base},status="{code}"}} {count}'
                    for code, count in sorted(self.requests.items())
                ),
                "# HELP http_request_duration_seconds Time to answer a request.",
                "# TYPE http_request_duration_seconds histogram",
                *(
                    f'http_request_duration_seconds_bucket{{{base},le="{bound}"}} {count}'
                    for bound, count in zip(BUCKETS, self.bucket_counts, strict=True)
                ),
                f'http_request_duration_seconds_bucket{{{base},le="+Inf"}} {self.duration_count}',
                f"http_request_duration_seconds_sum{{{base}}} {self.duration_sum!r}",
                f"http_request_duration_seconds_count{{{base}}} {self.duration_count}",
            ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Traefik reuses its connections
    server_version = "rollwise-demo"
    timeout = 60  # an idle keep-alive connection gives its thread back after this
    # Headers and body go out in two writes; with Nagle on, the second waits for the peer's
    # delayed ACK and every answer takes ~40 ms (measured in bench/).
    disable_nagle_algorithm = True

    @property
    def app(self) -> DemoServer:
        server = self.server
        assert isinstance(server, DemoServer)
        return server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif path == "/metrics":
            self._send(200, self.app.metrics.render().encode(), "text/plain; version=0.0.4")
        elif path in ("/", "/color"):
            self._serve_app(path)
        else:
            self._send(404, b"not found\n", "text/plain")

    def _serve_app(self, path: str) -> None:
        app = self.app
        started = time.perf_counter()
        with app.metrics.lock:
            app.metrics.in_flight += 1
        try:
            behaviour = app.metrics.behaviour
            if behaviour.latency_s:
                time.sleep(behaviour.latency_s)
            if app.metrics.should_fail():
                # The colour is in the error too, so a client can tell which version failed.
                doc = {"error": "injected failure", "color": behaviour.color}
                status, body = 500, json.dumps(doc).encode()
            elif path == "/color":
                status, body = 200, json.dumps(behaviour.color).encode()
            else:
                doc = {"color": behaviour.color, "version": behaviour.version, "pod": behaviour.pod}
                status, body = 200, json.dumps(doc).encode()
            # Counted before the answer leaves, so a client that got its answer finds it in
            # /metrics.
            app.metrics.observe(status, time.perf_counter() - started)
            self._send(status, body, "application/json")
        finally:
            with app.metrics.lock:
                app.metrics.in_flight -= 1

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # One line per request would cost more than the request; errors still go to stderr.
        return None


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold up the exit
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], metrics: Metrics) -> None:
        self.metrics = metrics
        super().__init__(address, DemoHandler)

    def drain(self, seconds: float) -> None:
        """Wait (at most `seconds`) for requests being answered to finish."""
        deadline = time.monotonic() + seconds
        while self.metrics.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)


def main(argv: Sequence[str] | None = None) -> int:
    behaviour, host, port = behaviour_from(sys.argv[1:] if argv is None else argv, dict(os.environ))
    server = DemoServer((host, port), Metrics(behaviour))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, which runs in this very thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(
        f"rollwise demo app: color={behaviour.color} version={behaviour.version} "
        f"listening on http://{host}:{server.server_address[1]}",
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.drain(DRAIN_SECONDS)
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
