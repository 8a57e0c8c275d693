"""The fixed-term marketplace's calls, as data both clients send: one place builds each request.

A purchase or reservation without a `request_id` gets a fresh one, sent with every retry of
that call, so a retried purchase is applied once (the marketplace answers `replayed`).
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
    ProductIn,
    ProductOut,
    TickOut,
    WealthPurchaseIn,
    WealthPurchaseOut,
    WealthReservationIn,
    WealthReservationOut,
)

__all__ = [
    "WealthCall",
    "list_product",
    "notifications",
    "product",
    "purchase",
    "register_issuer",
    "reserve",
    "tick",
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


def purchase(
    product_id: str,
    user_id: str,
    wallet_account_id: int | str,
    amount: int,
    request_id: str | None,
) -> WealthCall:
    body = WealthPurchaseIn(
        user_id=user_id,
        wallet_account_id=str(wallet_account_id),
        amount=amount,
        request_id=request_id or uuid.uuid4().hex,
    )
    path = f"{_BASE}/products/{_segment(product_id)}/purchases"
    return WealthCall("POST", path, None, _encoder.encode(body), _PURCHASE)


def reserve(
    user_id: str,
    wallet_account_id: int | str,
    amount_fen: int,
    term_min_days: int,
    term_max_days: int,
    min_yield_bp: int,
    valid_days: int | None,
    request_id: str | None,
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
    )
    return WealthCall("POST", f"{_BASE}/reservations", None, _encoder.encode(body), _RESERVATION)


def notifications(user_id: str, after_seq: int, limit: int) -> WealthCall:
    path = f"{_BASE}/users/{_segment(user_id)}/notifications"
    params = {"after_seq": str(after_seq), "limit": str(limit)}
    return WealthCall("GET", path, params, None, _NOTIFICATIONS)


def tick() -> WealthCall:
    return WealthCall("POST", f"{_BASE}/tick", None, None, _TICK)
