"""The marketplace's chart of accounts in the ledger: account and transfer ids, and codes.

Account ids and the ids of the marketplace's own runs (listing, close, maturity of a product)
lie in [0x57 << 56, 0x58 << 56) ("W"), below 2^63 so that the ledger keeps them as small
integers: 8 bits of kind and 48 bits of value (a product or issuer number). The transfers of a
purchase take a 112-bit hash of (product, user, request id) and an 8-bit leg number under the
top byte 0x57: a retried purchase, close or maturity names the same transfers, so the ledger
applies each once, and distinct purchases collide with probability ~2^-112 per pair. Funding
sources derive their legs' ids the same way (`source_leg_id`), as the fund derives its orders'
(`formicary/funds/ledger_ids.order_transfer_id`).
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

__all__ = [
    "VALUE_MAX",
    "AccountKind",
    "Code",
    "PurchaseLeg",
    "RunKind",
    "account_id",
    "purchase_key",
    "purchase_transfer_id",
    "run_transfer_id",
    "source_leg_id",
]

_TOP = 0x57  # "W": the other products use other top bytes (funds 0x46, payments 0x00)
_NAMESPACE = _TOP << 56
_VALUE_BITS = 48
VALUE_MAX = (1 << _VALUE_BITS) - 1
# Source legs per purchase: each gets a post and a void id below (16 + i, 32 + i).
SOURCE_LEGS_MAX = 8


class AccountKind(IntEnum):
    """Accounts of the marketplace. Money ledger: ESCROW (per product), ISSUER (per issuer).
    Quota ledger (units: fen of a product's size): SIZE, REMAINING, SUBSCRIBED per product."""

    ESCROW = 1  # money: the product's raise until close, then its repayment until paid out
    QUOTA_SIZE = 2  # quota: debited by the listing with the size; unsold size returns here
    QUOTA_REMAINING = 3  # quota, debits <= credits: what may still be bought (the oversell stop)
    QUOTA_SUBSCRIBED = 4  # quota: what purchases took (raised, or released if it failed)
    ISSUER = 16  # money, debits <= credits: an issuer's settlement account


class RunKind(IntEnum):
    """Transfers a product's runs make once per product (value: the product number)."""

    LISTING = 1  # QUOTA_SIZE -> QUOTA_REMAINING: the size
    SWEEP = 2  # QUOTA_REMAINING -> QUOTA_SIZE, balancing: stops all sales at close
    HANDOVER = 3  # ESCROW -> ISSUER: the raise, when the product launches
    REPAYMENT = 4  # ISSUER -> ESCROW: principal plus interest, at maturity


class PurchaseLeg(IntEnum):
    """Legs of one purchase, the low byte of their ids (the source's own legs: `source_leg_id`)."""

    QUOTA = 1  # pending QUOTA_REMAINING -> QUOTA_SUBSCRIBED
    POST_QUOTA = 2
    POST_SOURCE = 16  # + the source leg's index
    VOID_SOURCE = 32  # + the source leg's index
    PRINCIPAL = 48  # ESCROW -> payout wallet, at maturity
    INTEREST = 49


class Code(IntEnum):
    """Ledger `code`s of the marketplace's accounts and transfers (what a ledger reader sees)."""

    PRODUCT_ACCOUNT = 4001
    ISSUER_ACCOUNT = 4002
    LISTING = 4101
    PURCHASE = 4102
    SWEEP = 4103
    HANDOVER = 4104
    REPAYMENT = 4105
    PAYOUT_PRINCIPAL = 4106
    PAYOUT_INTEREST = 4107


def _id(kind: int, value: int) -> int:
    assert 0 < kind < 256 and 0 < value <= VALUE_MAX
    return _NAMESPACE | kind << _VALUE_BITS | value


def account_id(kind: AccountKind, number: int) -> int:
    """A product's (ESCROW, QUOTA_*) or an issuer's (ISSUER) account, by its dense number."""
    return _id(kind, number)


def run_transfer_id(kind: RunKind, product_no: int) -> int:
    return _id(64 + kind, product_no)


def purchase_key(product_id: str, user_id: str, request_id: str) -> int:
    """112 bits naming one purchase; its transfers are `purchase_transfer_id(key, leg)`."""
    data = f"{product_id}\x1f{user_id}\x1f{request_id}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=14).digest(), "big")


def purchase_transfer_id(key: int, leg: int) -> int:
    assert 0 <= key < 1 << 112 and 0 < leg < 256
    return _TOP << 120 | key << 8 | leg


def source_leg_id(source: str, owner: str, request_key: str, leg: int) -> int:
    """The id of leg `leg` a funding source adds to a chain: a 120-bit hash of (source, owner,
    request key, leg), like the fund's order ids, so a retried chain names the same legs."""
    assert 0 <= leg < SOURCE_LEGS_MAX
    data = f"{source}\x1f{owner}\x1f{request_key}\x1f{leg}".encode()
    return _TOP << 120 | int.from_bytes(hashlib.blake2b(data, digest_size=15).digest(), "big")
