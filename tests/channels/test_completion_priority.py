"""Capture and void of a granted authorization have priority over new calls: they borrow the
flow bucket's next slots (within `completion_wait_ms`) and pass an open breaker, so a bank at
its limit, or one whose breaker opened, still finishes the holds it granted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from formicary.channels import (
    NS_PER_MS,
    NS_PER_S,
    AbsoluteWindow,
    Admitted,
    BankProfile,
    BankRequest,
    BreakerRule,
    BreakerState,
    Channel,
    ChannelStatus,
    FlowController,
    FlowRule,
    HoldState,
    ManualClock,
    Reason,
    SimulatedBank,
    Throttled,
)


def channel(
    clock: ManualClock, flow: FlowRule, breaker: BreakerRule | None = None, **profile: object
) -> Channel:
    settings = {"name": "icbc", "capacity_tps": 1_000, "latency_p50_ms": 20.0} | profile
    settings.setdefault("latency_p99_ms", settings["latency_p50_ms"])
    bank = SimulatedBank(BankProfile(**settings), seed=3)  # type: ignore[arg-type]
    return Channel(bank, flow, breaker, clock=clock)


def test_a_prioritized_request_borrows_the_next_slots_within_its_extra_wait() -> None:
    controller = FlowController(FlowRule(qps=10, burst=1))  # one call per 100 ms
    assert controller.try_acquire(0) == Admitted(0)
    refused = controller.try_acquire(0)
    assert isinstance(refused, Throttled) and refused.reason is Reason.FLOW_LIMIT
    # Captures at the same instant take the next slots, up to 500 ms ahead, no further.
    starts = [controller.try_acquire(0, priority=True) for _ in range(6)]
    assert starts[:5] == [Admitted(k * 100 * NS_PER_MS) for k in range(1, 6)]
    assert starts[5] == Throttled(100 * NS_PER_MS, Reason.FLOW_LIMIT)
    # The new calls behind them wait for the slots the captures took.
    behind = controller.try_acquire(50 * NS_PER_MS)
    assert behind == Throttled(550 * NS_PER_MS, Reason.FLOW_LIMIT)
    assert controller.try_acquire(600 * NS_PER_MS) == Admitted(600 * NS_PER_MS)


def test_without_completion_wait_a_capture_is_throttled_like_any_call() -> None:
    controller = FlowController(FlowRule(qps=10, burst=1, completion_wait_ms=0))
    assert isinstance(controller.try_acquire(0), Admitted)
    assert isinstance(controller.try_acquire(0, priority=True), Throttled)


def test_in_queueing_mode_captures_still_get_in_when_the_queue_is_full() -> None:
    controller = FlowController(FlowRule(qps=100, max_queueing_ms=200, completion_wait_ms=100))
    admitted = [controller.try_acquire(0) for _ in range(30)]
    assert sum(isinstance(d, Admitted) for d in admitted) == 21  # starts 0..200 ms
    capture = controller.try_acquire(0, priority=True)
    assert capture == Admitted(210 * NS_PER_MS)


def _max_in_any_window(times_ns: list[int], window_ns: int) -> int:
    most, first = 0, 0
    for last, t in enumerate(times_ns):
        while t - times_ns[first] >= window_ns:
            first += 1
        most = max(most, last - first + 1)
    return most


@settings(max_examples=120, deadline=None)
@given(
    qps=st.integers(1, 300),
    burst=st.one_of(st.none(), st.integers(1, 30)),
    max_queueing_ms=st.sampled_from([0, 0, 200]),
    completion_wait_ms=st.sampled_from([0, 100, 500, 2_000]),
    arrivals=st.lists(st.tuples(st.integers(0, 300_000), st.booleans()), min_size=1, max_size=400),
)
def test_priority_never_lets_more_than_the_bucket_through(
    qps: int,
    burst: int | None,
    max_queueing_ms: int,
    completion_wait_ms: int,
    arrivals: list[tuple[int, bool]],
) -> None:
    rule = FlowRule(
        qps=qps,
        burst=burst,
        max_queueing_ms=max_queueing_ms,
        completion_wait_ms=completion_wait_ms,
    )
    controller = FlowController(rule)
    now_ns = 0
    starts_ns = []
    for gap_us, priority in arrivals:
        now_ns += gap_us * 1_000
        decision = controller.try_acquire(now_ns, priority=priority)
        if isinstance(decision, Admitted):
            wait_ms = rule.wait_max_ms if priority else rule.max_queueing_ms
            assert now_ns <= decision.start_ns <= now_ns + wait_ms * NS_PER_MS
            starts_ns.append(decision.start_ns)
        else:
            assert decision.retry_after_ns > 0
    assert starts_ns == sorted(starts_ns)
    for window_ns in (NS_PER_MS, 100 * NS_PER_MS, NS_PER_S, 3 * NS_PER_S):
        assert _max_in_any_window(starts_ns, window_ns) <= rule.admitted_max(window_ns)


def test_a_channel_at_its_limit_still_captures_and_voids_what_it_authorized() -> None:
    clock = ManualClock(0)
    ch = channel(clock, FlowRule(qps=10, burst=2))
    assert ch.submit(BankRequest.authorize("a-1", "card", 500)).status is ChannelStatus.SUCCEEDED
    assert ch.submit(BankRequest.authorize("a-2", "card", 700)).status is ChannelStatus.SUCCEEDED
    clock.set(NS_PER_MS)
    new = ch.submit(BankRequest.authorize("a-3", "card", 900))
    assert new.status is ChannelStatus.THROTTLED  # the bucket is empty
    captured = ch.submit(BankRequest.capture("c-1", "a-1", 500))
    voided = ch.submit(BankRequest.void("v-2", "a-2"))
    assert (captured.status, voided.status) == (ChannelStatus.SUCCEEDED,) * 2
    assert captured.reply is not None and captured.reply.submitted_ns == 100 * NS_PER_MS
    assert ch.bank.hold("a-1").state is HoldState.CAPTURED  # type: ignore[union-attr]
    assert ch.bank.hold("a-2").state is HoldState.VOIDED  # type: ignore[union-attr]
    # New calls wait behind the completions: the next slot after theirs.
    clock.set(150 * NS_PER_MS)
    later = ch.submit(BankRequest.authorize("a-4", "card", 900))
    assert later.status is ChannelStatus.THROTTLED
    assert later.retry_after_ns == 150 * NS_PER_MS


def test_without_priority_the_capture_is_refused_and_the_hold_hangs() -> None:
    clock = ManualClock(0)
    ch = channel(clock, FlowRule(qps=10, burst=1, completion_wait_ms=0))
    ch.submit(BankRequest.authorize("a-1", "card", 500))
    clock.set(NS_PER_MS)
    refused = ch.submit(BankRequest.capture("c-1", "a-1", 500))
    assert refused.status is ChannelStatus.THROTTLED
    assert ch.bank.hold("a-1").state is HoldState.HELD  # type: ignore[union-attr]


def _open_the_breaker(ch: Channel, clock: ManualClock) -> None:
    """Calls during the bank's maintenance (1 s..2 s) fail until the breaker opens."""
    for i in range(20):
        clock.set(NS_PER_S + i * 10 * NS_PER_MS)
        ch.submit(BankRequest.authorize(f"m-{i}", "card", 100))
    clock.set(3 * NS_PER_S)  # maintenance is over; the breaker stays open until 1.2 s + 60 s
    ch.advance()
    assert ch.breaker.state is BreakerState.OPEN


def test_an_open_breaker_refuses_new_calls_but_lets_completions_through() -> None:
    clock = ManualClock(0)
    rule = BreakerRule(error_ratio_max=0.5, min_requests=5, open_ms=60_000)
    ch = channel(
        clock,
        FlowRule(qps=1_000),
        rule,
        maintenance=(AbsoluteWindow(NS_PER_S, 2 * NS_PER_S),),
    )
    for name in ("a-1", "a-2"):
        assert ch.submit(BankRequest.authorize(name, "card", 500)).status is ChannelStatus.SUCCEEDED
    _open_the_breaker(ch, clock)

    refused = ch.submit(BankRequest.authorize("a-3", "card", 500))
    assert (refused.status, refused.reason) == (ChannelStatus.BREAKER_OPEN, Reason.BREAKER_OPEN)
    captured = ch.submit(BankRequest.capture("c-1", "a-1", 500))
    voided = ch.submit(BankRequest.void("v-2", "a-2"))
    assert (captured.status, voided.status) == (ChannelStatus.SUCCEEDED,) * 2
    assert ch.bank.hold("a-1").state is HoldState.CAPTURED  # type: ignore[union-attr]
    assert ch.bank.hold("a-2").state is HoldState.VOIDED  # type: ignore[union-attr]
    assert ch.completions_past_breaker == 2
    clock.set(4 * NS_PER_S)
    ch.advance()
    # A completion is never the probe: the breaker stays open until a new call probes.
    assert ch.breaker.state is BreakerState.OPEN


def test_completions_pass_a_half_open_breaker_while_its_probe_is_out() -> None:
    clock = ManualClock(0)
    rule = BreakerRule(error_ratio_max=0.5, min_requests=5, open_ms=1_000)
    ch = channel(
        clock,
        FlowRule(qps=1_000),
        rule,
        maintenance=(AbsoluteWindow(NS_PER_S, 2 * NS_PER_S),),
        latency_p50_ms=200.0,
    )
    ch.submit(BankRequest.authorize("a-1", "card", 500))
    _open_the_breaker(ch, clock)
    probe = ch.submit(BankRequest.authorize("p-1", "card", 500))
    assert probe.status is ChannelStatus.SUCCEEDED
    assert ch.breaker.state is BreakerState.HALF_OPEN
    clock.set(3 * NS_PER_S + 10 * NS_PER_MS)  # the probe's answer is still on its way
    waiting = ch.submit(BankRequest.authorize("a-2", "card", 500))
    assert waiting.reason is Reason.BREAKER_PROBING
    captured = ch.submit(BankRequest.capture("c-1", "a-1", 500))
    assert captured.status is ChannelStatus.SUCCEEDED
    clock.set(4 * NS_PER_S)
    ch.advance()
    assert ch.breaker.state is BreakerState.CLOSED  # closed by the probe's answer


def test_with_completions_pass_off_an_open_breaker_refuses_them_too() -> None:
    clock = ManualClock(0)
    rule = BreakerRule(error_ratio_max=0.5, min_requests=5, open_ms=60_000, completions_pass=False)
    ch = channel(
        clock,
        FlowRule(qps=1_000),
        rule,
        maintenance=(AbsoluteWindow(NS_PER_S, 2 * NS_PER_S),),
    )
    ch.submit(BankRequest.authorize("a-1", "card", 500))
    _open_the_breaker(ch, clock)
    refused = ch.submit(BankRequest.capture("c-1", "a-1", 500))
    assert refused.status is ChannelStatus.BREAKER_OPEN
    assert ch.bank.hold("a-1").state is HoldState.HELD  # type: ignore[union-attr]
