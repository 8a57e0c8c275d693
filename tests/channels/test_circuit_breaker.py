"""The circuit breaker on its own: thresholds, the open period, the half-open probe, and the
bucketed sliding window it judges by."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formicary.channels import (
    NS_PER_MS,
    BreakerRule,
    BreakerState,
    CircuitBreaker,
    InvalidRule,
    Permit,
)
from formicary.channels.window import SlidingWindow

FAST_NS = 10 * NS_PER_MS
SLOW_NS = 2_000 * NS_PER_MS


def report(breaker: CircuitBreaker, at_ms: int, *, slow: bool = False, error: bool = False) -> None:
    breaker.on_complete(at_ms * NS_PER_MS, SLOW_NS if slow else FAST_NS, error=error, probe=False)


def test_the_error_ratio_opens_only_once_there_are_enough_calls() -> None:
    breaker = CircuitBreaker(BreakerRule(error_ratio_max=0.5, slow_ratio_max=None, min_requests=5))
    for at_ms in range(4):
        report(breaker, at_ms, error=True)
    assert breaker.state is BreakerState.CLOSED  # 4 of 4 failed, but below min_requests
    report(breaker, 4, error=True)
    assert breaker.state is BreakerState.OPEN


def test_an_error_ratio_at_the_threshold_does_not_open_above_it_does() -> None:
    breaker = CircuitBreaker(BreakerRule(error_ratio_max=0.5, slow_ratio_max=None, min_requests=4))
    for at_ms, error in enumerate([True, False, True, False]):
        report(breaker, at_ms, error=error)
    assert breaker.state is BreakerState.CLOSED  # exactly 0.5
    report(breaker, 5, error=True)  # 3 of 5
    assert breaker.state is BreakerState.OPEN


def test_the_slow_call_ratio_opens() -> None:
    breaker = CircuitBreaker(BreakerRule(slow_call_ms=1_000, slow_ratio_max=0.6, min_requests=5))
    for at_ms, slow in enumerate([True, False, True, False, True]):
        report(breaker, at_ms, slow=slow)
    assert breaker.state is BreakerState.CLOSED  # 0.6 is not above 0.6
    report(breaker, 6, slow=True)
    assert breaker.state is BreakerState.OPEN


def test_a_ratio_maximum_of_one_opens_only_when_every_call_is_slow() -> None:
    breaker = CircuitBreaker(BreakerRule(slow_ratio_max=1.0, error_ratio_max=None, min_requests=3))
    for at_ms, slow in enumerate([True, True, False, True]):
        report(breaker, at_ms, slow=slow)
    assert breaker.state is BreakerState.CLOSED
    fresh = CircuitBreaker(BreakerRule(slow_ratio_max=1.0, error_ratio_max=None, min_requests=3))
    for at_ms in range(3):
        report(fresh, at_ms, slow=True)
    assert fresh.state is BreakerState.OPEN


def test_old_calls_leave_the_window() -> None:
    breaker = CircuitBreaker(BreakerRule(min_requests=5, stat_window_ms=1_000))
    for at_ms in range(4):
        report(breaker, at_ms, error=True)
    for at_ms in range(1_100, 1_104):  # the early failures are more than a window ago
        report(breaker, at_ms, error=at_ms == 1_103)
    assert breaker.state is BreakerState.CLOSED


def open_breaker(open_ms: int = 5_000) -> CircuitBreaker:
    breaker = CircuitBreaker(BreakerRule(min_requests=1, open_ms=open_ms))
    report(breaker, 0, error=True)
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_open_rejects_until_the_retry_timeout_then_lets_one_probe_through() -> None:
    breaker = open_breaker(open_ms=5_000)
    assert breaker.try_pass(4_999 * NS_PER_MS) is Permit.REJECT
    assert breaker.retry_after_ns(4_999 * NS_PER_MS) == NS_PER_MS
    assert breaker.try_pass(5_000 * NS_PER_MS) is Permit.PROBE
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_pass(5_001 * NS_PER_MS) is Permit.REJECT  # one probe at a time


def test_a_good_probe_closes_with_fresh_statistics() -> None:
    breaker = open_breaker()
    assert breaker.try_pass(5_000 * NS_PER_MS) is Permit.PROBE
    breaker.on_complete(5_050 * NS_PER_MS, FAST_NS, error=False, probe=True)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.window.totals(5_050 * NS_PER_MS).total == 0
    assert breaker.try_pass(5_051 * NS_PER_MS) is Permit.PASS


@pytest.mark.parametrize(("slow", "error"), [(False, True), (True, False)])
def test_a_bad_probe_opens_again_for_another_period(slow: bool, error: bool) -> None:
    breaker = open_breaker(open_ms=5_000)
    assert breaker.try_pass(5_000 * NS_PER_MS) is Permit.PROBE
    breaker.on_complete(7_000 * NS_PER_MS, SLOW_NS if slow else FAST_NS, error=error, probe=True)
    assert breaker.state is BreakerState.OPEN
    assert breaker.try_pass(11_999 * NS_PER_MS) is Permit.REJECT
    assert breaker.try_pass(12_000 * NS_PER_MS) is Permit.PROBE
    assert [(t.before, t.after) for t in breaker.transitions] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
    ]
    assert breaker.opened_count == 2


def test_a_cancelled_probe_hands_its_turn_to_the_next_call() -> None:
    breaker = open_breaker()
    assert breaker.try_pass(5_000 * NS_PER_MS) is Permit.PROBE
    breaker.cancel_probe(5_000 * NS_PER_MS)
    assert breaker.try_pass(5_001 * NS_PER_MS) is Permit.PROBE


@pytest.mark.parametrize(
    "fields",
    [
        {"slow_ratio_max": None, "error_ratio_max": None},
        {"error_ratio_max": 1.5},
        {"min_requests": 0},
        {"stat_window_ms": 1_000, "buckets": 3},
        {"open_ms": 0},
    ],
)
def test_impossible_rules_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidRule):
        BreakerRule(**fields)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    buckets=st.sampled_from([1, 2, 5, 10]),
    events=st.lists(
        st.tuples(st.integers(0, 700), st.booleans(), st.booleans()), min_size=1, max_size=200
    ),
)
def test_the_window_totals_are_the_calls_of_its_live_buckets(
    buckets: int, events: list[tuple[int, bool, bool]]
) -> None:
    window_ns = 1_000 * NS_PER_MS
    window = SlidingWindow(window_ns, buckets)
    bucket_ns = window_ns // buckets
    now_ns = 0
    seen: list[tuple[int, bool, bool]] = []

    def check(now_ns: int) -> None:
        # Brute force: a call counts while its bucket is one of the newest `buckets`.
        oldest_live_ns = now_ns - now_ns % bucket_ns - window_ns + bucket_ns
        live = [(s, e) for t, s, e in seen if t >= oldest_live_ns]
        assert window.totals(now_ns) == (
            len(live),
            sum(s for s, _ in live),
            sum(e for _, e in live),
        )

    for gap_ms, slow, error in events:
        now_ns += gap_ms * NS_PER_MS
        check(now_ns)  # read before this bucket is reused, then after the call is counted
        window.add(now_ns, slow=slow, error=error)
        seen.append((now_ns, slow, error))
        check(now_ns)
