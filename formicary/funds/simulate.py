"""A month (or more) of a money-market fund, driven through the real ledger in simulated time.

Holders open wallets and subscribe on the first day; every trading day some subscribe more, some
redeem instantly, some redeem the standard way (paid the next trading day). Every calendar day
the manager posts the income a SHIBOR-based portfolio earned on the fund's assets that day
(`rates.daily_income_fen`, real 2013-2014 interbank rates), and the daily run pays it to every
holder. Time is simulated: the clock jumps from event to event, nothing sleeps. The books are
reconciled after every day.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from formicary.funds.calendar import BEIJING, TradingCalendar
from formicary.funds.daily import DailyRun
from formicary.funds.fund import FundError, MoneyMarketFund
from formicary.funds.rates import daily_income_fen, load_shibor
from formicary.funds.store import DayRecord, FundStore
from formicary.ledger import Account, AccountFlags, LedgerService, Transfer, open_store

__all__ = ["SimulationResult", "simulate"]

_BANK = 1
_WALLET_BASE = 1_000_000
_MONEY = 156
_HOLDERS_MAX = 1_000_000
_DAYS_MAX = 400


@dataclass(frozen=True, slots=True)
class SimulationResult:
    days: list[DayRecord]
    orders: dict[str, int]
    books: dict[str, int]


class _Clock:
    def __init__(self) -> None:
        self.ns = 0

    def at(self, day: date, hour: int, minute: int = 0) -> None:
        when = datetime(day.year, day.month, day.day, hour, minute, tzinfo=BEIJING)
        self.ns = max(self.ns + 1, int(when.timestamp() * 1e9))

    def __call__(self) -> int:
        return self.ns


def simulate(
    out_dir: Path,
    *,
    holders: int,
    days: int,
    start: date,
    seed: int = 1,
    progress: Callable[[int, DayRecord], None] = lambda n, record: None,
) -> SimulationResult:
    """Run the simulation in `out_dir` (created; it must not hold a previous run)."""
    if not 0 < holders <= _HOLDERS_MAX or not 0 < days <= _DAYS_MAX:
        raise ValueError(f"holders must be 1..{_HOLDERS_MAX} and days 1..{_DAYS_MAX}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} is not empty: choose a new directory for the simulation")
    rates = load_shibor()
    calendar = TradingCalendar()
    rnd = random.Random(seed)
    clock = _Clock()
    clock.at(start, 9)
    ledger = LedgerService(open_store(f"sqlite:///{out_dir}/ledger.db"), clock_ns=clock)
    ledger.start()
    store = FundStore(out_dir / "fund.db")
    orders = {"subscribe": 0, "redeem_instant": 0, "redeem_standard": 0, "refused": 0}
    try:
        fund = MoneyMarketFund(ledger, store, calendar=calendar, clock_ns=clock)
        fund.start()
        _open_wallets(ledger, holders, rnd)
        run = DailyRun(fund, out_dir / "plans")
        users = [f"user-{n}" for n in range(holders)]
        for n, user in enumerate(users):  # everyone buys on day one
            fund.subscribe(user, _WALLET_BASE + n, rnd.randrange(100, 5_000_000), "open")
        orders["subscribe"] += holders
        first_income_day = calendar.earning_start_day(calendar.confirmation_day(fund.now()))
        posted: list[DayRecord] = []
        day = start
        for _ in range(days):
            if calendar.is_trading_day(day) and day != start:
                clock.at(day, 10)
                _trade(fund, users, rnd, orders)
            clock.at(day + timedelta(days=1), 1)
            fund.pay_standard_redemptions(day + timedelta(days=1))
            if day >= first_income_day:
                assets = fund.reconcile()["custody_cash_fen"]
                record = run.run(day, daily_income_fen(assets, day, rates))
                books = fund.reconcile()
                if books["difference_fen"] != 0:
                    raise FundError(f"books do not balance after {day}: {books}")
                posted.append(record)
                progress(len(posted), record)
            day += timedelta(days=1)
        return SimulationResult(days=posted, orders=orders, books=fund.reconcile())
    finally:
        store.close()
        ledger.close()


def _open_wallets(ledger: LedgerService, holders: int, rnd: random.Random) -> None:
    dmnec = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    ledger.create_accounts([Account(id=_BANK, ledger=_MONEY, code=1)])
    for start in range(0, holders, 8190):
        stop = min(holders, start + 8190)
        wallets = [
            Account(id=_WALLET_BASE + n, ledger=_MONEY, code=2, flags=dmnec)
            for n in range(start, stop)
        ]
        assert set(ledger.create_accounts(wallets)) == {"ok"}
        topups = [
            Transfer(
                id=_WALLET_BASE + n,
                debit_account_id=_BANK,
                credit_account_id=_WALLET_BASE + n,
                amount=rnd.randrange(10_000_000, 50_000_000),  # 100k-500k yuan
                ledger=_MONEY,
                code=1,
            )
            for n in range(start, stop)
        ]
        assert set(ledger.create_transfers(topups)) == {"ok"}


def _trade(
    fund: MoneyMarketFund, users: list[str], rnd: random.Random, orders: dict[str, int]
) -> None:
    """One trading day's orders: ~3% subscribe, ~2% redeem instantly, ~0.5% the standard way."""
    for n, user in enumerate(users):
        roll = rnd.random()
        request = f"{fund.now().date()}-{n}"
        try:
            if roll < 0.03:
                fund.subscribe(user, _WALLET_BASE + n, rnd.randrange(100, 2_000_000), request)
                orders["subscribe"] += 1
            elif roll < 0.05:
                amount = max(1, fund.shares(user) // rnd.randrange(2, 10))
                fund.redeem(user, _WALLET_BASE + n, amount, request)
                orders["redeem_instant"] += 1
            elif roll < 0.055:
                amount = max(1, fund.shares(user) // 2)
                fund.redeem(user, _WALLET_BASE + n, amount, request, instant=False)
                orders["redeem_standard"] += 1
        except FundError:
            orders["refused"] += 1  # over a limit or out of money: the fund said why
