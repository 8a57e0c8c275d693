"""A busy bank, through the fake and through real channels (flow control, breaker):

- a top-up the bank refuses as busy applies nothing, leaves nothing reserved or pending, says
  retry, and a retry with the same request id later lands exactly once;
- a card payment whose bank is at its flow limit still captures the authorization it got (the
  capture has priority over new calls), and a void that cannot reach the bank leaves no ledger
  reservation behind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from formicary.channels import (
    NS_PER_S,
    BankProfile,
    Channel,
    FlowRule,
    HoldState,
    ManualClock,
    Router,
    SimulatedBank,
)
from formicary.ledger import LedgerService
from formicary.payments import (
    BankBusy,
    CardTransferState,
    Funding,
    Outcome,
    Payments,
    PaymentsStore,
    PaymentState,
    Reply,
    bank_clearing_id,
    user_wallet_id,
)
from formicary.sim import ChannelGateway
from tests.payments.world import SECRET, World, card_number
from tests.payments.world import ManualClock as PaymentsClock

# ------------------------------------------------------------------ top-up, busy then retried


def test_a_busy_top_up_applies_nothing_and_its_retry_lands_exactly_once(world: World) -> None:
    user, card = world.user()
    parties = world.payments.parties
    world.bank.script("collect", Reply(Outcome.BUSY, "throttled"))
    with pytest.raises(BankBusy, match="retry the top-up with the same request id 't-1'"):
        parties.top_up(user.id, card.id, 2_500, request_id="t-1")
    # Nothing applied, nothing reserved, nothing left for recovery.
    (wallet,) = world.ledger.lookup_accounts([user_wallet_id(user.id)])
    assert (wallet.credits_posted, wallet.credits_pending, wallet.debits_pending) == (0, 0, 0)
    assert world.posted(bank_clearing_id("ICBC")) == 0
    assert world.bank.collected_fen["ICBC"] == 0
    report = world.payments.recover()
    assert (report.finished, report.waiting) == (0, 0)
    (row,) = world.payments.ctx.store.rows("SELECT * FROM card_transfers")
    assert (row["state"], row["failure_code"]) == ("failed", "bank_busy")

    done = parties.top_up(user.id, card.id, 2_500, request_id="t-1")
    assert done.id == row["id"] and done.state == CardTransferState.SUCCEEDED
    assert parties.top_up(user.id, card.id, 2_500, request_id="t-1") == done
    assert parties.wallet_balance(user.id) == 2_500
    assert world.posted(bank_clearing_id("ICBC")) == -2_500
    assert world.bank.collected_fen["ICBC"] == 2_500
    assert world.bank.calls["collect"] == 2  # the busy call and the one that collected
    assert world.books_balance()


def test_a_declined_top_up_stays_declined_on_retry(world: World) -> None:
    user, card = world.user()
    world.bank.script("collect", Reply(Outcome.DECLINED, "card blocked"))
    for _ in range(2):
        with pytest.raises(Exception, match="card blocked"):
            world.payments.parties.top_up(user.id, card.id, 100, request_id="t-1")
    assert world.bank.calls["collect"] == 1


def test_concurrent_retries_of_a_busy_top_up_collect_once(world: World) -> None:
    user, card = world.user()
    parties = world.payments.parties
    world.bank.busy_banks.add("ICBC")
    with pytest.raises(BankBusy):
        parties.top_up(user.id, card.id, 700, request_id="t-1")
    world.bank.busy_banks.clear()
    barrier = threading.Barrier(8)
    results: list[int] = []

    def retry() -> None:
        barrier.wait()
        results.append(parties.top_up(user.id, card.id, 700, request_id="t-1").id)

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert parties.wallet_balance(user.id) == 700
    assert world.bank.collected_fen["ICBC"] == 700


# ------------------------------------------------------------------ through real channels


class ChannelWorld:
    def __init__(self, payments: Payments, channel: Channel, clock: ManualClock) -> None:
        self.payments = payments
        self.channel = channel
        self.clock = clock


@pytest.fixture
def channels(ledger: LedgerService, clock: PaymentsClock) -> Iterator[ChannelWorld]:
    """Payments over a ChannelGateway: one bank "ICBC" at 10 calls/s, one call per bucket."""
    bank_clock = ManualClock(1_731_254_400 * NS_PER_S)
    bank = SimulatedBank(
        BankProfile(name="ICBC", capacity_tps=1_000, latency_p50_ms=30.0, latency_p99_ms=30.0)
    )
    channel = Channel(bank, FlowRule(qps=10, burst=1), clock=bank_clock)
    gateway = ChannelGateway(Router([channel], clock=bank_clock))
    store = PaymentsStore(None)
    payments = Payments(ledger, store, gateway, secret=SECRET, clock_ns=clock)
    payments.setup()
    yield ChannelWorld(payments, channel, bank_clock)
    store.close()


def test_a_throttled_top_up_is_retried_with_the_same_id_once_the_bucket_refills(
    channels: ChannelWorld,
) -> None:
    parties = channels.payments.parties
    user = parties.register_user("ada")
    card = parties.bind_card(user.id, "ICBC", card_number(1))
    parties.top_up(user.id, card.id, 1_000, request_id="t-0")  # takes the only token
    with pytest.raises(BankBusy, match="flow_limit"):
        parties.top_up(user.id, card.id, 2_000, request_id="t-1")
    assert parties.wallet_balance(user.id) == 1_000
    channels.clock.advance(NS_PER_S)
    assert parties.top_up(user.id, card.id, 2_000, request_id="t-1").state == "succeeded"
    channels.clock.advance(NS_PER_S)
    parties.top_up(user.id, card.id, 2_000, request_id="t-1")  # answered from the row
    assert parties.wallet_balance(user.id) == 3_000
    collects = [r for r in channels.channel.bank._records if r.startswith("collect:")]
    assert sorted(collects) == ["collect:topup-1", "collect:topup-2"]


def test_a_card_payment_at_the_flow_limit_still_captures_its_authorization(
    channels: ChannelWorld,
) -> None:
    """The authorization takes the bucket's only token; the capture right behind it borrows
    the next slot (100 ms later) instead of being throttled. Without that priority the
    payment failed as bank_busy and left the hold at the bank."""
    parties, cashier = channels.payments.parties, channels.payments.cashier
    user = parties.register_user("ada")
    card = parties.bind_card(user.id, "ICBC", card_number(1))
    shop = parties.register_merchant(
        "shop",
        category="5411",
        fee_plan="online",
        settlement_bank_code="CMB",
        settlement_account_number="6214830012345678",
    )
    order = cashier.create_order(shop.id, 8_800, merchant_order_no="A-1")
    paid = cashier.pay(order.id, user.id, Funding.card(card.id))
    assert paid.state == PaymentState.SUCCEEDED
    hold = channels.channel.bank.hold(f"authorize:pay-{paid.id}")
    assert hold is not None and hold.state is HoldState.CAPTURED
    assert parties.merchant_balance(shop.id) == 8_800 - paid.fee_fen
    # A new authorization at the same instant is throttled: the capture went first.
    order_2 = cashier.create_order(shop.id, 100, merchant_order_no="A-2")
    with pytest.raises(BankBusy, match="flow_limit"):
        cashier.pay(order_2.id, user.id, Funding.card(card.id))


def test_a_void_that_cannot_reach_the_bank_leaves_no_reservation(world: World) -> None:
    """Capture and void both busy: the payment fails, the ledger reservation is released at
    once (it never waits on the bank's void), and the hold lapses at the bank by itself."""
    user, card = world.user()
    shop = world.merchant()
    world.bank.script("capture", Reply(Outcome.BUSY, "breaker open"))
    world.bank.script("void", Reply(Outcome.BUSY, "breaker open"))
    order = world.order(shop, 5_000)
    with pytest.raises(BankBusy):
        world.payments.cashier.pay(order.id, user.id, Funding.card(card.id))
    (clearing,) = world.ledger.lookup_accounts([bank_clearing_id("ICBC")])
    assert (clearing.debits_pending, clearing.debits_posted) == (0, 0)
    assert world.bank.holds_open == 1  # left to lapse at the bank (FakeBank: after its TTL)
    assert world.payments.recover().waiting == 0
