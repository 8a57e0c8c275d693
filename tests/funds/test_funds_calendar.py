"""The trading calendar: holidays, the 15:00 cut-off, and the day shares start (and stop)
earning."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from formicary.funds import CN_EXCHANGE_HOLIDAYS, CalendarError, TradingCalendar, load_shibor

CAL = TradingCalendar()


def test_builtin_holidays_are_weekdays_of_their_year() -> None:
    # Exchanges never open on weekends, so a weekend "holiday" would be a data-entry slip.
    for year, days in CN_EXCHANGE_HOLIDAYS.items():
        for day in days:
            assert day.year == year and day.weekday() < 5, day


@pytest.mark.parametrize(("year", "trading_days"), [(2013, 238), (2014, 245), (2025, 243)])
def test_trading_day_counts_match_the_exchanges(year: int, trading_days: int) -> None:
    # The published A-share trading-day counts of those years.
    assert len(CAL.trading_days(date(year, 1, 1), date(year + 1, 1, 1))) == trading_days


def test_2026_count_follows_the_state_council_notice() -> None:
    # 261 weekdays minus 19 closed weekdays (New Year 2, Spring Festival 6, Qingming 1,
    # Labour Day 3, Dragon Boat 1, Mid-Autumn 1, National Day 5).
    assert len(CAL.trading_days(date(2026, 1, 1), date(2027, 1, 1))) == 242


def test_weekdays_match_the_days_shibor_was_fixed() -> None:
    # SHIBOR is fixed on interbank working days: every weekday on which the exchanges trade,
    # plus make-up weekends (which the exchanges do not open). So on weekdays the two agree.
    table = load_shibor()
    fixed = {fixing.day for fixing in table.fixings}
    day = table.first_day
    while day <= table.last_day:
        if day.weekday() < 5:
            assert CAL.is_trading_day(day) == (day in fixed), day
        else:
            assert not CAL.is_trading_day(day)
        day += timedelta(days=1)
    assert date(2013, 10, 12) in fixed  # a make-up Saturday: a working day, not a trading day
    assert not CAL.is_trading_day(date(2013, 10, 12))


def test_cut_off_is_15_00_beijing_time() -> None:
    monday = date(2025, 6, 9)
    assert CAL.confirmation_day(datetime(2025, 6, 9, 14, 59, 59)) == monday
    assert CAL.confirmation_day(datetime(2025, 6, 9, 14, 59, 59, 999_999)) == monday
    assert CAL.confirmation_day(datetime(2025, 6, 9, 15, 0, 0)) == date(2025, 6, 10)
    assert CAL.confirmation_day(datetime(2025, 6, 9, 0, 0, 0)) == monday
    assert CAL.confirmation_day(datetime(2025, 6, 9, 23, 59, 59)) == date(2025, 6, 10)


def test_aware_times_are_converted_to_beijing() -> None:
    # 06:59:59 UTC is 14:59:59 in Beijing; 07:00 UTC is the cut-off.
    assert CAL.confirmation_day(datetime(2025, 6, 9, 6, 59, 59, tzinfo=UTC)) == date(2025, 6, 9)
    assert CAL.confirmation_day(datetime(2025, 6, 9, 7, 0, tzinfo=UTC)) == date(2025, 6, 10)
    # 20:00 UTC on Sunday is 04:00 Monday in Beijing: a Monday order before the cut-off.
    assert CAL.confirmation_day(datetime(2025, 6, 8, 20, 0, tzinfo=UTC)) == date(2025, 6, 9)


def test_friday_after_cut_off_and_weekends_belong_to_monday() -> None:
    friday, monday, tuesday = date(2025, 6, 6), date(2025, 6, 9), date(2025, 6, 10)
    assert CAL.confirmation_day(datetime(2025, 6, 6, 14, 0)) == friday
    assert CAL.confirmation_day(datetime(2025, 6, 6, 15, 0)) == monday
    assert CAL.confirmation_day(datetime(2025, 6, 7, 10, 0)) == monday
    assert CAL.confirmation_day(datetime(2025, 6, 8, 10, 0)) == monday
    # Friday's subscription earns from Monday: no weekend income on Friday money.
    assert CAL.earning_start_day(friday) == monday
    # Monday's (after the cut-off on Friday) earns from Tuesday.
    assert CAL.earning_start_day(monday) == tuesday
    # Friday's redemption still earns Saturday and Sunday, stopping on Monday.
    assert CAL.earning_stop_day(friday) == monday


def test_holiday_eve() -> None:
    # National Day 2025: closed Oct 1-8 (Wed-Wed), so Sep 30 is the holiday eve.
    eve, reopen = date(2025, 9, 30), date(2025, 10, 9)
    assert CAL.confirmation_day(datetime(2025, 9, 30, 14, 59, 59)) == eve
    assert CAL.earning_start_day(eve) == reopen  # no holiday income on holiday-eve money
    assert CAL.earning_stop_day(eve) == reopen  # shares redeemed on the eve earn the holiday
    after_cut_off = CAL.confirmation_day(datetime(2025, 9, 30, 15, 0))
    assert after_cut_off == reopen
    assert CAL.earning_start_day(after_cut_off) == date(2025, 10, 10)
    assert CAL.confirmation_day(datetime(2025, 10, 4, 9, 0)) == reopen  # a holiday Saturday
    assert CAL.confirmation_day(datetime(2025, 10, 8, 9, 0)) == reopen  # a holiday weekday


def test_dragon_boat_monday() -> None:
    # 2025-06-02 (Monday) was closed: Friday after the cut-off goes to Tuesday.
    assert CAL.confirmation_day(datetime(2025, 5, 30, 15, 30)) == date(2025, 6, 3)


def test_next_and_previous_across_spring_festival_2026() -> None:
    # Closed Feb 16-20 and 23; Feb 14 is a make-up Saturday, which the exchanges do not open.
    assert CAL.next_trading_day(date(2026, 2, 13)) == date(2026, 2, 24)
    assert CAL.previous_trading_day(date(2026, 2, 24)) == date(2026, 2, 13)
    assert not CAL.is_trading_day(date(2026, 2, 14))
    assert CAL.next_trading_day(date(2026, 2, 24)) == date(2026, 2, 25)


def test_earning_days_need_a_trading_day() -> None:
    with pytest.raises(CalendarError):
        CAL.earning_start_day(date(2025, 6, 7))
    with pytest.raises(CalendarError):
        CAL.earning_stop_day(date(2025, 10, 1))


def test_uncovered_years_are_refused_unless_lenient() -> None:
    with pytest.raises(CalendarError):
        CAL.is_trading_day(date(2024, 5, 1))
    with pytest.raises(CalendarError):
        CAL.next_trading_day(date(2026, 12, 31))  # walks into 2027
    lenient = TradingCalendar(strict=False)
    assert lenient.is_trading_day(date(2024, 5, 1))  # a holiday the calendar does not know
    assert not lenient.is_trading_day(date(2024, 5, 4))  # but a Saturday is still closed


def test_extra_holidays_and_own_years() -> None:
    typhoon = date(2025, 7, 21)
    calendar = TradingCalendar(extra_holidays=[typhoon])
    assert CAL.is_trading_day(typhoon) and not calendar.is_trading_day(typhoon)
    assert calendar.next_trading_day(date(2025, 7, 18)) == date(2025, 7, 22)
    with pytest.raises(CalendarError):
        TradingCalendar(extra_holidays=[date(2024, 10, 1)])
    with pytest.raises(CalendarError):
        TradingCalendar({2024: [date(2025, 1, 1)]})
    own = TradingCalendar({**CN_EXCHANGE_HOLIDAYS, 2024: [date(2024, 10, 1)]})
    assert not own.is_trading_day(date(2024, 10, 1)) and own.is_trading_day(date(2024, 10, 8))
    assert 2024 in own.years


def test_a_datetime_is_not_a_day() -> None:
    with pytest.raises(TypeError):
        CAL.is_trading_day(datetime(2025, 6, 9, 16, 0))
