"""Summary statistics for episode results."""

import math

import numpy as np
from scipy import stats


def mean_ci95(values) -> tuple[float, float, int]:
    """Mean and the half-width of its 95% Student-t confidence interval.

    **Returns:**

    `(mean, ci95, n)`; `ci95` is 0 for a single value.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    n = v.size
    if n == 0:
        raise ValueError("No values to summarise.")
    mean = float(v.mean())
    if n == 1:
        return mean, 0.0, 1
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, half, n


def holm(pvalues, alpha: float = 0.05) -> list[bool]:
    """Holm's step-down rejections at family-wise level `alpha`, in the order given."""
    order = np.argsort(pvalues)
    rejected = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        rejected[i] = True
    return rejected


def across_seeds(values) -> dict:
    """A paired difference summarised over seeds: one value per seed (that seed's mean over
    its own episodes), so the interval includes the seed-to-seed variance.

    **Returns:**

    `{diff, ci95, n_seeds, p, per_seed}`: the mean, the half-width of the 95% Student-t
    interval over seeds, the two-sided p-value of a one-sample t-test against 0 (1.0 when
    every seed gives the same value), and the values.
    """
    values = [float(v) for v in values]
    mean, ci, n = mean_ci95(values)
    p = float(stats.ttest_1samp(values, 0.0).pvalue) if n > 1 and np.std(values) > 0 else 1.0  # pyright: ignore[reportAttributeAccessIssue]  # scipy's stubs
    return {"diff": mean, "ci95": ci, "n_seeds": n, "p": p, "per_seed": values}
