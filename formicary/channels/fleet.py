"""A generated fleet of simulated banks, for stress tests and the Double-11 simulator.

`fleet_profiles(n, capacity_tps_total=...)` spreads the total capacity over `n` banks by Zipf
shares (`planning.zipf_shares`: a few large banks, a long tail of small ones) and gives every
bank a seeded personality: most are healthy (p50 40-120 ms, p99 4-6x p50, 2% declines, 0.1%
errors); a `slow_fraction` answer in p50 1.5-2.5 s (most calls slower than the default
breaker's 1 s, the tail past the 3 s timeout); a `failing_fraction` err on 60-90% of calls.
`build_channels` puts each bank behind a flow rule at its capacity and the default breaker.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from formicary.channels.bank import BankProfile, SimulatedBank
from formicary.channels.breaker import BreakerRule
from formicary.channels.channel import Channel
from formicary.channels.clock import Clock
from formicary.channels.flow import FlowRule
from formicary.channels.planning import zipf_shares

__all__ = ["build_channels", "fleet_profiles"]

CAPACITY_TPS_MIN = 5


def fleet_profiles(
    count: int,
    *,
    capacity_tps_total: int,
    seed: int = 11,
    slow_fraction: float = 0.05,
    failing_fraction: float = 0.05,
) -> list[BankProfile]:
    """`count` bank profiles named bank-001..., largest first."""
    assert min(slow_fraction, failing_fraction) >= 0 and slow_fraction + failing_fraction <= 1
    assert capacity_tps_total >= CAPACITY_TPS_MIN * count, "too little capacity for the fleet"
    rng = random.Random(f"fleet:{seed}")
    width = max(3, len(str(count)))
    profiles = []
    for k, share in enumerate(zipf_shares(count, seed=seed), start=1):
        capacity_tps = max(CAPACITY_TPS_MIN, int(capacity_tps_total * share))
        kind = rng.random()
        if kind < slow_fraction:
            p50_ms = rng.uniform(1_500, 2_500)
            latency = {"latency_p50_ms": p50_ms, "latency_p99_ms": p50_ms * rng.uniform(2, 3)}
            rates = {"decline_rate": 0.02, "error_rate": 0.01}
        elif kind < slow_fraction + failing_fraction:
            p50_ms = rng.uniform(40, 120)
            latency = {"latency_p50_ms": p50_ms, "latency_p99_ms": p50_ms * 5}
            rates = {"decline_rate": 0.02, "error_rate": rng.uniform(0.6, 0.9)}
        else:
            p50_ms = rng.uniform(40, 120)
            latency = {"latency_p50_ms": p50_ms, "latency_p99_ms": p50_ms * rng.uniform(4, 6)}
            rates = {"decline_rate": 0.02, "error_rate": 0.001}
        profiles.append(
            BankProfile(name=f"bank-{k:0{width}d}", capacity_tps=capacity_tps, **latency, **rates)
        )
    return profiles


def build_channels(
    profiles: list[BankProfile],
    *,
    clock: Clock,
    seed: int = 11,
    flow_for: Callable[[BankProfile], FlowRule] | None = None,
    breaker: BreakerRule | None = None,
) -> list[Channel]:
    """One channel per profile; by default each bank's flow limit is its declared capacity."""
    rule_for = flow_for or (lambda profile: FlowRule(qps=profile.capacity_tps))
    return [
        Channel(SimulatedBank(profile, seed=seed), rule_for(profile), breaker, clock=clock)
        for profile in profiles
    ]
