"""The batch interface's chain builder (numpy, a chunk at a time) against a plain per-item
model of the cashier's rules for a wallet payment: the same transfers, in the same order, with
the same ids, flags and amounts, and the same refusals."""

from __future__ import annotations

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formicary.ledger import Transfer, TransferFlags
from formicary.payments import CampaignKind, Payments
from formicary.payments.batch import BatchItem, PaymentBatches, _ChainBuilder, _columns
from formicary.payments.chart import (
    CNY,
    FEE_INCOME_ID,
    Op,
    PaymentLeg,
    TransferCode,
    campaign_budget_id,
    merchant_wallet_id,
    transfer_id,
    user_wallet_id,
)
from formicary.payments.money import FEE_PLANS, bp_of
from formicary.payments.records import Campaign, CampaignState
from tests.payments.world import World

_LINKED = int(TransferFlags.LINKED)


def _model(
    payments: Payments, batch_no: int, items: list[BatchItem]
) -> tuple[list[Transfer], list[str]]:
    """What `Cashier.pay` would move for each item, written out one item at a time."""
    events: list[Transfer] = []
    results = ["ok"] * len(items)
    for index, item in enumerate(items):
        try:
            merchant = payments.parties.merchant(item.merchant_id)
        except Exception:
            results[index] = "unknown_party"
            continue
        coupon, fee_base = 0, item.amount_fen
        if item.campaign_id:
            campaign: Campaign | None
            try:
                campaign = payments.campaigns.get(item.campaign_id)
            except Exception:
                campaign = None
            if (
                campaign is None
                or campaign.state != CampaignState.ACTIVE
                or campaign.merchant_id not in (None, item.merchant_id)
                or item.amount_fen < campaign.min_order_fen
            ):
                results[index] = "coupon_not_applicable"
                continue
            coupon = min(campaign.discount_fen, item.amount_fen)
            if campaign.funder_merchant_id is not None:
                fee_base -= coupon
        fee = bp_of(fee_base, FEE_PLANS[merchant.fee_plan].rate_bp)
        wallet = merchant_wallet_id(item.merchant_id)
        entity = batch_no << 17 | index
        legs = [
            (
                PaymentLeg.PAYER,
                user_wallet_id(item.user_id),
                wallet,
                item.amount_fen - coupon,
                TransferCode.PAYMENT,
            ),
            (
                PaymentLeg.COUPON,
                campaign_budget_id(item.campaign_id),
                wallet,
                coupon,
                TransferCode.COUPON,
            ),
            (PaymentLeg.FEE, wallet, FEE_INCOME_ID, fee, TransferCode.FEE),
        ]
        chain = [
            Transfer(transfer_id(Op.BATCH_PAYMENT, entity, leg), dr, cr, amount, CNY, code, _LINKED)
            for leg, dr, cr, amount, code in legs
            if amount > 0
        ]
        chain[-1] = Transfer(*[getattr(chain[-1], f) for f in chain[-1].__struct_fields__[:6]])
        events += chain
    return events, results


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_the_builder_makes_the_chains_the_model_makes(world: World, data: st.DataObject) -> None:
    if not hasattr(world, "_chain_setup"):
        merchants = [world.merchant(plan).id for plan in sorted(FEE_PLANS)]
        # The merchant funding its own campaign first takes a payment.
        payer, _ = world.user(5_000_000)
        with tempfile.TemporaryDirectory() as tmp:
            seed = PaymentBatches(world.payments, f"{tmp}/batches.db")
            assert seed.pay("seed", [BatchItem(payer.id, merchants[0], 2_000_000)]).succeeded
            seed.close()
        c = world.payments.campaigns
        campaigns = [
            c.create("platform", CampaignKind.RED_PACKET, discount_fen=300, budget_fen=10**6).id,
            c.create(
                "min order",
                CampaignKind.COUPON,
                discount_fen=50,
                budget_fen=10**6,
                min_order_fen=1_000,
            ).id,
            c.create(
                "own",
                CampaignKind.COUPON,
                discount_fen=700,
                budget_fen=10**6,
                funder_merchant_id=merchants[0],
                merchant_id=merchants[0],
            ).id,
        ]
        world._chain_setup = (merchants, campaigns)  # type: ignore[attr-defined]
    merchants, campaigns = world._chain_setup  # type: ignore[attr-defined]
    item = st.builds(
        BatchItem,
        user_id=st.integers(1, 50),
        merchant_id=st.sampled_from([*merchants, 999_999]),
        amount_fen=st.one_of(st.integers(1, 400), st.integers(1, 10**12)),
        campaign_id=st.sampled_from([0, 0, *campaigns, 888_888]),
    )
    items = data.draw(st.lists(item, min_size=1, max_size=40))
    chunk = data.draw(st.integers(1, 40))
    batch_no = data.draw(st.integers(1, 2**23 - 1))
    expected_events, expected_results = _model(world.payments, batch_no, items)
    builder = _ChainBuilder(world.payments, batch_no)
    results = ["ok"] * len(items)
    columns = _columns(items)
    events: list[Transfer] = []
    for start in range(0, len(items), chunk):
        built = builder.build(columns[:, start : start + chunk], start, results)
        # Each chain is where `starts` says, for the item it names.
        for k, index in enumerate(built.items):
            chain = built.events[built.starts[k] : built.starts[k + 1]]
            assert {(t.id >> 8) & 0x1FFFF for t in chain} == {index}
        events += built.events
    assert results == expected_results
    assert events == expected_events
