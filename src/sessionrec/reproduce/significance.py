"""Paired significance tests on per-case values (reciprocal ranks or hits) of two models.

Both models are evaluated on the same test cases, so the test is paired: the Wilcoxon
signed-rank test (default; no normality assumption, exact for small samples without ties)
or the paired t-test. Two-sided; p-values are reported as computed, without correction for
multiple comparisons.
"""

from __future__ import annotations

import numpy as np

from sessionrec.errors import ConfigError

TESTS = ("wilcoxon", "ttest")


def paired_test(a: np.ndarray, b: np.ndarray, test: str = "wilcoxon") -> float:
    """Two-sided p-value that the per-case values `a` and `b` have the same mean/median.

    Identical inputs (every difference zero) give p = 1.
    """
    from scipy import stats

    if test not in TESTS:
        raise ConfigError(f"unknown test '{test}' (choose from {', '.join(TESTS)})")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(
            f"paired values must be two 1-d arrays of one length, got {a.shape} and {b.shape}"
        )
    diff = a - b
    if len(diff) == 0 or not np.any(diff):
        return 1.0
    if test == "wilcoxon":
        return float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    if np.all(diff == diff[0]):  # constant non-zero difference: the t statistic is infinite
        return 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def seed_mean(values: list[np.ndarray]) -> np.ndarray:
    """Per-case mean over seeds (the paired unit stays the test case)."""
    if not values:
        raise ConfigError("no per-case values to test")
    return np.mean(np.stack(values), axis=0)
