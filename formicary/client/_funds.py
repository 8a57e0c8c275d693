"""The money-market fund's calls, as data both clients send: one place builds each request.

A call without a `request_id` gets a fresh one, sent with every retry of that call, so a retried
order is applied once (the fund answers `replayed`).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, NamedTuple

import msgspec

from formicary.api.funds_wire import (
    FundBooksOut,
    FundDaysOut,
    FundHoldingOut,
    FundIncomeIn,
    FundIncomeOut,
    FundOrderOut,
    PayoutsIn,
    PayoutsOut,
    RedemptionIn,
    SubscriptionIn,
)

__all__ = [
    "FundCall",
    "books",
    "days",
    "holding",
    "pay_redemptions",
    "post_income",
    "redeem",
    "subscribe",
]

_encoder = msgspec.json.Encoder()


class FundCall(NamedTuple):
    method: str
    path: str
    params: dict[str, str] | None
    content: bytes | None
    decoder: msgspec.json.Decoder[Any]


_ORDER = msgspec.json.Decoder(FundOrderOut)
_HOLDING = msgspec.json.Decoder(FundHoldingOut)
_DAYS = msgspec.json.Decoder(FundDaysOut)
_INCOME = msgspec.json.Decoder(FundIncomeOut)
_PAYOUTS = msgspec.json.Decoder(PayoutsOut)
_BOOKS = msgspec.json.Decoder(FundBooksOut)


def _base(fund_no: int) -> str:
    if not isinstance(fund_no, int) or not 0 < fund_no < 4096:
        raise ValueError(f"fund_no must be 1..4095, got {fund_no!r}")
    return f"/v1/funds/{fund_no}"


def subscribe(
    fund_no: int, user_id: str, wallet_account_id: int | str, amount: int, request_id: str | None
) -> FundCall:
    body = SubscriptionIn(
        user_id=user_id,
        wallet_account_id=str(wallet_account_id),
        amount=amount,
        request_id=request_id or uuid.uuid4().hex,
    )
    return FundCall("POST", f"{_base(fund_no)}/subscriptions", None, _encoder.encode(body), _ORDER)


def redeem(
    fund_no: int,
    user_id: str,
    wallet_account_id: int | str,
    amount: int,
    request_id: str | None,
    instant: bool,
) -> FundCall:
    body = RedemptionIn(
        user_id=user_id,
        wallet_account_id=str(wallet_account_id),
        amount=amount,
        request_id=request_id or uuid.uuid4().hex,
        instant=instant,
    )
    return FundCall("POST", f"{_base(fund_no)}/redemptions", None, _encoder.encode(body), _ORDER)


def holding(fund_no: int, user_id: str, days_back: int) -> FundCall:
    path = f"{_base(fund_no)}/holders/{user_id}"
    return FundCall("GET", path, {"days": str(days_back)}, None, _HOLDING)


def days(fund_no: int, start: date | None, end: date | None) -> FundCall:
    params = {}
    if start is not None:
        params["from"] = start.isoformat()
    if end is not None:
        params["to"] = end.isoformat()
    return FundCall("GET", f"{_base(fund_no)}/days", params, None, _DAYS)


def post_income(fund_no: int, day: date, income_fen: int) -> FundCall:
    body = _encoder.encode(FundIncomeIn(income_fen=income_fen))
    return FundCall("POST", f"{_base(fund_no)}/days/{day.isoformat()}/income", None, body, _INCOME)


def pay_redemptions(fund_no: int, day: date) -> FundCall:
    body = _encoder.encode(PayoutsIn(day=day.isoformat()))
    return FundCall("POST", f"{_base(fund_no)}/payouts", None, body, _PAYOUTS)


def books(fund_no: int) -> FundCall:
    return FundCall("GET", f"{_base(fund_no)}/books", None, None, _BOOKS)
