"""The trading calendar of a mainland-China money-market fund, and when shares start earning.

Trading days are weekdays on which the Shanghai and Shenzhen exchanges open. The exchanges
close on the State Council's public holidays and never open on a weekend, not even on the
weekend days the State Council declares working days (调休 make-up days), so the holiday set
below lists only the closed *weekdays*.

The income rule (the one fund contracts and the CSRC apply to money-market funds, and the one
Yu'e Bao applies):

- Orders are accepted until 15:00 Beijing time on a trading day T; a later order, or one on a
  non-trading day, belongs to the next trading day (`confirmation_day`).
- Shares subscribed on T earn from the next *trading* day after T (`earning_start_day`), and
  shares redeemed on T keep earning until, not including, the next trading day after T
  (`earning_stop_day`): "当日申购的基金份额自下一个工作日起享有基金的分配权益，当日赎回的
  基金份额自下一个工作日起不享有基金的分配权益". So a Friday order earns from Monday, and a
  Friday redemption still earns Saturday and Sunday. We chose this over "T+1 calendar day"
  because the calendar-day rule lets money bought on Friday collect the weekend's income and
  leave on Monday (the holiday arbitrage the real rule exists to stop), and because with this
  pairing the set of earning shares changes only on trading days: between two trading days the
  share register moves only by reinvested income.
- Income accrues on every calendar day, weekends and holidays included (a fund's deposits and
  bills earn interest every night). The manager posts one income figure per calendar day, and
  each day's income is allocated and reinvested as shares on its own, so weekend income
  compounds day by day exactly as on weekdays (Yu'e Bao shows an income line every day).
  A service that only runs on trading days processes the calendar days it missed in order.

The built-in holiday lists cover 2013 and 2014 (the period of the SHIBOR data set) and 2025
and 2026. A date in any other year is refused (`CalendarError`) rather than silently treated
as a weekday: pass that year's holidays, or `strict=False` to accept weekends-only there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from types import MappingProxyType

__all__ = [
    "BEIJING",
    "CN_EXCHANGE_HOLIDAYS",
    "CUTOFF",
    "CalendarError",
    "TradingCalendar",
]

# China has kept UTC+8 without daylight saving since 1991: a fixed offset needs no tz database.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
# Orders accepted strictly before this time of a trading day belong to that day.
CUTOFF = time(15, 0)
# The longest run of consecutive closed days is the Spring Festival week plus its weekends
# (9 days in 2026); a search that walks further means the holiday data is wrong.
_CLOSED_RUN_DAYS_MAX = 15


def _days(year: int, month: int, *days: int) -> list[date]:
    return [date(year, month, day) for day in days]


# Weekdays on which the exchanges close, from the State Council's holiday notices.
# The 2013-07 .. 2014-08 part is cross-checked against the SHIBOR data set in the tests.
CN_EXCHANGE_HOLIDAYS: Mapping[int, frozenset[date]] = MappingProxyType(
    {
        2013: frozenset(
            _days(2013, 1, 1, 2, 3)  # New Year
            + _days(2013, 2, 11, 12, 13, 14, 15)  # Spring Festival (Feb 9-15)
            + _days(2013, 4, 4, 5)  # Qingming (Apr 4-6)
            + _days(2013, 4, 29, 30)  # Labour Day (Apr 29 - May 1)
            + _days(2013, 5, 1)
            + _days(2013, 6, 10, 11, 12)  # Dragon Boat
            + _days(2013, 9, 19, 20)  # Mid-Autumn (Sep 19-21)
            + _days(2013, 10, 1, 2, 3, 4, 7)  # National Day (Oct 1-7)
        ),
        2014: frozenset(
            _days(2014, 1, 1)  # New Year
            + _days(2014, 1, 31)  # Spring Festival (Jan 31 - Feb 6)
            + _days(2014, 2, 3, 4, 5, 6)
            + _days(2014, 4, 7)  # Qingming (Apr 5-7)
            + _days(2014, 5, 1, 2)  # Labour Day (May 1-3)
            + _days(2014, 6, 2)  # Dragon Boat (May 31 - Jun 2)
            + _days(2014, 9, 8)  # Mid-Autumn (Sep 6-8)
            + _days(2014, 10, 1, 2, 3, 6, 7)  # National Day (Oct 1-7)
        ),
        2025: frozenset(
            _days(2025, 1, 1)  # New Year
            + _days(2025, 1, 28, 29, 30, 31)  # Spring Festival (Jan 28 - Feb 4)
            + _days(2025, 2, 3, 4)
            + _days(2025, 4, 4)  # Qingming (Apr 4-6)
            + _days(2025, 5, 1, 2, 5)  # Labour Day (May 1-5)
            + _days(2025, 6, 2)  # Dragon Boat (May 31 - Jun 2)
            + _days(2025, 10, 1, 2, 3, 6, 7, 8)  # National Day and Mid-Autumn (Oct 1-8)
        ),
        2026: frozenset(
            _days(2026, 1, 1, 2)  # New Year (Jan 1-3)
            + _days(2026, 2, 16, 17, 18, 19, 20, 23)  # Spring Festival (Feb 15-23)
            + _days(2026, 4, 6)  # Qingming (Apr 4-6)
            + _days(2026, 5, 1, 4, 5)  # Labour Day (May 1-5)
            + _days(2026, 6, 19)  # Dragon Boat (Jun 19-21)
            + _days(2026, 9, 25)  # Mid-Autumn (Sep 25-27)
            + _days(2026, 10, 1, 2, 5, 6, 7)  # National Day (Oct 1-7)
        ),
    }
)


class CalendarError(ValueError):
    """A date outside the years the calendar knows, or holiday data that contradicts itself."""


class TradingCalendar:
    """Weekends plus a holiday set per year; answers which days trade and when shares earn.

    `holidays_by_year` maps each covered year to its closed weekdays (default: the built-in
    mainland-China exchange holidays); `extra_holidays` adds closures (e.g. an unscheduled
    market closure) inside covered years. With `strict` (the default) a date in a year that is
    not covered raises `CalendarError`; with `strict=False` such a year has weekends only.
    """

    __slots__ = ("_holidays", "_strict", "_years")

    def __init__(
        self,
        holidays_by_year: Mapping[int, Iterable[date]] = CN_EXCHANGE_HOLIDAYS,
        *,
        extra_holidays: Iterable[date] = (),
        strict: bool = True,
    ) -> None:
        holidays: set[date] = set()
        for year, days in holidays_by_year.items():
            for day in days:
                if day.year != year:
                    raise CalendarError(f"holiday {day} listed under year {year}")
                holidays.add(day)
        self._years = frozenset(holidays_by_year)
        for day in extra_holidays:
            if strict and day.year not in self._years:
                raise CalendarError(f"extra holiday {day} is in a year the calendar does not cover")
            holidays.add(day)
        self._holidays = frozenset(holidays)
        self._strict = strict

    @property
    def years(self) -> frozenset[int]:
        """The years whose holidays the calendar knows."""
        return self._years

    def is_trading_day(self, day: date) -> bool:
        """True on a weekday that is not an exchange holiday."""
        if isinstance(day, datetime):
            # A datetime is a date subclass; silently dropping its time hides cut-off bugs.
            raise TypeError("is_trading_day takes a date; use confirmation_day for a datetime")
        if self._strict and day.year not in self._years:
            raise CalendarError(
                f"{day} is in {day.year}, outside the calendar's years {sorted(self._years)}"
            )
        return day.weekday() < 5 and day not in self._holidays

    def next_trading_day(self, day: date) -> date:
        """The first trading day strictly after `day`."""
        return self._walk(day, timedelta(days=1))

    def previous_trading_day(self, day: date) -> date:
        """The last trading day strictly before `day`."""
        return self._walk(day, timedelta(days=-1))

    def confirmation_day(self, order_time: datetime) -> date:
        """The trading day T an order belongs to: its own day if that trades and the order came
        before 15:00 Beijing time, else the next trading day. A naive datetime is taken as
        Beijing time; an aware one is converted."""
        if order_time.tzinfo is not None:
            order_time = order_time.astimezone(BEIJING)
        day = order_time.date()
        if order_time.time() < CUTOFF and self.is_trading_day(day):
            return day
        return self.next_trading_day(day)

    def earning_start_day(self, confirmation_day: date) -> date:
        """The first calendar day on which shares subscribed on trading day T earn income:
        the next trading day after T."""
        self._require_trading_day(confirmation_day)
        return self.next_trading_day(confirmation_day)

    def earning_stop_day(self, confirmation_day: date) -> date:
        """The first calendar day on which shares redeemed on trading day T no longer earn:
        the next trading day after T (they earn T and any non-trading days after it)."""
        self._require_trading_day(confirmation_day)
        return self.next_trading_day(confirmation_day)

    def trading_days(self, start: date, end: date) -> list[date]:
        """The trading days in [start, end)."""
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        days: list[date] = []
        day = start
        while day < end:
            if self.is_trading_day(day):
                days.append(day)
            day += timedelta(days=1)
        return days

    def _require_trading_day(self, day: date) -> None:
        if not self.is_trading_day(day):
            raise CalendarError(f"{day} is not a trading day, so nothing is confirmed on it")

    def _walk(self, day: date, step: timedelta) -> date:
        candidate = day
        for _ in range(_CLOSED_RUN_DAYS_MAX):
            candidate += step
            if self.is_trading_day(candidate):
                return candidate
        raise CalendarError(f"no trading day within {_CLOSED_RUN_DAYS_MAX} days of {day}")
