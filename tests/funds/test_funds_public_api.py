"""Pins the funds package's public surface: changing it must be a deliberate edit of this list."""

from __future__ import annotations

import formicary.funds

EXPECTED = {
    "BEIJING",
    "CN_EXCHANGE_HOLIDAYS",
    "CUTOFF",
    "DEFAULT_BLEND",
    "DEFAULT_FEES",
    "FEN_SHARES_PER_SHARE",
    "HOLDERS_MAX",
    "HOLDER_SHARES_MAX",
    "INCOME_FEN_MAX",
    "RATE_STALE_DAYS_MAX",
    "SEVEN_DAY_WINDOW_DAYS",
    "TENORS",
    "TOTAL_SHARES_MAX",
    "WANFEN_ABS_MAX",
    "WANFEN_QUANTUM",
    "YIELD_QUANTUM",
    "Allocation",
    "AllocationError",
    "Blend",
    "CalendarError",
    "DailyIncome",
    "DailyRun",
    "DayRecord",
    "Fees",
    "FundConfig",
    "FundError",
    "FundStore",
    "FundStoreError",
    "InstantLimitExceeded",
    "InsufficientFunds",
    "InsufficientShares",
    "InvalidOrder",
    "LedgerUnavailable",
    "MoneyMarketFund",
    "Order",
    "RateUnavailable",
    "ShiborFixing",
    "ShiborTable",
    "SnapshotGate",
    "TradingCalendar",
    "UnknownHolder",
    "allocate_income",
    "daily_income",
    "daily_income_fen",
    "daily_return",
    "load_shibor",
    "reinvest",
    "seven_day_annualised_yield",
    "wanfen_income",
}


def test_public_names_are_pinned() -> None:
    assert set(formicary.funds.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(formicary.funds, name), name


def test_refusals_are_value_errors() -> None:
    # Callers (the service, the API) can map every bad input to a 4xx with one except clause.
    for error in (formicary.funds.AllocationError, formicary.funds.CalendarError):
        assert issubclass(error, ValueError)
