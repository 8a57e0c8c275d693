"""The cashier: wallet and card payments, coupons and red packets, fees, one atomic chain."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formicary.ledger import Account, AccountFlags, Transfer, TransferFlags
from formicary.payments import (
    CNY,
    FEE_INCOME_ID,
    MARKETING_ID,
    BankBusy,
    BankDeclined,
    CampaignKind,
    CouponExhausted,
    CouponNotApplicable,
    Funding,
    FundingRequest,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidRequest,
    MerchantBalanceInsufficient,
    OrderAlreadyPaid,
    Outcome,
    Payment,
    PaymentState,
    PaymentTimedOut,
    Reply,
    UnknownParty,
    bank_clearing_id,
    bp_of,
    campaign_budget_id,
    merchant_wallet_id,
    user_wallet_id,
)
from formicary.payments.chart import Op, PaymentLeg, transfer_id
from tests.payments.world import World


def _payment_transfer_ids(payment: Payment) -> list[int]:
    return [transfer_id(Op.PAYMENT, payment.id, leg) for leg in PaymentLeg]


def test_a_wallet_payment_moves_payer_merchant_and_fee_in_one_chain(world: World) -> None:
    user, _ = world.user(20_000)
    merchant = world.merchant("offline_qr")
    order = world.order(merchant, 8_800)
    payment = world.payments.cashier.pay(order.id, user.id)
    assert payment.state == PaymentState.SUCCEEDED
    assert (payment.payer_fen, payment.coupon_fen, payment.fee_fen) == (8_800, 0, 53)
    assert world.payments.parties.wallet_balance(user.id) == 11_200
    assert world.payments.parties.merchant_balance(merchant.id) == 8_800 - 53
    transfers = world.ledger.lookup_transfers(_payment_transfer_ids(payment))
    assert len(transfers) == 2
    assert (
        transfers[0].flags & TransferFlags.LINKED and not transfers[-1].flags & TransferFlags.LINKED
    )
    assert world.books_balance()


def test_insufficient_funds_moves_nothing_and_the_order_stays_payable(world: World) -> None:
    user, card = world.user(1_000)
    merchant = world.merchant()
    order = world.order(merchant, 1_001)
    with pytest.raises(InsufficientFunds):
        world.payments.cashier.pay(order.id, user.id)
    assert world.payments.parties.wallet_balance(user.id) == 1_000
    assert world.payments.parties.merchant_balance(merchant.id) == 0
    # Another attempt with the card succeeds; the failed one stays on record.
    paid = world.payments.cashier.pay(order.id, user.id, Funding.card(card.id))
    attempts = world.payments.cashier.payments_of(order.id)
    assert [p.state for p in attempts] == [PaymentState.FAILED, PaymentState.SUCCEEDED]
    assert paid == attempts[-1]


def test_paying_twice_returns_the_same_payment_and_others_are_refused(world: World) -> None:
    user, _ = world.user(10_000)
    other, _ = world.user(10_000)
    order = world.order(world.merchant(), 500)
    first = world.payments.cashier.pay(order.id, user.id)
    assert world.payments.cashier.pay(order.id, user.id) == first
    with pytest.raises(OrderAlreadyPaid):
        world.payments.cashier.pay(order.id, other.id)
    assert world.payments.parties.wallet_balance(user.id) == 9_500


def test_a_card_payment_reserves_then_posts_when_the_bank_captures(world: World) -> None:
    user, card = world.user()
    merchant = world.merchant("card_acquiring")
    order = world.order(merchant, 10_000)
    payment = world.payments.cashier.pay(order.id, user.id, Funding.card(card.id))
    assert payment.state == PaymentState.SUCCEEDED and payment.fee_fen == 125
    assert world.bank.captured_fen["ICBC"] == 10_000
    assert world.posted(bank_clearing_id("ICBC")) == -10_000
    assert world.payments.parties.merchant_balance(merchant.id) == 10_000 - 125
    reserve, post = world.ledger.lookup_transfers(
        [
            transfer_id(Op.PAYMENT, payment.id, PaymentLeg.PAYER_RESERVE),
            transfer_id(Op.PAYMENT, payment.id, PaymentLeg.PAYER_POST),
        ]
    )
    assert reserve.flags & TransferFlags.PENDING and reserve.timeout == 300
    assert post.flags & TransferFlags.POST_PENDING_TRANSFER and post.pending_id == reserve.id


@pytest.mark.parametrize(
    ("operation", "reply", "error"),
    [
        ("authorize", Reply(Outcome.DECLINED, "insufficient credit"), BankDeclined),
        ("capture", Reply(Outcome.DECLINED, "risk"), BankDeclined),
        ("authorize", Reply(Outcome.BUSY, "throttled"), BankBusy),
    ],
)
def test_a_refused_card_payment_voids_its_reservations(
    world: World, operation: str, reply: Reply, error: type[Exception]
) -> None:
    user, card = world.user()
    merchant = world.merchant()
    campaign = world.payments.campaigns.create(
        "d11", CampaignKind.RED_PACKET, discount_fen=300, budget_fen=300
    )
    order = world.order(merchant, 2_000)
    world.bank.script(operation, reply)
    with pytest.raises(error):
        world.payments.cashier.pay(
            order.id, user.id, Funding.card(card.id), campaign_id=campaign.id
        )
    assert world.payments.campaigns.remaining_fen(campaign.id) == 300
    for account_id in (bank_clearing_id("ICBC"), merchant_wallet_id(merchant.id)):
        (account,) = world.ledger.lookup_accounts([account_id])
        assert account.debits_pending == account.credits_pending == 0
        assert account.debits_posted == account.credits_posted == 0
    assert world.bank.captured_fen["ICBC"] == 0


def test_a_reservation_that_expires_before_the_capture_is_reversed_at_the_bank(
    world: World,
) -> None:
    user, card = world.user()
    merchant = world.merchant()
    order = world.order(merchant, 5_000)

    def slow_bank(operation: str, request_id: str) -> None:
        if operation == "capture":
            world.clock.advance(301)  # past the 300 s reservation

    world.bank.on_call = slow_bank
    with pytest.raises(PaymentTimedOut):
        world.payments.cashier.pay(order.id, user.id, Funding.card(card.id))
    assert world.bank.captured_fen["ICBC"] == 0  # captured, then voided
    assert world.payments.parties.merchant_balance(merchant.id) == 0
    assert world.posted(bank_clearing_id("ICBC")) == 0
    (attempt,) = world.payments.cashier.payments_of(order.id)
    assert attempt.state == PaymentState.FAILED


def test_coupon_rules_and_exhaustion(world: World) -> None:
    user, _ = world.user(100_000)
    merchant = world.merchant()
    other_merchant = world.merchant()
    campaigns = world.payments.campaigns
    coupon = campaigns.create(
        "10 off 100",
        CampaignKind.COUPON,
        discount_fen=1_000,
        budget_fen=2_000,
        min_order_fen=10_000,
        merchant_id=merchant.id,
    )
    assert world.posted(MARKETING_ID) <= -2_000
    with pytest.raises(CouponNotApplicable):
        world.payments.cashier.pay(world.order(merchant, 9_999).id, user.id, campaign_id=coupon.id)
    with pytest.raises(CouponNotApplicable):
        world.payments.cashier.pay(
            world.order(other_merchant, 10_000).id, user.id, campaign_id=coupon.id
        )
    for _ in range(2):
        paid = world.payments.cashier.pay(
            world.order(merchant, 10_000).id, user.id, campaign_id=coupon.id
        )
        assert (paid.coupon_fen, paid.payer_fen) == (1_000, 9_000)
    with pytest.raises(CouponExhausted):
        world.payments.cashier.pay(world.order(merchant, 10_000).id, user.id, campaign_id=coupon.id)
    assert campaigns.remaining_fen(coupon.id) == 0
    assert world.payments.parties.wallet_balance(user.id) == 100_000 - 18_000


def test_closing_a_campaign_sweeps_the_rest_back_to_its_funder(world: World) -> None:
    user, _ = world.user(100_000)
    merchant = world.merchant()
    campaigns = world.payments.campaigns
    marketing_before = world.posted(MARKETING_ID)
    packet = campaigns.create("red", CampaignKind.RED_PACKET, discount_fen=800, budget_fen=5_000)
    # A red packet never pays out more than the order: 500 of 800 is used.
    paid = world.payments.cashier.pay(world.order(merchant, 500).id, user.id, campaign_id=packet.id)
    assert (paid.coupon_fen, paid.payer_fen) == (500, 0)
    assert campaigns.close(packet.id) == 4_500
    assert campaigns.sweep(packet.id) == 0
    assert world.posted(MARKETING_ID) - marketing_before == -500
    with pytest.raises(CouponNotApplicable):
        world.payments.cashier.pay(world.order(merchant, 500).id, user.id, campaign_id=packet.id)


def test_a_merchant_funded_coupon_comes_from_its_wallet_and_lowers_its_fee_base(
    world: World,
) -> None:
    user, _ = world.user(100_000)
    merchant = world.merchant("offline_qr")
    with pytest.raises(MerchantBalanceInsufficient):
        world.payments.campaigns.create(
            "own",
            CampaignKind.COUPON,
            discount_fen=1_000,
            budget_fen=3_000,
            funder_merchant_id=merchant.id,
        )
    world.payments.cashier.pay(world.order(merchant, 50_000).id, user.id)  # fee 300
    campaign = world.payments.campaigns.create(
        "own",
        CampaignKind.COUPON,
        discount_fen=1_000,
        budget_fen=3_000,
        funder_merchant_id=merchant.id,
    )
    assert world.payments.parties.merchant_balance(merchant.id) == 50_000 - 300 - 3_000
    paid = world.payments.cashier.pay(
        world.order(merchant, 10_000).id, user.id, campaign_id=campaign.id
    )
    assert paid.fee_fen == bp_of(9_000, 60) == 54
    assert world.payments.parties.merchant_balance(merchant.id) == 46_700 + 10_000 - 54


class Prepaid:
    """A one-phase funding source on its own ledger account: what a money-market fund is."""

    kind = "prepaid"
    two_phase = False
    base = 9 << 112

    def check(self, user_id: int, ref: str) -> None:
        pass

    def payer_account_id(self, user_id: int, ref: str) -> int:
        return self.base + user_id

    def extra_legs(self, request: FundingRequest, transfer_id: int) -> list[Transfer]:
        return []

    def confirm(self, request: FundingRequest) -> Reply:
        return Reply(Outcome.OK)

    def cancel(self, request: FundingRequest) -> Reply:
        return Reply(Outcome.OK)

    def refund(self, request: FundingRequest) -> Reply:
        return Reply(Outcome.OK)


def test_a_pluggable_funding_source_pays_and_is_refunded(world: World) -> None:
    source = Prepaid()
    world.payments.ctx.sources[source.kind] = source
    user, _ = world.user()
    account = source.payer_account_id(user.id, "")
    flags = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    assert world.ledger.create_accounts([Account(id=account, ledger=CNY, code=9, flags=flags)]) == [
        "ok"
    ]
    merchant = world.merchant()
    with pytest.raises(InsufficientFunds):
        world.payments.cashier.pay(world.order(merchant, 100).id, user.id, Funding("prepaid"))
    deposit = Transfer(
        id=9 << 112,
        debit_account_id=MARKETING_ID,
        credit_account_id=account,
        amount=1_000,
        ledger=CNY,
        code=9,
    )
    assert world.ledger.create_transfers([deposit]) == ["ok"]
    paid = world.payments.cashier.pay(world.order(merchant, 100).id, user.id, Funding("prepaid"))
    assert world.posted(account) == 900
    world.payments.refunds.refund(paid.id, 100, request_no="r")
    assert world.posted(account) == 1_000


PLANS = ["online", "offline_qr", "card_acquiring"]


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amount_fen=st.integers(1, 2_000_000),
    plan=st.sampled_from(PLANS),
    funder=st.sampled_from(["none", "platform", "merchant"]),
    discount_fen=st.integers(1, 50_000),
    card=st.booleans(),
)
def test_every_payment_balances_across_all_parties_to_the_fen(
    world: World, amount_fen: int, plan: str, funder: str, discount_fen: int, card: bool
) -> None:
    payments = world.payments
    user, bound = world.user(0 if card else amount_fen)
    merchant = world.merchant(plan)
    campaign_id = None
    if funder != "none":
        if funder == "merchant":  # the merchant earns its budget first
            seed, _ = world.user(discount_fen * 2)
            payments.cashier.pay(world.order(merchant, discount_fen * 2).id, seed.id)
        campaign = payments.campaigns.create(
            "c",
            CampaignKind.RED_PACKET,
            discount_fen=discount_fen,
            budget_fen=discount_fen,
            funder_merchant_id=merchant.id if funder == "merchant" else None,
        )
        campaign_id = campaign.id
    order = world.order(merchant, amount_fen)
    payer = bank_clearing_id(bound.bank_code) if card else user_wallet_id(user.id)
    budget = campaign_budget_id(campaign_id) if campaign_id else None
    watched = [payer, merchant_wallet_id(merchant.id), FEE_INCOME_ID]
    watched += [budget] if budget else []
    before = world.snapshot(watched)
    funding = Funding.card(bound.id) if card else Funding.wallet()
    payment = payments.cashier.pay(order.id, user.id, funding, campaign_id=campaign_id)
    after = world.snapshot(watched)
    delta = {i: after[i] - before[i] for i in watched}

    coupon = min(discount_fen, amount_fen) if campaign_id else 0
    base = amount_fen - coupon if funder == "merchant" else amount_fen
    fee = bp_of(base, payments.ctx.config.fee_plans[plan].rate_bp)
    assert (payment.coupon_fen, payment.payer_fen, payment.fee_fen) == (
        coupon,
        amount_fen - coupon,
        fee,
    )
    assert delta[payer] == -(amount_fen - coupon)
    assert delta[merchant_wallet_id(merchant.id)] == amount_fen - fee
    assert delta[FEE_INCOME_ID] == fee
    if budget:
        assert delta[budget] == -coupon
    assert sum(delta.values()) == 0
    # Every transfer of the payment touches only these accounts: nothing leaked elsewhere.
    for t in world.ledger.lookup_transfers(_payment_transfer_ids(payment)):
        assert {t.debit_account_id, t.credit_account_id} <= set(watched)
    assert world.books_balance()


@pytest.mark.parametrize("amount", [0, -1, True, 1.5, 10**12 + 1, "100"])
def test_amounts_out_of_range_are_refused_before_anything_moves(
    world: World, amount: object
) -> None:
    merchant = world.merchant()
    with pytest.raises(InvalidRequest):
        world.payments.cashier.create_order(merchant.id, amount, merchant_order_no="x")  # type: ignore[arg-type]


def test_malformed_requests_are_refused(world: World) -> None:
    user, _ = world.user(1_000)
    merchant = world.merchant()
    cashier = world.payments.cashier
    with pytest.raises(InvalidRequest):
        cashier.create_order(merchant.id, 100, merchant_order_no="x" * 129)
    with pytest.raises(IdempotencyConflict):
        cashier.create_order(merchant.id, 100, merchant_order_no="same")
        cashier.create_order(merchant.id, 101, merchant_order_no="same")
    order = world.order(merchant, 100)
    with pytest.raises(InvalidRequest):
        cashier.pay(order.id, user.id, Funding("bitcoin"))
    with pytest.raises(UnknownParty):
        cashier.pay(order.id, user.id, Funding("card", "not-a-card"))
    with pytest.raises(UnknownParty):
        cashier.pay(order.id, 10_000)
    with pytest.raises(UnknownParty):
        cashier.pay(10_000, user.id)
    assert cashier.payments_of(order.id) == []
