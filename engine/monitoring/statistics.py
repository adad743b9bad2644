"""Drift statistics from binned counts: PSI, KS and chi-square. Every result is finite.

Inputs are a window's counts per slot and the reference proportions per slot (same layout,
see :mod:`engine.monitoring.bins`).

PSI
    ``sum((a - e) * ln(a / e))`` over slots, with ``a`` the window's proportions and ``e``
    the reference's. A slot that is empty on one side would make the log infinite, so both
    proportions are floored at ``epsilon`` (default 1e-4, i.e. "at most one row in 10,000")
    before the sum; a slot empty on both sides then contributes exactly 0. Hence PSI is at
    most ``2 * ln(1 / epsilon)`` (about 18.4). An empty window has PSI 0.
KS
    The largest gap between the binned CDFs over a numeric feature's value bins (NaN and
    infinities left out, both sides renormalised over the value bins). The binned KS is a
    lower bound of the KS on raw values. 0 when either side has no finite values.
chi-square
    Goodness of fit of the window's counts to the reference proportions, over the slots
    where either side is non-empty. Expected proportions are floored at ``epsilon`` and
    renormalised, so a category the reference never saw gives a large but finite statistic.
    Degrees of freedom: slots used - 1. p-value from ``scipy.stats.chi2.sf``; an empty
    window or a single used slot gives statistic 0, p-value 1.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["DEFAULT_EPSILON", "ChiSquare", "chi_square", "ks_binned", "psi"]

DEFAULT_EPSILON = 1e-4


class ChiSquare(NamedTuple):
    statistic: float
    pvalue: float
    dof: int


def psi(counts: Any, reference: Any, *, epsilon: float = DEFAULT_EPSILON) -> float:
    """Population stability index of ``counts`` against ``reference`` proportions."""
    a, e = _pair(counts, reference)
    total = a.sum()
    if total <= 0:
        return 0.0
    a = np.maximum(a / total, epsilon)
    e = np.maximum(e, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_binned(counts: Any, reference: Any, value_slots: int) -> float:
    """Kolmogorov-Smirnov distance of the binned CDFs over the first ``value_slots`` slots."""
    a, e = _pair(counts, reference)
    a, e = a[:value_slots], e[:value_slots]
    if a.sum() <= 0 or e.sum() <= 0:
        return 0.0
    gap = np.cumsum(a / a.sum()) - np.cumsum(e / e.sum())
    return float(np.max(np.abs(gap)))


def chi_square(counts: Any, reference: Any, *, epsilon: float = DEFAULT_EPSILON) -> ChiSquare:
    """Chi-square goodness of fit of ``counts`` to ``reference`` proportions."""
    from scipy.stats import chi2  # type: ignore[import-untyped]  # imported here: scipy is heavy and only the monitor needs it

    a, e = _pair(counts, reference)
    used = (a > 0) | (e > 0)
    n = a.sum()
    dof = int(used.sum()) - 1
    if n <= 0 or dof < 1:
        return ChiSquare(0.0, 1.0, max(dof, 0))
    p = np.maximum(e[used], epsilon)
    p = p / p.sum()
    # n * sum((o/n - p)^2 / p) == sum((o - n p)^2 / (n p)), without squaring large counts.
    statistic = float(n * np.sum((a[used] / n - p) ** 2 / p))
    return ChiSquare(statistic, float(chi2.sf(statistic, dof)), dof)


def _pair(counts: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(counts, dtype=np.float64)
    e = np.asarray(reference, dtype=np.float64)
    if a.shape != e.shape or a.ndim != 1:
        raise ValueError(
            f"counts and reference need the same 1-D shape; were {a.shape} and {e.shape}"
        )
    # Negative or non-finite entries carry no information: count them as empty.
    a = np.where(np.isfinite(a) & (a > 0), a, 0.0)
    e = np.where(np.isfinite(e) & (e > 0), e, 0.0)
    return a, e
