"""Basis points, half-even rounding and the cumulative pro-rata rule."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import given
from hypothesis import strategies as st

from formicary.payments import FEE_PLANS, bp_of, pro_rata
from formicary.payments.money import AMOUNT_FEN_MAX, div_half_even


def test_the_plans_the_issue_names() -> None:
    assert FEE_PLANS["offline_qr"].rate_bp == 60  # 0.6%
    assert FEE_PLANS["card_acquiring"].rate_bp == 125  # 1.25%
    assert "online" in FEE_PLANS


def test_half_even_at_the_half_fen() -> None:
    # 0.6% of 250 fen is 1.5 fen -> 2; of 750 fen is 4.5 fen -> 4 (to even, not up).
    assert bp_of(250, 60) == 2
    assert bp_of(750, 60) == 4
    assert bp_of(8_800, 60) == 53  # 52.8
    assert bp_of(10_000, 125) == 125
    assert bp_of(1, 60) == 0  # a fee below half a fen rounds to nothing
    assert div_half_even(5, 2) == 2 and div_half_even(7, 2) == 4


@given(st.integers(0, AMOUNT_FEN_MAX), st.integers(0, 10_000))
def test_bp_of_matches_decimal_half_even(amount_fen: int, rate_bp: int) -> None:
    exact = Decimal(amount_fen) * Decimal(rate_bp) / Decimal(10_000)
    assert bp_of(amount_fen, rate_bp) == int(exact.quantize(Decimal(1), ROUND_HALF_EVEN))


@given(
    st.integers(1, 10**9),
    st.data(),
)
def test_cumulative_pro_rata_parts_add_up_exactly(amount_fen: int, data: st.DataObject) -> None:
    """Split an amount into refunds; the cumulative shares of a total (a coupon, a fee) are
    never negative, never exceed the refund, and add up to exactly the total at the end."""
    total_fen = data.draw(st.integers(0, amount_fen))
    cuts = sorted(data.draw(st.lists(st.integers(1, amount_fen), max_size=8)))
    taken = cumulative = 0
    for point in [*cuts, amount_fen]:
        part = point - cumulative
        if part == 0:
            continue
        share = pro_rata(total_fen, point, amount_fen) - taken
        assert 0 <= share <= part
        taken += share
        cumulative = point
    assert taken == total_fen
