"""A channel end to end on a manual clock: flow rule, breaker and bank together, with the
answers delivered at their virtual arrival times, and the per-second counters."""

from __future__ import annotations

from formicary.channels import (
    NS_PER_MS,
    NS_PER_S,
    AbsoluteWindow,
    BankProfile,
    BankRequest,
    BreakerRule,
    BreakerState,
    Channel,
    ChannelResult,
    ChannelStatus,
    FlowRule,
    ManualClock,
    Reason,
    SimulatedBank,
)


def channel(
    clock: ManualClock,
    flow: FlowRule | None = None,
    breaker: BreakerRule | None = None,
    **profile: object,
) -> Channel:
    settings = {"name": "ccb", "capacity_tps": 1_000, "latency_p50_ms": 50.0} | profile
    settings.setdefault("latency_p99_ms", settings["latency_p50_ms"])
    bank = SimulatedBank(BankProfile(**settings), seed=2)  # type: ignore[arg-type]
    return Channel(bank, flow or FlowRule(qps=1_000), breaker, clock=clock)


def drive(ch: Channel, clock: ManualClock, *, rate: int, seconds: float) -> list[ChannelResult]:
    """Offer `rate` calls per second for `seconds`, one every 1/rate s."""
    results = []
    start_ns = clock.now_ns()
    for i in range(int(rate * seconds)):
        clock.set(start_ns + i * NS_PER_S // rate)
        results.append(ch.submit(BankRequest.authorize(f"{start_ns}-{i}", "card", 100)))
    return results


def test_the_breaker_opens_on_an_unavailable_bank_and_recovers_after_it() -> None:
    clock = ManualClock(0)
    rule = BreakerRule(error_ratio_max=0.5, min_requests=5, open_ms=2_000)
    ch = channel(clock, breaker=rule, maintenance=(AbsoluteWindow(2 * NS_PER_S, 5 * NS_PER_S),))
    results = drive(ch, clock, rate=50, seconds=10)
    statuses = [r.status for r in results]
    by_second = [statuses[s * 50 : (s + 1) * 50] for s in range(10)]

    assert set(by_second[0] + by_second[1]) == {ChannelStatus.SUCCEEDED}
    # Maintenance from 2 s: calls see UNAVAILABLE until failures are over half of the last
    # second's calls (the 50 successes of second 1 still count), then the breaker opens and
    # stops sending them.
    failures = by_second[2].count(ChannelStatus.UNAVAILABLE)
    assert 25 < failures < 50
    assert by_second[2][failures:] == [ChannelStatus.BREAKER_OPEN] * (50 - failures)
    # Open for 2 s; the probe at ~4.1 s still finds maintenance and re-opens it; the probe
    # at ~6.1 s succeeds and closes it: the bank serves again.
    assert set(by_second[7] + by_second[8] + by_second[9]) == {ChannelStatus.SUCCEEDED}
    assert [(t.before, t.after) for t in ch.breaker.transitions] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    # While open, the bank was left alone: after opening it saw only the one failed probe.
    assert statuses.count(ChannelStatus.UNAVAILABLE) == failures + 1
    assert ch.bank.stats.total("unavailable") == failures + 1
    rejected = [r for r in results if r.status is ChannelStatus.BREAKER_OPEN]
    assert all(r.reply is None and r.retry_after_ns > 0 for r in rejected)


def test_a_slow_bank_trips_the_breaker_only_once_its_answers_arrive() -> None:
    clock = ManualClock(0)
    rule = BreakerRule(slow_call_ms=1_000, slow_ratio_max=0.5, min_requests=5, open_ms=10_000)
    ch = channel(clock, breaker=rule, latency_p50_ms=1_500.0, timeout_ms=5_000)
    results = drive(ch, clock, rate=20, seconds=1.4)  # 28 calls by 1.35 s
    # Nothing has come back before 1.5 s, so the breaker has nothing to judge yet.
    assert {r.status for r in results} == {ChannelStatus.SUCCEEDED}
    assert ch.breaker.state is BreakerState.CLOSED and ch.in_flight == 28
    clock.set(1_500 * NS_PER_MS + 4 * NS_PER_S // 20)  # the fifth slow answer has arrived
    ch.advance()
    assert ch.breaker.state is BreakerState.OPEN
    later = ch.submit(BankRequest.authorize("late", "card", 100))
    assert (later.status, later.reason) == (ChannelStatus.BREAKER_OPEN, Reason.BREAKER_OPEN)


def test_while_half_open_other_calls_wait_for_the_probe() -> None:
    clock = ManualClock(0)
    rule = BreakerRule(min_requests=1, open_ms=1_000, slow_ratio_max=None)
    ch = channel(
        clock,
        breaker=rule,
        latency_p50_ms=300.0,
        maintenance=(AbsoluteWindow(0, NS_PER_S),),
    )
    assert ch.submit(BankRequest.authorize("a", "c", 1)).status is ChannelStatus.UNAVAILABLE
    ch.advance()
    assert ch.breaker.state is BreakerState.OPEN
    clock.set(NS_PER_S)
    probe = ch.submit(BankRequest.authorize("b", "c", 1))
    assert probe.status is ChannelStatus.SUCCEEDED and probe.reply is not None
    clock.advance(NS_PER_MS)
    waiting = ch.submit(BankRequest.authorize("c", "c", 1))
    assert (waiting.status, waiting.reason) == (ChannelStatus.BREAKER_OPEN, Reason.BREAKER_PROBING)
    assert waiting.retry_after_ns == probe.reply.completed_ns - clock.now_ns()
    clock.set(probe.reply.completed_ns)
    assert ch.submit(BankRequest.authorize("d", "c", 1)).status is ChannelStatus.SUCCEEDED


def test_a_throttled_probe_passes_the_turn_on() -> None:
    clock = ManualClock(0)
    rule = BreakerRule(min_requests=1, open_ms=500)
    ch = channel(
        clock,
        FlowRule(qps=1, burst=1),  # one token a second
        rule,
        maintenance=(AbsoluteWindow(0, NS_PER_S // 4),),
    )
    assert ch.submit(BankRequest.authorize("a", "c", 1)).status is ChannelStatus.UNAVAILABLE
    assert ch.breaker.state is BreakerState.CLOSED  # the answer is dated now, delivered next
    clock.set(NS_PER_S // 2)  # the breaker would probe, but the token comes back only at 1 s
    throttled = ch.submit(BankRequest.authorize("b", "c", 1))
    assert throttled.status is ChannelStatus.THROTTLED
    assert ch.breaker.state is BreakerState.OPEN and ch.bank.stats.total("received") == 1
    clock.set(NS_PER_S)
    assert ch.submit(BankRequest.authorize("c", "c", 1)).status is ChannelStatus.SUCCEEDED
    clock.set(2 * NS_PER_S)
    ch.advance()
    assert ch.breaker.state is BreakerState.CLOSED


def test_queueing_hands_calls_to_the_bank_at_their_scheduled_start() -> None:
    clock = ManualClock(0)
    ch = channel(clock, FlowRule(qps=100, max_queueing_ms=300))
    results = [ch.submit(BankRequest.authorize(f"q{i}", "c", 1)) for i in range(40)]
    sent = [r for r in results if r.reply is not None]
    assert [r.reply.submitted_ns for r in sent] == [i * 10 * NS_PER_MS for i in range(31)]  # type: ignore[union-attr]
    assert {r.status for r in results[31:]} == {ChannelStatus.THROTTLED}
    assert {r.reason for r in results[31:]} == {Reason.FLOW_QUEUE_FULL}


def test_counters_account_for_every_call_by_second() -> None:
    clock = ManualClock(0)
    ch = channel(clock, FlowRule(qps=100), decline_rate=0.1, error_rate=0.1)
    results = drive(ch, clock, rate=300, seconds=3)
    clock.advance(10 * NS_PER_S)
    ch.advance()
    series = ch.stats.series(0, 3)
    assert list(series.seconds()) == [0, 1, 2, 3]
    column = series.column
    for s in range(3):
        assert column("offered")[s] == 300
        assert column("passed")[s] + column("throttled")[s] + column("breaker_rejected")[s] == 300
    assert column("passed")[1] == column("passed")[2] == 100
    count = {status: sum(r.status is status for r in results) for status in ChannelStatus}
    assert ch.stats.total("succeeded") == count[ChannelStatus.SUCCEEDED]
    assert ch.stats.total("declined") == count[ChannelStatus.DECLINED]
    assert ch.stats.total("failed") == count[ChannelStatus.FAILED]
    assert ch.stats.total("throttled") == count[ChannelStatus.THROTTLED]
    assert ch.stats.total("answered") == ch.stats.total("passed") == ch.latency.count
    mean_ms = ch.stats.total("latency_us_sum") / ch.stats.total("answered") / 1_000
    assert 40 < mean_ms < 60  # p50 = p99 = 50 ms, plus at most a little queueing
    assert 50 <= ch.latency.quantile_ms(0.5) <= 100


def test_per_second_rows_are_bounded_and_series_fill_quiet_seconds() -> None:
    clock = ManualClock(0)
    bank = SimulatedBank(BankProfile(name="b", capacity_tps=10), seed=1)
    ch = Channel(bank, FlowRule(qps=10), clock=clock, seconds_max=5)
    for second in range(0, 40, 2):  # a call every other second
        clock.set(second * NS_PER_S)
        ch.submit(BankRequest.authorize(f"s{second}", "c", 1))
    series = ch.stats.series()
    # At most 2 x 5 rows are kept (evicted in bulk), here one every other second: the oldest
    # seconds are gone.
    assert series.first_second >= 38 - 2 * 2 * 5
    assert series.column("offered")[-3:] == (1, 0, 1)  # seconds 36, 37, 38
    assert ch.stats.total("offered") == 20  # whole-run totals survive eviction
    assert ch.stats.series(100, 102).column("offered") == (0, 0, 0)
