"""The fund's chart of accounts in the ledger: account and transfer ids, ledgers and codes.

Account ids and the daily run's transfer ids lie in [0x46 << 56, 0x47 << 56) ("F"), below 2^63
so that the ledger stores and hashes them as small integers: 12 bits of fund number, 8 bits of
kind, 36 bits of value (a holder index or a day number). The transfers of an order take a
120-bit hash of (fund, kind, user, request id) under the top byte 0x46: a retried request names
the same transfers, so the ledger applies it once, and distinct requests collide with
probability ~2^-120 per pair.
"""

from __future__ import annotations

import hashlib
from datetime import date
from enum import IntEnum

__all__ = [
    "CHUNKS_PER_DAY_MAX",
    "FUND_NO_MAX",
    "HOLDERS_MAX",
    "AccountKind",
    "Code",
    "TransferKind",
    "account_id",
    "day_from_number",
    "day_number",
    "holder_account_id",
    "holder_base",
    "order_transfer_id",
    "transfer_id",
]

_NAMESPACE = 0x46 << 56
FUND_NO_MAX = (1 << 12) - 1
_VALUE_BITS = 36
HOLDERS_MAX = 1 << _VALUE_BITS
# Days are counted from this epoch, so a day number fits easily in 36 bits and in user_data_32.
_EPOCH = date(2000, 1, 1)
# A bulk's chunk number lives in the low bits of its id's value: at most this many per day.
CHUNKS_PER_DAY_MAX = 1 << 16


class AccountKind(IntEnum):
    """Accounts of one fund. Money ledger: CUSTODY, MARKET, REDEMPTIONS_PAYABLE. Share ledger:
    ISSUANCE, ROUNDING and one HOLDER account per holder."""

    CUSTODY = 1  # the fund's cash at the custodian bank (money)
    MARKET = 2  # where realised income comes from, or losses go to (money, outside the fund)
    REDEMPTIONS_PAYABLE = 3  # cash owed to standard (T+1) redemptions (money)
    ISSUANCE = 4  # shares outstanding: its net debit is every share held (shares)
    ROUNDING = 5  # sub-fen remainders of the daily income (shares)
    HOLDER = 16  # one per holder; the value is the holder index (shares)


class TransferKind(IntEnum):
    SUBSCRIBE_CASH = 1
    SUBSCRIBE_SHARES = 2
    REDEEM_SHARES = 3
    REDEEM_CASH = 4
    REDEMPTION_PAYOUT = 5
    INCOME_CASH = 16
    INCOME_REMAINDER = 17
    INCOME_BULK = 18


class Code(IntEnum):
    """Ledger `code`s of the fund's accounts and transfers (what a reader of the ledger sees)."""

    FUND_ACCOUNT = 3001
    HOLDER_SHARES = 3002
    SUBSCRIPTION = 3101
    REDEMPTION_INSTANT = 3102
    REDEMPTION_STANDARD = 3103
    REDEMPTION_PAYOUT = 3104
    # Shares spent at checkout (and given back by a refund): they stop (and start) earning at
    # once, so the daily snapshot needs no adjustment for them.
    CHECKOUT = 3105
    CHECKOUT_REFUND = 3106
    INCOME = 3201
    INCOME_REMAINDER = 3202


def _id(fund_no: int, kind: int, value: int) -> int:
    assert 0 < fund_no <= FUND_NO_MAX and 0 < kind < 256 and 0 <= value < HOLDERS_MAX
    return _NAMESPACE | fund_no << 44 | kind << _VALUE_BITS | value


def account_id(fund_no: int, kind: AccountKind) -> int:
    assert kind is not AccountKind.HOLDER
    return _id(fund_no, kind, 0)


def holder_account_id(fund_no: int, holder_index: int) -> int:
    return _id(fund_no, AccountKind.HOLDER, holder_index)


def holder_base(fund_no: int) -> int:
    """Holder i's account id is this + i (for vectorised id ranges)."""
    return _id(fund_no, AccountKind.HOLDER, 0)


def order_transfer_id(fund_no: int, kind: TransferKind, user_id: str, request_id: str) -> int:
    """The id of one transfer of a client's order (see the module docstring)."""
    key = f"{fund_no}\x1f{int(kind)}\x1f{user_id}\x1f{request_id}".encode()
    digest = hashlib.blake2b(key, digest_size=15).digest()
    return 0x46 << 120 | int.from_bytes(digest, "big")


def transfer_id(fund_no: int, kind: TransferKind, value: int) -> int:
    """The id of a transfer of the fund's own runs (value: a day number, or day and chunk)."""
    return _id(fund_no, 64 + kind, value)


def day_number(day: date) -> int:
    return (day - _EPOCH).days


def day_from_number(number: int) -> date:
    return date.fromordinal(_EPOCH.toordinal() + number)
