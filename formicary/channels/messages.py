"""What goes to a bank and what comes back: operations, requests, replies and reasons.

The channel layer keeps money semantics out: a request names an operation on a card and an
amount in fen, and the reply says what the bank did. Moving money in the books is the payments
layer's job (through the ledger), once it has the bank's answer.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from formicary.channels.errors import InvalidRule

__all__ = [
    "AMOUNT_FEN_MAX",
    "IDEMPOTENCY_ID_LENGTH_MAX",
    "BankOutcome",
    "BankReply",
    "BankRequest",
    "Operation",
    "Reason",
]

# The ledger's int64 bound (formicary.ledger.AMOUNT_MAX), repeated rather than imported so that
# the bank model does not load the ledger; a test pins the two together.
AMOUNT_FEN_MAX = 2**63 - 1
# Idempotency ids are kept by every bank for a day: bound their size.
IDEMPOTENCY_ID_LENGTH_MAX = 128
CARD_ID_LENGTH_MAX = 64


class Operation(StrEnum):
    """Bank operations the payments layer needs."""

    AUTHORIZE = "authorize"  # reserve an amount on a card (first phase of a card payment)
    CAPTURE = "capture"  # take all or part of an authorization (second phase)
    VOID = "void"  # release an authorization, or reverse its capture
    COLLECT = "collect"  # pull money from a card (wallet top-up)
    PAYOUT = "payout"  # push money to a card (withdrawal)


class BankOutcome(StrEnum):
    """What a bank answered. Only APPROVED, DECLINED and ERROR mean the bank processed the
    request (and remembers it under its idempotency id); the others applied nothing."""

    APPROVED = "approved"
    DECLINED = "declined"  # a business refusal: funds, card, authorization state
    ERROR = "error"  # the bank failed to process it (a system error; nothing applied)
    TIMEOUT = "timeout"  # no answer in time: the outcome is unknown until the id is retried
    UNAVAILABLE = "unavailable"  # maintenance window: nothing applied
    BUSY = "busy"  # the bank's own queue is full: nothing applied


class Reason(StrEnum):
    """Why a request ended as it did; shared by banks, channels and the router."""

    APPROVED = "approved"
    DECLINED_BY_BANK = "declined_by_bank"
    UNKNOWN_AUTHORIZATION = "unknown_authorization"
    AUTHORIZATION_CLOSED = "authorization_closed"  # captured or voided already
    AMOUNT_OVER_AUTHORIZATION = "amount_over_authorization"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"  # same id, different request
    BANK_ERROR = "bank_error"
    BANK_TIMEOUT = "bank_timeout"
    MAINTENANCE = "maintenance"
    BANK_QUEUE_FULL = "bank_queue_full"
    IDEMPOTENCY_TABLE_FULL = "idempotency_table_full"
    FLOW_LIMIT = "flow_limit"  # over the channel's QPS (token bucket)
    FLOW_QUEUE_FULL = "flow_queue_full"  # queueing mode: the wait would exceed the maximum
    BREAKER_OPEN = "breaker_open"
    BREAKER_PROBING = "breaker_probing"  # half-open, its one probe still in flight
    WALLET = "wallet"  # the router chose the wallet: the payments layer settles it
    NO_OPTION_LEFT = "no_option_left"  # the router tried every option: bank busy, retry


_NEEDS_CARD = frozenset({Operation.AUTHORIZE, Operation.COLLECT, Operation.PAYOUT})
_NEEDS_AUTHORIZATION = frozenset({Operation.CAPTURE, Operation.VOID})


class BankRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One call to a bank. `idempotency_id` makes retries safe: a bank answers a repeated id
    with its first answer and never applies it twice. An authorization is named by the
    idempotency id of the AUTHORIZE request that created it."""

    idempotency_id: str
    operation: Operation
    amount_fen: int = 0
    card_id: str = ""
    authorization_id: str = ""

    def __post_init__(self) -> None:
        if not 0 < len(self.idempotency_id) <= IDEMPOTENCY_ID_LENGTH_MAX:
            raise InvalidRule(f"idempotency_id must be 1..{IDEMPOTENCY_ID_LENGTH_MAX} characters")
        if self.operation in _NEEDS_CARD and not 0 < len(self.card_id) <= CARD_ID_LENGTH_MAX:
            raise InvalidRule(f"{self.operation} needs a card_id of 1..{CARD_ID_LENGTH_MAX} chars")
        if self.operation in _NEEDS_AUTHORIZATION and not self.authorization_id:
            raise InvalidRule(f"{self.operation} needs the authorization_id")
        if self.operation is Operation.VOID:
            if self.amount_fen != 0:
                raise InvalidRule("void releases the whole authorization: amount_fen must be 0")
        elif not 0 < self.amount_fen <= AMOUNT_FEN_MAX:
            raise InvalidRule(f"amount_fen must be 1..{AMOUNT_FEN_MAX}, got {self.amount_fen}")

    @classmethod
    def authorize(cls, idempotency_id: str, card_id: str, amount_fen: int) -> BankRequest:
        return cls(
            idempotency_id=idempotency_id,
            operation=Operation.AUTHORIZE,
            card_id=card_id,
            amount_fen=amount_fen,
        )

    @classmethod
    def capture(cls, idempotency_id: str, authorization_id: str, amount_fen: int) -> BankRequest:
        return cls(
            idempotency_id=idempotency_id,
            operation=Operation.CAPTURE,
            authorization_id=authorization_id,
            amount_fen=amount_fen,
        )

    @classmethod
    def void(cls, idempotency_id: str, authorization_id: str) -> BankRequest:
        return cls(
            idempotency_id=idempotency_id,
            operation=Operation.VOID,
            authorization_id=authorization_id,
        )

    @classmethod
    def collect(cls, idempotency_id: str, card_id: str, amount_fen: int) -> BankRequest:
        return cls(
            idempotency_id=idempotency_id,
            operation=Operation.COLLECT,
            card_id=card_id,
            amount_fen=amount_fen,
        )

    @classmethod
    def payout(cls, idempotency_id: str, card_id: str, amount_fen: int) -> BankRequest:
        return cls(
            idempotency_id=idempotency_id,
            operation=Operation.PAYOUT,
            card_id=card_id,
            amount_fen=amount_fen,
        )


class BankReply(msgspec.Struct, frozen=True, kw_only=True):
    """A bank's answer, dated in virtual time. In the discrete-event model the reply is known
    when the request is submitted, but the caller must treat it as arriving at `completed_ns`."""

    idempotency_id: str
    outcome: BankOutcome
    reason: Reason
    submitted_ns: int  # when the request reached the bank
    completed_ns: int  # when the answer reached the caller
    retry_after_ns: int = 0  # UNAVAILABLE, BUSY: when trying again may succeed
    replayed: bool = False  # answered from the idempotency table (an earlier request's answer)

    @property
    def latency_ns(self) -> int:
        return self.completed_ns - self.submitted_ns
