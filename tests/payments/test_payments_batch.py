"""The batch interface: per-item outcomes, the same money as the cashier, idempotency, recovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from formicary.payments import CampaignKind, IdempotencyConflict, InvalidRequest, Payments
from formicary.payments.batch import (
    BATCH_ITEMS_MAX,
    BatchItem,
    PaymentBatches,
    _ChainBuilder,
    _columns,
)
from formicary.payments.chart import FEE_INCOME_ID, merchant_wallet_id, user_wallet_id
from formicary.payments.money import FEE_PLANS, bp_of
from tests.payments.world import World


@pytest.fixture
def batches(payments: Payments, tmp_path: Path) -> PaymentBatches:
    b = PaymentBatches(payments, tmp_path / "batches.db")
    yield b  # type: ignore[misc]
    b.close()


def test_each_item_moves_the_money_the_cashier_would(world: World, batches: PaymentBatches) -> None:
    rich, _ = world.user(1_000_000)
    poor, _ = world.user(300)
    merchant = world.merchant("offline_qr")
    red = world.payments.campaigns.create(
        "red packets", CampaignKind.RED_PACKET, discount_fen=200, budget_fen=400
    )
    before = world.snapshot([user_wallet_id(rich.id), merchant_wallet_id(merchant.id)])
    items = [
        BatchItem(rich.id, merchant.id, 10_000, red.id),  # coupon 200
        BatchItem(rich.id, merchant.id, 5_000),  # no coupon
        BatchItem(poor.id, merchant.id, 1_000),  # cannot pay: fails alone
        BatchItem(rich.id, merchant.id, 3_000, red.id),  # coupon 200: the budget's last
        BatchItem(rich.id, merchant.id, 3_000, red.id),  # budget exhausted
        BatchItem(rich.id, 999, 3_000),  # no such merchant
        BatchItem(rich.id, merchant.id, 3_000, 999),  # no such campaign
        BatchItem(12345, merchant.id, 3_000),  # no such user (no wallet in the ledger)
    ]
    report = batches.pay("b1", items)
    assert report.results == [
        "ok",
        "ok",
        "insufficient_funds",
        "ok",
        "coupon_exhausted",
        "unknown_party",
        "coupon_not_applicable",
        "unknown_party",
    ]
    assert (report.succeeded, report.failed["unknown_party"]) == (3, 2)
    rate = FEE_PLANS["offline_qr"].rate_bp
    paid = [(10_000, 200), (5_000, 0), (3_000, 200)]
    fees = sum(bp_of(amount, rate) for amount, _ in paid)
    after = world.snapshot([user_wallet_id(rich.id), merchant_wallet_id(merchant.id)])
    assert after[user_wallet_id(rich.id)] == before[user_wallet_id(rich.id)] - sum(
        a - c for a, c in paid
    )
    assert after[merchant_wallet_id(merchant.id)] == sum(a for a, _ in paid) - fees
    assert world.posted(FEE_INCOME_ID) == fees
    assert world.payments.campaigns.remaining_fen(red.id) == 0
    assert world.posted(user_wallet_id(poor.id)) == 300
    assert world.books_balance()


def test_a_batch_key_is_applied_once(world: World, batches: PaymentBatches) -> None:
    user, _ = world.user(100_000)
    merchant = world.merchant()
    items = [BatchItem(user.id, merchant.id, 1_000)] * 3
    first = batches.pay("k", items)
    again = batches.pay("k", items)
    assert again.replayed and again.results == first.results == ["ok"] * 3
    assert world.posted(user_wallet_id(user.id)) == 100_000 - 3_000
    assert batches.report("k") == first
    with pytest.raises(IdempotencyConflict):
        batches.pay("k", items[:2])


def test_a_batch_left_open_by_a_crash_is_finished_once(
    world: World, payments: Payments, tmp_path: Path
) -> None:
    user, _ = world.user(100_000)
    merchant = world.merchant()
    items = [BatchItem(user.id, merchant.id, 1_000 + n) for n in range(10)]
    crashed = PaymentBatches(payments, tmp_path / "crash.db")
    # The crash: the intent is durable, the first half of the chains reached the ledger.
    crashed._run = lambda *a, **k: None  # type: ignore[method-assign]
    crashed.pay("c", items)
    crashed.close()
    half = PaymentBatches(payments, tmp_path / "crash.db")
    chains = _ChainBuilder(payments, 1).build(_columns(items[:5]), 0, ["ok"] * 5)
    payments.ctx.ledger.service.create_transfers(chains.events)
    assert half.recover() == 1
    report = half.report("c")
    assert report is not None and report.results == ["ok"] * 10
    assert world.posted(user_wallet_id(user.id)) == 100_000 - sum(1_000 + n for n in range(10))
    assert half.recover() == 0
    half.close()


@pytest.mark.parametrize(
    ("key", "items"),
    [
        ("", [BatchItem(1, 1, 100)]),
        ("k", []),
        ("k", [BatchItem(1, 1, 0)]),
        ("k", [BatchItem(1, 1, -5)]),
        ("k", [BatchItem(0, 1, 100)]),
        ("k", [BatchItem(1, 2**40, 100)]),
        ("k", [BatchItem(1, 1, 100, -1)]),
        ("k", [BatchItem(2**64, 1, 100)]),
        ("k", [BatchItem(1, 1, 100)] * (BATCH_ITEMS_MAX + 1)),
    ],
)
def test_malformed_batches_are_refused_whole(
    batches: PaymentBatches, key: str, items: list[BatchItem]
) -> None:
    with pytest.raises(InvalidRequest):
        batches.pay(key, items)


@pytest.mark.parametrize("plan", sorted(FEE_PLANS))
def test_fees_round_half_to_even_as_the_cashier_does(
    world: World, batches: PaymentBatches, plan: str
) -> None:
    """Amounts whose fee is an exact half fen, and others; a platform coupon leaves the fee
    base whole, a merchant's own coupon takes its discount off the fee base."""
    rate = FEE_PLANS[plan].rate_bp
    user, _ = world.user(5_000_000)
    merchant = world.merchant(plan)
    amounts = [1, 199, 1_000, 2_500, 3_000, 7_500, 10_001, 20_000, 123_457]
    first = batches.pay(f"seed-{plan}", [BatchItem(user.id, merchant.id, a) for a in amounts])
    assert first.succeeded == len(amounts)
    expected = sum(a - bp_of(a, rate) for a in amounts)
    assert world.posted(merchant_wallet_id(merchant.id)) == expected
    platform = world.payments.campaigns.create(
        "platform", CampaignKind.RED_PACKET, discount_fen=300, budget_fen=100_000
    )
    own = world.payments.campaigns.create(
        "own",
        CampaignKind.COUPON,
        discount_fen=500,
        budget_fen=50_000,
        funder_merchant_id=merchant.id,
        merchant_id=merchant.id,
    )
    expected -= 50_000  # the merchant funded its own campaign's budget
    items = [BatchItem(user.id, merchant.id, a, platform.id) for a in amounts[2:]]
    items += [BatchItem(user.id, merchant.id, a, own.id) for a in amounts[2:]]
    report = batches.pay(f"coupons-{plan}", items)
    assert report.succeeded == len(items), report.failed
    expected += sum(a - bp_of(a, rate) for a in amounts[2:])  # fee on the whole amount
    expected += sum(a - bp_of(a - 500, rate) for a in amounts[2:])  # coupon money is its own
    assert world.posted(merchant_wallet_id(merchant.id)) == expected
    assert world.books_balance()
