"""A fund on a real ledger service for the tests: a hand-moved clock, funded wallets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from formicary.funds.calendar import BEIJING
from formicary.funds.daily import DailyRun
from formicary.funds.fund import FundConfig, MoneyMarketFund
from formicary.funds.store import FundStore
from formicary.ledger import Account, AccountFlags, LedgerService, Transfer, open_store

BANK = 1  # where wallets are funded from
WALLET_BASE = 1000
MONEY = 156
NS_PER_DAY = 86_400 * 10**9


class Clock:
    """Wall clock in ns, moved by the test."""

    def __init__(self, when: datetime) -> None:
        self.ns = int(when.timestamp() * 1e9)

    def __call__(self) -> int:
        return self.ns

    def set(self, when: datetime) -> None:
        self.ns = int(when.timestamp() * 1e9)


def beijing(*args: int) -> datetime:
    return datetime(*args, tzinfo=BEIJING)  # type: ignore[misc]


@dataclass
class FundWorld:
    ledger: LedgerService
    fund: MoneyMarketFund
    run: DailyRun
    clock: Clock
    path: Path

    def wallet(self, n: int) -> int:
        return WALLET_BASE + n

    def wallet_balance(self, n: int) -> int:
        (a,) = self.ledger.lookup_accounts([self.wallet(n)])
        return a.credits_posted - a.debits_posted


def open_world(
    path: Path,
    clock: Clock,
    *,
    wallets: int = 4,
    wallet_fen: int = 100_000_000,
    config: FundConfig | None = None,
    database_url: str = "",
    chunk_holders: int = 3,
) -> FundWorld:
    """The fund's files live in `path`; the ledger too, unless `database_url` names one."""
    url = database_url or f"sqlite:///{path}/ledger.db"
    ledger = LedgerService(open_store(url), clock_ns=clock)
    ledger.start()
    if wallets:
        dmnec = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        accounts = [Account(id=BANK, ledger=MONEY, code=1)]
        accounts += [
            Account(id=WALLET_BASE + n, ledger=MONEY, code=2, flags=dmnec) for n in range(wallets)
        ]
        assert set(ledger.create_accounts(accounts)) <= {"ok", "exists"}
        funding = [
            Transfer(
                id=10**6 + n,
                debit_account_id=BANK,
                credit_account_id=WALLET_BASE + n,
                amount=wallet_fen,
                ledger=MONEY,
                code=1,
            )
            for n in range(wallets)
        ]
        assert set(ledger.create_transfers(funding)) <= {"ok", "exists"}
    store = FundStore(path / "fund.db")
    fund = MoneyMarketFund(ledger, store, config, clock_ns=clock)
    fund.start()
    run = DailyRun(fund, path / "plans", chunk_holders=chunk_holders)
    return FundWorld(ledger, fund, run, clock, path)


@contextmanager
def world(path: Path, when: datetime, **kw: object) -> Iterator[FundWorld]:
    w = open_world(path, Clock(when), **kw)  # type: ignore[arg-type]
    try:
        yield w
    finally:
        w.fund.store.close()
        w.ledger.close()
