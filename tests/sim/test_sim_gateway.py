"""ChannelGateway: payments' BankGateway over the bank channels (flow control, breakers)."""

from __future__ import annotations

import pytest

from formicary.channels import (
    NS_PER_MS,
    NS_PER_S,
    AbsoluteWindow,
    BankOutcome,
    BankProfile,
    BreakerRule,
    Channel,
    ChannelStatus,
    FlowRule,
    ManualClock,
    Router,
    RouteStatus,
    SimulatedBank,
)
from formicary.payments import BankAccountRef, Outcome
from formicary.sim import BankOutcomeUnknown, ChannelGateway, GatewayCall, outcome_for

CARD = BankAccountRef("B001", "622202******1234")


def gateway(
    clock: ManualClock, *, qps: int = 100, breaker: BreakerRule | None = None, **profile: object
) -> tuple[ChannelGateway, Channel, list[GatewayCall]]:
    bank = SimulatedBank(BankProfile(name="B001", capacity_tps=1_000, **profile), seed=1)
    channel = Channel(bank, FlowRule(qps=qps), breaker, clock=clock)
    calls: list[GatewayCall] = []
    return ChannelGateway(Router([channel], clock=clock), on_call=calls.append), channel, calls


def test_outcome_mapping_covers_channel_and_route_statuses() -> None:
    assert outcome_for(ChannelStatus.SUCCEEDED, BankOutcome.APPROVED) is Outcome.OK
    assert outcome_for(ChannelStatus.DECLINED, BankOutcome.DECLINED) is Outcome.DECLINED
    for status in (
        ChannelStatus.THROTTLED,
        ChannelStatus.BREAKER_OPEN,
        ChannelStatus.UNAVAILABLE,
        RouteStatus.RETRY_LATER,
    ):
        assert outcome_for(status, None) is Outcome.BUSY
    assert outcome_for(ChannelStatus.FAILED, BankOutcome.ERROR) is Outcome.BUSY  # nothing done
    assert outcome_for(ChannelStatus.FAILED, BankOutcome.TIMEOUT) is None  # unknown
    with pytest.raises(ValueError):
        outcome_for(RouteStatus.WALLET, None)


def test_authorize_capture_void_use_the_authorization_id() -> None:
    clock = ManualClock(NS_PER_S)
    gw, channel, calls = gateway(clock)
    assert gw.authorize("pay-1", CARD, 5_000).ok
    assert gw.capture("pay-1", CARD, 5_000).ok
    hold = channel.bank.hold("authorize:pay-1")
    assert hold is not None and hold.state == "captured" and hold.captured_fen == 5_000
    assert gw.void("pay-1", CARD, 5_000).ok  # a same-day reversal of the capture
    assert channel.bank.hold("authorize:pay-1").state == "reversed"
    assert [c.operation for c in calls] == ["authorize", "capture", "void"]
    assert gw.holds_open == 0
    assert gw.collect("topup-1", CARD, 100).ok
    assert channel.bank.lookup("collect:topup-1").outcome == "approved"


def test_throttled_is_busy_with_a_retry_after_and_nothing_happens() -> None:
    clock = ManualClock(NS_PER_S)
    gw, channel, calls = gateway(clock, qps=1)
    assert gw.authorize("pay-1", CARD, 100).ok
    busy = gw.authorize("pay-2", CARD, 100)
    assert busy.outcome is Outcome.BUSY and "retry after" in busy.reason
    assert calls[-1].result.status is ChannelStatus.THROTTLED and calls[-1].result.retry_after_ns
    assert channel.bank.lookup("authorize:pay-2") is None  # never reached the bank
    clock.advance(calls[-1].result.retry_after_ns)
    assert gw.authorize("pay-2", CARD, 100).ok  # busy was not remembered: a fresh call


def test_breaker_open_and_maintenance_are_busy() -> None:
    clock = ManualClock(NS_PER_S)
    window = AbsoluteWindow(2 * NS_PER_S, 3 * NS_PER_S)
    gw, _, calls = gateway(
        clock, error_rate=1.0, maintenance=(window,), breaker=BreakerRule(min_requests=2)
    )
    # Errors did nothing at the bank: busy, and they open the breaker.
    assert [gw.authorize(f"e-{i}", CARD, 100).outcome for i in range(3)] == [Outcome.BUSY] * 3
    clock.advance(NS_PER_S // 2)
    assert gw.authorize("after", CARD, 100).outcome is Outcome.BUSY
    assert calls[-1].result.status is ChannelStatus.BREAKER_OPEN
    clock.set(2 * NS_PER_S + NS_PER_MS)
    gw2, _, calls2 = gateway(clock, maintenance=(window,))
    assert gw2.authorize("m", CARD, 100).outcome is Outcome.BUSY
    assert calls2[-1].result.reason == "maintenance"


def test_timeout_raises_unknown_and_a_later_retry_of_the_same_id_learns_the_answer() -> None:
    clock = ManualClock(NS_PER_S)
    # Every call takes 5 s at the bank: past the 3 s timeout.
    gw, channel, _ = gateway(clock, latency_p50_ms=5_000, latency_p99_ms=5_000)
    with pytest.raises(BankOutcomeUnknown) as caught:
        gw.authorize("pay-1", CARD, 100)
    assert caught.value.retry_after_ns == 3 * NS_PER_S and gw.unresolved == 1
    assert channel.bank.hold("authorize:pay-1") is not None  # the bank did it
    clock.advance(caught.value.retry_after_ns)
    assert gw.authorize("pay-1", CARD, 100).ok  # the real answer, applied once
    assert gw.unresolved == 0


def test_a_retry_of_an_unknown_call_that_is_throttled_stays_unknown() -> None:
    clock = ManualClock(NS_PER_S)
    gw, _, _ = gateway(clock, qps=1, latency_p50_ms=5_000, latency_p99_ms=5_000)
    with pytest.raises(BankOutcomeUnknown):
        gw.capture("pay-9", CARD, 100)  # the bank declines (no authorization), after 5 s
    # Immediately again: throttled, not sent. Busy would claim "nothing was done", which is
    # not known for a call that timed out: it stays unknown.
    with pytest.raises(BankOutcomeUnknown):
        gw.capture("pay-9", CARD, 100)
    assert gw.unresolved == 1


def test_a_repeated_call_is_answered_from_memory_not_through_flow_control() -> None:
    clock = ManualClock(NS_PER_S)
    gw, _, calls = gateway(clock, qps=1)
    assert gw.authorize("pay-1", CARD, 100).ok
    # The token bucket is empty now, but a resumed payment repeating its authorization must
    # get the first answer (the BankGateway contract), not "busy".
    assert gw.authorize("pay-1", CARD, 100).ok
    assert len(calls) == 1 and gw.counts["authorize:replayed"] == 1


def test_unknown_bank_is_declined_and_a_mapping_names_channels() -> None:
    clock = ManualClock(NS_PER_S)
    gw, channel, _ = gateway(clock)
    reply = gw.authorize("pay-1", BankAccountRef("ICBC", "6222"), 100)
    assert reply.outcome is Outcome.DECLINED and "no channel" in reply.reason
    mapped = ChannelGateway(Router([channel], clock=clock), channel_for={"ICBC": "B001"})
    assert mapped.authorize("pay-2", BankAccountRef("ICBC", "6222"), 100).ok
