"""Paying at checkout with the money-market fund: redemption and payment in one chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from formicary.funds import FundStore, MoneyMarketFund
from formicary.payments import Funding, InsufficientFunds, UnknownParty
from formicary.payments.chart import merchant_wallet_id, user_wallet_id
from formicary.payments.fund_source import FundFunding
from tests.payments.world import World


@pytest.fixture
def fund(world: World, tmp_path: Path) -> MoneyMarketFund:
    store = FundStore(tmp_path / "fund.db")
    fund = MoneyMarketFund(world.ledger, store)  # on the payments' ledger and clock
    fund.start()
    world.payments.ctx.sources["mmf"] = FundFunding(fund)
    yield fund  # type: ignore[misc]
    store.close()


def test_a_fund_payment_redeems_and_pays_in_one_chain_and_refunds_back(
    world: World, fund: MoneyMarketFund
) -> None:
    user, _ = world.user(50_000)
    fund.subscribe("ada", user_wallet_id(user.id), 30_000, "s1")
    merchant = world.merchant("offline_qr")
    order = world.order(merchant, 10_000)
    paid = world.payments.cashier.pay(order.id, user.id, Funding("mmf", "ada"))
    assert paid.state == "succeeded"
    assert fund.shares("ada") == 20_000
    assert world.posted(merchant_wallet_id(merchant.id)) == 10_000 - paid.fee_fen
    assert fund.reconcile()["difference_fen"] == 0
    assert world.books_balance()

    refund = world.payments.refunds.refund(paid.id, 10_000, request_no="r1")
    assert refund.state == "succeeded"
    assert fund.shares("ada") == 30_000
    assert fund.reconcile()["difference_fen"] == 0
    assert world.books_balance()


def test_too_few_shares_refuse_the_payment_and_move_nothing(
    world: World, fund: MoneyMarketFund
) -> None:
    user, _ = world.user(50_000)
    fund.subscribe("ada", user_wallet_id(user.id), 3_000, "s1")
    merchant = world.merchant()
    with pytest.raises(InsufficientFunds):
        world.payments.cashier.pay(world.order(merchant, 10_000).id, user.id, Funding("mmf", "ada"))
    assert fund.shares("ada") == 3_000
    assert world.posted(merchant_wallet_id(merchant.id)) == 0
    assert fund.reconcile()["difference_fen"] == 0
    with pytest.raises(UnknownParty):
        world.payments.cashier.pay(world.order(merchant, 100).id, user.id, Funding("mmf", "bob"))
