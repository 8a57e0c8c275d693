"""The 7-day annualised yield: the compound formula, its rounding, and its refusals."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formicary.funds import YIELD_QUANTUM, daily_return, seven_day_annualised_yield


def wanfen(*values: str) -> list[Decimal]:
    return [Decimal(v) for v in values]


def test_a_steady_week_by_hand() -> None:
    # R = 1.0000 yuan every day: each factor 1 + 1/10,000 = 1.0001, product 1.0001^7,
    # (1.0001^7)^(365/7) = 1.0001^365 = 1.037172411302... -> 3.7172411...% -> 3.717.
    assert seven_day_annualised_yield(wanfen(*["1.0000"] * 7)) == Decimal("3.717")


def test_a_week_with_a_negative_day_by_hand() -> None:
    # Factors 1.00012, 1.00011, 0.99995, 1.0001, 1.00013, 1.00012, 1.00011; their product is
    # 1.00064016362038708713892251444674 (exact); ^(365/7) = 1.0339322797... -> 3.393%.
    # (Compare the simple annualisation: 6.4 / 7 / 10,000 * 365 = 3.337%.)
    week = wanfen("1.2000", "1.1000", "-0.5000", "1.0000", "1.3000", "1.2000", "1.1000")
    assert seven_day_annualised_yield(week) == Decimal("3.393")


def test_a_losing_week_has_a_negative_yield() -> None:
    # 1.0001^365 on the way up; (1 - 0.0001)^365 = 0.9641... on the way down: -3.584%.
    assert seven_day_annualised_yield(wanfen(*["-1.0000"] * 7)) == Decimal("-3.584")


def test_zero_income_is_zero_yield() -> None:
    assert seven_day_annualised_yield(wanfen(*["0.0000"] * 7)) == Decimal("0.000")


def test_yu_e_bao_scale() -> None:
    # In January 2014 Yu'e Bao's 万份收益 was around 1.8 yuan a day:
    # 1.00018^365 = 1.067903... -> 6.790%.
    assert seven_day_annualised_yield(wanfen(*["1.8000"] * 7)) == Decimal("6.790")


def test_fewer_than_seven_days_publish_nothing() -> None:
    assert seven_day_annualised_yield([]) is None
    assert seven_day_annualised_yield(wanfen(*["1.0000"] * 6)) is None


def test_refusals() -> None:
    with pytest.raises(ValueError, match="expected 7"):
        seven_day_annualised_yield(wanfen(*["1.0000"] * 8))
    with pytest.raises(TypeError):
        seven_day_annualised_yield([1.0] * 7)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        seven_day_annualised_yield(wanfen(*["1.0000"] * 6, "NaN"))
    with pytest.raises(ValueError, match="beyond"):
        seven_day_annualised_yield(wanfen(*["1.0000"] * 6, "-10000"))
    with pytest.raises(ValueError, match="beyond"):
        seven_day_annualised_yield(wanfen(*["1.0000"] * 6, "100.0001"))


def test_daily_return() -> None:
    assert daily_return(Decimal("1.0959")) == Decimal("0.00010959")
    assert daily_return(Decimal("-0.5000")) == Decimal("-0.00005000")


published_wanfen = st.decimals(
    min_value=Decimal("-3"), max_value=Decimal("5"), places=4, allow_nan=False
)


@settings(max_examples=200, deadline=None)
@given(st.lists(published_wanfen, min_size=7, max_size=7))
def test_the_published_yield_is_correctly_rounded(week: list[Decimal]) -> None:
    # Exact check with rationals: y is the half-up rounding of Y = (P^(365/7) - 1) * 100 iff
    # y - 0.0005 <= Y < y + 0.0005, i.e. (1 + (y -+ 0.0005)/100)^7 <=/< P^365 (x -> x^7 is
    # increasing for x > 0, and both sides are positive).
    published = seven_day_annualised_yield(week)
    assert published is not None and published.as_tuple().exponent == -3
    product = Fraction(1)
    for value in week:
        product *= 1 + Fraction(value) / 10_000
    target = product**365
    half = Fraction(YIELD_QUANTUM) / 2
    low = 1 + (Fraction(published) - half) / 100
    high = 1 + (Fraction(published) + half) / 100
    assert low**7 <= target < high**7
