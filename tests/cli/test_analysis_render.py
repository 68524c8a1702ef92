"""`get analysisrun`, `list analysisruns` and `analyze`'s progress lines, drawn from objects and
compared with golden text (time passed in)."""

from __future__ import annotations

from typing import Any

from cli_objects import NOW

from rollwise.views.analysis import (
    measurement_line,
    render_analysis_run,
    render_analysis_run_list,
)


def failed_run() -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": "checkout-5c9d7f8b6-7-1",
            "namespace": "shop",
            "creationTimestamp": "2026-11-26T11:50:00Z",
        },
        "spec": {
            "args": [
                {"name": "service-name", "value": "checkout-canary"},
                {"name": "api-key", "valueFrom": {"secretKeyRef": {"name": "dd", "key": "api"}}},
            ],
            "metrics": [
                {"name": "success-rate", "provider": {"prometheus": {"query": "q"}}},
                {"name": "latency", "provider": {"prometheus": {"query": "q"}}},
                {"name": "smoke", "provider": {"job": {}}},
            ],
            "dryRun": [{"metricName": "latency"}],
        },
        "status": {
            "phase": "Failed",
            "message": (
                'Metric "success-rate" assessed Failed due to failed (2) > failureLimit (1)'
            ),
            "startedAt": "2026-11-26T11:50:00Z",
            "completedAt": "2026-11-26T11:55:00Z",
            "metricResults": [
                {
                    "name": "success-rate",
                    "phase": "Failed",
                    "count": 3,
                    "successful": 1,
                    "failed": 2,
                    "error": 1,
                    "metadata": {
                        "ResolvedPrometheusQuery": (
                            'sum(rate(http_requests_total{service="checkout-canary"}[5m]))\n'
                            "  / sum(rate(x[5m]))"
                        )
                    },
                    "measurements": [
                        {
                            "phase": "Successful",
                            "startedAt": "2026-11-26T11:50:00Z",
                            "finishedAt": "2026-11-26T11:50:01Z",
                            "value": "[0.99]",
                        },
                        {
                            "phase": "Error",
                            "message": "Prometheus at http://prom:9090 is unreachable",
                            "startedAt": "2026-11-26T11:51:01Z",
                            "finishedAt": "2026-11-26T11:51:02Z",
                        },
                        {
                            "phase": "Failed",
                            "startedAt": "2026-11-26T11:51:12Z",
                            "finishedAt": "2026-11-26T11:51:12Z",
                            "value": "[0.91]",
                        },
                        {
                            "phase": "Failed",
                            "startedAt": "2026-11-26T11:52:12Z",
                            "finishedAt": "2026-11-26T11:52:13Z",
                            "value": "[0.9]",
                        },
                    ],
                },
                {
                    "name": "latency",
                    "phase": "Inconclusive",
                    "message": "Metric assessed Inconclusive due to inconclusive (1) > ...",
                    "count": 1,
                    "inconclusive": 1,
                    "dryRun": True,
                    "measurements": [
                        {
                            "phase": "Inconclusive",
                            "startedAt": "2026-11-26T11:50:00Z",
                            "finishedAt": "2026-11-26T11:50:00Z",
                            "value": "0.3",
                        }
                    ],
                },
            ],
        },
    }


FAILED_RUN = """\
Name:            checkout-5c9d7f8b6-7-1
Namespace:       shop
Status:          ✖ Failed
Message:         Metric "success-rate" assessed Failed due to failed (2) > failureLimit (1)
Started:         2026-11-26T11:50:00Z (10m ago)
Completed:       2026-11-26T11:55:00Z (5m ago)
Args:            service-name=checkout-canary, api-key=<secret dd/api>

Metric:          success-rate
  Status:        ✖ Failed
  Counts:        successful 1, failed 2, inconclusive 0, error 1; count 3
  Query:         sum(rate(http_requests_total{service="checkout-canary"}[5m])) / sum(rate(x[5m]))
  TIME                  STATUS        VALUE   MESSAGE
  2026-11-26T11:50:01Z  ✔ Successful  [0.99]
  2026-11-26T11:51:02Z  ⚠ Error               Prometheus at http://prom:9090 is unreachable
  2026-11-26T11:51:12Z  ✖ Failed      [0.91]
  2026-11-26T11:52:13Z  ✖ Failed      [0.9]

Metric:          latency (dry run)
  Status:        ? Inconclusive
  Message:       Metric assessed Inconclusive due to inconclusive (1) > ...
  Counts:        successful 0, failed 0, inconclusive 1, error 0; count 1
  TIME                  STATUS          VALUE  MESSAGE
  2026-11-26T11:50:00Z  ? Inconclusive  0.3

Metric:          smoke
  Status:        ◷ Pending
"""


def test_a_failed_run_golden() -> None:
    assert render_analysis_run(failed_run(), now=NOW, color=False) == FAILED_RUN


def test_a_new_run_shows_its_name_and_pending_metrics() -> None:
    run = {"metadata": {"name": "r"}, "spec": {"metrics": [{"name": "m"}]}}
    assert render_analysis_run(run, now=NOW, color=False) == (
        "Name:            r\n"
        "Namespace:       default\n"
        "Status:          ◷ Pending\n"
        "\n"
        "Metric:          m\n"
        "  Status:        ◷ Pending\n"
    )


def test_a_measurement_in_flight_says_when_it_is_looked_at_again() -> None:
    run = {
        "metadata": {"name": "r"},
        "spec": {"metrics": [{"name": "smoke"}]},
        "status": {
            "phase": "Running",
            "metricResults": [
                {
                    "name": "smoke",
                    "phase": "Running",
                    "measurements": [
                        {
                            "phase": "Running",
                            "startedAt": "2026-11-26T11:59:58Z",
                            "resumeAt": "2026-11-26T12:00:02Z",
                        }
                    ],
                }
            ],
        },
    }
    text = render_analysis_run(run, now=NOW, color=False)
    assert text.endswith(
        "  TIME                  STATUS     VALUE  MESSAGE\n"
        "  2026-11-26T11:59:58Z  ◌ Running         resumes at 2026-11-26T12:00:02Z\n"
    )


def test_colour_paints_the_icons_as_argo_does() -> None:
    text = render_analysis_run(failed_run(), now=NOW, color=True)
    assert "Status:          \x1b[31m✖\x1b[0m Failed" in text
    assert "\x1b[32m✔\x1b[0m Successful  [0.99]" in text
    assert "\x1b[31m⚠\x1b[0m Error" in text
    assert "\x1b[33m?\x1b[0m Inconclusive" in text
    # colour codes do not shift the columns
    assert "  2026-11-26T11:51:12Z  \x1b[31m✖\x1b[0m Failed      [0.91]" in text


def test_measurement_line() -> None:
    measurement = failed_run()["status"]["metricResults"][0]["measurements"][1]
    assert measurement_line("success-rate", measurement, color=False) == (
        "2026-11-26T11:51:02Z  success-rate  ⚠ Error  Prometheus at http://prom:9090 is unreachable"
    )


def test_list_golden() -> None:
    runs = [failed_run(), {"metadata": {"name": "b", "creationTimestamp": "2026-11-26T11:59:30Z"}}]
    assert render_analysis_run_list(runs, now=NOW, all_namespaces=False) == (
        "NAME                    STATUS   AGE\n"
        "checkout-5c9d7f8b6-7-1  Failed   10m\n"
        "b                       Pending  30s\n"
    )
    assert render_analysis_run_list(runs, now=NOW, all_namespaces=True).splitlines()[1:] == [
        "shop       checkout-5c9d7f8b6-7-1  Failed   10m",
        "default    b                       Pending  30s",
    ]
