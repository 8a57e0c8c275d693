"""The marketplace's records: what its methods answer and its state file holds."""

from __future__ import annotations

import msgspec

from formicary.wealth.funding import Payout
from formicary.wealth.terms import ProductTerms

__all__ = [
    "CloseReport",
    "MatchReport",
    "MaturityReport",
    "Notification",
    "Product",
    "ProductStatus",
    "Purchase",
    "PurchaseStatus",
    "Reservation",
    "ReservationStatus",
    "TickReport",
]


class ProductStatus:
    """A product's life: listed (sale window ahead or running) -> closing -> launched or failed
    -> maturing -> matured. The closing states hold the decision while the run posts."""

    LISTED = "listed"
    CLOSING_LAUNCH = "closing_launch"
    CLOSING_FAIL = "closing_fail"
    LAUNCHED = "launched"
    FAILED = "failed"
    MATURING = "maturing"
    MATURED = "matured"


class PurchaseStatus:
    """submitted (written ahead of the ledger call) -> reserved (pending legs in the ledger)
    -> posted (launched) or voided (failed) -> paid (to the wallet) or reinvest_due ->
    reinvested / reinvest_failed. A purchase the ledger refused is deleted."""

    SUBMITTED = "submitted"
    RESERVED = "reserved"
    POSTED = "posted"
    VOIDED = "voided"
    PAID = "paid"
    REINVEST_DUE = "reinvest_due"
    REINVESTED = "reinvested"
    REINVEST_FAILED = "reinvest_failed"


class ReservationStatus:
    """open (waiting, possibly partly filled) <-> filled; or cancelled / expired (final)."""

    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Product(msgspec.Struct, frozen=True):
    product_no: int  # dense from 1: names the product's ledger accounts
    terms: ProductTerms
    status: str
    matched: bool  # reservations were matched at its opening
    raised_fen: int | None  # decided at close
    due_fen: int | None  # principal + interest owed at maturity
    listed_ns: int

    @property
    def product_id(self) -> str:
        return self.terms.product_id


class Purchase(msgspec.Struct, frozen=True):
    purchase_no: int
    product_id: str
    user_id: str
    request_id: str
    amount_fen: int
    source_kind: str
    source_ref: str
    source_legs: tuple[int, ...]  # ids of the source's pending legs
    payout: Payout
    reservation_no: int | None  # set when an auto-reservation bought it
    status: str
    interest_fen: int | None  # set when paid
    created_ns: int
    replayed: bool = False  # the answer to a retried request that was already applied


class Reservation(msgspec.Struct, frozen=True):
    """An auto-reservation (预约): buy matching products as they open, first come first served."""

    reservation_no: int  # increasing: with created_ns, the first-come-first-served order
    user_id: str
    request_id: str
    term_min_days: int
    term_max_days: int
    min_yield_bp: int
    amount_fen: int
    filled_fen: int  # reserved or posted purchases (a failed launch gives its part back)
    source_kind: str
    source_ref: str
    payout: Payout
    created_ns: int
    expires_ns: int
    status: str
    replayed: bool = False

    @property
    def open_fen(self) -> int:
        return self.amount_fen - self.filled_fen if self.status == ReservationStatus.OPEN else 0


class Notification(msgspec.Struct, frozen=True):
    seq: int
    user_id: str
    kind: str
    product_id: str | None
    reservation_no: int | None
    amount_fen: int
    message: str
    created_ns: int


class MatchReport(msgspec.Struct, frozen=True):
    product_id: str
    filled: list[tuple[int, int]]  # (reservation number, fen bought), in the order bought
    skipped: list[tuple[int, str]]  # (reservation number, why)
    remaining_fen: int


class CloseReport(msgspec.Struct, frozen=True):
    product_id: str
    launched: bool
    raised_fen: int
    min_raise_fen: int
    purchases: int
    settled: int  # purchases this run posted (launched) or voided (failed)


class MaturityReport(msgspec.Struct, frozen=True):
    product_id: str
    principal_fen: int
    interest_fen: int
    paid: int  # purchases this run paid
    reinvested: int
    reinvest_failed: int


class TickReport(msgspec.Struct, frozen=True):
    matched: list[MatchReport]
    closed: list[CloseReport]
    matured: list[MaturityReport]
    shortfalls: list[str]  # products whose issuer could not repay yet
    expired_reservations: int
