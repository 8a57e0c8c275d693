"""A small marketplace scenario from listing to maturity, for `formicary wealth simulate`.

Issuers are vetted (two are refused, each by its rule), three products list, reservations buy
at the openings first come first served, threads of buyers race for what remains, one product
launches and one fails to reach its minimum raise, and at maturity the issuers repay principal
plus interest to wallets or into the money-market fund. The books are checked at the end:
every ledger's debits equal its credits and the fund's cash equals its shares outstanding.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from formicary.ledger import Account, AccountFlags, LedgerService, Transfer, open_store
from formicary.wealth.errors import InsufficientFunds, IssuerRefused, NotOnSale, SoldOut
from formicary.wealth.funding import FundSource, Payout, WalletSource
from formicary.wealth.issuers import Issuer, IssuerKind
from formicary.wealth.market import Marketplace
from formicary.wealth.records import Notification, Product
from formicary.wealth.store import WealthStore
from formicary.wealth.terms import BEIJING, ProductTerms

__all__ = ["SimulationResult", "simulate"]

_MONEY = 156
_OUTSIDE = 1  # the world outside the platform: banks that fund wallets and issuers
_WALLET_BASE = 10_000
USERS_MAX = 1_000  # a demo, not a benchmark
_START = datetime(2026, 3, 2, 8, 0, tzinfo=BEIJING)  # a Monday inside the fund's calendar


@dataclass
class SimulationResult:
    events: list[str] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    notifications: Counter[str] = field(default_factory=Counter)
    # ledger -> (debits posted, credits posted, debits pending, credits pending)
    trial_balances: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    fund_books: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        books = all(dpo == cpo and dp == cp for dpo, cpo, dp, cp in self.trial_balances.values())
        return books and self.fund_books.get("difference_fen", 0) == 0


class _Clock:
    def __init__(self, when: datetime) -> None:
        self.ns = int(when.timestamp()) * 1_000_000_000

    def __call__(self) -> int:
        return self.ns

    def set(self, when: datetime) -> None:
        self.ns = int(when.timestamp()) * 1_000_000_000


def simulate(
    out_dir: Path,
    *,
    users: int = 40,
    seed: int = 1,
    threads: int = 4,
    say: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Run the scenario with its ledger and state files in `out_dir` (new or empty)."""
    from formicary.funds import FundStore, MoneyMarketFund

    if not 4 <= users <= USERS_MAX:
        raise ValueError(f"users must be 4..{USERS_MAX}")
    if not 1 <= threads <= 32:
        raise ValueError("threads must be 1..32")
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} is not empty: the simulation needs a fresh directory")
    result = SimulationResult()

    def note(line: str) -> None:
        result.events.append(line)
        if say is not None:
            say(line)

    rng = random.Random(seed)
    clock = _Clock(_START)
    ledger = LedgerService(open_store(f"sqlite:///{out_dir}/ledger.db"), clock_ns=clock)
    ledger.start()
    fund_store = FundStore(out_dir / "fund.db")
    store = WealthStore(out_dir / "wealth.db")
    try:
        fund = MoneyMarketFund(ledger, fund_store, clock_ns=clock)
        fund.start()
        market = Marketplace(ledger, store, fund=fund, clock_ns=clock)
        market.start()
        wallets = _open_wallets(ledger, users, rng)
        names = [f"user{n:03d}" for n in range(users)]
        for n in range(0, users, 2):  # half the users keep money in the fund too
            fund.subscribe(names[n], wallets[n], 5_000_000 + rng.randrange(20_000_000), "seed")
        note(f"{users} users with wallets; {len(range(0, users, 2))} of them hold fund shares")

        # --- issuers and vetting
        issuers = [
            Issuer(
                "bigbank", "Big Bank", IssuerKind.BANK, total_assets_fen=25_000_000_000_000
            ),  # 250bn yuan
            Issuer(
                "townbank", "Town Bank", IssuerKind.BANK, total_assets_fen=12_000_000_000_000
            ),  # 120bn yuan
            Issuer("cinda", "Cinda AMC", IssuerKind.ASSET_MANAGER, licensed=True),
            Issuer(
                "weakins",
                "Weak P&C",
                IssuerKind.PC_INSURER,
                solvency_ratio_pct=Decimal("120"),
            ),
            Issuer("trustco", "Trust Co", IssuerKind.OTHER),
        ]
        for issuer in issuers:
            verdict = market.register_issuer(issuer)
            note(
                f"issuer {issuer.issuer_id}: {'ok' if verdict.passed else 'refused'}"
                f" by {verdict.rule} ({verdict.reason})"
            )
        market.whitelist("trustco", "approved by the risk committee")
        note("trustco whitelisted")

        day = _START.date()
        window = {
            "sale_open": datetime(day.year, day.month, day.day, 9, 0, tzinfo=BEIJING),
            "sale_close": datetime(day.year, day.month, day.day, 9, 0, tzinfo=BEIJING)
            + timedelta(days=3),
        }
        offers = [
            ProductTerms(
                "BB90", "bigbank", "Big Bank 90-day", 90, 450, 80_000_000, 100_000, **window
            ),
            ProductTerms(
                "CD180",
                "cinda",
                "Cinda 180-day",
                180,
                520,
                2_000_000_000,
                100_000,
                min_raise_fen=1_500_000_000,
                **window,
            ),
            ProductTerms(
                "TC30", "trustco", "Trust Co 30-day", 30, 380, 30_000_000, 100_000, **window
            ),
            ProductTerms(
                "TB60", "townbank", "Town Bank 60-day", 60, 600, 10_000_000, 100_000, **window
            ),
            ProductTerms(
                "WI90", "weakins", "Weak P&C 90-day", 90, 500, 10_000_000, 100_000, **window
            ),
        ]

        # --- reservations, made before the products list
        reserved = 0
        for n in range(0, users, 3):
            from_fund = n % 2 == 0
            source = FundSource(fund, names[n]) if from_fund else WalletSource(wallets[n])
            market.reserve(
                names[n],
                "auto-1",
                term_min_days=60,
                term_max_days=200,
                min_yield_bp=400,
                amount_fen=rng.choice([2_000_000, 5_000_000, 8_000_000]),
                source=source,
                payout=Payout(wallets[n], into_fund=from_fund),
            )
            reserved += 1
            clock.ns += 1_000_000_000  # reservations are first come, first served
        note(f"{reserved} auto-reservations: 60-200 days, at least 4.00%")

        for offer in offers:
            try:
                product = market.list_product(offer)
            except IssuerRefused as error:
                note(f"listing {offer.product_id} refused: {error}")
                continue
            note(
                f"listed {product.product_id}: {offer.term_days} days at {offer.yield_bp} bp,"
                f" size {offer.size_fen / 100:,.2f} yuan"
            )

        # --- the sale opens: reservations first, then a race of buyers
        clock.set(window["sale_open"])
        for match in market.tick().matched:
            note(
                f"opening of {match.product_id}: reservations bought {len(match.filled)} lots,"
                f" {sum(f for _, f in match.filled) / 100:,.2f} yuan;"
                f" {match.remaining_fen / 100:,.2f} yuan left"
            )
        clock.set(window["sale_open"] + timedelta(hours=2))
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def buyer(worker: int) -> None:
            local = random.Random(seed * 1000 + worker)
            for k in range(10):
                n = local.randrange(users)
                pid = local.choice(["BB90", "CD180", "TC30"])
                amount = local.choice([100_000, 500_000, 2_000_000, 5_000_000])
                try:
                    market.purchase(
                        pid, names[n], amount, WalletSource(wallets[n]), f"w{worker}-{k}"
                    )
                    outcome = "bought"
                except SoldOut:
                    outcome = "sold out"
                except (InsufficientFunds, NotOnSale) as error:
                    outcome = type(error).__name__
                with lock:
                    outcomes[outcome] += 1

        pool = [threading.Thread(target=buyer, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        note(f"{threads} threads of buyers: {dict(outcomes)}")
        for pid in ("BB90", "CD180", "TC30"):
            note(f"{pid}: {market.remaining_fen(pid) / 100:,.2f} yuan unsold at the close")

        # --- the close
        clock.set(window["sale_close"] + timedelta(minutes=1))
        for closed in market.tick().closed:
            verdict = "launched" if closed.launched else "failed to launch"
            note(
                f"close of {closed.product_id}: {verdict}, raised"
                f" {closed.raised_fen / 100:,.2f} of a {closed.min_raise_fen / 100:,.2f} yuan"
                f" minimum; {closed.settled} purchases {'posted' if closed.launched else 'voided'}"
            )

        # --- maturity: the issuers fund their accounts first (interest on top of the raise)
        for n, issuer_id in enumerate(("bigbank", "cinda", "trustco")):
            account = market.issuer_account_id(issuer_id)
            _pay_in(ledger, account, 50_000_000, 9_000_000 + n)
        for product in sorted(market.products(), key=lambda p: p.terms.maturity_day()):
            if product.status != "launched":
                continue
            maturity = product.terms.maturity_day()
            clock.set(datetime(maturity.year, maturity.month, maturity.day, 10, 0, tzinfo=BEIJING))
            for report in market.tick().matured:
                note(
                    f"maturity of {report.product_id} on {maturity}: principal"
                    f" {report.principal_fen / 100:,.2f} + interest"
                    f" {report.interest_fen / 100:,.2f} yuan to {report.paid} purchases;"
                    f" {report.reinvested} reinvested in the fund"
                )

        result.products = market.products()
        result.notifications = Counter(n.kind for n in _all_notifications(market))
        ledgers = (_MONEY, market.config.quota_ledger, fund.config.share_ledger)
        for ledger_no in ledgers:
            dp, dpo, cp, cpo = ledger.trial_balance(ledger_no)
            result.trial_balances[ledger_no] = (dpo, cpo, dp, cp)
        result.fund_books = fund.reconcile()
        return result
    finally:
        store.close()
        fund_store.close()
        ledger.close()


def _open_wallets(ledger: LedgerService, users: int, rng: random.Random) -> list[int]:
    dmnec = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    wallets = [_WALLET_BASE + n for n in range(users)]
    accounts = [Account(id=_OUTSIDE, ledger=_MONEY, code=1)]
    accounts += [Account(id=w, ledger=_MONEY, code=2, flags=dmnec) for w in wallets]
    assert set(ledger.create_accounts(accounts)) <= {"ok", "exists"}
    for n, wallet in enumerate(wallets):
        _pay_in(ledger, wallet, 30_000_000 + rng.randrange(30_000_000), 1_000_000 + n)
    return wallets


def _pay_in(ledger: LedgerService, account: int, amount_fen: int, transfer_id: int) -> None:
    transfer = Transfer(
        id=transfer_id,
        debit_account_id=_OUTSIDE,
        credit_account_id=account,
        amount=amount_fen,
        ledger=_MONEY,
        code=1,
    )
    assert ledger.create_transfers([transfer])[0] in ("ok", "exists")


def _all_notifications(market: Marketplace) -> list[Notification]:
    seen: list[Notification] = []
    after = 0
    while page := market.notifications(after_seq=after, limit=1_000):
        seen.extend(page)
        after = page[-1].seq
    return seen
