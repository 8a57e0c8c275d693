"""Account and transfer ids: deterministic, distinct, inside the ledger's id range."""

from __future__ import annotations

import pytest

from formicary.payments import (
    FEE_INCOME_ID,
    MARKETING_ID,
    bank_clearing_id,
    campaign_budget_id,
    merchant_wallet_id,
    user_wallet_id,
)
from formicary.payments.chart import (
    ENTITY_MAX,
    NUMBER_MAX,
    Op,
    PaymentLeg,
    RefundLeg,
    transfer_id,
)


def test_account_ids_are_distinct_across_kinds_and_in_range() -> None:
    ids = [
        user_wallet_id(1),
        merchant_wallet_id(1),
        campaign_budget_id(1),
        bank_clearing_id("ICBC"),
        FEE_INCOME_ID,
        MARKETING_ID,
        user_wallet_id(2),
    ]
    assert len(set(ids)) == len(ids)
    # Below 2^63: the ledger keeps them as small integers (twice as fast to commit).
    assert all(0 < i < 2**63 for i in ids)
    assert user_wallet_id(7) == user_wallet_id(7)
    assert user_wallet_id(NUMBER_MAX) < merchant_wallet_id(0)
    with pytest.raises(AssertionError):
        user_wallet_id(NUMBER_MAX + 1)


def test_each_bank_has_its_own_clearing_account() -> None:
    codes = ["ICBC", "CMB", "BOC", "ABC", *(f"BANK{n:03d}" for n in range(500))]
    ids = {bank_clearing_id(code) for code in codes}
    assert len(ids) == len(codes)
    assert bank_clearing_id("ICBC") == bank_clearing_id("ICBC")
    for bad in ("", "i", "icbc", "ABCDEFGHIJKLM", "IC-BC"):
        with pytest.raises(ValueError):
            bank_clearing_id(bad)


def test_transfer_ids_differ_by_operation_entity_and_leg() -> None:
    ids = {
        transfer_id(op, entity, leg)
        for op in (Op.PAYMENT, Op.REFUND)
        for entity in (1, 2, ENTITY_MAX)
        for leg in (PaymentLeg.PAYER, PaymentLeg.FEE, RefundLeg.TO_WALLET)
    }
    assert len(ids) == 2 * 3 * 3
    assert all(0 < i < 2**63 for i in ids)
    with pytest.raises(AssertionError):
        transfer_id(Op.PAYMENT, ENTITY_MAX + 1, 1)
