"""The fixed-term marketplace's calls, as data both clients send: one place builds each request.

A purchase or reservation without a `request_id` gets a fresh one, sent with every retry of
that call, so a retried purchase is applied once (the marketplace answers `replayed`). Either
may be paid from a wallet (`source="wallet"`) or from the user's money-market fund shares
(`source="fund"`: within the fund's T+0 limits, or with `redemption="standard"` by a T+1
redemption without them), and pay out to the wallet or into the fund.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import quote

import msgspec

from formicary.api.wealth_wire import (
    IssuerIn,
    IssuerOut,
    NotificationsOut,
    ProductBooksOut,
    ProductIn,
    ProductOut,
    ProductsOut,
    ReservationCancelIn,
    TickOut,
    WealthPurchaseIn,
    WealthPurchaseOut,
    WealthPurchasesOut,
    WealthReservationIn,
    WealthReservationOut,
    WealthReservationsOut,
    WhitelistIn,
)

__all__ = [
    "WealthCall",
    "cancel_reservation",
    "issuer",
    "list_product",
    "notifications",
    "product",
    "product_books",
    "products",
    "purchase",
    "purchases",
    "register_issuer",
    "reservation",
    "reservations",
    "reserve",
    "tick",
    "unwhitelist",
    "whitelist",
]

_BASE = "/v1/wealth"
_encoder = msgspec.json.Encoder()


class WealthCall(NamedTuple):
    method: str
    path: str
    params: dict[str, str] | None
    content: bytes | None
    decoder: msgspec.json.Decoder[Any]


_ISSUER = msgspec.json.Decoder(IssuerOut)
_PRODUCT = msgspec.json.Decoder(ProductOut)
_PURCHASE = msgspec.json.Decoder(WealthPurchaseOut)
_RESERVATION = msgspec.json.Decoder(WealthReservationOut)
_NOTIFICATIONS = msgspec.json.Decoder(NotificationsOut)
_TICK = msgspec.json.Decoder(TickOut)
_PRODUCTS = msgspec.json.Decoder(ProductsOut)
_BOOKS = msgspec.json.Decoder(ProductBooksOut)
_PURCHASES = msgspec.json.Decoder(WealthPurchasesOut)
_RESERVATIONS = msgspec.json.Decoder(WealthReservationsOut)
_SOURCES = ("wallet", "fund")
_REDEMPTIONS = ("instant", "standard")


def _kind(name: str, value: str) -> Any:
    if value not in _SOURCES:
        raise ValueError(f"{name} must be 'wallet' or 'fund', got {value!r}")
    return value


def _redemption(value: str) -> Any:
    if value not in _REDEMPTIONS:
        raise ValueError(f"redemption must be 'instant' or 'standard', got {value!r}")
    return value


def _segment(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return quote(value, safe="")


def register_issuer(
    issuer_id: str,
    name: str,
    kind: str,
    total_assets_fen: int | None,
    solvency_ratio_pct: Decimal | str | None,
    licensed: bool,
) -> WealthCall:
    body = IssuerIn(
        issuer_id=issuer_id,
        name=name,
        kind=kind,  # type: ignore[arg-type]  # the server names the kinds it knows
        total_assets_fen=total_assets_fen,
        solvency_ratio_pct=None if solvency_ratio_pct is None else str(solvency_ratio_pct),
        licensed=licensed,
    )
    return WealthCall("POST", f"{_BASE}/issuers", None, _encoder.encode(body), _ISSUER)


def list_product(
    product_id: str,
    issuer_id: str,
    name: str,
    term_days: int,
    yield_bp: int,
    size_fen: int,
    min_purchase_fen: int,
    sale_open: datetime,
    sale_close: datetime,
    min_raise_fen: int | None,
    value_date: date | None,
) -> WealthCall:
    body = ProductIn(
        product_id=product_id,
        issuer_id=issuer_id,
        name=name,
        term_days=term_days,
        yield_bp=yield_bp,
        size_fen=size_fen,
        min_purchase_fen=min_purchase_fen,
        sale_open=sale_open,
        sale_close=sale_close,
        min_raise_fen=min_raise_fen,
        value_date=value_date,
    )
    return WealthCall("POST", f"{_BASE}/products", None, _encoder.encode(body), _PRODUCT)


def product(product_id: str) -> WealthCall:
    return WealthCall("GET", f"{_BASE}/products/{_segment(product_id)}", None, None, _PRODUCT)


def products(status: str | None) -> WealthCall:
    params = None if status is None else {"status": status}
    return WealthCall("GET", f"{_BASE}/products", params, None, _PRODUCTS)


def product_books(product_id: str) -> WealthCall:
    path = f"{_BASE}/products/{_segment(product_id)}/books"
    return WealthCall("GET", path, None, None, _BOOKS)


def issuer(issuer_id: str) -> WealthCall:
    return WealthCall("GET", f"{_BASE}/issuers/{_segment(issuer_id)}", None, None, _ISSUER)


def whitelist(issuer_id: str, note: str) -> WealthCall:
    path = f"{_BASE}/issuers/{_segment(issuer_id)}/whitelist"
    return WealthCall("POST", path, None, _encoder.encode(WhitelistIn(note=note)), _ISSUER)


def unwhitelist(issuer_id: str) -> WealthCall:
    path = f"{_BASE}/issuers/{_segment(issuer_id)}/whitelist"
    return WealthCall("DELETE", path, None, None, _ISSUER)


def purchase(
    product_id: str,
    user_id: str,
    wallet_account_id: int | str,
    amount: int,
    request_id: str | None,
    source: str = "wallet",
    fund_no: int | None = None,
    payout: str = "wallet",
    redemption: str = "instant",
) -> WealthCall:
    body = WealthPurchaseIn(
        user_id=user_id,
        wallet_account_id=str(wallet_account_id),
        amount=amount,
        request_id=request_id or uuid.uuid4().hex,
        source=_kind("source", source),
        redemption=_redemption(redemption),
        fund_no=fund_no,
        payout=_kind("payout", payout),
    )
    path = f"{_BASE}/products/{_segment(product_id)}/purchases"
    return WealthCall("POST", path, None, _encoder.encode(body), _PURCHASE)


def purchases(product_id: str | None, user_id: str | None, after_no: int, limit: int) -> WealthCall:
    params = {"after_no": str(after_no), "limit": str(limit)}
    if product_id is not None:
        params["product_id"] = product_id
    if user_id is not None:
        params["user_id"] = user_id
    return WealthCall("GET", f"{_BASE}/purchases", params, None, _PURCHASES)


def reserve(
    user_id: str,
    wallet_account_id: int | str,
    amount_fen: int,
    term_min_days: int,
    term_max_days: int,
    min_yield_bp: int,
    valid_days: int | None,
    request_id: str | None,
    source: str = "wallet",
    fund_no: int | None = None,
    payout: str = "wallet",
    redemption: str = "instant",
) -> WealthCall:
    body = WealthReservationIn(
        user_id=user_id,
        request_id=request_id or uuid.uuid4().hex,
        wallet_account_id=str(wallet_account_id),
        amount_fen=amount_fen,
        term_min_days=term_min_days,
        term_max_days=term_max_days,
        min_yield_bp=min_yield_bp,
        valid_days=valid_days,
        source=_kind("source", source),
        redemption=_redemption(redemption),
        fund_no=fund_no,
        payout=_kind("payout", payout),
    )
    return WealthCall("POST", f"{_BASE}/reservations", None, _encoder.encode(body), _RESERVATION)


def reservations(user_id: str | None) -> WealthCall:
    params = None if user_id is None else {"user_id": user_id}
    return WealthCall("GET", f"{_BASE}/reservations", params, None, _RESERVATIONS)


def reservation(reservation_no: int) -> WealthCall:
    path = f"{_BASE}/reservations/{_number(reservation_no)}"
    return WealthCall("GET", path, None, None, _RESERVATION)


def cancel_reservation(reservation_no: int, user_id: str) -> WealthCall:
    path = f"{_BASE}/reservations/{_number(reservation_no)}/cancel"
    body = _encoder.encode(ReservationCancelIn(user_id=user_id))
    return WealthCall("POST", path, None, body, _RESERVATION)


def _number(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"expected a reservation number (a positive integer), got {value!r}")
    return value


def notifications(user_id: str, after_seq: int, limit: int) -> WealthCall:
    path = f"{_BASE}/users/{_segment(user_id)}/notifications"
    params = {"after_seq": str(after_seq), "limit": str(limit)}
    return WealthCall("GET", path, params, None, _NOTIFICATIONS)


def tick() -> WealthCall:
    return WealthCall("POST", f"{_BASE}/tick", None, None, _TICK)
