"""scripts/compute_curve.py: the log-linear extrapolation behind results/compute_curve.md."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from compute_curve import fit, hours_to_reach  # noqa: E402


def test_fit_recovers_gain_per_doubling():
    a, b = fit([(1.0, 10.0), (2.0, 11.0), (8.0, 13.0)])
    assert a == pytest.approx(10.0)
    assert b == pytest.approx(1.0)


def test_hours_to_reach_doubles_per_unit_of_gap():
    rate, hours = hours_to_reach([(1.0, 10.0), (2.0, 11.0)], 13.0)
    assert rate == pytest.approx(1.0)
    assert hours == pytest.approx(8.0)


def test_a_flat_or_falling_curve_never_reaches_the_target():
    rate, hours = hours_to_reach([(1.0, 10.0), (4.0, 9.5)], 11.0)
    assert rate < 0
    assert hours is None
