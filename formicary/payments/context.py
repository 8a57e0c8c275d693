"""What every payments component shares: the ledger, the store, the bank, the clock, settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from formicary.payments.bank import BankGateway
from formicary.payments.errors import (
    IdentityLevelTooLow,
    InvalidRequest,
    PaymentError,
    error_for,
)
from formicary.payments.funding import FundingSource
from formicary.payments.ledger_client import LedgerClient
from formicary.payments.money import AMOUNT_FEN_MAX, FEE_PLANS, FeePlan
from formicary.payments.records import LEVEL_AMOUNT_MAX_FEN, User
from formicary.payments.store import PaymentsStore

__all__ = ["Context", "PaymentsConfig"]

# A record's state machine takes at most a handful of steps; a loop that runs longer than this
# is a bug (two states feeding each other), not a slow bank.
STEPS_MAX = 8
# Domain strings (names, references, idempotency keys) are bounded like everything else.
TEXT_MAX = 128


class PaymentsConfig(msgspec.Struct, frozen=True):
    """Tunables, with the defaults the issue asks for."""

    # How long a card reservation holds before the ledger releases it by itself: long enough
    # for a slow bank, short enough that a crashed cashier does not hold money for long.
    card_reserve_timeout_s: int = 300
    # One-time payment codes live this long (the issue: 60 s) ...
    code_ttl_s: int = 60
    # ... and may claim to be this far in the future (device clocks drift).
    code_skew_s: int = 5
    fee_plans: dict[str, FeePlan] = msgspec.field(default_factory=lambda: dict(FEE_PLANS))


class Context:
    """The shared collaborators of the payments components (one per `Payments`)."""

    def __init__(
        self,
        ledger: LedgerClient,
        store: PaymentsStore,
        bank: BankGateway,
        clock_ns: Callable[[], int],
        config: PaymentsConfig,
        secret: bytes,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.bank = bank
        self.clock_ns = clock_ns
        self.config = config
        self.secret = secret
        self.sources: dict[str, FundingSource] = {}

    def source(self, kind: str) -> FundingSource:
        found = self.sources.get(kind)
        if found is None:
            raise InvalidRequest(f"unknown funding source {kind!r}")
        return found

    def fail(
        self, table: str, row_id: int, from_states: tuple[str, ...], error: PaymentError
    ) -> PaymentError:
        """Record `error` on a row (state failed) and return it for the caller to raise. If
        another thread already finished the row, return the error the row holds instead."""
        values: dict[str, Any] = {
            "state": "failed",
            "failure_code": error.code,
            "failure_detail": str(error),
            "completed_ns": self.clock_ns(),
        }
        if self.store.transition(table, row_id, from_states, values):
            return error
        row = self.store.one(
            _Failure,
            f"SELECT state, failure_code, failure_detail FROM {table} WHERE id = ?",
            (row_id,),
        )
        assert row is not None
        return error_for(row.failure_code, row.failure_detail) if row.state == "failed" else error


class _Failure(msgspec.Struct):
    state: str
    failure_code: str
    failure_detail: str


def check_amount(amount_fen: int, what: str = "amount") -> None:
    # type() rather than isinstance(): True is an int to Python, never an amount here.
    if type(amount_fen) is not int or not 0 < amount_fen <= AMOUNT_FEN_MAX:
        raise InvalidRequest(
            f"{what} must be an int of 1..{AMOUNT_FEN_MAX} fen, got {amount_fen!r}"
        )


def check_text(value: str, what: str, *, empty: bool = False) -> None:
    if not isinstance(value, str) or len(value) > TEXT_MAX or (not value and not empty):
        raise InvalidRequest(f"{what} must be a string of 1..{TEXT_MAX} characters")


def check_level(user: User, amount_fen: int) -> None:
    """The user's identity level caps the amount of one operation."""
    cap = LEVEL_AMOUNT_MAX_FEN[user.identity_level]
    if amount_fen > cap:
        raise IdentityLevelTooLow(
            f"user {user.id} at level {user.identity_level.name} may move at most {cap} fen at a"
            f" time, not {amount_fen}"
        )
