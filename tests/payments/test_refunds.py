"""Refunds: full and partial, never more than was paid, coupon and fee reversed pro rata."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formicary.ledger import ServiceUnavailable
from formicary.payments import (
    FEE_INCOME_ID,
    CampaignKind,
    Funding,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidState,
    MerchantBalanceInsufficient,
    Outcome,
    Payment,
    RefundExceedsPayment,
    RefundInProgress,
    RefundState,
    Reply,
    bank_clearing_id,
    campaign_budget_id,
    merchant_wallet_id,
    pro_rata,
    user_wallet_id,
)
from tests.payments.world import DAY_T, World


def _paid(
    world: World, amount_fen: int, discount_fen: int = 0, plan: str = "offline_qr"
) -> tuple[Payment, list[int]]:
    """A wallet payment with a platform red packet; returns it and the accounts it touched."""
    user, _ = world.user(amount_fen)
    merchant = world.merchant(plan)
    campaign_id = None
    if discount_fen:
        campaign_id = world.payments.campaigns.create(
            "rp", CampaignKind.RED_PACKET, discount_fen=discount_fen, budget_fen=discount_fen
        ).id
    order = world.order(merchant, amount_fen)
    payment = world.payments.cashier.pay(order.id, user.id, campaign_id=campaign_id)
    accounts = [user_wallet_id(user.id), merchant_wallet_id(merchant.id), FEE_INCOME_ID]
    accounts += [campaign_budget_id(campaign_id)] if campaign_id else []
    return payment, accounts


def test_a_full_refund_reverses_every_leg_exactly(world: World) -> None:
    payment, accounts = _paid(world, 9_999, discount_fen=1_234, plan="card_acquiring")
    wallet, merchant, fees, budget = accounts
    before = world.snapshot(accounts)
    refund = world.payments.refunds.refund(payment.id, 9_999, request_no="all")
    assert refund.state == RefundState.SUCCEEDED
    assert (refund.payer_fen, refund.coupon_fen, refund.fee_fen) == (
        payment.payer_fen,
        payment.coupon_fen,
        payment.fee_fen,
    )
    after = world.snapshot(accounts)
    assert after[wallet] - before[wallet] == payment.payer_fen
    assert after[budget] - before[budget] == payment.coupon_fen
    assert after[fees] - before[fees] == -payment.fee_fen
    assert after[merchant] == 0
    assert world.payments.campaigns.remaining_fen(payment.campaign_id or 0) == 1_234
    with pytest.raises(RefundExceedsPayment):
        world.payments.refunds.refund(payment.id, 1, request_no="more")


def test_refunds_are_idempotent_by_request_number(world: World) -> None:
    payment, _ = _paid(world, 1_000)
    first = world.payments.refunds.refund(payment.id, 300, request_no="r-1")
    assert world.payments.refunds.refund(payment.id, 300, request_no="r-1") == first
    with pytest.raises(IdempotencyConflict):
        world.payments.refunds.refund(payment.id, 301, request_no="r-1")
    assert world.payments.refunds.refunded_fen(payment.id) == 300


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amount_fen=st.integers(1, 1_000_000),
    discount=st.integers(0, 1_000_000),
    plan=st.sampled_from(["online", "offline_qr", "card_acquiring"]),
    asks=st.lists(st.integers(1, 1_000_000), max_size=6),
)
def test_random_partial_refunds_never_exceed_the_payment_and_reverse_exactly(
    world: World, amount_fen: int, discount: int, plan: str, asks: list[int]
) -> None:
    payment, accounts = _paid(world, amount_fen, min(discount, amount_fen), plan)
    start = world.snapshot(accounts)
    refunds = world.payments.refunds
    refunded = 0
    for n, ask in enumerate([*asks, amount_fen]):  # the last one asks for everything
        ask = min(ask, amount_fen) if n == len(asks) else ask
        if refunded + ask > amount_fen:
            with pytest.raises(RefundExceedsPayment):
                refunds.refund(payment.id, ask, request_no=f"r-{n}")
            ask = amount_fen - refunded  # then refund what is left
            if ask == 0:
                continue
        before = world.snapshot(accounts)
        refund = refunds.refund(payment.id, ask, request_no=f"r-{n}-ok")
        refunded += ask
        assert refunds.refunded_fen(payment.id) == refunded <= amount_fen
        # The cumulative rule, and this refund's ledger movements, to the fen.
        assert (
            refund.payer_fen + refund.coupon_fen == ask
            and min(refund.payer_fen, refund.coupon_fen) >= 0
        )
        after = world.snapshot(accounts)
        delta = [after[i] - before[i] for i in accounts]
        expected = [refund.payer_fen, -(ask - refund.fee_fen), -refund.fee_fen]
        expected += [refund.coupon_fen] if payment.coupon_fen else []
        assert delta == expected and sum(delta) == 0
    assert refunded == amount_fen
    # Everything reversed exactly: coupon to the budget, fee to the merchant, payer's part back.
    end = world.snapshot(accounts)
    assert [end[i] - start[i] for i in accounts][:3] == [
        payment.payer_fen,
        -(payment.amount_fen - payment.fee_fen),
        -payment.fee_fen,
    ]
    got = refunds.refunds_of(payment.id)
    assert sum(r.coupon_fen for r in got if r.state != RefundState.FAILED) == payment.coupon_fen
    assert sum(r.fee_fen for r in got if r.state != RefundState.FAILED) == payment.fee_fen
    assert world.payments.parties.merchant_balance(payment.merchant_id) == 0
    # The allocation of each refund is the rule's (checked independently).
    cumulative = coupon = 0
    for r in got:
        cumulative += r.amount_fen
        assert coupon + r.coupon_fen == pro_rata(payment.coupon_fen, cumulative, amount_fen)
        coupon += r.coupon_fen


def test_a_card_refund_is_paid_out_to_the_card(world: World) -> None:
    user, card = world.user()
    merchant = world.merchant()
    payment = world.payments.cashier.pay(
        world.order(merchant, 5_000).id, user.id, Funding.card(card.id)
    )
    refund = world.payments.refunds.refund(payment.id, 2_000, request_no="r")
    assert refund.state == RefundState.SUCCEEDED and not refund.to_wallet
    assert world.bank.paid_out_fen["ICBC"] == 2_000
    assert world.posted(bank_clearing_id("ICBC")) == -3_000


def test_a_declined_card_refund_goes_to_the_wallet(world: World) -> None:
    user, card = world.user()
    payment = world.payments.cashier.pay(
        world.order(world.merchant(), 5_000).id, user.id, Funding.card(card.id)
    )
    world.bank.script("payout", Reply(Outcome.DECLINED, "card closed"))
    refund = world.payments.refunds.refund(payment.id, 5_000, request_no="r")
    assert refund.state == RefundState.SUCCEEDED and refund.to_wallet
    assert world.payments.parties.wallet_balance(user.id) == 5_000
    assert world.posted(bank_clearing_id("ICBC")) == -5_000  # the bank kept nothing back


def test_a_busy_bank_leaves_the_refund_reversed_until_recovery(world: World) -> None:
    user, card = world.user()
    payment = world.payments.cashier.pay(
        world.order(world.merchant(), 5_000).id, user.id, Funding.card(card.id)
    )
    world.bank.busy_banks.add("ICBC")
    refund = world.payments.refunds.refund(payment.id, 1_000, request_no="r")
    assert refund.state == RefundState.REVERSED
    # The ledger part is done, so another refund may proceed meanwhile.
    world.payments.refunds.refund(payment.id, 1_000, request_no="r2")
    world.bank.busy_banks.clear()
    report = world.payments.recover()
    assert report.finished == 2 and report.waiting == 0
    assert world.payments.refunds.get(refund.id).state == RefundState.SUCCEEDED
    assert world.bank.paid_out_fen["ICBC"] == 2_000


def test_a_merchant_that_was_settled_cannot_refund_until_it_sells_again(world: World) -> None:
    payment, _ = _paid(world, 10_000)
    world.clock.advance(timedelta(days=1).total_seconds())
    assert world.payments.settlements.run(DAY_T).settled_fen == 10_000 - 60
    with pytest.raises(MerchantBalanceInsufficient):
        world.payments.refunds.refund(payment.id, 5_000, request_no="r")
    assert world.payments.refunds.refunded_fen(payment.id) == 0  # the failed one does not count
    buyer, _ = world.user(6_000)
    merchant = world.payments.parties.merchant(payment.merchant_id)
    world.payments.cashier.pay(world.order(merchant, 6_000).id, buyer.id)
    world.payments.refunds.refund(payment.id, 5_000, request_no="r-2")


def test_one_refund_in_flight_per_payment(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    payment, _ = _paid(world, 1_000)
    client = world.payments.ctx.ledger

    def down(chain: object) -> None:
        raise ServiceUnavailable("ledger restarting (injected)")

    monkeypatch.setattr(client, "submit", down)
    with pytest.raises(ServiceUnavailable):
        world.payments.refunds.refund(payment.id, 100, request_no="r-1")
    monkeypatch.undo()
    with pytest.raises(RefundInProgress):
        world.payments.refunds.refund(payment.id, 100, request_no="r-2")
    # Retrying the stuck one (or recover()) finishes it; then the next may go.
    assert (
        world.payments.refunds.refund(payment.id, 100, request_no="r-1").state
        == RefundState.SUCCEEDED
    )
    world.payments.refunds.refund(payment.id, 100, request_no="r-2")


def test_only_a_succeeded_payment_refunds(world: World) -> None:
    user, _ = world.user(100)
    order = world.order(world.merchant(), 500)
    with pytest.raises(InsufficientFunds):
        world.payments.cashier.pay(order.id, user.id)
    (failed,) = world.payments.cashier.payments_of(order.id)
    with pytest.raises(InvalidState):
        world.payments.refunds.refund(failed.id, 100, request_no="r")
