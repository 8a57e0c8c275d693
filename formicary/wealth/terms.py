"""A fixed-term product's terms, its dates, and the interest rule (ACT/365 Fixed, to the fen down).

- **Yield** is an annual simple rate in integer basis points (1 bp = 0.01 %), so that 4.25 %
  is exactly 425 and no binary fraction ever enters a computation.
- **Dates** (Beijing time, UTC+8): the sale window is [sale_open, sale_close). Interest runs
  from the value date (起息日; by default the calendar day after the sale closes) for
  `term_days` calendar days; the maturity date (到期日) is value date + term days, and the
  payout is due on it.
- **Day count ACT/365 Fixed**: interest = principal × yield × days / 365 with days = maturity
  date − value date (= term days), 365 in leap years too, as Chinese fixed-term deposits and
  wealth products quote it ("年化收益率 × 天数 / 365").
- **Rounding**: each purchase's interest is truncated to the fen (分以下舍去), computed with
  integers only: floor(principal_fen × yield_bp × days / (10,000 × 365)). No investor is paid
  more than the stated yield gives, and the books need no remainder account: the issuer repays
  exactly the sum of the truncated amounts (this replaces DESIGN.md's default of half-even,
  as the fund's holder-income rule does).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

import msgspec

# UTC+8, no daylight saving since 1991: the one definition the fund's calendar uses too.
from formicary.funds.calendar import BEIJING
from formicary.wealth.errors import InvalidRequest

__all__ = [
    "BEIJING",
    "BP_PER_UNIT",
    "DAYS_PER_YEAR",
    "MIN_PURCHASE_FEN_MIN",
    "SALE_WINDOW_DAYS_MAX",
    "SIZE_FEN_MAX",
    "TERM_DAYS_MAX",
    "YIELD_BP_MAX",
    "ProductTerms",
    "beijing",
    "interest_fen",
    "yield_bp_from_percent",
    "yield_percent",
]

BP_PER_UNIT = 10_000
# ACT/365 Fixed: the denominator is 365 whatever the year.
DAYS_PER_YEAR = 365
# Five years: the longest products the seed sold; longer terms are another kind of product.
TERM_DAYS_MAX = 5 * 365
# 24 % a year: the ceiling the PRC courts protected for private lending when the seed ran; a
# product promising more is not a product this marketplace lists.
YIELD_BP_MAX = 2_400
# 100 billion yuan: above any single product; keeps size x yield x days exact and sums in int64.
SIZE_FEN_MAX = 10**13
# 1 yuan: the smallest minimum purchase a product may set.
MIN_PURCHASE_FEN_MIN = 100
# A sale window longer than this is a mistake (the seed's windows were days to weeks).
SALE_WINDOW_DAYS_MAX = 90
# The value date may trail the close by at most this (T+1 is usual; holidays push it out).
_VALUE_DATE_LAG_DAYS_MAX = 30
_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class ProductTerms(msgspec.Struct, frozen=True):
    """What an issuer offers (money in fen, yield in basis points, times in Beijing time).

    The product launches if at least `min_raise_fen` was bought when the sale closes (by
    default half the size, rounded up); otherwise every purchase is released.
    """

    product_id: str
    issuer_id: str
    name: str
    term_days: int
    yield_bp: int
    size_fen: int
    min_purchase_fen: int
    sale_open: datetime
    sale_close: datetime
    min_raise_fen: int | None = None
    value_date: date | None = None

    def launch_min_fen(self) -> int:
        if self.min_raise_fen is not None:
            return self.min_raise_fen
        return -(-self.size_fen // 2)

    def value_day(self) -> date:
        if self.value_date is not None:
            return self.value_date
        return beijing(self.sale_close).date() + timedelta(days=1)

    def maturity_day(self) -> date:
        return self.value_day() + timedelta(days=self.term_days)

    def interest_for(self, principal_fen: int) -> int:
        return interest_fen(principal_fen, self.yield_bp, self.term_days)

    def checked(self) -> ProductTerms:
        """These terms with the sale times in Beijing time, or InvalidRequest naming the fault."""
        for name in ("product_id", "issuer_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _ID.fullmatch(value):
                raise InvalidRequest(f"{name}: 1 to 64 of letters, digits, '_', '.', '-'")
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 200:
            raise InvalidRequest("name: 1 to 200 characters")
        _int_in("term_days", self.term_days, 1, TERM_DAYS_MAX)
        _int_in("yield_bp", self.yield_bp, 1, YIELD_BP_MAX)
        _int_in("size_fen", self.size_fen, MIN_PURCHASE_FEN_MIN, SIZE_FEN_MAX)
        _int_in("min_purchase_fen", self.min_purchase_fen, MIN_PURCHASE_FEN_MIN, self.size_fen)
        if self.min_raise_fen is not None:
            _int_in("min_raise_fen", self.min_raise_fen, 1, self.size_fen)
        if not isinstance(self.sale_open, datetime) or not isinstance(self.sale_close, datetime):
            raise InvalidRequest("sale_open and sale_close must be datetimes")
        opens, closes = beijing(self.sale_open), beijing(self.sale_close)
        if not opens < closes <= opens + timedelta(days=SALE_WINDOW_DAYS_MAX):
            raise InvalidRequest(
                f"the sale window must close after it opens, within {SALE_WINDOW_DAYS_MAX} days"
            )
        if self.value_date is not None:
            if not isinstance(self.value_date, date) or isinstance(self.value_date, datetime):
                raise InvalidRequest("value_date must be a date")
            first = closes.date()
            last = first + timedelta(days=_VALUE_DATE_LAG_DAYS_MAX)
            if not first <= self.value_date <= last:
                raise InvalidRequest(
                    f"the value date must be between the close day {first} and {last}"
                )
        return msgspec.structs.replace(self, sale_open=opens, sale_close=closes)


def interest_fen(principal_fen: int, yield_bp: int, days: int) -> int:
    """ACT/365 Fixed simple interest, truncated to the fen (exact integer arithmetic)."""
    assert principal_fen >= 0 and 0 <= yield_bp <= YIELD_BP_MAX and 0 <= days <= TERM_DAYS_MAX
    return principal_fen * yield_bp * days // (BP_PER_UNIT * DAYS_PER_YEAR)


def yield_bp_from_percent(percent: Decimal | str | int) -> int:
    """ "4.25" (percent) -> 425 bp; refuses anything finer than a basis point."""
    try:
        value = Decimal(percent) * 100
    except (InvalidOperation, TypeError, ValueError) as error:
        raise InvalidRequest(f"not a percentage: {percent!r}") from error
    if not value.is_finite() or value != value.to_integral_value():
        raise InvalidRequest(f"a yield must be a whole number of basis points: {percent!r}")
    return int(value)


def yield_percent(yield_bp: int) -> Decimal:
    """425 -> Decimal('4.25') (percent, exact)."""
    return (Decimal(yield_bp) / 100).quantize(Decimal("0.01"))


def beijing(when: datetime) -> datetime:
    """`when` in Beijing time; a naive datetime is read as Beijing time."""
    if when.tzinfo is None:
        return when.replace(tzinfo=BEIJING)
    return when.astimezone(BEIJING)


def _int_in(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be an integer from {low} to {high}, got {value!r}")
