"""Wire types of the fixed-term marketplace's HTTP routes (shared with the SDK).

Amounts are JSON integers in fen, yields integer basis points (425 = 4.25 %, also answered as a
decimal string), sale times ISO 8601 date-times (a time without an offset is Beijing time),
dates ISO `YYYY-MM-DD`. Purchases and reservations are paid from a wallet account, or from the
user's holding in the money-market fund (`source: "fund"`): by an instant redemption within the
fund's T+0 limits (`redemption: "instant"`, the default), or by a standard (T+1) redemption
without them (`redemption: "standard"`, only for a sale that closes on or after the day its cash
arrives); maturities pay to the wallet, or on into the fund (`payout: "fund"`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from formicary.api.wire import DecimalId
from formicary.wealth.terms import (
    MIN_PURCHASE_FEN_MIN,
    SIZE_FEN_MAX,
    TERM_DAYS_MAX,
    YIELD_BP_MAX,
)

__all__ = [
    "IssuerIn",
    "IssuerOut",
    "MatchOut",
    "MaturityOut",
    "NotificationOut",
    "NotificationsOut",
    "ProductBooksOut",
    "ProductIn",
    "ProductOut",
    "ProductsOut",
    "ReservationCancelIn",
    "SaleCloseOut",
    "TickOut",
    "VettingOut",
    "WealthPurchaseIn",
    "WealthPurchaseOut",
    "WealthPurchasesOut",
    "WealthReservationIn",
    "WealthReservationOut",
    "WealthReservationsOut",
    "WhitelistIn",
]

WealthId = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]{1,64}$", examples=["p-1"])
]
Text128 = Annotated[str, Meta(min_length=1, max_length=128)]
RequestId = Annotated[
    str, Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]{1,128}$", examples=["r-1"])
]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
SourceKind = Literal["wallet", "fund"]
Redemption = Literal["instant", "standard"]
PayoutKind = Literal["wallet", "fund"]
FundNo = Annotated[
    int, Meta(ge=1, le=4095, description="the fund's number (default: the server's)")
]
Fen = Annotated[int, Meta(ge=1, le=SIZE_FEN_MAX, description="fen")]
TermDays = Annotated[int, Meta(ge=1, le=TERM_DAYS_MAX, description="calendar days")]
YieldBp = Annotated[int, Meta(ge=1, le=YIELD_BP_MAX, description="basis points a year")]
# Beyond any real balance sheet yet inside int64 (the issuer record's own bound).
AssetsFen = Annotated[int, Meta(ge=0, le=10**18, description="fen")]
Percent = Annotated[
    str,
    Meta(
        max_length=16,
        pattern=r"^[0-9]{1,6}(\.[0-9]{1,6})?$",
        description="a decimal percent, e.g. 180.5",
        examples=["180.5"],
    ),
]


class IssuerIn(msgspec.Struct, forbid_unknown_fields=True):
    """An issuer and the figures vetting reads: total assets (banks), the solvency ratio in
    percent (P&C insurers), the licence (asset management companies)."""

    issuer_id: WealthId
    name: Name
    kind: Literal["bank", "asset_manager", "pc_insurer", "other"]
    total_assets_fen: AssetsFen | None = None
    solvency_ratio_pct: Percent | None = None
    licensed: bool = False


class VettingOut(msgspec.Struct):
    passed: bool
    rule: str
    reason: str


class IssuerOut(msgspec.Struct):
    issuer_id: str
    name: str
    kind: str
    account_id: str  # the settlement account: receives the raise, repays at maturity
    vetting: VettingOut
    whitelisted: bool = False  # admitted by the marketplace (the rule of kind `other`)


class WhitelistIn(msgspec.Struct, forbid_unknown_fields=True):
    """Whitelist an issuer: admits an institution of kind `other` (the other kinds keep their
    own rule). `note` records why."""

    note: Annotated[str, Meta(max_length=500)] = ""


class ProductIn(msgspec.Struct, forbid_unknown_fields=True):
    """A product's terms. Listing is idempotent by `product_id`; the issuer must pass vetting.
    `min_raise_fen` defaults to half the size; `value_date` to the day after the close."""

    product_id: WealthId
    issuer_id: WealthId
    name: Name
    term_days: TermDays
    yield_bp: YieldBp
    size_fen: Annotated[int, Meta(ge=MIN_PURCHASE_FEN_MIN, le=SIZE_FEN_MAX, description="fen")]
    min_purchase_fen: Annotated[
        int, Meta(ge=MIN_PURCHASE_FEN_MIN, le=SIZE_FEN_MAX, description="fen")
    ]
    sale_open: datetime
    sale_close: datetime
    min_raise_fen: Fen | None = None
    value_date: date | None = None


class ProductOut(msgspec.Struct):
    product_id: str
    product_no: int
    issuer_id: str
    name: str
    status: str
    term_days: int
    yield_bp: int
    yield_percent: str
    size_fen: int
    min_purchase_fen: int
    min_raise_fen: int
    remaining_fen: int
    sale_open: str
    sale_close: str
    value_date: str
    maturity_date: str
    raised_fen: int | None
    due_fen: int | None
    escrow_account_id: str


class WealthPurchaseIn(msgspec.Struct, forbid_unknown_fields=True):
    """Buy a product (pending until the close). `source`: `wallet` pays from
    `wallet_account_id`; `fund` redeems the user's money-market fund shares (`user_id` is the
    holder): `redemption: "instant"` (default) within the fund's T+0 limits, `"standard"` a
    T+1 redemption without them, refused (`standard_redemption_too_late`) when the sale closes
    before the day its cash arrives. The maturity pays `wallet_account_id`, then on into the
    fund when `payout` is `fund`. Retrying with the same `request_id` answers the purchase it
    made (`replayed`)."""

    user_id: Text128
    wallet_account_id: DecimalId
    amount: Fen
    request_id: RequestId
    source: SourceKind = "wallet"
    redemption: Redemption = "instant"  # how a `fund` source redeems
    fund_no: FundNo | None = None
    payout: PayoutKind = "wallet"


class WealthPurchaseOut(msgspec.Struct):
    purchase_no: int
    product_id: str
    user_id: str
    request_id: str
    amount_fen: int
    status: str
    payout_account_id: str
    reservation_no: int | None
    interest_fen: int | None
    replayed: bool
    source_kind: str = "wallet"  # wallet | fund
    source_ref: str = ""  # the wallet account id, or the fund holder's user id
    payout_into_fund: bool = False
    redemption: str | None = None  # source fund: instant | standard (null for a wallet)


class WealthPurchasesOut(msgspec.Struct):
    purchases: list[WealthPurchaseOut]
    next_after_no: int | None  # pass as `after_no` for the next page; None: no more


class WealthReservationIn(msgspec.Struct, forbid_unknown_fields=True):
    """An auto-reservation (预约): buy matching products as they open, from the wallet or
    (`source: "fund"`) from the user's fund shares: each fill within the fund's T+0 limits
    (`redemption: "instant"`, default), or by standard (T+1) redemptions without them
    (`"standard"`, only products whose sale closes on or after the day the cash arrives);
    `payout` as for a purchase."""

    user_id: Text128
    request_id: RequestId
    wallet_account_id: DecimalId
    amount_fen: Annotated[int, Meta(ge=MIN_PURCHASE_FEN_MIN, le=SIZE_FEN_MAX, description="fen")]
    term_min_days: TermDays
    term_max_days: TermDays
    min_yield_bp: Annotated[int, Meta(ge=0, le=YIELD_BP_MAX)] = 0
    valid_days: Annotated[int, Meta(ge=1, le=3650)] | None = None
    source: SourceKind = "wallet"
    redemption: Redemption = "instant"  # how a `fund` source redeems
    fund_no: FundNo | None = None
    payout: PayoutKind = "wallet"


class ReservationCancelIn(msgspec.Struct, forbid_unknown_fields=True):
    """Cancel a reservation: `user_id` must be its owner. What it bought stays bought."""

    user_id: Text128


class WealthReservationOut(msgspec.Struct):
    reservation_no: int
    user_id: str
    request_id: str
    term_min_days: int
    term_max_days: int
    min_yield_bp: int
    amount_fen: int
    filled_fen: int
    status: str
    expires_at: str
    replayed: bool
    source_kind: str = "wallet"
    source_ref: str = ""
    payout_account_id: str = ""
    payout_into_fund: bool = False
    redemption: str | None = None  # source fund: instant | standard (null for a wallet)


class WealthReservationsOut(msgspec.Struct):
    reservations: list[WealthReservationOut]


class ProductsOut(msgspec.Struct):
    products: list[ProductOut]


class ProductBooksOut(msgspec.Struct):
    """A product's ledger balances next to the state file's figures (the close checks that the
    reserved purchases equal the pending escrow and quota)."""

    product_id: str
    status: str
    escrow_posted_fen: int
    escrow_pending_fen: int
    quota_remaining_fen: int
    quota_subscribed_fen: int
    reserved_fen: int
    raised_fen: int
    balanced: bool  # reserved == pending escrow while on sale; escrow pending 0 after the close


class NotificationOut(msgspec.Struct):
    seq: int
    kind: str
    product_id: str | None
    reservation_no: int | None
    amount_fen: int
    message: str
    created_at: str


class NotificationsOut(msgspec.Struct):
    user_id: str
    notifications: list[NotificationOut]


class MatchOut(msgspec.Struct):
    product_id: str
    filled: list[list[int]]  # [reservation number, fen bought]
    remaining_fen: int


class SaleCloseOut(msgspec.Struct):
    product_id: str
    launched: bool
    raised_fen: int
    min_raise_fen: int
    purchases: int
    settled: int


class MaturityOut(msgspec.Struct):
    product_id: str
    principal_fen: int
    interest_fen: int
    paid: int
    reinvested: int
    reinvest_failed: int


class TickOut(msgspec.Struct):
    matched: list[MatchOut]
    closed: list[SaleCloseOut]
    matured: list[MaturityOut]
    shortfalls: list[str]
    expired_reservations: int
