"""The peak curve, the funnel and the run's configuration limits."""

from __future__ import annotations

import math

import pytest

from formicary.sim import BankOverride, Double11Config, Funnel, PeakCurve


def test_the_curve_ramps_to_midnight_peaks_sharply_and_decays() -> None:
    c = PeakCurve()
    assert c.factor(-600) == c.factor(-60) == pytest.approx(0.2)
    assert c.factor(-30) == pytest.approx(0.2 + 0.8 * 0.25)
    assert c.factor(-0.001) == pytest.approx(1.0, abs=1e-3)
    assert c.factor(0) == 1.0 and c.factor(3) == pytest.approx(5.0)
    assert c.factor(23) == pytest.approx(1 + 4 * math.exp(-1))
    assert c.factor(123) == pytest.approx(1.0, abs=0.011)
    # The first minute after midnight carries ~2.4 base minutes of traffic.
    assert c.integral(0, 60) / 60 == pytest.approx(2.36, abs=0.01)
    assert all(c.factor(t) <= c.peak for t in range(-120, 600))


def test_the_funnel_is_12_12_6_and_scales() -> None:
    f = Funnel(unit_per_s=10, scale=2)
    assert f.clicks_per_s(1.0) == 240
    assert (f.cashier_given_click, f.pay_given_cashier) == (1.0, 0.5)
    with pytest.raises(ValueError):
        Funnel(clicks=6, cashier=12, payments=6)


def test_expected_payments_and_peak_follow_the_curve() -> None:
    config = Double11Config(duration_s=180, funnel=Funnel(unit_per_s=10))
    assert config.lead_s == 60
    area = PeakCurve().integral(-60, 120)
    assert config.expected_payments == pytest.approx(60 * area)
    assert config.peak_payments_per_s == 300
    assert Double11Config(duration_s=30).lead_s == 10  # a short run still has its peak


@pytest.mark.parametrize(
    "changes",
    [
        {"banks": 99},
        {"users": 5},
        {"duration_s": 3_601},
        {"workers": 0},
        {"coupon_share": 1.5},
        {"bank_overrides": (BankOverride(rank=121, error_rate=0.5),)},
    ],
)
def test_configuration_limits(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Double11Config(**changes)  # type: ignore[arg-type]
