"""Bank response times: a lognormal distribution given by its median (p50) and p99.

Parametrisation: if L is lognormal, ln L is normal with mean mu and standard deviation sigma,
so the q-quantile of L is exp(mu + sigma * z_q) with z_q the standard normal quantile. Setting
the median to p50 and the 0.99-quantile to p99 gives

    mu = ln(p50)        sigma = (ln(p99) - ln(p50)) / z_0.99,   z_0.99 = 2.3263...

p99 == p50 gives sigma = 0: a constant latency. Lognormal is the usual model for service times:
positive, right-skewed, with a long but not unbounded tail. Samples are capped at
`latency_ms_max` so that a freak draw cannot stall a simulation.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist

from formicary.channels.clock import NS_PER_MS
from formicary.channels.errors import InvalidRule

__all__ = ["LATENCY_MS_MAX", "LatencyModel"]

LATENCY_MS_MAX = 120_000
Z_P99 = NormalDist().inv_cdf(0.99)


class LatencyModel:
    """Draws response times (ns) from a lognormal with the given p50 and p99 (ms)."""

    __slots__ = ("cap_ns", "mu", "p50_ms", "p99_ms", "sigma")

    def __init__(
        self, p50_ms: float, p99_ms: float, *, latency_ms_max: float = LATENCY_MS_MAX
    ) -> None:
        if not 0 < p50_ms <= p99_ms <= latency_ms_max <= LATENCY_MS_MAX:
            raise InvalidRule(
                f"latency needs 0 < p50 <= p99 <= max <= {LATENCY_MS_MAX} ms, "
                f"got p50={p50_ms} p99={p99_ms} max={latency_ms_max}"
            )
        self.p50_ms = p50_ms
        self.p99_ms = p99_ms
        self.mu = math.log(p50_ms)
        self.sigma = (math.log(p99_ms) - math.log(p50_ms)) / Z_P99
        self.cap_ns = int(latency_ms_max * NS_PER_MS)

    def quantile_ms(self, q: float) -> float:
        """The exact q-quantile of the (uncapped) distribution, for checks and docs."""
        assert 0 < q < 1, q
        return math.exp(self.mu + self.sigma * NormalDist().inv_cdf(q))

    def sample_ns(self, rng: random.Random) -> int:
        """One response time in ns, at least 1 ns and at most the cap."""
        latency_ms = rng.lognormvariate(self.mu, self.sigma) if self.sigma else self.p50_ms
        return max(1, min(self.cap_ns, int(latency_ms * NS_PER_MS)))
