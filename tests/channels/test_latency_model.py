"""The lognormal latency model: its parametrisation by p50/p99 and what samples look like."""

from __future__ import annotations

import random
import statistics

import pytest

from formicary.channels import NS_PER_MS, InvalidRule, LatencyModel


@pytest.mark.parametrize(("p50_ms", "p99_ms"), [(80.0, 400.0), (5.0, 6.0), (1_000.0, 20_000.0)])
def test_the_distribution_has_the_given_median_and_p99(p50_ms: float, p99_ms: float) -> None:
    model = LatencyModel(p50_ms, p99_ms)
    assert model.quantile_ms(0.5) == pytest.approx(p50_ms, rel=1e-9)
    assert model.quantile_ms(0.99) == pytest.approx(p99_ms, rel=1e-9)


def test_samples_follow_the_model() -> None:
    model = LatencyModel(80.0, 400.0)
    rng = random.Random(7)
    samples_ms = sorted(model.sample_ns(rng) / NS_PER_MS for _ in range(20_000))
    quantiles = statistics.quantiles(samples_ms, n=100)
    assert quantiles[49] == pytest.approx(80.0, rel=0.05)
    assert quantiles[98] == pytest.approx(400.0, rel=0.15)
    assert min(samples_ms) > 0


def test_equal_p50_and_p99_is_a_constant_and_draws_are_capped() -> None:
    rng = random.Random(1)
    assert {LatencyModel(50.0, 50.0).sample_ns(rng) for _ in range(10)} == {50 * NS_PER_MS}
    capped = LatencyModel(100.0, 199.0, latency_ms_max=200.0)  # ~1% of draws beyond 200
    assert max(capped.sample_ns(rng) for _ in range(2_000)) == 200 * NS_PER_MS


@pytest.mark.parametrize(("p50_ms", "p99_ms"), [(0.0, 10.0), (100.0, 50.0), (1.0, 10**9)])
def test_impossible_parameters_are_refused(p50_ms: float, p99_ms: float) -> None:
    with pytest.raises(InvalidRule):
        LatencyModel(p50_ms, p99_ms)
