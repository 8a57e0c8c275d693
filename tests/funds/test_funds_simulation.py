"""A month of a small fund, composed from the pure pieces the way the fund service will:
calendar -> posted income -> allocation -> reinvestment -> 7-day yield, with the books
checked to the fen every day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np

from formicary.funds import (
    TradingCalendar,
    allocate_income,
    daily_income_fen,
    load_shibor,
    reinvest,
    seven_day_annualised_yield,
)


def test_a_month_balances_to_the_fen() -> None:
    calendar = TradingCalendar()
    rates = load_shibor()
    rng = np.random.default_rng(2014)
    shares = rng.lognormal(np.log(500_000), 1.5, 2_000).astype(np.int64)
    rounding_account_fen = 0
    posted_fen = 0
    opening_fen = int(shares.sum())

    # One subscription of 50,000 yuan by a new holder, ordered on Friday after the cut-off:
    # it belongs to Monday 2014-01-27 and earns from Tuesday 2014-01-28.
    order_day = calendar.confirmation_day(datetime(2014, 1, 24, 15, 30))
    starts = calendar.earning_start_day(order_day)
    assert (order_day, starts) == (date(2014, 1, 27), date(2014, 1, 28))
    shares = np.append(shares, np.int64(0))
    subscribed_fen = 5_000_000

    wanfen_history: list[Decimal] = []
    day = date(2014, 1, 20)
    while day < date(2014, 2, 20):
        if day == starts:
            shares[-1] += subscribed_fen
        # The fund's assets are its shares plus what the rounding account holds; the
        # account's balance is carried into today's distribution and replaced by today's
        # remainder.
        income_fen = daily_income_fen(int(shares.sum()) + rounding_account_fen, day, rates)
        allocation = allocate_income(shares, income_fen, carried_fen=rounding_account_fen)
        shares = reinvest(shares, allocation, in_place=True)
        rounding_account_fen += allocation.remainder_fen - allocation.carried_fen
        assert 0 <= rounding_account_fen < len(shares)
        posted_fen += income_fen
        wanfen_history.append(allocation.wanfen_yuan)
        assert int(shares.sum()) + rounding_account_fen == (
            opening_fen + posted_fen + (subscribed_fen if day >= starts else 0)
        )
        yield_percent = seven_day_annualised_yield(wanfen_history[-7:])
        if len(wanfen_history) < 7:
            assert yield_percent is None
        else:
            assert yield_percent is not None and Decimal(3) < yield_percent < Decimal(7)
        day += timedelta(days=1)

    # The new holder earned nothing before 2014-01-28 and something on every day after,
    # including the Spring Festival holiday (income accrues on every calendar day).
    assert int(shares[-1]) > subscribed_fen
    # Without the carry the account would have grown by about half a fen per holder a day.
    assert rounding_account_fen == allocation.remainder_fen
