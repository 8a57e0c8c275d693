"""Published yields of a money-market fund: the 7-day annualised yield and daily returns.

The 7-day annualised yield (七日年化收益率) on day D is, in percent,

    ((prod over the 7 calendar days ending on D of (1 + R_i / 10,000)) ^ (365 / 7) - 1) * 100

where R_i is the day's published 万份收益 in yuan (so R_i / 10,000 is one share's return that
day). Calendar days, not trading days: every day has its own 万份收益 (see `calendar`). It is
published to 3 decimals, rounding half up (四舍五入, as fund disclosures state). It is computed in
`Decimal` at 60 significant digits, so the one rounding that matters is the final one.

A fund with fewer than 7 days of 万份收益 publishes no 7-day yield yet: the function returns
None rather than annualising a shorter window, which would not be the same quantity.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext

__all__ = [
    "SEVEN_DAY_WINDOW_DAYS",
    "WANFEN_ABS_MAX",
    "YIELD_QUANTUM",
    "daily_return",
    "seven_day_annualised_yield",
]

SEVEN_DAY_WINDOW_DAYS = 7
# The yield is published in percent to 3 decimals.
YIELD_QUANTUM = Decimal("0.001")
# Seven factors of at most ~12 digits multiply to ~80 digits; 60 significant digits keep the
# power's error some 50 orders of magnitude below the published 0.001%.
_PRECISION_DIGITS = 60
# A daily 万份收益 beyond 100 yuan (1% a day, ~3,700% a year) is a data error, not a yield; the
# bound also keeps the annualised figure inside the working precision.
WANFEN_ABS_MAX = Decimal(100)


def daily_return(wanfen_yuan: Decimal) -> Decimal:
    """One share's return for the day, as a fraction: 万份收益 / 10,000 (exact)."""
    _require_decimal(wanfen_yuan)
    return wanfen_yuan.scaleb(-4)


def seven_day_annualised_yield(last_7_wanfen: Sequence[Decimal]) -> Decimal | None:
    """The 7-day annualised yield in percent, rounded half up to 3 decimals, from the 万份收益
    (yuan) of the last 7 calendar days, oldest first; None with fewer than 7 days of history."""
    if len(last_7_wanfen) < SEVEN_DAY_WINDOW_DAYS:
        return None
    if len(last_7_wanfen) > SEVEN_DAY_WINDOW_DAYS:
        # Taking "the last 7" of a longer list silently would hide an off-by-one in the caller.
        raise ValueError(f"expected {SEVEN_DAY_WINDOW_DAYS} days, got {len(last_7_wanfen)}")
    with localcontext() as context:
        context.prec = _PRECISION_DIGITS
        product = Decimal(1)
        for wanfen in last_7_wanfen:
            _require_decimal(wanfen)
            if abs(wanfen) > WANFEN_ABS_MAX:
                raise ValueError(f"万份收益 {wanfen} is beyond ±{WANFEN_ABS_MAX} yuan")
            product *= 1 + daily_return(wanfen)
        exponent = Decimal(365) / Decimal(SEVEN_DAY_WINDOW_DAYS)
        annualised = (product**exponent - 1) * 100
        return annualised.quantize(YIELD_QUANTUM, rounding=ROUND_HALF_UP)


def _require_decimal(value: Decimal) -> None:
    # A float 万份收益 would already carry a binary rounding error into the published figure.
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"expected a finite Decimal, got {value!r}")
