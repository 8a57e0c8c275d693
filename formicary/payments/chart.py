"""The payments chart of accounts: account codes, transfer codes and how ids are derived.

Every id is a pure function of domain ids, so that a retried or resumed operation submits
byte-identical transfers and the ledger answers `exists` instead of applying them twice.
See docs/accounts.md for the table of money movements.

Id layout, below 2^63 (the ledger stores and hashes such ids as small integers: a 128-bit id
costs a 16-byte blob per field, which measured twice the time to commit a transfer):

    account:  [0x50:8][account code - 1000:8][number:48]
    transfer: [0x51:8][operation:8][entity id:40][leg:8]

The top byte keeps the payments ids apart from other products sharing the ledger (the fund uses
0x46, see docs/accounts.md).
"""

from __future__ import annotations

import hashlib
import re
from enum import IntEnum

__all__ = [
    "ACCOUNT_SPACE",
    "CNY",
    "ENTITY_MAX",
    "FAMILY_SWEEPS_MAX",
    "FEE_INCOME_ID",
    "MARKETING_ID",
    "NUMBER_MAX",
    "SWEEPS_MAX",
    "TRANSFER_SPACE",
    "AccountCode",
    "CampaignLeg",
    "FamilyLeg",
    "Op",
    "PaymentLeg",
    "PayoutLeg",
    "RefundLeg",
    "TransferCode",
    "account_id",
    "bank_clearing_id",
    "campaign_budget_id",
    "family_entity_id",
    "family_grant_account_id",
    "merchant_wallet_id",
    "transfer_id",
    "user_wallet_id",
]

# ISO 4217 numeric code of the renminbi: the ledger of every payments account.
CNY = 156
# The top byte of every payments account id and transfer id (other products pick others).
ACCOUNT_SPACE = 0x50
TRANSFER_SPACE = 0x51
NUMBER_MAX = 2**48 - 1
ENTITY_MAX = 2**40 - 1
# Bank codes are short upper-case identifiers ("ICBC", "CMB", "102"); 12 ASCII bytes fit
# exactly in the 96-bit number, so the clearing account id spells the bank code.
_BANK_CODE = re.compile(r"[A-Z0-9]{2,12}")


class AccountCode(IntEnum):
    """The `code` of each kind of payments account."""

    USER_WALLET = 1001
    MERCHANT_WALLET = 1002
    BANK_CLEARING = 1003
    FEE_INCOME = 1004
    MARKETING_EXPENSE = 1005
    CAMPAIGN_BUDGET = 1006
    FAMILY_GRANT = 1007


class TransferCode(IntEnum):
    """The `code` of each kind of payments transfer (what the money moved for)."""

    TOP_UP = 1001
    WITHDRAWAL = 1002
    PAYMENT = 1003
    COUPON = 1004
    FEE = 1005
    REFUND = 1006
    COUPON_REVERSAL = 1007
    FEE_REVERSAL = 1008
    CAMPAIGN_FUNDING = 1009
    CAMPAIGN_SWEEP = 1010
    SETTLEMENT = 1011
    REFUND_TO_WALLET = 1012
    FAMILY_FUNDING = 1013
    FAMILY_SWEEP = 1014
    RED_PACKET_CLAIM = 1015


class Op(IntEnum):
    """The operation a transfer belongs to (bits 55..48 of its id)."""

    TOP_UP = 1
    WITHDRAWAL = 2
    PAYMENT = 3
    REFUND = 4
    CAMPAIGN = 5
    SETTLEMENT = 6
    FAMILY = 7
    BATCH_PAYMENT = 8  # entity: batch number << 17 | item index (formicary/payments/batch.py)


class PaymentLeg(IntEnum):
    """Stable leg numbers of a payment (bits 7..0 of a transfer id): fixed per role, never
    positional, so that a leg skipped because its amount is 0 does not shift the others."""

    # one-phase (wallet and other ledger-only sources)
    PAYER = 1
    COUPON = 2
    FEE = 3
    # two-phase (cards): reserve, then post (with FEE) or void
    PAYER_RESERVE = 4
    COUPON_RESERVE = 5
    PAYER_POST = 6
    COUPON_POST = 7
    PAYER_VOID = 8
    COUPON_VOID = 9
    # one-phase sources that move something else in the same chain (the fund's shares)
    SOURCE = 10


class RefundLeg(IntEnum):
    """Leg numbers of a refund."""

    FEE = 1
    PAYER = 2
    COUPON = 3
    # the card payout was declined: the payer's part goes to the user's wallet instead
    TO_WALLET = 4


class PayoutLeg(IntEnum):
    """Leg numbers of top-ups (one posted leg), withdrawals and settlements (two-phase)."""

    TOP_UP = 1
    RESERVE = 2
    POST = 3
    VOID = 4


class CampaignLeg(IntEnum):
    """Leg numbers of a campaign: its funding, then sweeps 0.. of what is left once closed.
    A red-packet claim is leg CLAIM with the *claim's* id as the entity: no campaign transfer
    uses that leg, so the two id ranges never meet."""

    FUND = 1
    CLAIM = 2
    SWEEP_FIRST = 16


# A sweep is one leg id; 240 sweeps of one campaign is far more than a campaign needs.
SWEEPS_MAX = 255 - CampaignLeg.SWEEP_FIRST + 1


class FamilyLeg(IntEnum):
    """Leg numbers of one family grant's month: the limit set aside from the payer's wallet,
    then sweeps 0.. of what is left back to the payer once the month is closed."""

    FUND = 1
    SWEEP_FIRST = 16


# One sweep when the month closes, one more per refund that lands after it: 240 is ample.
FAMILY_SWEEPS_MAX = 255 - FamilyLeg.SWEEP_FIRST + 1
# A family month is counted from January 2000 in 12 bits (341 years); the grant id takes the
# bits above it (2^28 grants in a 40-bit entity id).
_MONTH_BITS = 12


def account_id(code: AccountCode, number: int) -> int:
    """The id of the payments account of kind `code` for entity `number`."""
    assert 0 <= number <= NUMBER_MAX, number
    return (ACCOUNT_SPACE << 56) | ((int(code) - 1000) << 48) | number


def user_wallet_id(user_id: int) -> int:
    return account_id(AccountCode.USER_WALLET, user_id)


def merchant_wallet_id(merchant_id: int) -> int:
    return account_id(AccountCode.MERCHANT_WALLET, merchant_id)


def campaign_budget_id(campaign_id: int) -> int:
    return account_id(AccountCode.CAMPAIGN_BUDGET, campaign_id)


def family_entity_id(grant_id: int, month: int) -> int:
    """The number of one grant's month: its grant account's number and its transfers' entity
    id. `month` is yyyymm (a calendar month in Beijing time)."""
    assert 0 < grant_id < 2 ** (40 - _MONTH_BITS), grant_id
    assert 200_001 <= month <= 234_012 and 1 <= month % 100 <= 12, month
    months = (month // 100 - 2000) * 12 + month % 100 - 1
    return (grant_id << _MONTH_BITS) | months


def family_grant_account_id(grant_id: int, month: int) -> int:
    """The account holding what is left of a family grant's limit for `month` (yyyymm)."""
    return account_id(AccountCode.FAMILY_GRANT, family_entity_id(grant_id, month))


def bank_clearing_id(bank_code: str) -> int:
    """One clearing account per bank; its number is 48 bits of a hash of the bank code (two
    of 10,000 banks collide with probability ~2e-7; `Payments.setup` could check)."""
    if not _BANK_CODE.fullmatch(bank_code):
        raise ValueError(f"bank code must be 2-12 of A-Z0-9, got {bank_code!r}")
    digest = hashlib.blake2b(bank_code.encode(), digest_size=6, person=b"bank-clearing").digest()
    return account_id(AccountCode.BANK_CLEARING, int.from_bytes(digest, "big"))


FEE_INCOME_ID = account_id(AccountCode.FEE_INCOME, 1)
MARKETING_ID = account_id(AccountCode.MARKETING_EXPENSE, 1)


def transfer_id(op: Op, entity_id: int, leg: int) -> int:
    """The id of leg `leg` of operation `op` on entity `entity_id` (a payment id, ...)."""
    assert 0 < entity_id <= ENTITY_MAX, entity_id
    assert 0 < leg <= 255, leg
    return (TRANSFER_SPACE << 56) | (int(op) << 48) | (entity_id << 8) | leg
