"""Stress: 120 simulated banks (some slow, some failing) behind a router, offered three times
their total capacity. Nothing is lost or doubled, and every bank is held at its limit."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from formicary.channels import (
    NS_PER_S,
    BankOutcome,
    BankRequest,
    CardOption,
    ChannelStatus,
    ManualClock,
    Routed,
    Router,
    RouteStatus,
    WalletOption,
    build_channels,
    fleet_profiles,
)

BANKS = 120
CAPACITY_TPS_TOTAL = 3_000
LOAD_FACTOR = 3
SECONDS = 3


@pytest.fixture(scope="module")
def run() -> tuple[Router, list[tuple[BankRequest, Routed]]]:
    clock = ManualClock(1_700_000_000 * NS_PER_S)  # any epoch instant: banks use wall-clock
    profiles = fleet_profiles(
        BANKS, capacity_tps_total=CAPACITY_TPS_TOTAL, seed=5, slow_fraction=0.1
    )
    router = Router(build_channels(profiles, clock=clock, seed=5), clock=clock)
    names = [p.name for p in profiles]
    weights = [p.capacity_tps for p in profiles]  # customers' cards follow the banks' sizes
    rng = random.Random(5)
    rate = CAPACITY_TPS_TOTAL * LOAD_FACTOR
    start_ns = clock.now_ns()
    routes = []
    for i in range(rate * SECONDS):
        clock.set(start_ns + i * NS_PER_S // rate)
        first, second = rng.choices(names, weights, k=2)
        options: list[CardOption | WalletOption] = [CardOption(first, "c1")]
        if second != first:
            options.append(CardOption(second, "c2"))
        if i % 10 == 0:
            options.append(WalletOption("w"))
        request = BankRequest.authorize(f"p{i}", "c1", 1 + i % 50_000)
        routes.append((request, router.route(request, options)))
    clock.advance(10 * NS_PER_S)  # let every answer arrive
    router.advance()
    return router, routes


def test_every_request_ends_with_an_answer_and_nothing_is_lost_or_doubled(
    run: tuple[Router, list[tuple[BankRequest, Routed]]],
) -> None:
    router, routes = run
    statuses = Counter(routed.status for _, routed in routes)
    assert sum(statuses.values()) == len(routes) == CAPACITY_TPS_TOTAL * LOAD_FACTOR * SECONDS
    assert statuses[RouteStatus.SUCCEEDED] > 0 and statuses[RouteStatus.RETRY_LATER] > 0
    banks = {channel.name: channel.bank for channel in router.channels}
    processed_by_routes = 0
    for request, routed in routes:
        records = {}
        for attempt in routed.attempts:
            sent_id = f"{request.idempotency_id}#{attempt.option_index}"
            real = banks[attempt.result.channel].lookup(sent_id)
            if real is not None:
                records[attempt.result.channel] = real
        if routed.status in (RouteStatus.RETRY_LATER, RouteStatus.WALLET):
            assert not records, routed  # refused everywhere: applied nowhere
            assert routed.status is RouteStatus.WALLET or routed.retry_after_ns > 0
            continue
        # Answered: exactly one bank processed it, the one the route names.
        assert len(records) == 1, routed
        processed_by_routes += 1
        ((bank_name, real),) = records.items()
        assert bank_name == routed.attempts[-1].result.channel
        if routed.status is RouteStatus.SUCCEEDED:
            assert real.outcome is BankOutcome.APPROVED
        elif routed.status is RouteStatus.DECLINED:
            assert real.outcome is BankOutcome.DECLINED
        else:  # FAILED: an error, or a timeout whose real outcome a retry would learn
            assert routed.reply is not None
            assert real.outcome is BankOutcome.ERROR or routed.reply.outcome is BankOutcome.TIMEOUT
    # No bank holds anything that no route accounts for (so nothing landed at a second bank).
    assert sum(sum(bank.processed().values()) for bank in banks.values()) == processed_by_routes


def test_every_bank_is_held_at_its_limit_every_second(
    run: tuple[Router, list[tuple[BankRequest, Routed]]],
) -> None:
    router, _ = run
    saturated = 0
    for channel in router.channels:
        received = channel.bank.stats.series().column("received")
        limit = channel.flow.rule.admitted_max(NS_PER_S)
        assert max(received) <= limit, channel.name
        saturated += max(received) >= channel.flow.rule.qps
        # The flow rule keeps the bank's own queue from overflowing.
        assert channel.bank.stats.total("busy") == 0, channel.name
    assert saturated >= BANKS // 2  # the load really pressed on the banks


def test_slow_and_failing_banks_are_cut_off_and_healthy_ones_are_not(
    run: tuple[Router, list[tuple[BankRequest, Routed]]],
) -> None:
    router, _ = run
    faulty = healthy = 0
    for channel in router.channels:
        profile = channel.bank.profile
        if profile.error_rate < 0.5 and profile.latency_p50_ms < 1_000:
            healthy += 1
            assert channel.breaker.opened_count == 0, channel.name
        elif profile.capacity_tps >= 2 * channel.breaker.rule.min_requests:
            # Enough calls per statistics window for the breaker to judge (Sentinel's
            # min_requests): it opens, and then spares the bank.
            faulty += 1
            assert channel.breaker.opened_count >= 1, channel.name
            assert channel.stats.total("breaker_rejected") > 0, channel.name
    assert faulty >= 5 and healthy >= BANKS // 2


def test_per_bank_time_series_add_up_for_plots(
    run: tuple[Router, list[tuple[BankRequest, Routed]]],
) -> None:
    router, routes = run
    offered = Counter()
    for _, routed in routes:
        for attempt in routed.attempts:
            offered[attempt.result.channel] += 1
    for channel in router.channels:
        series = channel.stats.series()
        columns = series.columns
        assert sum(columns["offered"]) == offered[channel.name]
        answered = sum(
            sum(columns[name]) for name in ("succeeded", "declined", "failed", "unavailable")
        )
        assert answered == sum(columns["passed"]), channel.name
        assert all(len(column) == len(series) for column in columns.values())
    status_totals = Counter(
        attempt.result.status for _, routed in routes for attempt in routed.attempts
    )
    assert status_totals[ChannelStatus.THROTTLED] == sum(
        channel.stats.total("throttled") for channel in router.channels
    )
