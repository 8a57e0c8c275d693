"""Wire types of the money-market fund's HTTP routes (shared with the SDK).

Amounts are JSON integers in fen (shares in fen-shares: NAV 1.00); 万份收益 and yields are
decimal strings, never floats; dates are ISO `YYYY-MM-DD`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from formicary.api.wire import DecimalId
from formicary.ledger.types import AMOUNT_MAX

__all__ = [
    "FundBooksOut",
    "FundDayOut",
    "FundDaysOut",
    "FundHoldingOut",
    "FundIncomeIn",
    "FundIncomeOut",
    "FundOrderOut",
    "PayoutsIn",
    "PayoutsOut",
    "RedemptionIn",
    "SubscriptionIn",
]

Text128 = Annotated[str, Meta(min_length=1, max_length=128)]
PositiveFen = Annotated[int, Meta(ge=1, le=AMOUNT_MAX, description="fen")]
IsoDate = Annotated[
    str,
    Meta(
        min_length=10,
        max_length=10,
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        description="YYYY-MM-DD",
        examples=["2013-12-03"],
    ),
]
# A day's income may be a loss, but never beyond what one day can carry (the allocation's bound).
IncomeFen = Annotated[int, Meta(ge=-(10**14), le=10**14, description="fen; negative on a loss")]


class SubscriptionIn(msgspec.Struct, forbid_unknown_fields=True):
    """Buy shares from a wallet. `request_id` makes a retry safe: it is applied once."""

    user_id: Text128
    wallet_account_id: DecimalId
    amount: PositiveFen
    request_id: Text128


class RedemptionIn(msgspec.Struct, forbid_unknown_fields=True):
    """Sell shares to a wallet: instantly (T+0, within limits) or standard (paid T+1)."""

    user_id: Text128
    wallet_account_id: DecimalId
    amount: PositiveFen
    request_id: Text128
    instant: bool = True


class FundOrderOut(msgspec.Struct):
    request_id: str
    user_id: str
    kind: str
    amount: int
    confirm_day: str
    earning_day: str
    pay_day: str | None
    replayed: bool


class FundIncomeIn(msgspec.Struct, forbid_unknown_fields=True):
    income_fen: IncomeFen


class FundDayOut(msgspec.Struct):
    day: str
    status: str
    income_fen: int
    earning_shares: int
    holders: int
    paid_holders: int
    carried_fen: int
    distributed_fen: int
    remainder_fen: int
    wanfen_yuan: str
    yield_7d_percent: str | None


class FundIncomeOut(msgspec.Struct):
    day: FundDayOut
    custody_cash_fen: int
    shares_outstanding: int
    balanced: bool


class FundDaysOut(msgspec.Struct):
    days: list[FundDayOut]


class IncomeLineOut(msgspec.Struct):
    day: str
    income_fen: int
    wanfen_yuan: str


class FundHoldingOut(msgspec.Struct):
    user_id: str
    account_id: str
    shares: int
    income: list[IncomeLineOut]


class PayoutsIn(msgspec.Struct, forbid_unknown_fields=True):
    day: IsoDate


class PayoutsOut(msgspec.Struct):
    paid: int


class FundBooksOut(msgspec.Struct):
    custody_cash_fen: int
    shares_outstanding: int
    rounding_shares: int
    difference_fen: int
    balanced: bool
