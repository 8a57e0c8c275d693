"""Flow control: the QPS limit holds, warm-up ramps, queueing spaces requests, nothing is
dropped silently, and no arrival pattern gets more through than qps * T + bucket."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formicary.channels import (
    NS_PER_MS,
    NS_PER_S,
    Admitted,
    FlowController,
    FlowRule,
    InvalidRule,
    Reason,
    Throttled,
)


def offer(controller: FlowController, arrivals_ns: list[int]) -> list[Admitted | Throttled]:
    return [controller.try_acquire(t) for t in arrivals_ns]


def passed_per_second(decisions: list[Admitted | Throttled]) -> Counter[int]:
    """Admitted requests by the second of their start."""
    return Counter(d.start_ns // NS_PER_S for d in decisions if isinstance(d, Admitted))


def test_flow_control_holds_a_bank_at_its_limit() -> None:
    rule = FlowRule(qps=200)
    arrivals_ns = [i * NS_PER_MS for i in range(10_000)]  # 1,000/s for 10 s: five times qps
    decisions = offer(FlowController(rule), arrivals_ns)
    per_second = passed_per_second(decisions)
    # The first second may also spend the initial bucket; every later one is exactly qps.
    assert rule.qps < per_second[0] <= rule.admitted_max(NS_PER_S)
    assert [per_second[s] for s in range(1, 10)] == [rule.qps] * 9
    throttled = [d for d in decisions if isinstance(d, Throttled)]
    assert len(throttled) + sum(per_second.values()) == len(arrivals_ns)  # nothing unaccounted
    assert {t.reason for t in throttled} == {Reason.FLOW_LIMIT}
    assert all(t.retry_after_ns > 0 for t in throttled)


def test_retrying_after_retry_after_passes() -> None:
    controller = FlowController(FlowRule(qps=10, burst=2))
    assert all(isinstance(d, Admitted) for d in offer(controller, [0, 0]))
    refused = controller.try_acquire(1_000)
    assert isinstance(refused, Throttled)
    assert isinstance(controller.try_acquire(1_000 + refused.retry_after_ns - 1), Throttled)
    assert isinstance(controller.try_acquire(1_000 + refused.retry_after_ns), Admitted)


def test_under_the_limit_everything_passes_at_once() -> None:
    decisions = offer(FlowController(FlowRule(qps=100)), [i * 20 * NS_PER_MS for i in range(500)])
    assert all(isinstance(d, Admitted) for d in decisions)
    assert [d.start_ns for d in decisions] == [i * 20 * NS_PER_MS for i in range(500)]  # type: ignore[union-attr]


def test_warm_up_starts_at_a_third_and_climbs_to_qps() -> None:
    rule = FlowRule(qps=300, warm_up_s=10, cold_factor=3)
    arrivals_ns = [i * NS_PER_MS // 2 for i in range(2_000 * 16)]  # 2,000/s for 16 s
    per_second = passed_per_second(offer(FlowController(rule), arrivals_ns))
    series = [per_second[s] for s in range(16)]
    cold_limit = rule.qps // rule.cold_factor
    assert series[0] <= cold_limit + rule.bucket_size
    assert series[1] <= cold_limit + 5
    assert all(b >= a - 2 for a, b in pairwise(series[1:]))  # climbs
    assert series[5] < rule.qps  # still warming half-way
    assert series[-3:] == [rule.qps] * 3  # warm after about warm_up_s


def test_warm_up_cools_down_again_after_idleness() -> None:
    controller = FlowController(FlowRule(qps=300, warm_up_s=5))
    arrivals_ns = [i * NS_PER_MS // 2 for i in range(2_000 * 12)]
    warm = passed_per_second(offer(controller, arrivals_ns))
    assert warm[11] == 300
    later_ns = 600 * NS_PER_S  # ten minutes without traffic
    again = [later_ns + i * NS_PER_MS // 2 for i in range(4_000)]
    cold = passed_per_second(offer(controller, again))
    assert cold[600] <= 100 + controller.rule.bucket_size


def test_queueing_spaces_requests_evenly_and_refuses_past_the_maximum_wait() -> None:
    rule = FlowRule(qps=100, max_queueing_ms=500)
    decisions = offer(FlowController(rule), [0] * 100)  # a burst of 100 at once
    admitted = [d for d in decisions if isinstance(d, Admitted)]
    throttled = [d for d in decisions if isinstance(d, Throttled)]
    # Starts 0, 10 ms, ..., 500 ms: a wait of up to 500 ms is accepted, no more.
    assert [a.start_ns for a in admitted] == [i * 10 * NS_PER_MS for i in range(51)]
    assert len(throttled) == 49
    assert {t.reason for t in throttled} == {Reason.FLOW_QUEUE_FULL}
    # The first refused would have waited 510 ms: it may retry in 10 ms.
    assert throttled[0].retry_after_ns == 10 * NS_PER_MS


def test_queueing_with_warm_up_is_slower_when_cold() -> None:
    cold = FlowController(FlowRule(qps=100, warm_up_s=10, max_queueing_ms=1_000))
    admitted = [d for d in offer(cold, [0] * 100) if isinstance(d, Admitted)]
    gaps = {b.start_ns - a.start_ns for a, b in pairwise(admitted)}
    assert gaps == {30 * NS_PER_MS}  # cold: a third of qps
    assert cold.limit_qps == pytest.approx(100 / 3, rel=0.01)


@pytest.mark.parametrize(
    "fields",
    [
        {"qps": 0},
        {"qps": 10, "cold_factor": 1},
        {"qps": 10, "max_queueing_ms": -1},
        {"qps": 1, "warm_up_s": 1},  # too short to have a slope
        {"qps": 10, "burst": 0},
    ],
)
def test_impossible_rules_are_refused(fields: dict[str, int]) -> None:
    with pytest.raises(InvalidRule):
        FlowRule(**fields)


def _max_in_any_window(times_ns: list[int], window_ns: int) -> int:
    """The most of `times_ns` (sorted) inside any half-open window of `window_ns`."""
    most, first = 0, 0
    for last, t in enumerate(times_ns):
        while t - times_ns[first] >= window_ns:
            first += 1
        most = max(most, last - first + 1)
    return most


rules = st.builds(
    FlowRule,
    qps=st.integers(1, 400),
    burst=st.one_of(st.none(), st.integers(1, 50)),
    warm_up_s=st.sampled_from([0, 0, 3]),
    max_queueing_ms=st.sampled_from([0, 0, 200, 1_000]),
).filter(lambda r: not r.warm_up_s or 2 * r.warm_up_s * r.qps >= 4)


@settings(max_examples=150, deadline=None)
@given(
    rule=rules,
    gaps_us=st.lists(
        st.one_of(st.just(0), st.integers(0, 5_000), st.integers(0, 2_000_000)),
        min_size=1,
        max_size=600,
    ),
)
def test_no_arrival_pattern_gets_more_than_qps_times_window_plus_bucket(
    rule: FlowRule, gaps_us: list[int]
) -> None:
    controller = FlowController(rule)
    now_ns = 0
    starts_ns = []
    for gap_us in gaps_us:
        now_ns += gap_us * 1_000
        decision = controller.try_acquire(now_ns)
        if isinstance(decision, Admitted):
            assert now_ns <= decision.start_ns <= now_ns + rule.max_queueing_ms * NS_PER_MS
            starts_ns.append(decision.start_ns)
        else:
            assert decision.retry_after_ns > 0
    assert starts_ns == sorted(starts_ns)
    for window_ns in (NS_PER_MS, 100 * NS_PER_MS, NS_PER_S, 3 * NS_PER_S):
        assert _max_in_any_window(starts_ns, window_ns) <= rule.admitted_max(window_ns)
