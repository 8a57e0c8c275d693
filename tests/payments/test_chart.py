"""Account and transfer ids: deterministic, distinct, inside the ledger's id range."""

from __future__ import annotations

import pytest

from formicary.ledger import ID_MAX
from formicary.payments import (
    FEE_INCOME_ID,
    MARKETING_ID,
    bank_clearing_id,
    campaign_budget_id,
    merchant_wallet_id,
    user_wallet_id,
)
from formicary.payments.chart import Op, PaymentLeg, RefundLeg, transfer_id


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
    assert all(0 < i < ID_MAX for i in ids)
    assert user_wallet_id(7) == user_wallet_id(7)


def test_the_clearing_account_id_spells_the_bank_code() -> None:
    number = bank_clearing_id("ICBC") & (2**96 - 1)
    assert number.to_bytes(12, "big").lstrip(b"\0") == b"ICBC"
    for bad in ("", "i", "icbc", "ABCDEFGHIJKLM", "IC-BC"):
        with pytest.raises(ValueError):
            bank_clearing_id(bad)


def test_transfer_ids_differ_by_operation_entity_and_leg() -> None:
    ids = {
        transfer_id(op, entity, leg)
        for op in (Op.PAYMENT, Op.REFUND)
        for entity in (1, 2, 2**63)
        for leg in (PaymentLeg.PAYER, PaymentLeg.FEE, RefundLeg.TO_WALLET)
    }
    assert len(ids) == 2 * 3 * 3
    assert all(0 < i < ID_MAX for i in ids)
