"""A real Prometheus for `rollwise demo --prometheus`: Debian's binary, on loopback, with a
temporary configuration that scrapes the demo's pods every second.

Who uses it: the demo, so that the seed's own `success-rate` AnalysisTemplate (PromQL over
`http_requests_total`) can judge a canary with only its `address` changed. Targets are a
file-discovery list the demo rewrites as pods come and go.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from rollwise.api.errors import UserError

READY_SECONDS = 30.0


def find_prometheus() -> str:
    """The `prometheus` binary on PATH; UserError saying how to get it otherwise."""
    found = shutil.which("prometheus")
    if found is None:
        raise UserError(
            "--prometheus needs a `prometheus` binary on PATH "
            "(Debian: apt-get install -y --no-install-recommends prometheus)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrometheusServer:
    """Prometheus scraping a target list that can change while it runs."""

    def __init__(self, root: Path, *, binary: str) -> None:
        self.root = root
        self.binary = binary
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets_path = root / "targets.json"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.scrape([])
        config = self.root / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "rollwise-demo",
                            "scrape_interval": "1s",
                            "scrape_timeout": "1s",
                            "file_sd_configs": [
                                {"files": [str(self.targets_path)], "refresh_interval": "1s"}
                            ],
                        }
                    ],
                }
            )
        )
        with (self.root / "prometheus.log").open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UserError(f"prometheus exited at start; see {self.root / 'prometheus.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise UserError(f"prometheus did not become ready in {READY_SECONDS:.0f}s")

    def scrape(self, targets: Sequence[str]) -> None:
        """Scrape exactly these `host:port` targets from now on."""
        groups = [{"targets": sorted(targets)}] if targets else []
        temporary = self.targets_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(groups))
        temporary.replace(self.targets_path)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
