"""The fixed-term product marketplace (Zhaocaibao-style) on the ledger.

Vetted issuers list products (term, yield, size, minimum purchase, sale window); purchases
reserve money as pending ledger transfers into the product's escrow, next to a pending leg of
the product's quota that the ledger keeps from exceeding its size; at the close the purchases
post (the raise goes to the issuer) or void (the product failed to launch); at maturity the
issuer repays principal plus interest (ACT/365, truncated to the fen), paid to the wallet or
reinvested in the money-market fund. Auto-reservations (预约) buy matching products as they
open, first come first served. The rules are in `docs/wealth.md`.
"""

from formicary.wealth.errors import (
    BooksMismatch,
    FundLimitExceeded,
    InsufficientFunds,
    InvalidRequest,
    IssuerRefused,
    IssuerShortfall,
    LedgerUnavailable,
    NotDue,
    NotFound,
    NotOnSale,
    SoldOut,
    StandardRedemptionTooLate,
    WealthError,
)
from formicary.wealth.funding import FundingSource, FundSource, Payout, WalletSource
from formicary.wealth.issuers import (
    BANK_TOTAL_ASSETS_MIN_FEN,
    INSURER_SOLVENCY_MIN_PCT,
    Issuer,
    IssuerKind,
    Vetting,
    VettingPolicy,
    VettingRule,
    vet,
)
from formicary.wealth.market import MarketConfig, Marketplace, Progress
from formicary.wealth.records import (
    CloseReport,
    MatchReport,
    MaturityReport,
    Notification,
    Product,
    ProductStatus,
    Purchase,
    PurchaseStatus,
    Reservation,
    ReservationStatus,
    TickReport,
)
from formicary.wealth.store import WealthStore, WealthStoreError
from formicary.wealth.terms import (
    DAYS_PER_YEAR,
    MIN_PURCHASE_FEN_MIN,
    SALE_WINDOW_DAYS_MAX,
    SIZE_FEN_MAX,
    TERM_DAYS_MAX,
    YIELD_BP_MAX,
    ProductTerms,
    interest_fen,
    yield_bp_from_percent,
    yield_percent,
)

__all__ = [
    "BANK_TOTAL_ASSETS_MIN_FEN",
    "DAYS_PER_YEAR",
    "INSURER_SOLVENCY_MIN_PCT",
    "MIN_PURCHASE_FEN_MIN",
    "SALE_WINDOW_DAYS_MAX",
    "SIZE_FEN_MAX",
    "TERM_DAYS_MAX",
    "YIELD_BP_MAX",
    "BooksMismatch",
    "CloseReport",
    "FundLimitExceeded",
    "FundSource",
    "FundingSource",
    "InsufficientFunds",
    "InvalidRequest",
    "Issuer",
    "IssuerKind",
    "IssuerRefused",
    "IssuerShortfall",
    "LedgerUnavailable",
    "MarketConfig",
    "Marketplace",
    "MatchReport",
    "MaturityReport",
    "NotDue",
    "NotFound",
    "NotOnSale",
    "Notification",
    "Payout",
    "Product",
    "ProductStatus",
    "ProductTerms",
    "Progress",
    "Purchase",
    "PurchaseStatus",
    "Reservation",
    "ReservationStatus",
    "SoldOut",
    "StandardRedemptionTooLate",
    "TickReport",
    "Vetting",
    "VettingPolicy",
    "VettingRule",
    "WalletSource",
    "WealthError",
    "WealthStore",
    "WealthStoreError",
    "interest_fen",
    "vet",
    "yield_bp_from_percent",
    "yield_percent",
]
