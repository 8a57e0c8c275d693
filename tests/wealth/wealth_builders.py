"""A marketplace on a real ledger service for the tests: a hand-moved clock, funded wallets,
vetted issuers, and an optional money-market fund."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from formicary.funds import BEIJING, FundConfig, FundStore, MoneyMarketFund
from formicary.ledger import Account, AccountFlags, LedgerService, Transfer, open_store
from formicary.wealth import (
    Issuer,
    IssuerKind,
    MarketConfig,
    Marketplace,
    ProductTerms,
    WealthStore,
)

BANK = 1  # the outside world: wallets and issuers are funded from it
WALLET_BASE = 1000
MONEY = 156
QUOTA = 900_101
SHARES = 900_001
# Monday 2 March 2026, 10:00 Beijing time: inside the fund calendar's covered years.
MONDAY_10AM = datetime(2026, 3, 2, 10, 0, tzinfo=BEIJING)

BIG_BANK = Issuer(
    "icbc", "Big Bank", IssuerKind.BANK, total_assets_fen=30_000_000_000_000
)  # 300 billion yuan
SMALL_BANK = Issuer("town-bank", "Town Bank", IssuerKind.BANK, total_assets_fen=2 * 10**13)
AMC = Issuer("huarong", "Huarong AMC", IssuerKind.ASSET_MANAGER, licensed=True)
INSURER = Issuer(
    "pingan-pc", "Ping An P&C", IssuerKind.PC_INSURER, solvency_ratio_pct=Decimal("210.5")
)


class Clock:
    """Wall clock in ns, moved by the test."""

    def __init__(self, when: datetime) -> None:
        self.ns = _ns(when)

    def __call__(self) -> int:
        return self.ns

    def set(self, when: datetime) -> None:
        self.ns = _ns(when)

    def advance(self, **delta: float) -> None:
        self.ns += int(timedelta(**delta).total_seconds() * 1e9)


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def beijing(*args: int) -> datetime:
    return datetime(*args, tzinfo=BEIJING)  # type: ignore[misc]


@dataclass
class MarketWorld:
    ledger: LedgerService
    market: Marketplace
    fund: MoneyMarketFund | None
    clock: Clock
    path: Path

    def wallet(self, n: int) -> int:
        return WALLET_BASE + n

    def balance(self, account_id: int) -> int:
        (a,) = self.ledger.lookup_accounts([account_id])
        return a.credits_posted - a.debits_posted

    def available(self, account_id: int) -> int:
        (a,) = self.ledger.lookup_accounts([account_id])
        return a.credits_posted - a.debits_posted - a.debits_pending

    def wallet_balance(self, n: int) -> int:
        return self.balance(self.wallet(n))

    def fund_account(self, account_id: int, amount_fen: int, transfer_id: int) -> None:
        """Money from the outside world (BANK) into an account, e.g. an issuer's."""
        result = self.ledger.create_transfers(
            [
                Transfer(
                    id=transfer_id,
                    debit_account_id=BANK,
                    credit_account_id=account_id,
                    amount=amount_fen,
                    ledger=MONEY,
                    code=1,
                )
            ]
        )
        assert result[0] in ("ok", "exists"), result

    def trial_balances_hold(self) -> bool:
        for ledger in (MONEY, QUOTA, SHARES):
            dp, dpo, cp, cpo = self.ledger.trial_balance(ledger)
            if (dp, dpo) != (cp, cpo):
                return False
        return True


def open_world(
    path: Path,
    clock: Clock,
    *,
    wallets: int = 4,
    wallet_fen: int = 100_000_000,
    with_fund: bool = False,
    fund_config: FundConfig | None = None,
    config: MarketConfig | None = None,
    issuers: tuple[Issuer, ...] = (BIG_BANK, AMC, INSURER),
) -> MarketWorld:
    """The ledger, the marketplace's (and the fund's) files live in `path`."""
    ledger = LedgerService(open_store(f"sqlite:///{path}/ledger.db"), clock_ns=clock)
    ledger.start()
    dmnec = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    accounts = [Account(id=BANK, ledger=MONEY, code=1)]
    accounts += [
        Account(id=WALLET_BASE + n, ledger=MONEY, code=2, flags=dmnec) for n in range(wallets)
    ]
    assert set(ledger.create_accounts(accounts)) <= {"ok", "exists"}
    if wallets:
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
    fund = None
    if with_fund:
        fund = MoneyMarketFund(ledger, FundStore(path / "fund.db"), fund_config, clock_ns=clock)
        fund.start()
    market = Marketplace(ledger, WealthStore(path / "wealth.db"), config, fund=fund, clock_ns=clock)
    market.start()
    for issuer in issuers:
        market.register_issuer(issuer)
    return MarketWorld(ledger, market, fund, clock, path)


def close_world(w: MarketWorld) -> None:
    w.market.store.close()
    if w.fund is not None:
        w.fund.store.close()
    w.ledger.close()


@contextmanager
def world(path: Path, when: datetime = MONDAY_10AM, **kw: Any) -> Iterator[MarketWorld]:
    w = open_world(path, Clock(when), **kw)
    try:
        yield w
    finally:
        close_world(w)


def terms(product_id: str = "p1", **overrides: Any) -> ProductTerms:
    """A 90-day, 4.50 % product of 1,000,000 yuan by the big bank, on sale Monday 2 March
    2026 09:00 to Thursday 5 March 09:00 (value date 6 March, maturity 4 June 2026)."""
    base = ProductTerms(
        product_id=product_id,
        issuer_id="icbc",
        name=f"Fixed {product_id}",
        term_days=90,
        yield_bp=450,
        size_fen=100_000_000,
        min_purchase_fen=100_000,  # 1,000 yuan
        sale_open=beijing(2026, 3, 2, 9, 0),
        sale_close=beijing(2026, 3, 5, 9, 0),
    )
    return msgspec.structs.replace(base, **overrides)


def fund_of(w: MarketWorld) -> MoneyMarketFund:
    """The world's money-market fund (a world made with one)."""
    assert w.fund is not None
    return w.fund


def subscribe_holders(w: MarketWorld, users: list[str], fen: int) -> None:
    """Each user subscribes `fen` to the fund from wallet n (its place in `users`)."""
    for n, user in enumerate(users):
        fund_of(w).subscribe(user, w.wallet(n), fen, f"sub-{user}")


def fund_books_hold(w: MarketWorld, users: list[str]) -> None:
    """Each holder's fund shares are its ledger balance, nothing is left pending, the holders'
    shares add up to the shares outstanding, which equal the cash in custody, and every
    ledger's debits equal its credits."""
    fund = fund_of(w)
    total = 0
    for user in users:
        (account,) = w.ledger.lookup_accounts([fund.holder_account(user)])
        assert account.debits_pending == account.credits_pending == 0
        assert fund.shares(user) == account.credits_posted - account.debits_posted
        total += fund.shares(user)
    books = fund.reconcile()
    assert books["difference_fen"] == 0
    assert books["shares_outstanding"] == total + books["rounding_shares"]
    assert w.trial_balances_hold()
