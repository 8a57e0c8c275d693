"""The T+1 merchant settlement batch and its report, reconciled to the ledger to the fen."""

from __future__ import annotations

from datetime import timedelta

import pytest

from formicary.payments import (
    CampaignKind,
    Funding,
    Merchant,
    Outcome,
    Reply,
    SettlementState,
    SettlementTooEarly,
    bank_clearing_id,
    merchant_wallet_id,
)
from tests.payments.world import DAY_T, World

DAY_S = 24 * 3600


def _sell(world: World, merchant: Merchant, amount_fen: int, card: bool = False) -> int:
    user, bound = world.user(0 if card else amount_fen)
    funding = Funding.card(bound.id) if card else Funding.wallet()
    order = world.order(merchant, amount_fen)
    return world.payments.cashier.pay(order.id, user.id, funding).id


def _quiet_books(world: World, merchant: Merchant) -> None:
    """With nothing in flight, the merchant wallet's posted balance in the ledger equals the
    net of its items not yet settled, from the payments tables."""
    unsettled = world.payments.settlements.unsettled_fen(merchant.id)
    assert world.posted(merchant_wallet_id(merchant.id)) == unsettled
    assert world.books_balance()


def test_day_t_is_paid_to_the_merchant_bank_on_t_plus_1(world: World) -> None:
    merchant = world.merchant("offline_qr", bank_code="CMB")
    other = world.merchant("card_acquiring", bank_code="ABC")
    first = _sell(world, merchant, 10_000)
    _sell(world, merchant, 2_500, card=True)
    world.payments.refunds.refund(first, 4_000, request_no="r")
    _sell(world, other, 8_000)
    with pytest.raises(SettlementTooEarly):
        world.payments.settlements.run(DAY_T)
    world.clock.advance(DAY_S - 8 * 3600)  # 02:00 on T+1
    _sell(world, merchant, 700)  # after the cut-off: tomorrow's

    report = world.payments.settlements.run(DAY_T)

    assert report.reconciled
    line = next(x for x in report.lines if x.merchant_id == merchant.id)
    fee = 60 + 15  # 0.6% of 10,000 and of 2,500
    fee_back = 24  # 0.6% of 10,000 pro rata for 4,000
    assert (line.payments, line.gross_fen, line.fee_fen) == (2, 12_500, fee)
    assert (line.refunds, line.refunded_fen, line.fee_returned_fen) == (1, 4_000, fee_back)
    assert (
        line.net_fen == line.ledger_net_fen == line.settled_fen == 12_500 - fee - 4_000 + fee_back
    )
    assert line.state == SettlementState.SUCCEEDED
    assert world.bank.paid_out_fen == {"CMB": line.settled_fen, "ABC": 8_000 - 100}
    # Money left the platform at CMB: the clearing account (debit-normal) was credited.
    assert world.posted(bank_clearing_id("CMB")) == line.settled_fen
    assert world.payments.parties.merchant_balance(merchant.id) == 700 - 4  # tomorrow's sale
    assert report.settled_fen == line.settled_fen + 8_000 - 100
    _quiet_books(world, merchant)
    _quiet_books(world, other)
    # Re-running the day changes nothing; the report can be rebuilt at any time.
    again = world.payments.settlements.run(DAY_T)
    assert again.lines == report.lines == world.payments.settlements.report(DAY_T).lines
    assert world.bank.calls["payout"] == 2


def test_a_declined_payout_releases_the_items_to_a_later_day(world: World) -> None:
    merchant = world.merchant()
    _sell(world, merchant, 10_000)
    world.clock.advance(DAY_S)
    world.bank.script("payout", Reply(Outcome.DECLINED, "account closed"))
    report = world.payments.settlements.run(DAY_T)
    (line,) = report.lines
    assert line.state == SettlementState.FAILED and line.settled_fen == 0 and report.reconciled
    assert world.payments.parties.merchant_balance(merchant.id) == 10_000 - 55
    _sell(world, merchant, 1_000)  # day T+1
    world.clock.advance(DAY_S)
    (line,) = world.payments.settlements.run(DAY_T + timedelta(days=1)).lines
    assert line.payments == 2 and line.settled_fen == 10_000 - 55 + 1_000 - 6
    _quiet_books(world, merchant)


def test_a_busy_bank_leaves_the_settlement_reserved_until_rerun(world: World) -> None:
    merchant = world.merchant(bank_code="BOC")
    _sell(world, merchant, 3_000)
    world.clock.advance(DAY_S)
    world.bank.busy_banks.add("BOC")
    (line,) = world.payments.settlements.run(DAY_T).lines
    assert line.state == SettlementState.RESERVED and line.settled_fen == 0
    # The net is reserved: it cannot be spent (e.g. refunded) while the bank may pay it.
    assert world.payments.parties.merchant_balance(merchant.id) == 0
    world.bank.busy_banks.clear()
    (line,) = world.payments.settlements.run(DAY_T).lines
    # 0.55% of 3,000 is 16.5 fen: half to even gives 16.
    assert line.state == SettlementState.SUCCEEDED and line.settled_fen == 3_000 - 16
    _quiet_books(world, merchant)


def test_a_day_that_nets_to_nothing_is_carried_over(world: World) -> None:
    merchant = world.merchant()
    _sell(world, merchant, 10_000)  # net 9,945
    campaign = world.payments.campaigns.create(
        "own",
        CampaignKind.COUPON,
        discount_fen=100,
        budget_fen=9_945,
        funder_merchant_id=merchant.id,
    )
    world.clock.advance(DAY_S)
    (line,) = world.payments.settlements.run(DAY_T).lines
    assert (line.state, line.net_fen, line.campaign_fen, line.settled_fen) == (
        "carried",
        0,
        -9_945,
        0,
    )
    assert world.payments.campaigns.close(campaign.id) == 9_945  # on T+1
    world.clock.advance(DAY_S)
    (line,) = world.payments.settlements.run(DAY_T + timedelta(days=1)).lines
    assert line.campaign_fen == 0 and line.payments == 1
    assert line.settled_fen == line.ledger_net_fen == 9_945
    _quiet_books(world, merchant)


def test_the_report_catches_a_row_that_disagrees_with_the_ledger(world: World) -> None:
    merchant = world.merchant()
    payment_id = _sell(world, merchant, 10_000)
    world.clock.advance(DAY_S)
    assert world.payments.settlements.run(DAY_T).reconciled
    with world.payments.ctx.store.transaction() as conn:
        conn.execute("UPDATE payments SET fee_fen = fee_fen - 1 WHERE id = ?", (payment_id,))
    report = world.payments.settlements.report(DAY_T)
    assert not report.reconciled
    (line,) = report.lines
    assert line.net_fen - line.ledger_net_fen == 1
