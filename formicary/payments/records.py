"""Domain records of the payments package: frozen msgspec Structs, one per table row.

None of them holds a balance: balances live in the ledger only (see `Payments.wallet_balance`).
Times are int nanoseconds since the epoch from the injected clock, `*_ns`.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

import msgspec

from formicary.payments.bank import BankAccountRef

__all__ = [
    "Campaign",
    "CampaignKind",
    "CampaignState",
    "Card",
    "CardTransfer",
    "CardTransferKind",
    "CardTransferState",
    "Funding",
    "IdentityLevel",
    "Merchant",
    "Order",
    "Payment",
    "PaymentState",
    "Refund",
    "RefundState",
    "Settlement",
    "SettlementState",
    "User",
]


class IdentityLevel(IntEnum):
    """How far a user's identity is verified; each level caps the amount of one operation."""

    UNVERIFIED = 0
    BASIC = 1
    VERIFIED = 2
    FULL = 3


# Per-operation caps by level, after the PBoC 2016 account classes (I: 1,000 yuan; II: 10,000
# yuan a day; III: 200,000 a year). Those are cumulative caps; this increment enforces them per
# operation only (cumulative accounting is left, see docs/payments.md).
LEVEL_AMOUNT_MAX_FEN: dict[IdentityLevel, int] = {
    IdentityLevel.UNVERIFIED: 0,
    IdentityLevel.BASIC: 100_000,
    IdentityLevel.VERIFIED: 1_000_000,
    IdentityLevel.FULL: 20_000_000,
}


class User(msgspec.Struct, frozen=True):
    id: int
    name: str
    identity_level: IdentityLevel
    created_ns: int


class Merchant(msgspec.Struct, frozen=True):
    id: int
    name: str
    category: str  # ISO 18245 merchant category code, e.g. "5411" (grocery stores)
    fee_plan: str
    settlement_bank_code: str
    settlement_account_masked: str
    created_ns: int

    @property
    def settlement_account(self) -> BankAccountRef:
        return BankAccountRef(self.settlement_bank_code, self.settlement_account_masked)


class Card(msgspec.Struct, frozen=True):
    id: int
    user_id: int
    bank_code: str
    masked_number: str
    created_ns: int

    @property
    def ref(self) -> BankAccountRef:
        return BankAccountRef(self.bank_code, self.masked_number)


class CardTransferKind(StrEnum):
    TOP_UP = "top_up"
    WITHDRAWAL = "withdrawal"


class CardTransferState(StrEnum):
    CREATED = "created"
    RESERVED = "reserved"  # withdrawal: wallet reserved in the ledger, bank not yet paid
    CONFIRMED = "confirmed"  # the bank moved the money; the ledger is told next
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CardTransfer(msgspec.Struct, frozen=True):
    """A top-up from, or withdrawal to, a bound card."""

    id: int
    kind: CardTransferKind
    user_id: int
    card_id: int
    amount_fen: int
    request_id: str  # the client's idempotency key, unique per user and kind
    state: CardTransferState
    failure_code: str
    failure_detail: str
    created_ns: int
    completed_ns: int


class CampaignKind(StrEnum):
    COUPON = "coupon"  # a fixed discount on orders of at least `min_order_fen`
    RED_PACKET = "red_packet"  # a fixed amount off any order (capped at the order amount)


class CampaignState(StrEnum):
    FUNDING = "funding"
    ACTIVE = "active"
    CLOSED = "closed"
    FAILED = "failed"


class Campaign(msgspec.Struct, frozen=True):
    """A coupon or red-packet campaign; its budget is a ledger account funded up front."""

    id: int
    name: str
    kind: CampaignKind
    funder_merchant_id: int | None  # None: the platform pays the discounts
    merchant_id: int | None  # None: usable at every merchant (platform campaigns only)
    discount_fen: int
    min_order_fen: int
    budget_fen: int
    state: CampaignState
    sweeps: int  # how many times what was left has been swept back to the funder
    failure_code: str
    created_ns: int
    funded_ns: int


class Order(msgspec.Struct, frozen=True):
    id: int
    merchant_id: int
    merchant_order_no: str  # the merchant's own reference, unique per merchant
    amount_fen: int
    description: str
    created_ns: int


class Funding(msgspec.Struct, frozen=True):
    """Which funding source pays the payer's part: its kind and a source-specific reference."""

    kind: str
    ref: str = ""

    @classmethod
    def wallet(cls) -> Funding:
        return cls("wallet")

    @classmethod
    def card(cls, card_id: int) -> Funding:
        return cls("card", str(card_id))


class PaymentState(StrEnum):
    CREATED = "created"
    RESERVED = "reserved"  # two-phase: payer and coupon reserved in the ledger
    CONFIRMED = "confirmed"  # two-phase: the funding source (bank) took the money
    CANCELLING = "cancelling"  # two-phase: the ledger could not post; undoing at the source
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Payment(msgspec.Struct, frozen=True):
    """One attempt to pay an order. amount = payer part + coupon; the fee is the merchant's."""

    id: int
    order_id: int
    user_id: int
    merchant_id: int
    funding_kind: str
    funding_ref: str
    campaign_id: int | None
    amount_fen: int
    coupon_fen: int
    payer_fen: int
    fee_fen: int
    fee_rate_bp: int
    state: PaymentState
    failure_code: str
    failure_detail: str
    created_ns: int
    completed_ns: int

    @property
    def funding(self) -> Funding:
        return Funding(self.funding_kind, self.funding_ref)


class RefundState(StrEnum):
    CREATED = "created"
    REVERSED = "reversed"  # the ledger moved the money back; the source (card) is paid next
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Refund(msgspec.Struct, frozen=True):
    """A full or partial refund: `amount_fen` of the order amount, split into the payer's part,
    the coupon part (back to the campaign budget) and the fee the platform gives back."""

    id: int
    payment_id: int
    request_no: str  # the merchant's idempotency key, unique per payment
    amount_fen: int
    payer_fen: int
    coupon_fen: int
    fee_fen: int
    state: RefundState
    to_wallet: bool  # the card payout was declined, so the payer's part went to the wallet
    failure_code: str
    failure_detail: str
    created_ns: int
    reversed_ns: int
    completed_ns: int


class SettlementState(StrEnum):
    CREATED = "created"
    RESERVED = "reserved"  # merchant wallet reserved in the ledger; the bank pays next
    CONFIRMED = "confirmed"  # the bank paid; the ledger posts next
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # nothing moved; the items are settled with a later business day


class Settlement(msgspec.Struct, frozen=True):
    """One merchant's settlement of one business day (T+1)."""

    id: int
    merchant_id: int
    business_date: str  # ISO date of day T, in China Standard Time
    net_fen: int
    state: SettlementState
    failure_code: str
    failure_detail: str
    created_ns: int
    completed_ns: int
