"""PSI, KS and chi-square from binned counts: known values, and finite whatever the input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chisquare

from engine.monitoring.statistics import chi_square, ks_binned, psi


def test_psi_known_values() -> None:
    ref = np.array([0.5, 0.5])
    assert psi([50, 50], ref) == 0.0
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi([80, 20], ref) == pytest.approx(expected)


def test_psi_floors_empty_slots_at_epsilon() -> None:
    ref = np.array([1.0, 0.0, 0.0])
    eps = 1e-4
    value = psi([0, 10, 0], ref, epsilon=eps)
    # slot 0: (eps - 1) ln(eps / 1); slot 1: (1 - eps) ln(1 / eps); slot 2: 0
    assert value == pytest.approx(2 * (1 - eps) * math.log(1 / eps))
    assert value <= 2 * math.log(1 / eps)
    assert psi([0, 0, 0], ref) == 0.0


def test_ks_over_value_bins_only() -> None:
    ref = np.array([0.25, 0.25, 0.25, 0.25, 0.0, 0.0])  # 4 value bins, NaN, inf
    assert ks_binned([10, 10, 10, 10, 500, 7], ref, 4) == 0.0
    assert ks_binned([40, 0, 0, 0, 0, 0], ref, 4) == pytest.approx(0.75)
    assert ks_binned([0, 0, 0, 0, 9, 0], ref, 4) == 0.0  # no finite values: no evidence


def test_chi_square_matches_scipy_and_stays_finite() -> None:
    counts = np.array([30, 50, 20])
    ref = np.array([0.3, 0.4, 0.3])
    stat, pvalue, dof = chi_square(counts, ref)
    expected = chisquare(counts, ref * counts.sum())
    assert stat == pytest.approx(expected.statistic) and pvalue == pytest.approx(expected.pvalue)
    assert dof == 2
    # A category the reference never saw, and slots empty on both sides.
    stat, pvalue, dof = chi_square([10, 0, 5, 0], [1.0, 0.0, 0.0, 0.0])
    assert math.isfinite(stat) and 0.0 <= pvalue < 1e-6 and dof == 1
    assert chi_square([0, 0], [0.5, 0.5]) == (0.0, 1.0, 1)
    assert chi_square([5, 0], [1.0, 0.0]) == (0.0, 1.0, 0)


@pytest.mark.parametrize(
    "counts", [[0, 0, 0, 0], [5, -3, 0, 0], [1e300, 0, 0, 1], [math.nan, 1, 2, 3]]
)
def test_finite_on_degenerate_input(counts: list[float]) -> None:
    ref = np.array([0.0, 0.5, 0.5, 0.0])
    assert math.isfinite(psi(counts, ref))
    assert math.isfinite(ks_binned(counts, ref, 3))
    stat, pvalue, _ = chi_square(counts, ref)
    assert math.isfinite(stat) and 0.0 <= pvalue <= 1.0
