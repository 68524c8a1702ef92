"""The detection benchmark's chart (`docs/detection.png`), drawn with matplotlib.

Who uses it: `bench.detection.run`, after the tables. Rows 1–2: median time to catch each
bad canary (minutes, log scale) per traffic setting, one line per policy, drawn only where the
policy caught at least half the runs; row 3: false rollbacks and time to promote a healthy
canary, and the share of canaries with 1% errors caught.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a benchmark machine

import matplotlib.pyplot as plt
import numpy as np

from bench.detection.policies import POLICIES
from bench.detection.scenarios import MAX_ANALYSIS_S, RATES, RELEASES, WEIGHTS, Traffic
from bench.detection.tables import Results

MARKERS = ("o", "s", "^", "D", "v", "*")


def draw(results: Results, path: Path) -> None:
    bad = [r for r in RELEASES if not r.healthy]
    healthy = next(r for r in RELEASES if r.healthy)
    figure, axes = plt.subplots(3, 3, figsize=(15, 13), constrained_layout=True)
    for row, weight in enumerate(WEIGHTS):
        for col, rate in enumerate(RATES):
            ax = axes[row][col]
            traffic = Traffic(rate, weight)
            for i, policy in enumerate(POLICIES):
                minutes = []
                for release in bad:
                    result = results.get(policy.key, traffic, release)
                    caught = result.rolled_back >= 0.5 and result.rollback_seconds is not None
                    minutes.append(
                        result.rollback_seconds.median / 60
                        if caught and result.rollback_seconds
                        else np.nan
                    )
                ax.plot(range(len(bad)), minutes, marker=MARKERS[i], label=policy.name, alpha=0.85)
            ax.set_yscale("log")
            ax.set_ylim(0.1, MAX_ANALYSIS_S / 60 * 1.2)
            ax.set_xticks(range(len(bad)), [r.name for r in bad], rotation=20)
            ax.set_title(f"{traffic.label}: median time to catch a bad canary")
            ax.set_ylabel("minutes (log scale)")
            ax.grid(True, which="both", alpha=0.3)
    labels = [t.label for w in WEIGHTS for t in (Traffic(r, w) for r in RATES)]
    settings = [Traffic(r, w) for w in WEIGHTS for r in RATES]
    width = 0.8 / len(POLICIES)
    x = np.arange(len(settings))
    false_ax, promote_ax, caught_ax = axes[2]
    one_percent = next(r for r in bad if r.error_rate == 0.01)
    for i, policy in enumerate(POLICIES):
        offset = x - 0.4 + width * (i + 0.5)
        false_ax.bar(
            offset,
            [100 * results.get(policy.key, t, healthy).rolled_back for t in settings],
            width,
            label=policy.name,
        )
        promote_ax.bar(
            offset,
            [_promote_minutes(results, policy.key, t) for t in settings],
            width,
            label=policy.name,
        )
        caught_ax.bar(
            offset,
            [100 * results.get(policy.key, t, one_percent).rolled_back for t in settings],
            width,
            label=policy.name,
        )
    false_ax.set_title("healthy canary: false rollbacks")
    false_ax.set_ylabel("% of runs")
    promote_ax.set_title("healthy canary: median time to promote\n(30: under half promoted)")
    promote_ax.set_ylabel("minutes")
    caught_ax.set_title("canary with 1% errors: caught within 30 min")
    caught_ax.set_ylabel("% of runs")
    for ax in (false_ax, promote_ax, caught_ax):
        ax.set_xticks(x, labels, rotation=20)
        ax.grid(True, axis="y", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.04))
    figure.suptitle(
        "Canary detection: the same simulated streams for every policy "
        "(rows 1-2: a point only where the policy caught at least half the runs)",
        y=1.07,
        fontsize=13,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)


def _promote_minutes(results: Results, policy: str, traffic: Traffic) -> float:
    """Median time to promote of the promoted runs; 30 min when fewer than half promoted."""
    healthy = next(r for r in RELEASES if r.healthy)
    result = results.get(policy, traffic, healthy)
    if result.promoted < 0.5 or result.promote_seconds is None:
        return MAX_ANALYSIS_S / 60
    return result.promote_seconds.median / 60
