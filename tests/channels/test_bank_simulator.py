"""The simulated bank: capacity, latency, failures, maintenance, idempotency, two-phase holds."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formicary.channels import (
    NS_PER_MS,
    NS_PER_S,
    AbsoluteWindow,
    BankOutcome,
    BankProfile,
    BankReply,
    BankRequest,
    DailyWindow,
    HoldState,
    InvalidRule,
    Reason,
    SimulatedBank,
)

HOUR_S = 3_600


def bank(seed: int = 1, **overrides: object) -> SimulatedBank:
    settings_ = {"name": "icbc", "capacity_tps": 100} | overrides
    return SimulatedBank(BankProfile(**settings_), seed=seed)  # type: ignore[arg-type]


def pay(i: int, amount_fen: int = 1_000) -> BankRequest:
    return BankRequest.authorize(f"pay-{i}", "card-1", amount_fen)


def test_under_capacity_nothing_queues_and_latency_follows_the_profile() -> None:
    b = bank(capacity_tps=1_000, latency_p50_ms=80.0, latency_p99_ms=400.0)
    latencies_ms = []
    for i in range(3_000):
        now_ns = i * 2 * NS_PER_MS  # 500/s against 1,000/s
        assert b.queue_depth(now_ns) <= 1
        reply = b.submit(pay(i), now_ns)
        assert reply.outcome is BankOutcome.APPROVED
        latencies_ms.append(reply.latency_ns / NS_PER_MS)
    quantiles = statistics.quantiles(latencies_ms, n=100)
    assert quantiles[49] == pytest.approx(80.0, rel=0.1)
    assert quantiles[98] == pytest.approx(400.0, rel=0.3)


def test_beyond_capacity_the_queue_grows_latency_rises_and_then_the_bank_refuses() -> None:
    capacity_tps = 100
    b = bank(capacity_tps=capacity_tps, timeout_ms=1_500, latency_p50_ms=50.0, latency_p99_ms=60.0)
    replies: list[BankReply] = []
    for i in range(900):  # 300/s for 3 s: three times capacity
        replies.append(b.submit(pay(i), i * NS_PER_S // 300))
    answered = [r for r in replies if r.outcome is BankOutcome.APPROVED]
    # Queueing makes later answers slower than early ones, by far more than the latency spread.
    assert (
        statistics.mean(r.latency_ns for r in answered[-20:])
        > statistics.mean(r.latency_ns for r in answered[:20]) + 1_000 * NS_PER_MS
    )
    # Past the timeout the caller gets TIMEOUT, dated exactly at the timeout.
    timeouts = [r for r in replies if r.outcome is BankOutcome.TIMEOUT]
    assert timeouts and all(r.latency_ns == 1_500 * NS_PER_MS for r in timeouts)
    # Past the queue bound (2 s of work) it refuses at once, saying when room comes back.
    busy = [r for r in replies if r.outcome is BankOutcome.BUSY]
    assert busy and all(r.reason is Reason.BANK_QUEUE_FULL for r in busy)
    assert all(r.completed_ns == r.submitted_ns and r.retry_after_ns > 0 for r in busy)
    first_busy_s = busy[0].submitted_ns / NS_PER_S
    assert first_busy_s == pytest.approx(1.0, abs=0.05)  # 200 surplus/s fill 200 places in 1 s
    # The bank itself never works faster than its capacity.
    started = b.stats.series().column("started")
    assert max(started) == capacity_tps
    assert b.stats.total("started") == len(answered) + len(timeouts)


def test_a_backlog_is_worked_off_at_exactly_the_capacity() -> None:
    b = bank(capacity_tps=300, queue_depth_max=1_000)  # 1 s / 300 is not a whole number of ns
    replies = [b.submit(pay(i), 0) for i in range(700)]
    assert {r.outcome for r in replies} == {BankOutcome.APPROVED}
    assert b.stats.series().column("started") == (300, 300, 100)
    assert b.queue_depth(0) == 700 and b.queue_depth(2 * NS_PER_S) == 100


def test_busy_retry_after_is_when_the_queue_has_room_again() -> None:
    b = bank(capacity_tps=10, queue_depth_max=5)
    for i in range(5):
        assert b.submit(pay(i), 0).outcome is BankOutcome.APPROVED
    refused = b.submit(pay(99), 0)
    assert refused.outcome is BankOutcome.BUSY
    assert b.submit(pay(99), refused.retry_after_ns - 1).outcome is BankOutcome.BUSY
    assert b.submit(pay(99), refused.retry_after_ns).outcome is BankOutcome.APPROVED


def test_a_timed_out_call_was_processed_and_a_retry_learns_the_real_answer() -> None:
    b = bank(latency_p50_ms=5_000.0, latency_p99_ms=5_000.0, timeout_ms=3_000)
    first = b.submit(pay(1), 0)
    assert first.outcome is BankOutcome.TIMEOUT and first.completed_ns == 3 * NS_PER_S
    real = b.lookup("pay-1")
    assert real is not None and real.outcome is BankOutcome.APPROVED
    assert real.completed_ns == 5 * NS_PER_S
    # A retry at 4 s still cannot know before 5 s, which is within its own timeout.
    retry = b.submit(pay(1), 4 * NS_PER_S)
    assert (retry.outcome, retry.replayed, retry.completed_ns) == (
        BankOutcome.APPROVED,
        True,
        5 * NS_PER_S,
    )
    assert b.processed()[BankOutcome.APPROVED] == 1
    assert b.hold("pay-1") is not None


def test_failure_rates_are_observed() -> None:
    n = 6_000
    b = bank(capacity_tps=100_000, decline_rate=0.2, error_rate=0.1)
    outcomes = [b.submit(pay(i), i * NS_PER_MS).outcome for i in range(n)]
    for outcome, rate in ((BankOutcome.DECLINED, 0.2), (BankOutcome.ERROR, 0.1)):
        sigma = (rate * (1 - rate) / n) ** 0.5
        assert abs(outcomes.count(outcome) / n - rate) < 4 * sigma, outcome
    assert set(outcomes) == {BankOutcome.APPROVED, BankOutcome.DECLINED, BankOutcome.ERROR}


def test_a_daily_window_across_midnight_in_local_time() -> None:
    # 23:30-00:30 Beijing time (UTC+8) is 15:30-16:30 UTC.
    window = DailyWindow(23 * HOUR_S + 1_800, 1_800, utc_offset_s=8 * HOUR_S)
    b = bank(maintenance=(window,))
    day_ns = 86_400 * NS_PER_S
    for day in (0, 1, 19_672):  # any day, e.g. 2023-11-11
        base_ns = day * day_ns
        at_ns = base_ns + (15 * HOUR_S + 1_799) * NS_PER_S
        assert b.submit(pay(day * 10), at_ns).outcome is BankOutcome.APPROVED
        inside_ns = base_ns + (16 * HOUR_S) * NS_PER_S
        reply = b.submit(pay(day * 10 + 1), inside_ns)
        assert (reply.outcome, reply.reason) == (BankOutcome.UNAVAILABLE, Reason.MAINTENANCE)
        assert reply.retry_after_ns == 1_800 * NS_PER_S  # until 16:30 UTC
        assert b.lookup(f"pay-{day * 10 + 1}") is None  # nothing applied
        after_ns = base_ns + (16 * HOUR_S + 1_800) * NS_PER_S
        assert b.submit(pay(day * 10 + 1), after_ns).outcome is BankOutcome.APPROVED


def test_an_absolute_window() -> None:
    b = bank(maintenance=(AbsoluteWindow(10 * NS_PER_S, 20 * NS_PER_S),))
    assert b.submit(pay(1), 10 * NS_PER_S - 1).outcome is BankOutcome.APPROVED
    during = b.submit(pay(2), 15 * NS_PER_S)
    assert during.outcome is BankOutcome.UNAVAILABLE
    assert during.retry_after_ns == 5 * NS_PER_S
    assert b.submit(pay(2), 20 * NS_PER_S).outcome is BankOutcome.APPROVED


def test_a_repeated_id_gets_the_same_answer_without_a_second_effect() -> None:
    b = bank(decline_rate=0.5, seed=3)
    firsts = [b.submit(pay(i), i * NS_PER_MS) for i in range(40)]
    processed = b.processed()
    depth = b.queue_depth(NS_PER_S)
    for i, first in enumerate(firsts):
        again = b.submit(pay(i), NS_PER_S)
        assert (again.outcome, again.reason, again.replayed) == (first.outcome, first.reason, True)
    assert b.processed() == processed  # no new effect
    assert b.queue_depth(NS_PER_S) == depth  # answered from the table: no capacity used
    assert {f.outcome for f in firsts} == {BankOutcome.APPROVED, BankOutcome.DECLINED}


def test_the_same_id_for_a_different_request_is_a_conflict() -> None:
    b = bank()
    b.submit(pay(1, amount_fen=500), 0)
    clash = b.submit(pay(1, amount_fen=900), NS_PER_S)
    assert (clash.outcome, clash.reason) == (BankOutcome.DECLINED, Reason.IDEMPOTENCY_CONFLICT)
    hold = b.hold("pay-1")
    assert hold is not None and hold.amount_fen == 500


def test_two_phase_authorize_capture_void() -> None:
    b = bank()
    t = iter(range(NS_PER_S, 100 * NS_PER_S, NS_PER_S))

    def call(request: BankRequest) -> BankReply:
        return b.submit(request, next(t))

    assert call(BankRequest.authorize("a1", "card-1", 10_000)).outcome is BankOutcome.APPROVED
    assert b.hold("a1") is not None and b.hold("a1").state is HoldState.HELD  # type: ignore[union-attr]
    over = call(BankRequest.capture("c0", "a1", 10_001))
    assert over.reason is Reason.AMOUNT_OVER_AUTHORIZATION
    assert call(BankRequest.capture("c1", "a1", 8_000)).outcome is BankOutcome.APPROVED
    hold = b.hold("a1")
    assert hold is not None and (hold.state, hold.captured_fen) == (HoldState.CAPTURED, 8_000)
    assert call(BankRequest.capture("c2", "a1", 1_000)).reason is Reason.AUTHORIZATION_CLOSED
    assert call(BankRequest.capture("c3", "nope", 1)).reason is Reason.UNKNOWN_AUTHORIZATION
    # Voiding a captured authorization reverses the capture, once.
    assert call(BankRequest.void("v1", "a1")).outcome is BankOutcome.APPROVED
    assert b.hold("a1").state is HoldState.REVERSED  # type: ignore[union-attr]
    assert call(BankRequest.void("v1b", "a1")).reason is Reason.AUTHORIZATION_CLOSED

    assert call(BankRequest.authorize("a2", "card-1", 500)).outcome is BankOutcome.APPROVED
    assert call(BankRequest.void("v2", "a2")).outcome is BankOutcome.APPROVED
    assert b.hold("a2").state is HoldState.VOIDED  # type: ignore[union-attr]
    assert call(BankRequest.capture("c4", "a2", 500)).reason is Reason.AUTHORIZATION_CLOSED
    assert call(BankRequest.void("v3", "a2")).reason is Reason.AUTHORIZATION_CLOSED
    # Repeating the capture that succeeded replays it; it does not capture again.
    again = call(BankRequest.capture("c1", "a1", 8_000))
    assert again.outcome is BankOutcome.APPROVED and again.replayed
    assert b.hold("a1").state is HoldState.REVERSED  # type: ignore[union-attr]


def test_collect_and_payout_need_no_authorization_and_a_declined_authorize_holds_nothing() -> None:
    b = bank(decline_rate=1.0)
    assert b.submit(BankRequest.authorize("a1", "c", 100), 0).reason is Reason.DECLINED_BY_BANK
    assert b.hold("a1") is None
    ok = bank()
    assert ok.submit(BankRequest.collect("t1", "c", 100), 0).outcome is BankOutcome.APPROVED
    assert ok.submit(BankRequest.payout("w1", "c", 100), 0).outcome is BankOutcome.APPROVED


def test_the_idempotency_table_is_bounded_and_expires() -> None:
    b = bank(idempotency_keys_max=3, idempotency_ttl_s=60)
    for i in range(3):
        b.submit(pay(i), 0)
    full = b.submit(pay(3), 10 * NS_PER_S)
    assert (full.outcome, full.reason) == (BankOutcome.BUSY, Reason.IDEMPOTENCY_TABLE_FULL)
    assert full.retry_after_ns == 50 * NS_PER_S
    assert b.submit(pay(3), 60 * NS_PER_S).outcome is BankOutcome.APPROVED
    assert b.lookup("pay-0") is None  # forgotten after its day... here, its minute


def test_same_seed_same_replies_other_seed_other_replies() -> None:
    def run(seed: int) -> list[BankReply]:
        b = bank(seed=seed, decline_rate=0.3, error_rate=0.1)
        return [b.submit(pay(i), i * 3 * NS_PER_MS) for i in range(200)]

    assert run(5) == run(5)
    assert run(5) != run(6)


@pytest.mark.parametrize(
    "overrides",
    [
        {"capacity_tps": 0},
        {"decline_rate": 0.7, "error_rate": 0.4},
        {"timeout_ms": 0},
        {"name": ""},
        {"latency_p50_ms": 500.0, "latency_p99_ms": 100.0},
        {"maintenance": tuple(AbsoluteWindow(0, 1) for _ in range(17))},
    ],
)
def test_impossible_profiles_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidRule):
        bank(**overrides)


def test_malformed_requests_are_refused() -> None:
    with pytest.raises(InvalidRule):
        BankRequest.authorize("x", "card", 0)
    with pytest.raises(InvalidRule):
        BankRequest.capture("x", "", 10)
    with pytest.raises(InvalidRule):
        BankRequest.authorize("", "card", 10)
    with pytest.raises(InvalidRule):
        DailyWindow(100, 100)


@settings(max_examples=60, deadline=None)
@given(
    capacity_tps=st.integers(1, 300),
    gaps_us=st.lists(st.integers(0, 20_000), min_size=1, max_size=400),
)
def test_whatever_arrives_the_bank_never_starts_more_than_its_capacity_per_second(
    capacity_tps: int, gaps_us: list[int]
) -> None:
    b = bank(capacity_tps=capacity_tps, timeout_ms=2_000)
    now_ns = 0
    for i, gap_us in enumerate(gaps_us):
        now_ns += gap_us * 1_000
        reply = b.submit(pay(i), now_ns)
        assert reply.submitted_ns == now_ns <= reply.completed_ns <= now_ns + 2_000 * NS_PER_MS
    assert max(b.stats.series().column("started")) <= capacity_tps
