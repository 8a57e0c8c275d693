"""Test helpers: a manual clock, valid card numbers, and a `World` that makes funded parties
and reads balances straight from the ledger."""

from __future__ import annotations

import itertools
import threading
from datetime import date

from formicary.ledger import LedgerService
from formicary.payments import (
    CNY,
    Card,
    FakeBank,
    IdentityLevel,
    Merchant,
    Order,
    Payments,
    User,
    cutoff_ns,
)
from formicary.payments.parties import luhn_ok

SECRET = b"formicary-test-secret-0123456789abcdef"
DAY_T = date(2025, 11, 11)
# 10:00 China Standard Time on Double 11.
T0_NS = cutoff_ns(date(2025, 11, 10)) + 10 * 3600 * 1_000_000_000
NS_PER_S = 1_000_000_000


class ManualClock:
    """A clock that moves only when told (shared by the ledger and payments)."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns
        self._lock = threading.Lock()

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now_ns += int(seconds * NS_PER_S)


def card_number(n: int, prefix: str = "622202") -> str:
    """A Luhn-valid 19-digit card number, distinct for each n."""
    body = f"{prefix}{n:012d}"
    return next(body + str(d) for d in range(10) if luhn_ok(body + str(d)))


class World:
    """Parties and readings for a test."""

    def __init__(
        self, payments: Payments, ledger: LedgerService, bank: FakeBank, clock: ManualClock
    ) -> None:
        self.payments = payments
        self.ledger = ledger
        self.bank = bank
        self.clock = clock
        self._numbers = itertools.count(1)

    def user(
        self,
        balance_fen: int = 0,
        *,
        bank_code: str = "ICBC",
        level: IdentityLevel = IdentityLevel.FULL,
    ) -> tuple[User, Card]:
        """A user with a bound card and `balance_fen` topped up into the wallet."""
        n = next(self._numbers)
        user = self.payments.parties.register_user(f"user-{n}", level)
        card = self.payments.parties.bind_card(user.id, bank_code, card_number(n))
        if balance_fen:
            self.payments.parties.top_up(user.id, card.id, balance_fen, request_id=f"seed-{n}")
        return user, card

    def merchant(self, plan: str = "online", *, bank_code: str = "CMB") -> Merchant:
        n = next(self._numbers)
        return self.payments.parties.register_merchant(
            f"merchant-{n}",
            category="5411",
            fee_plan=plan,
            settlement_bank_code=bank_code,
            settlement_account_number=f"621483{n:010d}",
        )

    def order(self, merchant: Merchant, amount_fen: int) -> Order:
        n = next(self._numbers)
        return self.payments.cashier.create_order(
            merchant.id, amount_fen, merchant_order_no=f"order-{n}"
        )

    def posted(self, account_id: int) -> int:
        """Posted credits minus posted debits (pending excluded), from the ledger."""
        found = self.ledger.lookup_accounts([account_id])
        if not found:
            return 0
        a = found[0]
        return a.credits_posted - a.debits_posted

    def snapshot(self, account_ids: list[int]) -> dict[int, int]:
        return {i: self.posted(i) for i in account_ids}

    def books_balance(self) -> bool:
        dp, dpo, cp, cpo = self.ledger.trial_balance(CNY)
        return dp == cp and dpo == cpo
