"""A deterministic model of a money-market fund's daily income from real SHIBOR fixings.

The package ships the Shanghai Interbank Offered Rates of 2013-07-01 .. 2014-08-29 (%, per
year; see `data/shibor_2013_2014.csv`), the rate environment of Yu'e Bao's first year. The model:

- gross yield (% a year) = a stated blend of the day's fixings. The default, 20% 1-week,
  50% 1-month and 30% 3-month, stands for a portfolio mostly in short bank deposits with some
  3-month paper; it is a model, not a published portfolio (the real funds also earned a premium
  on negotiated deposits, so their yields ran 0.5-1.5 points higher);
- a day without a fixing (weekend, holiday) uses the last fixing published before it, since
  deposits keep earning their agreed rate; a gap longer than `RATE_STALE_DAYS_MAX` is an error
  (the longest holiday gap in the data is 9 days) rather than a silent extrapolation;
- income accrues on every calendar day at 1/365 of the annual rate, on the day's total assets;
- annual fees (management 0.30%, custody 0.08%, sales service 0.25%) accrue the same way and
  are taken from the gross income. Each of the four amounts is rounded to the fen half-even on
  its own, and net = gross - fees exactly, so the fee postings and the income balance to the fen
  (the net may differ by a fen or two from rounding the net rate once).
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "DEFAULT_BLEND",
    "DEFAULT_FEES",
    "RATE_STALE_DAYS_MAX",
    "TENORS",
    "Blend",
    "DailyIncome",
    "Fees",
    "RateUnavailable",
    "ShiborFixing",
    "ShiborTable",
    "daily_income",
    "daily_income_fen",
    "load_shibor",
]

# Tenor names, in the order of the CSV columns.
TENORS = ("O/N", "1W", "2W", "1M", "3M", "6M", "9M", "1Y")
_COLUMNS = (
    "mfd_date",
    "Interest_O_N",
    "Interest_1_W",
    "Interest_2_W",
    "Interest_1_M",
    "Interest_3_M",
    "Interest_6_M",
    "Interest_9_M",
    "Interest_1_Y",
)
# The longest gap between two fixings in the data is the 2014 Spring Festival (9 days).
RATE_STALE_DAYS_MAX = 10
# Interest and fees accrue on 365 days a year, as in the 7-day yield formula (2013, 2014, 2025
# and 2026 are not leap years; a contract's "当年天数" would mean 366 in a leap year).
DAYS_PER_YEAR = 365
# Sanity bounds on a fixing (% a year): SHIBOR's record is 13.444% (overnight, 2013-06-20).
_RATE_PERCENT_MAX = Decimal(50)
# Total assets beyond 10^16 fen (10^14 yuan) are out of any fund's range (see income.py).
_ASSETS_FEN_MAX = 10**16
_PACKAGE_CSV = "shibor_2013_2014.csv"


class RateUnavailable(LookupError):
    """No SHIBOR fixing covers the requested day."""


@dataclass(frozen=True, slots=True)
class ShiborFixing:
    """One day's fixings, % a year per tenor."""

    day: date
    rates_percent: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class Blend:
    """Portfolio weights per tenor; non-negative and summing to exactly 1."""

    weights: Mapping[str, Decimal]

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(TENORS)
        if unknown:
            raise ValueError(f"unknown tenors {sorted(unknown)}; known: {TENORS}")
        if any(not isinstance(w, Decimal) or w < 0 for w in self.weights.values()):
            raise ValueError("weights must be non-negative Decimals")
        if sum(self.weights.values(), Decimal(0)) != 1:
            raise ValueError(f"weights sum to {sum(self.weights.values())}, not 1")
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))

    def gross_percent(self, fixing: ShiborFixing) -> Decimal:
        """The blended gross yield, % a year (exact: a weighted sum of 4-decimal rates)."""
        return sum(
            (weight * fixing.rates_percent[tenor] for tenor, weight in self.weights.items()),
            Decimal(0),
        )


@dataclass(frozen=True, slots=True)
class Fees:
    """Annual fees, % of assets a year, accrued daily."""

    management_percent: Decimal = Decimal("0.30")
    custody_percent: Decimal = Decimal("0.08")
    sales_service_percent: Decimal = Decimal("0.25")

    def __post_init__(self) -> None:
        for value in (self.management_percent, self.custody_percent, self.sales_service_percent):
            if not isinstance(value, Decimal) or not 0 <= value < 10:
                raise ValueError(f"fee {value!r} must be a Decimal percent in [0, 10)")


DEFAULT_BLEND = Blend({"1W": Decimal("0.2"), "1M": Decimal("0.5"), "3M": Decimal("0.3")})
DEFAULT_FEES = Fees()


@dataclass(frozen=True, slots=True)
class DailyIncome:
    """One calendar day's income, fen: net = gross - the three fees, exactly."""

    day: date
    fixing_day: date
    gross_fen: int
    management_fee_fen: int
    custody_fee_fen: int
    sales_service_fee_fen: int
    net_fen: int


@dataclass(frozen=True, slots=True)
class ShiborTable:
    """Fixings in date order; `fixing_on` finds the one in force on a calendar day."""

    fixings: tuple[ShiborFixing, ...]
    _days: tuple[date, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.fixings:
            raise ValueError("a rate table needs at least one fixing")
        days = tuple(fixing.day for fixing in self.fixings)
        if any(later <= earlier for earlier, later in itertools.pairwise(days)):
            raise ValueError("fixings must be in strictly increasing date order")
        object.__setattr__(self, "_days", days)

    @property
    def first_day(self) -> date:
        return self._days[0]

    @property
    def last_day(self) -> date:
        return self._days[-1]

    def fixing_on(self, day: date) -> ShiborFixing:
        """The fixing published on `day`, or else the last one before it (at most
        RATE_STALE_DAYS_MAX days old)."""
        index = bisect.bisect_right(self._days, day) - 1
        if index < 0:
            raise RateUnavailable(f"{day} is before the first fixing {self.first_day}")
        fixing = self.fixings[index]
        if (day - fixing.day).days > RATE_STALE_DAYS_MAX:
            raise RateUnavailable(
                f"{day}: the last fixing ({fixing.day}) is over {RATE_STALE_DAYS_MAX} days old"
            )
        return fixing


def load_shibor(path: str | Path | None = None) -> ShiborTable:
    """The SHIBOR fixings from `path`, or from the copy shipped in the package."""
    if path is None:
        text = resources.files("formicary.funds").joinpath("data", _PACKAGE_CSV).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader))
    if header != _COLUMNS:
        raise ValueError(f"unexpected SHIBOR columns {header}")
    fixings = []
    for row in reader:
        day = datetime.strptime(row[0], "%Y%m%d").date()
        rates = {tenor: Decimal(value) for tenor, value in zip(TENORS, row[1:], strict=True)}
        if any(not 0 < rate <= _RATE_PERCENT_MAX for rate in rates.values()):
            raise ValueError(f"{day}: a fixing outside (0, {_RATE_PERCENT_MAX}]%: {rates}")
        fixings.append(ShiborFixing(day, MappingProxyType(rates)))
    return ShiborTable(tuple(fixings))


def daily_income(
    total_assets_fen: int,
    day: date,
    rates: ShiborTable,
    blend: Blend = DEFAULT_BLEND,
    fees: Fees = DEFAULT_FEES,
) -> DailyIncome:
    """The fund's income for calendar day `day` on `total_assets_fen`, gross, fees and net."""
    total_assets_fen = operator.index(total_assets_fen)
    if not 0 <= total_assets_fen <= _ASSETS_FEN_MAX:
        raise ValueError(f"total assets {total_assets_fen} fen outside [0, {_ASSETS_FEN_MAX}]")
    fixing = rates.fixing_on(day)
    gross_fen = _accrue_fen(total_assets_fen, blend.gross_percent(fixing))
    management_fee_fen = _accrue_fen(total_assets_fen, fees.management_percent)
    custody_fee_fen = _accrue_fen(total_assets_fen, fees.custody_percent)
    sales_service_fee_fen = _accrue_fen(total_assets_fen, fees.sales_service_percent)
    return DailyIncome(
        day=day,
        fixing_day=fixing.day,
        gross_fen=gross_fen,
        management_fee_fen=management_fee_fen,
        custody_fee_fen=custody_fee_fen,
        sales_service_fee_fen=sales_service_fee_fen,
        net_fen=gross_fen - management_fee_fen - custody_fee_fen - sales_service_fee_fen,
    )


def daily_income_fen(
    total_assets_fen: int,
    day: date,
    rates: ShiborTable,
    blend: Blend = DEFAULT_BLEND,
    fees: Fees = DEFAULT_FEES,
) -> int:
    """The net income (fen) the manager posts for calendar day `day`: gross minus fees."""
    return daily_income(total_assets_fen, day, rates, blend, fees).net_fen


def _accrue_fen(assets_fen: int, annual_percent: Decimal) -> int:
    # Fraction keeps the product exact; round() on a Fraction rounds half to even.
    return round(Fraction(assets_fen) * Fraction(annual_percent) / (100 * DAYS_PER_YEAR))
