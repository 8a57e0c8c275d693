"""Product terms: ACT/365 interest truncated to the fen (hand-computed vectors), yields in
basis points, dates, and the limits on every term."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from formicary.wealth import (
    SIZE_FEN_MAX,
    TERM_DAYS_MAX,
    YIELD_BP_MAX,
    InvalidRequest,
    interest_fen,
    yield_bp_from_percent,
    yield_percent,
)
from tests.wealth.wealth_builders import beijing, terms


@pytest.mark.parametrize(
    ("principal", "bp", "days", "expected"),
    [
        # 10,000 yuan at 4.50 % for 90 days: 1,000,000 x 0.045 x 90 / 365 = 11,095.89 -> 11,095
        (1_000_000, 450, 90, 11_095),
        # 36,500 yuan at 1.00 % for 365 days: exactly 365.00 yuan, nothing to truncate
        (3_650_000, 100, 365, 36_500),
        # 1 yuan at 4.50 % for 90 days: 1.1095... fen -> 1 fen
        (100, 450, 90, 1),
        # 0.99 fen of interest is no fen: 100 fen x 0.04 x 90 / 365 = 0.986 -> 0
        (100, 400, 90, 0),
        # Exactly half a fen is truncated: 730 fen x 1 % x 25 / 365 = 0.5 -> 0
        (730, 100, 25, 0),
        # 1.5 fen -> 1 (half-up and half-even would both pay 2): 2,190 x 1 % x 25 / 365
        (2_190, 100, 25, 1),
        # 10,000 yuan at 4.00 % for 366 days across 29 Feb 2028: the year is still 365 days
        # (ACT/365 Fixed): 1,000,000 x 0.04 x 366 / 365 = 40,109.589 -> 40,109
        (1_000_000, 400, 366, 40_109),
        # 50,000 yuan at 4.50 % for 90 days (the simulation's lot): 55,479.45 -> 55,479
        (5_000_000, 450, 90, 55_479),
        # The largest product at the highest yield for the longest term stays exact in int:
        # 10^13 x 0.24 x 1825 / 365 = 1.2 x 10^13
        (SIZE_FEN_MAX, YIELD_BP_MAX, TERM_DAYS_MAX, 12_000_000_000_000),
    ],
)
def test_interest_vectors(principal: int, bp: int, days: int, expected: int) -> None:
    assert interest_fen(principal, bp, days) == expected


@given(st.integers(0, SIZE_FEN_MAX), st.integers(0, YIELD_BP_MAX), st.integers(0, TERM_DAYS_MAX))
def test_interest_is_the_exact_act365_amount_truncated(principal: int, bp: int, days: int) -> None:
    exact = Fraction(principal) * Fraction(bp, 10_000) * Fraction(days, 365)
    paid = interest_fen(principal, bp, days)
    assert paid <= exact < paid + 1


def test_yields_are_whole_basis_points() -> None:
    assert yield_bp_from_percent("4.25") == 425
    assert yield_bp_from_percent(Decimal("5")) == 500
    assert yield_percent(425) == Decimal("4.25")
    for bad in ("4.125", "x", "NaN"):
        with pytest.raises(InvalidRequest):
            yield_bp_from_percent(bad)


def test_dates_follow_the_sale_close() -> None:
    t = terms().checked()  # closes Thursday 5 March 2026 09:00 Beijing
    assert t.value_day() == date(2026, 3, 6)
    assert t.maturity_day() == date(2026, 6, 4)  # 6 March + 90 days
    assert t.launch_min_fen() == 50_000_000  # half the size by default
    # A UTC close late on 4 March is already 5 March in Beijing.
    late = terms(
        sale_open=datetime.fromisoformat("2026-03-02T01:00:00+00:00"),
        sale_close=datetime.fromisoformat("2026-03-04T17:00:00+00:00"),
    ).checked()
    assert late.value_day() == date(2026, 3, 6)
    # Naive times are Beijing time.
    naive = terms(sale_open=datetime(2026, 3, 2, 9), sale_close=datetime(2026, 3, 5, 9)).checked()
    assert naive.sale_close == beijing(2026, 3, 5, 9, 0)
    fixed = terms(value_date=date(2026, 3, 9)).checked()
    assert fixed.maturity_day() == date(2026, 6, 7)


@pytest.mark.parametrize(
    "change",
    [
        {"product_id": "has space"},
        {"product_id": ""},
        {"name": ""},
        {"term_days": 0},
        {"term_days": TERM_DAYS_MAX + 1},
        {"yield_bp": 0},
        {"yield_bp": YIELD_BP_MAX + 1},
        {"size_fen": 99},
        {"size_fen": SIZE_FEN_MAX + 1},
        {"min_purchase_fen": 99},
        {"min_purchase_fen": 100_000_001},
        {"min_raise_fen": 0},
        {"min_raise_fen": 100_000_001},
        {"term_days": True},
        {"sale_close": beijing(2026, 3, 2, 9, 0)},  # closes when it opens
        {"sale_close": beijing(2026, 6, 2, 9, 0)},  # a window of 92 days
        {"value_date": date(2026, 3, 4)},  # before the close day
        {"value_date": date(2026, 4, 6)},  # more than 30 days after it
    ],
)
def test_bad_terms_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        msgspec.structs.replace(terms(), **change).checked()
