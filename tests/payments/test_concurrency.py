"""Many cashiers at once: a campaign budget and a wallet are never overspent.

The ledger decides: the discount and the payer's part are legs of each payment's linked chain,
from accounts with `debits_must_not_exceed_credits`, so no interleaving of threads can take a
budget or a wallet below zero.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from formicary.payments import (
    CampaignKind,
    CouponExhausted,
    Funding,
    InsufficientFunds,
    PaymentError,
    PaymentState,
    campaign_budget_id,
    user_wallet_id,
)
from formicary.payments.chart import Op, PaymentLeg, transfer_id
from tests.payments.world import World

THREADS = 8
PAYMENTS_PER_THREAD = 12


def test_a_coupon_budget_is_never_overspent_under_concurrency(world: World) -> None:
    discount_fen, discounts = 100, 30
    budget_fen = discount_fen * discounts
    campaign = world.payments.campaigns.create(
        "double 11", CampaignKind.RED_PACKET, discount_fen=discount_fen, budget_fen=budget_fen
    )
    budget = campaign_budget_id(campaign.id)
    merchant = world.merchant()
    buyers = [world.user(100_000) for _ in range(THREADS)]
    orders = [[world.order(merchant, 1_000) for _ in range(PAYMENTS_PER_THREAD)] for _ in buyers]
    stop = threading.Event()
    violations: list[str] = []

    def watch_budget() -> None:
        # The ledger's limit, sampled while the payments run: debits (posted and reserved)
        # never exceed the credits that funded the budget.
        while not stop.is_set():
            (a,) = world.ledger.lookup_accounts([budget])
            if a.debits_posted + a.debits_pending > a.credits_posted:
                violations.append(repr(a))

    def shop(i: int) -> Counter[str]:
        (user, card), outcomes = buyers[i], Counter[str]()
        for n, order in enumerate(orders[i]):
            # Half by card (two-phase: the discount is reserved first), half from the wallet.
            funding = Funding.card(card.id) if n % 2 else Funding.wallet()
            try:
                world.payments.cashier.pay(order.id, user.id, funding, campaign_id=campaign.id)
                outcomes["paid"] += 1
            except CouponExhausted:
                outcomes["exhausted"] += 1
        return outcomes

    watcher = threading.Thread(target=watch_budget)
    watcher.start()
    with ThreadPoolExecutor(THREADS) as pool:
        totals = sum(pool.map(shop, range(THREADS)), Counter[str]())
    stop.set()
    watcher.join()

    assert violations == []
    assert totals["paid"] == discounts
    assert totals["exhausted"] == THREADS * PAYMENTS_PER_THREAD - discounts
    # The coupon legs in the ledger add up to at most the budget (here: exactly).
    ids = [
        transfer_id(Op.PAYMENT, p.id, leg)
        for row in orders
        for order in row
        for p in world.payments.cashier.payments_of(order.id)
        for leg in (PaymentLeg.COUPON, PaymentLeg.COUPON_POST)
    ]
    coupon_legs = [t for t in world.ledger.lookup_transfers(ids) if t.debit_account_id == budget]
    assert sum(t.amount for t in coupon_legs) == budget_fen
    (a,) = world.ledger.lookup_accounts([budget])
    assert a.debits_pending == 0 and a.credits_posted - a.debits_posted == 0
    assert world.books_balance()


def test_a_wallet_is_never_overdrawn_by_concurrent_payments(world: World) -> None:
    user, _ = world.user(1_000)
    merchant = world.merchant()
    orders = [world.order(merchant, 100) for _ in range(THREADS * 4)]

    def pay(order_id: int) -> str:
        try:
            world.payments.cashier.pay(order_id, user.id)
            return "paid"
        except InsufficientFunds:
            return "refused"
        except PaymentError as error:  # pragma: no cover - would fail the test below
            return error.code

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = Counter(pool.map(pay, [o.id for o in orders]))
    assert outcomes == {"paid": 10, "refused": len(orders) - 10}
    (wallet,) = world.ledger.lookup_accounts([user_wallet_id(user.id)])
    assert wallet.credits_posted - wallet.debits_posted == 0
    paid = [
        p
        for o in orders
        for p in world.payments.cashier.payments_of(o.id)
        if p.state == PaymentState.SUCCEEDED
    ]
    assert len(paid) == 10
