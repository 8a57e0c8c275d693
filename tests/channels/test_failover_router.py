"""Failover routing: which option is used, when the router moves on, "bank busy, retry",
and why repeating a route never reaches a second bank."""

from __future__ import annotations

import pytest

from formicary.channels import (
    NS_PER_MS,
    NS_PER_S,
    AbsoluteWindow,
    BankOutcome,
    BankProfile,
    BankRequest,
    BreakerRule,
    CardOption,
    Channel,
    ChannelStatus,
    FlowRule,
    ManualClock,
    Reason,
    Router,
    RouteStatus,
    SimulatedBank,
    WalletOption,
)


def make_router(clock: ManualClock, **banks: dict[str, object]) -> Router:
    channels = []
    for name, overrides in banks.items():
        flow = overrides.pop("flow", FlowRule(qps=1_000))
        breaker = overrides.pop("breaker", None)
        profile = {"name": name, "capacity_tps": 1_000, "latency_p99_ms": 80.0} | overrides
        bank = SimulatedBank(BankProfile(**profile), seed=4)  # type: ignore[arg-type]
        channels.append(Channel(bank, flow, breaker, clock=clock))  # type: ignore[arg-type]
    return Router(channels, clock=clock)


A, B = CardOption("bank-a", "card-a"), CardOption("bank-b", "card-b")
WALLET = WalletOption("wallet-1")


def pay(i: int = 1) -> BankRequest:
    return BankRequest.authorize(f"order-{i}", "card-a", 2_500)


def test_the_first_healthy_option_is_used(clock: ManualClock) -> None:
    router = make_router(clock, **{"bank-a": {}, "bank-b": {}})
    routed = router.route(pay(), [A, B, WALLET])
    assert (routed.status, routed.option_index) == (RouteStatus.SUCCEEDED, 0)
    assert routed.request is not None and routed.request.card_id == "card-a"
    assert routed.request.idempotency_id == "order-1#0"
    assert router.channel("bank-b").stats.total("offered") == 0


@pytest.mark.parametrize(
    ("bank_a", "refusal"),
    [
        ({"flow": FlowRule(qps=1, burst=1)}, ChannelStatus.THROTTLED),
        ({"maintenance": (AbsoluteWindow(0, NS_PER_S),)}, ChannelStatus.UNAVAILABLE),
        ({"capacity_tps": 1, "queue_depth_max": 1}, ChannelStatus.UNAVAILABLE),
    ],
)
def test_a_refusal_that_applied_nothing_moves_on_to_the_next_card(
    clock: ManualClock, bank_a: dict[str, object], refusal: ChannelStatus
) -> None:
    router = make_router(clock, **{"bank-a": bank_a, "bank-b": {}})
    router.route(pay(0), [A])  # spend bank A's token, or its one place in the queue
    routed = router.route(pay(1), [A, B])
    assert (routed.status, routed.option_index) == (RouteStatus.SUCCEEDED, 1)
    assert [a.result.status for a in routed.attempts] == [refusal, ChannelStatus.SUCCEEDED]
    bank_a_record = router.channel("bank-a").bank.lookup("order-1#0")
    assert bank_a_record is None  # bank A applied nothing for this order


def test_an_open_breaker_moves_on(clock: ManualClock) -> None:
    breaker = BreakerRule(min_requests=1, open_ms=60_000)
    router = make_router(
        clock,
        **{"bank-a": {"error_rate": 1.0, "breaker": breaker}, "bank-b": {}},
    )
    failed = router.route(pay(0), [A, B])
    assert (failed.status, failed.reason) == (RouteStatus.FAILED, Reason.BANK_ERROR)
    clock.advance(NS_PER_S)
    routed = router.route(pay(1), [A, B])
    assert [a.result.status for a in routed.attempts] == [
        ChannelStatus.BREAKER_OPEN,
        ChannelStatus.SUCCEEDED,
    ]


def test_answers_from_a_bank_are_final(clock: ManualClock) -> None:
    router = make_router(
        clock,
        **{
            "bank-a": {"decline_rate": 1.0},
            "bank-b": {"latency_p50_ms": 5_000.0, "latency_p99_ms": 5_000.0},
            "bank-c": {},
        },
    )
    c = CardOption("bank-c", "card-c")
    declined = router.route(pay(1), [A, c])
    assert (declined.status, declined.option_index) == (RouteStatus.DECLINED, 0)
    # A timeout may have charged the card: never try another bank after it.
    timed_out = router.route(pay(2), [B, c])
    assert (timed_out.status, timed_out.reason) == (RouteStatus.FAILED, Reason.BANK_TIMEOUT)
    assert router.channel("bank-c").stats.total("offered") == 0


def test_when_no_option_is_left_the_answer_is_bank_busy_retry(clock: ManualClock) -> None:
    router = make_router(
        clock,
        **{
            "bank-a": {"maintenance": (AbsoluteWindow(0, 30 * NS_PER_S),)},
            "bank-b": {"flow": FlowRule(qps=2, burst=1)},
        },
    )
    router.route(pay(0), [B])
    clock.advance(100 * NS_PER_MS)
    routed = router.route(pay(1), [A, B])
    assert (routed.status, routed.reason) == (RouteStatus.RETRY_LATER, Reason.NO_OPTION_LEFT)
    assert routed.option_index is None and routed.request is None
    # The sooner of: bank A's maintenance end (29.9 s), bank B's next token (0.4 s).
    assert routed.retry_after_ns == 400 * NS_PER_MS
    assert [a.result.status for a in routed.attempts] == [
        ChannelStatus.UNAVAILABLE,
        ChannelStatus.THROTTLED,
    ]
    clock.advance(routed.retry_after_ns)
    assert router.route(pay(1), [A, B]).status is RouteStatus.SUCCEEDED


def test_the_wallet_is_chosen_when_the_cards_cannot_be_used(clock: ManualClock) -> None:
    router = make_router(clock, **{"bank-a": {"maintenance": (AbsoluteWindow(0, NS_PER_S),)}})
    routed = router.route(pay(), [A, WALLET])
    assert (routed.status, routed.reason, routed.option_index) == (
        RouteStatus.WALLET,
        Reason.WALLET,
        1,
    )
    assert routed.request is None and len(routed.attempts) == 1


def test_repeating_a_route_asks_the_same_bank_and_applies_nothing_twice(
    clock: ManualClock,
) -> None:
    router = make_router(clock, **{"bank-a": {"flow": FlowRule(qps=1, burst=1)}, "bank-b": {}})
    router.route(pay(0), [A])
    first = router.route(pay(1), [A, B])  # A throttled: B used
    assert first.option_index == 1
    clock.advance(5 * NS_PER_S)  # A has tokens again; a fresh route would pick it
    again = router.route(pay(1), [A, B])
    assert (again.status, again.option_index, again.replayed) == (RouteStatus.SUCCEEDED, 1, True)
    assert again.reply is not None and again.reply.replayed
    assert router.channel("bank-a").bank.lookup("order-1#0") is None
    assert router.channel("bank-b").bank.processed()[BankOutcome.APPROVED] == 1


def test_repeating_a_timed_out_route_learns_the_real_outcome(clock: ManualClock) -> None:
    router = make_router(
        clock, **{"bank-a": {"latency_p50_ms": 4_000.0, "latency_p99_ms": 4_000.0}, "bank-b": {}}
    )
    first = router.route(pay(), [A, B])
    assert (first.status, first.reason) == (RouteStatus.FAILED, Reason.BANK_TIMEOUT)
    clock.advance(4 * NS_PER_S)
    again = router.route(pay(), [A, B])
    assert (again.status, again.option_index, again.replayed) == (RouteStatus.SUCCEEDED, 0, True)
    assert router.channel("bank-b").stats.total("offered") == 0


def test_a_repeated_id_with_a_different_request_is_a_conflict(clock: ManualClock) -> None:
    router = make_router(clock, **{"bank-a": {}})
    router.route(pay(), [A])
    other = BankRequest.authorize("order-1", "card-a", 9_999)
    clash = router.route(other, [A])
    assert (clash.status, clash.reason) == (RouteStatus.DECLINED, Reason.IDEMPOTENCY_CONFLICT)


def test_the_authorization_is_captured_at_the_bank_that_holds_it(clock: ManualClock) -> None:
    router = make_router(
        clock, **{"bank-a": {"maintenance": (AbsoluteWindow(0, 1),)}, "bank-b": {}}
    )
    routed = router.route(pay(), [A, B])
    assert routed.status is RouteStatus.SUCCEEDED and routed.request is not None
    clock.advance(NS_PER_S)
    bank = router.channel(routed.attempts[-1].result.channel)
    capture = BankRequest.capture("capture-1", routed.request.idempotency_id, 2_500)
    assert bank.submit(capture).status is ChannelStatus.SUCCEEDED
    with pytest.raises(ValueError, match="authorizing bank"):
        router.route(capture, [B])


def test_misuse_is_an_error_not_an_answer(clock: ManualClock) -> None:
    router = make_router(clock, **{"bank-a": {}})
    with pytest.raises(ValueError, match="funding options"):
        router.route(pay(), [])
    with pytest.raises(ValueError, match="no channel"):
        router.route(pay(), [CardOption("nowhere", "card")])


def test_route_totals_count_every_route(clock: ManualClock) -> None:
    router = make_router(clock, **{"bank-a": {"flow": FlowRule(qps=5, burst=5)}})
    statuses = [router.route(pay(i), [A]).status for i in range(20)]
    assert router.totals[RouteStatus.SUCCEEDED] == statuses.count(RouteStatus.SUCCEEDED) == 5
    assert router.totals[RouteStatus.RETRY_LATER] == 15


def test_a_repeat_waits_for_its_bank_rather_than_using_another(clock: ManualClock) -> None:
    router = make_router(clock, **{"bank-a": {"flow": FlowRule(qps=1, burst=1)}, "bank-b": {}})
    first = router.route(pay(1), [A, B])
    assert (first.status, first.option_index) == (RouteStatus.SUCCEEDED, 0)
    router.route(pay(2), [A])  # bank A's next token is not back yet
    clock.advance(NS_PER_MS)
    again = router.route(pay(1), [A, B])
    assert (again.status, again.option_index, again.replayed) == (RouteStatus.RETRY_LATER, 0, True)
    assert again.retry_after_ns > 0
    assert router.channel("bank-b").stats.total("offered") == 0


def test_a_repeated_wallet_route_is_the_wallet_again(clock: ManualClock) -> None:
    router = make_router(clock, **{"bank-a": {"maintenance": (AbsoluteWindow(0, NS_PER_S),)}})
    assert router.route(pay(), [A, WALLET]).status is RouteStatus.WALLET
    clock.advance(2 * NS_PER_S)  # bank A is back, but the order was settled from the wallet
    again = router.route(pay(), [A, WALLET])
    assert (again.status, again.option_index, again.replayed) == (RouteStatus.WALLET, 1, True)
    assert router.channel("bank-a").bank.lookup("order-1#0") is None
