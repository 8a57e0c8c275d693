"""Wire types of the payments HTTP routes (shared with the SDK).

Amounts are JSON integers in fen, 1 .. 10^12 per operation (the payments core's bound); the
payments' own ids (users, merchants, cards, campaigns, red-packet claims, orders, payments,
refunds, settlements, billers, bills, bill payments, family grants) are JSON integers,
1 .. 2^63 - 1 (SQLite row ids); ledger account ids (128-bit) are strings of decimal digits, as
everywhere in the ledger API. Times are ns since the epoch; dates are ISO `YYYY-MM-DD` business
days in China Standard Time; months `YYYY-MM` in Beijing time (the same UTC+8).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta

from formicary.payments.bills import BillerCategory
from formicary.payments.money import AMOUNT_FEN_MAX, FEE_PLANS

__all__ = [
    "BatchItemIn",
    "BatchPaymentsIn",
    "BatchPaymentsOut",
    "BillOut",
    "BillPayIn",
    "BillPaymentOut",
    "BillerIn",
    "BillerOut",
    "BillersOut",
    "BillsOut",
    "CampaignClaimIn",
    "CampaignClaimOut",
    "CampaignClaimsOut",
    "CampaignClosedOut",
    "CampaignIn",
    "CampaignOut",
    "CardIn",
    "CardOut",
    "CardTransferIn",
    "CardTransferOut",
    "CardsOut",
    "CodePaymentIn",
    "FamilyGrantIn",
    "FamilyGrantOut",
    "FamilyGrantsOut",
    "FamilyPayIn",
    "FamilyRevokeIn",
    "FamilyStatementLineOut",
    "FamilyStatementOut",
    "MerchantIn",
    "MerchantOut",
    "MerchantQrOut",
    "OrderIn",
    "OrderOut",
    "PayIn",
    "PaymentCodeOut",
    "PaymentOut",
    "QrPaymentIn",
    "QuoteOut",
    "RefundIn",
    "RefundOut",
    "RefundsOut",
    "SettlementIn",
    "SettlementLineOut",
    "SettlementReportOut",
    "UserIn",
    "UserOut",
    "WalletOut",
]

ROW_ID_MAX = 2**63 - 1
# The longest code or QR text the core accepts (longer is refused before any parsing).
CODE_TEXT_MAX = 96

Text128 = Annotated[str, Meta(min_length=1, max_length=128)]
Description = Annotated[str, Meta(max_length=128)]
Fen = Annotated[int, Meta(ge=1, le=AMOUNT_FEN_MAX, description="fen, 1 .. 10^12")]
MinOrderFen = Annotated[int, Meta(ge=0, le=AMOUNT_FEN_MAX, description="fen, 0 .. 10^12")]
RowId = Annotated[int, Meta(ge=1, le=ROW_ID_MAX, examples=[1])]
BankCode = Annotated[
    str,
    Meta(
        pattern=r"^[A-Z0-9]{2,12}$",
        description="the bank's short code, 2-12 upper-case letters or digits",
        examples=["ICBC"],
    ),
]
CodeText = Annotated[str, Meta(min_length=1, max_length=CODE_TEXT_MAX)]
IsoDate = Annotated[
    str,
    Meta(
        min_length=10,
        max_length=10,
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        description="YYYY-MM-DD, a business day in China Standard Time",
        examples=["2025-11-11"],
    ),
]
IdentityLevelName = Literal["unverified", "basic", "verified", "full"]
FeePlanName = Literal["online", "offline_qr", "card_acquiring"]
CampaignKindName = Literal["coupon", "red_packet"]
FundingKind = Literal["wallet", "card"]
BillerCategoryName = Literal["electricity", "water", "gas", "phone"]
BillFundingKind = Literal["wallet", "card", "family"]

assert set(get_args(FeePlanName)) == set(FEE_PLANS), "the wire names every fee plan"
assert set(get_args(BillerCategoryName)) == {str(c) for c in BillerCategory}, "every category"


# ----------------------------------------------------------------------------- requests


class UserIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new user. The identity level caps one operation: unverified 0, basic 1,000 yuan,
    verified 10,000 yuan, full 200,000 yuan."""

    name: Text128
    identity_level: IdentityLevelName = "basic"


class MerchantIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new merchant, settled T+1 to `settlement_account_number` at `settlement_bank_code`."""

    name: Text128
    category: Annotated[
        str,
        Meta(
            pattern=r"^[0-9]{4}$",
            description="ISO 18245 merchant category code",
            examples=["5411"],
        ),
    ]
    fee_plan: FeePlanName
    settlement_bank_code: BankCode
    settlement_account_number: Annotated[
        str,
        Meta(pattern=r"^[0-9]{8,32}$", description="8-32 digits", examples=["6214830012345678"]),
    ]


class CardIn(msgspec.Struct, forbid_unknown_fields=True):
    """A card to bind; the full number is never stored (a masked one and a keyed hash are)."""

    bank_code: BankCode
    card_number: Annotated[
        str,
        Meta(
            pattern=r"^[0-9]{12,19}$",
            description="12-19 digits with a valid Luhn check digit",
            examples=["6222020200112233446"],
        ),
    ]


class CardTransferIn(msgspec.Struct, forbid_unknown_fields=True):
    """A top-up from, or withdrawal to, a bound card; `request_id` makes a retry safe."""

    card_id: RowId
    amount_fen: Fen
    request_id: Text128


class CampaignIn(msgspec.Struct, forbid_unknown_fields=True):
    """A coupon or red-packet campaign, funded up front: by the platform (no
    `funder_merchant_id`) or by a merchant's wallet (and then valid at that merchant only).
    `merchant_id` restricts a platform campaign to one merchant."""

    name: Text128
    kind: CampaignKindName
    discount_fen: Fen
    budget_fen: Fen
    funder_merchant_id: RowId | None = None
    merchant_id: RowId | None = None
    min_order_fen: MinOrderFen = 0


class CampaignClaimIn(msgspec.Struct, forbid_unknown_fields=True):
    """A user claims one packet of a platform red packet (its `discount_fen` goes into the
    user's wallet); `request_id` makes a retry safe."""

    user_id: RowId
    request_id: Text128


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    """An order to pay; the same `merchant_order_no` of the merchant answers the same order."""

    merchant_id: RowId
    amount_fen: Fen
    merchant_order_no: Text128
    description: Description = ""


class PayIn(msgspec.Struct, forbid_unknown_fields=True):
    """Pay an order from the wallet, or from a bound card (`card_id`), with an optional
    campaign's discount."""

    user_id: RowId
    funding: FundingKind = "wallet"
    card_id: RowId | None = None
    campaign_id: RowId | None = None


class RefundIn(msgspec.Struct, forbid_unknown_fields=True):
    """Refund part or all of a payment's order amount; `request_no` makes a retry safe."""

    amount_fen: Fen
    request_no: Text128


class SettlementIn(msgspec.Struct, forbid_unknown_fields=True):
    business_date: IsoDate


class QrPaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    """The user scanned a merchant's static QR and typed the amount."""

    user_id: RowId
    qr: CodeText
    amount_fen: Fen
    request_id: Text128
    funding: FundingKind = "wallet"
    card_id: RowId | None = None
    campaign_id: RowId | None = None


class CodePaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    """The merchant scanned the user's one-time payment code (the user's wallet pays)."""

    code: CodeText
    amount_fen: Fen
    merchant_order_no: Text128
    campaign_id: RowId | None = None


class BillerIn(msgspec.Struct, forbid_unknown_fields=True):
    """A (simulated) utility, registered as a merchant settled T+1 to its bank account;
    registering the same name again answers the same biller. The biller pays the fee of
    `fee_plan` on each bill payment (the payer pays the bill amount only)."""

    name: Text128
    category: BillerCategoryName
    settlement_bank_code: BankCode
    settlement_account_number: Annotated[
        str,
        Meta(pattern=r"^[0-9]{8,32}$", description="8-32 digits", examples=["6214830012345678"]),
    ]
    fee_plan: FeePlanName = "online"


class BillPayIn(msgspec.Struct, forbid_unknown_fields=True):
    """Pay a bill (all that is outstanding, or `amount_fen` of it) from the user's wallet, a
    bound card (`card_id`) or a family grant the user is the member of (`grant_id`: the payer's
    money, within this month's limit). `request_id` makes a retry safe."""

    user_id: RowId
    request_id: Text128
    amount_fen: Fen | None = None
    funding: BillFundingKind = "wallet"
    card_id: RowId | None = None
    grant_id: RowId | None = None


class FamilyGrantIn(msgspec.Struct, forbid_unknown_fields=True):
    """The payer lets the member spend up to `monthly_limit_fen` of the payer's money each
    calendar month (Beijing time)."""

    payer_id: RowId
    member_id: RowId
    monthly_limit_fen: Fen


class FamilyPayIn(msgspec.Struct, forbid_unknown_fields=True):
    """The member pays an order from the grant (idempotent per order)."""

    member_id: RowId
    order_id: RowId
    campaign_id: RowId | None = None


class FamilyRevokeIn(msgspec.Struct, forbid_unknown_fields=True):
    """Only the grant's payer may revoke it."""

    payer_id: RowId


# ----------------------------------------------------------------------------- answers


class UserOut(msgspec.Struct):
    id: int
    name: str
    identity_level: str
    wallet_account_id: str
    created_ns: int


class MerchantOut(msgspec.Struct):
    id: int
    name: str
    category: str
    fee_plan: str
    fee_rate_bp: int
    settlement_bank_code: str
    settlement_account_masked: str
    wallet_account_id: str
    created_ns: int


class CardOut(msgspec.Struct):
    id: int
    user_id: int
    bank_code: str
    masked_number: str
    created_ns: int


class CardsOut(msgspec.Struct):
    cards: list[CardOut]


class CardTransferOut(msgspec.Struct):
    id: int
    kind: str
    user_id: int
    card_id: int
    amount_fen: int
    request_id: str
    state: str
    created_ns: int
    completed_ns: int


class WalletOut(msgspec.Struct):
    """What a wallet can pay now (posted credits minus posted and pending debits), from the
    ledger account `account_id`."""

    owner: str
    owner_id: int
    account_id: str
    available_fen: int


class CampaignOut(msgspec.Struct):
    id: int
    name: str
    kind: str
    funder_merchant_id: int | None
    merchant_id: int | None
    discount_fen: int
    min_order_fen: int
    budget_fen: int
    remaining_fen: int
    state: str
    sweeps: int
    budget_account_id: str
    created_ns: int
    funded_ns: int


class CampaignClosedOut(msgspec.Struct):
    campaign: CampaignOut
    swept_fen: int


class CampaignClaimOut(msgspec.Struct):
    """A red-packet claim: `amount_fen` moved from the campaign's budget to the user's wallet
    (`wallet_account_id`) once it `succeeded`."""

    id: int
    campaign_id: int
    user_id: int
    request_id: str
    amount_fen: int
    state: str  # created (the transfer is in flight), succeeded or failed
    failure_code: str  # of a failed claim: e.g. coupon_exhausted
    failure_detail: str
    wallet_account_id: str
    created_ns: int
    completed_ns: int


class CampaignClaimsOut(msgspec.Struct):
    """A page of a campaign's claims, oldest first, failed ones included."""

    campaign_id: int
    claims: list[CampaignClaimOut]
    next_after_id: int | None  # pass as `after_id` for the next page; None: no more


class OrderOut(msgspec.Struct):
    id: int
    merchant_id: int
    merchant_order_no: str
    amount_fen: int
    description: str
    created_ns: int
    payment_id: int | None


class QuoteOut(msgspec.Struct):
    order_id: int
    campaign_id: int | None
    amount_fen: int
    coupon_fen: int
    payer_fen: int
    fee_fen: int
    fee_rate_bp: int


class PaymentOut(msgspec.Struct):
    id: int
    order_id: int
    user_id: int
    merchant_id: int
    funding: str
    card_id: int | None
    campaign_id: int | None
    amount_fen: int
    coupon_fen: int
    payer_fen: int
    fee_fen: int
    fee_rate_bp: int
    state: str
    refunded_fen: int
    created_ns: int
    completed_ns: int


class RefundOut(msgspec.Struct):
    id: int
    payment_id: int
    request_no: str
    amount_fen: int
    payer_fen: int
    coupon_fen: int
    fee_fen: int
    state: str
    to_wallet: bool
    created_ns: int
    reversed_ns: int
    completed_ns: int


class RefundsOut(msgspec.Struct):
    payment_id: int
    refunded_fen: int
    refunds: list[RefundOut]


class SettlementLineOut(msgspec.Struct):
    merchant_id: int
    settlement_id: int
    state: str
    payments: int
    gross_fen: int
    fee_fen: int
    refunds: int
    refunded_fen: int
    fee_returned_fen: int
    campaign_fen: int
    net_fen: int
    ledger_net_fen: int
    settled_fen: int
    reconciled: bool


class SettlementReportOut(msgspec.Struct):
    business_date: str
    cutoff_ns: int
    settled_fen: int
    reconciled: bool
    lines: list[SettlementLineOut]


class MerchantQrOut(msgspec.Struct):
    merchant_id: int
    qr: str


class PaymentCodeOut(msgspec.Struct):
    user_id: int
    code: str
    issued_ns: int
    expires_ns: int


class BillerOut(msgspec.Struct):
    id: int
    name: str
    category: str
    merchant_id: int  # the biller's merchant: its wallet is the biller's settlement account
    wallet_account_id: str
    created_ns: int


class BillersOut(msgspec.Struct):
    billers: list[BillerOut]


class BillOut(msgspec.Struct):
    id: int
    biller_id: int
    account_number: str
    period: str  # the billed month, YYYY-MM (Beijing time)
    amount_fen: int
    due_date: str
    paid_fen: int  # by succeeded bill payments
    outstanding_fen: int  # what a new payment may still pay (payments in flight count as taken)


class BillsOut(msgspec.Struct):
    """The customer's open bills, oldest first; empty when everything is paid."""

    biller_id: int
    account_number: str
    bills: list[BillOut]


class BillPaymentOut(msgspec.Struct):
    id: int
    bill_id: int
    user_id: int
    request_id: str
    amount_fen: int
    funding: str  # wallet, card or family
    card_id: int | None
    grant_id: int | None
    order_id: int | None  # the cashier's order at the biller's merchant
    payment_id: int | None  # the cashier's payment, once succeeded
    state: str  # created, succeeded or failed
    failure_code: str
    failure_detail: str
    created_ns: int
    completed_ns: int


class FamilyGrantOut(msgspec.Struct):
    id: int
    payer_id: int
    member_id: int
    monthly_limit_fen: int
    state: str  # active or revoked
    remaining_fen: int  # what the member may still spend this month
    created_ns: int
    revoked_ns: int


class FamilyGrantsOut(msgspec.Struct):
    grants: list[FamilyGrantOut]


class FamilyStatementLineOut(msgspec.Struct):
    payment_id: int
    order_id: int
    merchant_id: int
    description: str
    amount_fen: int  # the order amount
    coupon_fen: int  # paid by a campaign, not by the payer
    drawn_fen: int  # what the grant paid: the payer's money
    refunded_fen: int  # what refunds put back into the grant
    completed_ns: int


class FamilyStatementOut(msgspec.Struct):
    """One month of a grant, for its payer: the member's payments, totals, and the ledger's
    own figure (`ledger_spent_fen`) that `reconciled` checks them against."""

    grant: FamilyGrantOut
    month: str
    state: str  # unused, funding, open, closing or closed
    limit_fen: int
    lines: list[FamilyStatementLineOut]
    drawn_fen: int
    refunded_fen: int
    spent_fen: int  # drawn - refunded: the payer's money the member spent that month
    remaining_fen: int  # what the member may still spend that month
    returned_fen: int  # unused limit swept back to the payer's wallet
    ledger_spent_fen: int
    reconciled: bool


# ----------------------------------------------------------------------------- batch payments

# Its own name: annotations are resolved when a decoder is built, from the module's final
# globals, so a second `RowId` here would narrow every struct above to 2^40 - 1 as well.
BatchRowId = Annotated[int, Meta(ge=1, le=2**40 - 1)]


class BatchItemIn(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One wallet payment of a batch, as a JSON array `[user_id, merchant_id, amount_fen,
    campaign_id]` (campaign 0: none) — compact, since a batch carries thousands."""

    user_id: BatchRowId
    merchant_id: BatchRowId
    amount_fen: Annotated[int, Meta(ge=1, le=10**12)]
    campaign_id: Annotated[int, Meta(ge=0, le=2**40 - 1)] = 0


class BatchPaymentsIn(msgspec.Struct, forbid_unknown_fields=True):
    """Many wallet payments at once; a retry with the same `batch_key` answers the first
    outcome and applies nothing again."""

    batch_key: Annotated[str, Meta(min_length=1, max_length=128)]
    items: Annotated[list[BatchItemIn], Meta(min_length=1, max_length=100_000)]


class BatchPaymentsOut(msgspec.Struct):
    batch_no: int
    batch_key: str
    succeeded: int
    failed: dict[str, int]
    results: list[str]  # per item, in order: "ok" or why it failed
    replayed: bool
