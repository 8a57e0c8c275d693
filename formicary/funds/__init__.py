"""The money-market fund: its trading calendar, daily income allocation and published yields.

NAV is fixed at 1.00 yuan; money is int fen and shares are int fen-shares (1 share = 100
fen-shares = 1 yuan). Each calendar day the manager posts the day's income (`rates` models it
from real SHIBOR fixings); `allocate_income` splits it over every holder exactly, with the
sub-fen remainder going to the fund's rounding account; `reinvest` turns it into shares; the
day's 万份收益 feeds `seven_day_annualised_yield`. The rules are in `docs/funds.md`.
"""

from formicary.funds.calendar import (
    BEIJING,
    CN_EXCHANGE_HOLIDAYS,
    CUTOFF,
    CalendarError,
    TradingCalendar,
)
from formicary.funds.daily import DailyRun
from formicary.funds.fund import (
    FundConfig,
    FundError,
    InstantLimitExceeded,
    InsufficientFunds,
    InsufficientShares,
    InvalidOrder,
    LedgerUnavailable,
    MoneyMarketFund,
    Order,
    SnapshotGate,
    UnknownHolder,
)
from formicary.funds.income import (
    FEN_SHARES_PER_SHARE,
    HOLDER_SHARES_MAX,
    HOLDERS_MAX,
    INCOME_FEN_MAX,
    TOTAL_SHARES_MAX,
    WANFEN_QUANTUM,
    Allocation,
    AllocationError,
    allocate_income,
    reinvest,
    wanfen_income,
)
from formicary.funds.rates import (
    DEFAULT_BLEND,
    DEFAULT_FEES,
    RATE_STALE_DAYS_MAX,
    TENORS,
    Blend,
    DailyIncome,
    Fees,
    RateUnavailable,
    ShiborFixing,
    ShiborTable,
    daily_income,
    daily_income_fen,
    load_shibor,
)
from formicary.funds.store import DayRecord, FundStore, FundStoreError
from formicary.funds.yields import (
    SEVEN_DAY_WINDOW_DAYS,
    WANFEN_ABS_MAX,
    YIELD_QUANTUM,
    daily_return,
    seven_day_annualised_yield,
)

__all__ = [
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
]
