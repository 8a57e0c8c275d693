"""One exception tree for the payments package.

Every error has a stable `code` (snake_case) that the HTTP layer can put in problem+json, and
that a failed payment, refund or card transfer stores in its row, so that resuming a failed
record raises the same error again (`error_for`).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BankBusy",
    "BankDeclined",
    "BillOverpayment",
    "CodeExpired",
    "CodeForged",
    "CodeReplayed",
    "CouponExhausted",
    "CouponNotApplicable",
    "FamilyLimitExceeded",
    "GrantRevoked",
    "IdempotencyConflict",
    "IdentityLevelTooLow",
    "InsufficientFunds",
    "InvalidCard",
    "InvalidRequest",
    "InvalidState",
    "LedgerBusy",
    "LedgerRejected",
    "MerchantBalanceInsufficient",
    "OrderAlreadyPaid",
    "PaymentCodeError",
    "PaymentError",
    "PaymentTimedOut",
    "RefundExceedsPayment",
    "RefundInProgress",
    "SettlementTooEarly",
    "UnknownBill",
    "UnknownParty",
    "error_for",
]


class PaymentError(Exception):
    """Base of every payments error."""

    code: ClassVar[str] = "payment_error"


class UnknownParty(PaymentError):
    """A user, merchant, card, campaign, order, payment or refund does not exist."""

    code = "unknown_party"


class UnknownBill(UnknownParty):
    """A biller, customer account or bill does not exist, or the bill is no longer open."""

    code = "unknown_bill"


class InvalidRequest(PaymentError):
    """An argument is out of range or malformed; nothing was done."""

    code = "invalid_request"


class InvalidCard(InvalidRequest):
    """A card number is malformed or fails the Luhn check."""

    code = "invalid_card"


class BillOverpayment(InvalidRequest):
    """The amount is more than the bill has outstanding (nothing, once it is paid)."""

    code = "bill_overpayment"


class InvalidState(PaymentError):
    """The record is not in a state that allows this operation."""

    code = "invalid_state"


class IdentityLevelTooLow(PaymentError):
    """The user's verified identity level does not allow this amount."""

    code = "identity_level_too_low"


class InsufficientFunds(PaymentError):
    """The paying account does not hold enough available balance (the ledger refused)."""

    code = "insufficient_funds"


class MerchantBalanceInsufficient(InsufficientFunds):
    """The merchant's wallet cannot cover a refund or a settlement (the ledger refused)."""

    code = "merchant_balance_insufficient"


class FamilyLimitExceeded(InsufficientFunds):
    """The member's payment is more than is left of this month's family limit."""

    code = "family_limit_exceeded"


class GrantRevoked(PaymentError):
    """The payer revoked this family grant: it pays for nothing more."""

    code = "grant_revoked"


class CouponNotApplicable(PaymentError):
    """The campaign is closed, for another merchant, or the order is below its minimum."""

    code = "coupon_not_applicable"


class CouponExhausted(PaymentError):
    """The campaign's budget cannot cover this discount (the ledger refused)."""

    code = "coupon_exhausted"


class OrderAlreadyPaid(PaymentError):
    """The order already has a successful payment by another payer."""

    code = "order_already_paid"


class IdempotencyConflict(PaymentError):
    """A request id or merchant order number was already used with different terms."""

    code = "idempotency_conflict"


class RefundExceedsPayment(PaymentError):
    """The refunds of a payment would add up to more than was paid."""

    code = "refund_exceeds_payment"


class RefundInProgress(PaymentError):
    """Another refund of this payment is still in flight; retry when it has finished."""

    code = "refund_in_progress"


class BankDeclined(PaymentError):
    """The bank declined the operation; nothing was moved."""

    code = "bank_declined"


class BankBusy(PaymentError):
    """The bank (or its channel) is busy; nothing was moved, retry or use another source."""

    code = "bank_busy"


class PaymentTimedOut(PaymentError):
    """The card reservation expired before the bank confirmed; the capture was reversed."""

    code = "payment_timed_out"


class PaymentCodeError(PaymentError):
    """A payment code or QR code was refused."""

    code = "payment_code_error"


class CodeExpired(PaymentCodeError):
    """The payment code is older than its time to live."""

    code = "code_expired"


class CodeReplayed(PaymentCodeError):
    """The one-time payment code was already used."""

    code = "code_replayed"


class CodeForged(PaymentCodeError):
    """The code is malformed, its signature is wrong, or it claims an impossible time."""

    code = "code_forged"


class SettlementTooEarly(PaymentError):
    """A business day is settled only after it has ended (T+1)."""

    code = "settlement_too_early"


class LedgerBusy(PaymentError):
    """The ledger's queue stayed full through every retry; nothing was applied."""

    code = "ledger_busy"


class LedgerRejected(PaymentError):
    """The ledger refused a transfer for a reason the payments rules do not expect."""

    code = "ledger_rejected"


_BY_CODE: dict[str, type[PaymentError]] = {}


def _register(cls: type[PaymentError]) -> None:
    _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(PaymentError)


def error_for(code: str, detail: str) -> PaymentError:
    """Rebuild the error a record failed with from its stored code and detail."""
    return _BY_CODE.get(code, PaymentError)(detail)
