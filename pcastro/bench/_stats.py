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
