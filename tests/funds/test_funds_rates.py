"""The SHIBOR data and the daily income model built on it."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from formicary.funds import (
    DEFAULT_BLEND,
    RATE_STALE_DAYS_MAX,
    Blend,
    Fees,
    RateUnavailable,
    daily_income,
    daily_income_fen,
    load_shibor,
)

TABLE = load_shibor()
SHARED_CSV = Path("/work/shared/data/shibor_2013_2014.csv")


def test_the_packaged_data() -> None:
    assert len(TABLE.fixings) == 294
    assert (TABLE.first_day, TABLE.last_day) == (date(2013, 7, 1), date(2014, 8, 29))
    last = TABLE.fixings[-1]
    assert last.rates_percent["O/N"] == Decimal("2.9080")
    assert last.rates_percent["1Y"] == Decimal("5.0000")


@pytest.mark.skipif(not SHARED_CSV.exists(), reason="the shared data directory is not here")
def test_the_packaged_copy_matches_the_shared_data() -> None:
    assert load_shibor(SHARED_CSV) == TABLE


def test_days_without_a_fixing_use_the_last_one() -> None:
    # Saturday 2014-08-23 uses Friday's fixing; the 2014 Spring Festival (closed Jan 31 -
    # Feb 6) uses Jan 30's; the day after the last fixing still has one, for a while.
    assert TABLE.fixing_on(date(2014, 8, 23)).day == date(2014, 8, 22)
    assert TABLE.fixing_on(date(2014, 2, 6)).day == date(2014, 1, 30)
    assert TABLE.fixing_on(date(2014, 2, 8)).day == date(2014, 2, 8)  # a make-up Saturday
    stale_max = TABLE.last_day + timedelta(days=RATE_STALE_DAYS_MAX)
    assert TABLE.fixing_on(stale_max).day == TABLE.last_day
    with pytest.raises(RateUnavailable):
        TABLE.fixing_on(stale_max + timedelta(days=1))
    with pytest.raises(RateUnavailable):
        TABLE.fixing_on(date(2013, 6, 30))


def test_daily_income_by_hand() -> None:
    # 2014-08-29: 1W 3.6720%, 1M 4.1140%, 3M 4.6659%.
    # gross = 0.2 * 3.6720 + 0.5 * 4.1140 + 0.3 * 4.6659 = 0.7344 + 2.0570 + 1.39977 = 4.19117%
    # On 10^10 fen (100 million yuan), per day:
    #   gross      10^10 * 4.19117 / 36,500 = 1,148,265.75... -> 1,148,266
    #   management 10^10 * 0.30 / 36,500    =    82,191.78... ->    82,192
    #   custody    10^10 * 0.08 / 36,500    =    21,917.80... ->    21,918
    #   sales      10^10 * 0.25 / 36,500    =    68,493.15... ->    68,493
    #   net = 1,148,266 - 82,192 - 21,918 - 68,493 = 975,663 fen (3.561% a year)
    income = daily_income(10**10, date(2014, 8, 29), TABLE)
    assert DEFAULT_BLEND.gross_percent(TABLE.fixing_on(date(2014, 8, 29))) == Decimal("4.19117")
    assert (
        income.gross_fen,
        income.management_fee_fen,
        income.custody_fee_fen,
        income.sales_service_fee_fen,
        income.net_fen,
    ) == (1_148_266, 82_192, 21_918, 68_493, 975_663)
    assert daily_income_fen(10**10, date(2014, 8, 29), TABLE) == 975_663
    # Sunday earns at Friday's rate: the same figures.
    assert daily_income_fen(10**10, date(2014, 8, 31), TABLE) == 975_663


def test_accruals_round_half_even() -> None:
    # 1Y is 5.0000% on 2014-08-29; all in 1Y, no fees: assets * 5 / 36,500 = assets / 7,300.
    one_year = Blend({"1Y": Decimal(1)})
    no_fees = Fees(Decimal(0), Decimal(0), Decimal(0))
    day = date(2014, 8, 29)
    assert daily_income_fen(3_650, day, TABLE, one_year, no_fees) == 0  # 0.5 -> 0
    assert daily_income_fen(10_950, day, TABLE, one_year, no_fees) == 2  # 1.5 -> 2
    assert daily_income_fen(10_951, day, TABLE, one_year, no_fees) == 2  # 1.50014 -> 2
    assert daily_income_fen(0, day, TABLE) == 0


def test_fees_can_make_a_day_negative() -> None:
    # Overnight money at its low (1.7%) under 2% of annual fees loses money.
    overnight = Blend({"O/N": Decimal(1)})
    heavy = Fees(Decimal(1), Decimal(0), Decimal(1))
    low_day = min(TABLE.fixings, key=lambda fixing: fixing.rates_percent["O/N"]).day
    assert daily_income_fen(10**10, low_day, TABLE, overnight, heavy) < 0


def test_a_year_of_model_yields_is_plausible() -> None:
    # Net of 0.63% fees the model yields 3.3-6.6% a year over the period (its peak is the
    # year-end squeeze of December 2013), the range in which the real money-market funds of
    # 2013-2014 moved (a model, not their published yields).
    day = TABLE.first_day
    while day <= TABLE.last_day:
        net_percent = daily_income_fen(10**12, day, TABLE) * 365 / 10**10
        assert 3.0 < net_percent < 7.0, (day, net_percent)
        day += timedelta(days=1)


def test_bad_blends_and_fees() -> None:
    with pytest.raises(ValueError, match="sum"):
        Blend({"1W": Decimal("0.5"), "1M": Decimal("0.4")})
    with pytest.raises(ValueError, match="unknown"):
        Blend({"2Y": Decimal(1)})
    with pytest.raises(ValueError, match="non-negative"):
        Blend({"1W": Decimal("1.5"), "1M": Decimal("-0.5")})
    with pytest.raises(ValueError):
        Fees(management_percent=Decimal(-1))
    with pytest.raises(ValueError):
        daily_income_fen(-1, date(2014, 8, 29), TABLE)
