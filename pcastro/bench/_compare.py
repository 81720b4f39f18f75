"""Paired comparisons on the same episodes, and novel-vs-base trade-off frontiers."""

import textwrap
from pathlib import Path

import numpy as np

from ._stats import mean_ci95

PRIMARY = ("ten_way_accuracy", "accuracy", "random_20way")
"""The metric that decides the best baseline: the first of these a run reports."""


def is_pc_method(name: str) -> bool:
    """PC methods learn the episode by predictive coding (`pc`, `pc_astro`, `pc_sgd*`);
    everything else, read-outs on a PC-pretrained network included, is a baseline."""
    return name.split("@")[0].startswith("pc")


def paired_differences(results: list[dict]) -> list[dict]:
    """Every PC method minus the best baseline, episode by episode, for every metric.

    The best baseline is the one with the highest *test* mean on the primary metric
    (ten-way accuracy in transfer, accuracy in scratch): choosing it on test favours the
    baseline, so a PC method that beats it beats every baseline.

    **Returns:**

    Rows `{method, vs, metric, diff, ci95, n}`: the mean paired difference and the
    half-width of its 95% Student-t interval over the shared episodes.
    """
    metrics = list(dict.fromkeys(r["metric"] for r in results if "metric" in r))
    primary = next((m for m in PRIMARY if m in metrics), None)
    if primary is None:
        return []
    baselines = [r for r in results if r["metric"] == primary and not is_pc_method(r["method"])]
    if not baselines:
        return []
    best = max(baselines, key=lambda r: r["mean"])["method"]
    methods = [r["method"] for r in results if r["metric"] == primary and is_pc_method(r["method"])]
    return paired_against(results, best, methods)


def paired_against(results: list[dict], reference: str, methods: list[str]) -> list[dict]:
    """Each of `methods` minus `reference`, episode by episode, for every metric both
    report.

    **Returns:**

    Rows `{method, vs, metric, diff, ci95, n}`: the mean paired difference and the
    half-width of its 95% Student-t interval over the shared episodes.
    """
    rows = {(r["method"], r["metric"]): r for r in results}
    metrics = list(dict.fromkeys(r["metric"] for r in results if "metric" in r))
    out = []
    for method in methods:
        for metric in metrics:
            if (method, metric) not in rows or (reference, metric) not in rows:
                continue
            a = np.asarray(rows[(method, metric)]["values"])
            b = np.asarray(rows[(reference, metric)]["values"])
            diff, ci, n = mean_ci95(a - b)
            out.append(
                {
                    "method": method,
                    "vs": reference,
                    "metric": metric,
                    "diff": diff,
                    "ci95": ci,
                    "n": n,
                }
            )
    return out


def frontier_chart(path: Path, frontiers: dict[str, dict], *, title: str) -> Path:
    """Novel accuracy against base retention at every grid point of every method (test
    episodes), the upper-right frontier of each method drawn, its validation choice starred.

    `frontiers[name]` holds `novel` and `base` (mean over test episodes, one entry per grid
    point) and `selected` (the index of the validation choice in those lists).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._report import _save_figure

    panels = {
        "PC methods": {k: v for k, v in frontiers.items() if is_pc_method(k)},
        "baselines": {k: v for k, v in frontiers.items() if not is_pc_method(k)},
    }
    panels = {k: v for k, v in panels.items() if v}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.2), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for ax, (panel, group) in zip(axes[0], panels.items()):
        for i, (name, f) in enumerate(group.items()):
            novel, base = np.asarray(f["novel"]), np.asarray(f["base"])
            color = cmap(i % 20)
            ax.scatter(base, novel, s=8, color=color, alpha=0.35)
            # Pareto frontier: the points that no other point beats on both axes.
            front, best = [], -np.inf
            for j in np.argsort(-base, kind="stable"):
                if novel[j] > best:
                    front.append(j)
                    best = novel[j]
            ax.plot(base[front], novel[front], color=color, lw=1.4, label=name)
            s = f["selected"]
            ax.scatter(
                [base[s]], [novel[s]], marker="*", s=140, color=color, edgecolor="k", zorder=5
            )
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("base retention (test)")
        ax.set_ylabel("novel accuracy (test)")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(textwrap.fill(title, width=int(14 * fig.get_figwidth())), fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return path
