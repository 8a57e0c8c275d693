"""Funding sources: where the payer's part of a payment comes from.

A source names the ledger account debited for the payer's part, and says whether the money must
first be confirmed outside the ledger (`two_phase`: cards ask the bank). The cashier does the
rest (reservations, the settlement chain, voids), so a new source is small. A one-phase source
may also put one leg of its own first in the payment's chain (`extra_legs`): the money-market
fund (`formicary.payments.fund_source.FundFunding`) pays from its custody cash while the
holder's shares leave in the same atomic chain.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from formicary.ledger import Transfer
from formicary.payments.bank import OK, BankGateway, Outcome, Reply
from formicary.payments.chart import bank_clearing_id, user_wallet_id
from formicary.payments.errors import InvalidRequest, UnknownParty
from formicary.payments.records import Card
from formicary.payments.store import PaymentsStore

__all__ = ["CardFunding", "FundingRequest", "FundingSource", "WalletFunding"]


class FundingRequest(msgspec.Struct, frozen=True):
    """What a source is asked to confirm, cancel or refund."""

    request_id: str  # stable across retries: the source's (the bank's) idempotency key
    user_id: int
    ref: str  # source-specific, e.g. the card id
    amount_fen: int


class FundingSource(Protocol):
    """A pluggable way to pay; registered on `Payments` by its `kind`."""

    kind: str
    # True: the cashier reserves in the ledger (pending), calls `confirm`, then posts or voids.
    # False: the payer leg is posted directly in the settlement chain; `confirm` runs first.
    two_phase: bool

    def check(self, user_id: int, ref: str) -> None:
        """Raise a PaymentError if `ref` is not usable by this user (before anything moves)."""

    def payer_account_id(self, user_id: int, ref: str) -> int:
        """The ledger account (CNY) debited for the payer's part, and credited by refunds."""

    def extra_legs(self, request: FundingRequest, transfer_id: int) -> list[Transfer]:
        """Legs of a one-phase source that go first in the payment's own linked chain (at most
        one, with id `transfer_id`): the fund's shares leaving the holder as the cash leaves
        custody. [] for most sources."""

    def confirm(self, request: FundingRequest) -> Reply:
        """Take the money outside the ledger (ok), or refuse (declined / busy)."""

    def cancel(self, request: FundingRequest) -> Reply:
        """Undo a confirmed request (the ledger could not post it in time)."""

    def refund(self, request: FundingRequest) -> Reply:
        """Return money outside the ledger after the refund chain; `declined` sends the payer's
        part to the user's wallet instead."""


class WalletFunding:
    """The user's wallet balance: purely a ledger account, nothing to confirm."""

    kind = "wallet"
    two_phase = False

    def check(self, user_id: int, ref: str) -> None:
        if ref:
            raise InvalidRequest("the wallet takes no funding reference")

    def payer_account_id(self, user_id: int, ref: str) -> int:
        return user_wallet_id(user_id)

    def extra_legs(self, request: FundingRequest, transfer_id: int) -> list[Transfer]:
        return []

    def confirm(self, request: FundingRequest) -> Reply:
        return OK

    def cancel(self, request: FundingRequest) -> Reply:
        return OK

    def refund(self, request: FundingRequest) -> Reply:
        return OK


class CardFunding:
    """A bound bank card: the bank authorizes and captures; money arrives through the bank's
    clearing account."""

    kind = "card"
    two_phase = True

    def __init__(self, store: PaymentsStore, bank: BankGateway) -> None:
        self._store = store
        self._bank = bank

    def _card(self, ref: str) -> Card:
        card = self._store.get(Card, "cards", int(ref)) if ref.isdigit() else None
        if card is None:
            raise UnknownParty(f"no card {ref!r}")
        return card

    def check(self, user_id: int, ref: str) -> None:
        if self._card(ref).user_id != user_id:
            raise UnknownParty(f"card {ref} is not bound to user {user_id}")

    def payer_account_id(self, user_id: int, ref: str) -> int:
        return bank_clearing_id(self._card(ref).bank_code)

    def extra_legs(self, request: FundingRequest, transfer_id: int) -> list[Transfer]:
        return []

    def confirm(self, request: FundingRequest) -> Reply:
        account = self._card(request.ref).ref
        authorized = self._bank.authorize(request.request_id, account, request.amount_fen)
        if not authorized.ok:
            return authorized
        captured = self._bank.capture(request.request_id, account, request.amount_fen)
        if captured.outcome is not Outcome.OK:
            # Release the hold now rather than leave it to the bank's own expiry; if this void
            # fails the hold still expires at the bank, and no money was taken.
            self._bank.void(request.request_id, account, request.amount_fen)
        return captured

    def cancel(self, request: FundingRequest) -> Reply:
        account = self._card(request.ref).ref
        return self._bank.void(request.request_id, account, request.amount_fen)

    def refund(self, request: FundingRequest) -> Reply:
        account = self._card(request.ref).ref
        return self._bank.payout(request.request_id, account, request.amount_fen)
