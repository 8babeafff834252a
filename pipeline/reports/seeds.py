"""Repeats of one configuration over training seeds: mean, spread and a 95 % interval of the
mean, and whether two configurations are distinguishable (Welch's t-test) or how many seeds
would likely tell. Statistics only: no files, no printing.

Why: on the default splits, training seeds alone spread validation accuracy by about a point,
as much as the learning rates a sweep compares differ by; one run per configuration ranks them
wrongly about one time in four.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05  # Welch's test: distinguishable below this p-value
POWER = 0.8  # "would likely tell": this chance of p < ALPHA at the observed difference
MAX_SEEDS = 1000  # beyond this, "more than MAX_SEEDS" rather than a number
TEST_NAME = "Welch's t-test"


@dataclass(frozen=True)
class Spread:
    """n values' mean, sample standard deviation and 95 % t-interval of the mean; a single value
    has no std and no interval (None): nothing is invented from one run."""

    n: int
    mean: float
    std: float | None
    low: float | None
    high: float | None


def spread(values: Sequence[float], confidence: float = CONFIDENCE) -> Spread:
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values")
    mean = float(data.mean())
    if data.size == 1:
        return Spread(1, mean, None, None, None)
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, data.size - 1)) * std / math.sqrt(data.size)
    return Spread(int(data.size), mean, std, mean - half, mean + half)


def welch_p(first: Sequence[float], second: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances). Two sets without any spread
    are told apart exactly: p 0 when their means differ, 1 when they are equal."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        return 0.0 if a.mean() != b.mean() else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def welch_power(difference: float, std_a: float, std_b: float, n: int, alpha=ALPHA) -> float:
    """Chance that Welch's test on n seeds per configuration gives p < alpha when the true
    difference and spreads are these (noncentral t, Welch-Satterthwaite degrees of freedom)."""
    var_a, var_b = std_a**2 / n, std_b**2 / n
    if var_a + var_b == 0:
        return 1.0 if difference else 0.0
    df = (var_a + var_b) ** 2 / ((var_a**2 + var_b**2) / (n - 1))
    noncentrality = abs(difference) / math.sqrt(var_a + var_b)
    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(
        stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)
    )


def seeds_needed(difference: float, std_a: float, std_b: float, power=POWER) -> int | None:
    """The fewest seeds per configuration with at least `power` (None: more than MAX_SEEDS)."""
    if difference == 0:
        return None
    for n in range(2, MAX_SEEDS + 1):
        if welch_power(difference, std_a, std_b, n) >= power:
            return n
    return None


@dataclass(frozen=True)
class Verdict:
    distinguishable: bool
    p_value: float | None  # None: a configuration has a single run, so nothing was tested
    seeds_needed: int | None  # when not distinguishable and above the minimum effect
    line: str


def verdict(
    first: tuple[str, Sequence[float]], second: tuple[str, Sequence[float]], min_effect: float
) -> Verdict:
    """Is the first configuration's validation accuracy (name, one value per seed) told apart
    from the second's? One line says so and names the test."""
    (name_a, a), (name_b, b) = first, second
    difference = float(np.mean(a) - np.mean(b))
    if min(len(a), len(b)) < 2:
        single = name_a if len(a) < 2 else name_b
        line = (
            f"{name_a} vs {name_b}: not tested ({single} has one run; {TEST_NAME} needs 2 or "
            "more train.seed values per configuration)"
        )
        return Verdict(False, None, None, line)
    p = welch_p(a, b)
    said = f"{TEST_NAME} p={p:.3g}, difference {difference:+.4f}"
    if p < ALPHA:
        line = f"{name_a} is distinguishable from {name_b} ({said}, n={len(a)} and {len(b)})"
        return Verdict(True, p, None, line)
    if abs(difference) < min_effect:
        line = (
            f"{name_a} and {name_b} are not distinguishable ({said}), and the difference is "
            f"below the minimum effect that matters ({min_effect:g}): treat them as equal"
        )
        return Verdict(False, p, None, line)
    std_a, std_b = float(np.std(a, ddof=1)), float(np.std(b, ddof=1))
    needed = seeds_needed(difference, std_a, std_b)
    more = f"about {needed}" if needed else f"more than {MAX_SEEDS}"
    line = (
        f"{name_a} and {name_b} are not distinguishable ({said}, n={len(a)} and {len(b)}); "
        f"{more} seeds per configuration would likely tell ({POWER:.0%} power)"
    )
    return Verdict(False, p, needed, line)
