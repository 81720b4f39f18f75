"""Paired comparisons on the same episodes."""

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
