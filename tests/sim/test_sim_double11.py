"""Small seeded Double-11 runs through the real payments service and ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from formicary.sim import (
    BankOverride,
    Double11,
    Double11Config,
    Double11Report,
    Funnel,
    Journey,
)
from formicary.sim.report import write_outputs
from formicary.sim.run import prepare_out_dir

# The largest bank fails 90% of its calls; the second largest can start 2 calls a second.
OVERRIDES = (BankOverride(rank=1, error_rate=0.9), BankOverride(rank=2, capacity_tps=2))
SMALL = Double11Config(
    users=300,
    merchants=20,
    banks=100,
    duration_s=45,
    seed=7,
    funnel=Funnel(unit_per_s=1.5),
    workers=1,  # fully deterministic
    bank_overrides=OVERRIDES,
)


def simulate(config: Double11Config, out_dir: Path) -> tuple[Double11, Double11Report]:
    prepare_out_dir(out_dir)
    sim = Double11(config, out_dir)
    try:
        sim.run()
        return sim, write_outputs(sim, plots=False)
    finally:
        sim.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Double11, Double11Report]]:
    yield simulate(SMALL, tmp_path_factory.mktemp("d11") / "out")


def figures(report: Double11Report) -> dict[str, object]:
    """What a seeded run must reproduce (real-time figures and latencies excluded)."""
    return {
        "clicks": report.clicks,
        "cashier": report.cashier_visits,
        "intents": report.payments_attempted,
        "attempts": report.attempts,
        "succeeded": report.succeeded,
        "failed": report.failed_by_reason,
        "throttled": report.throttled_by_reason,
        "peak": (report.peak_payments_per_s, report.peak_at),
        "coupons": [(c.spent_fen, c.uses) for c in report.coupons],
        "banks": [(b.offered, b.passed, b.breaker_opened) for b in report.banks],
    }


def test_a_seeded_run_completes_and_is_deterministic(
    run: tuple[Double11, Double11Report], tmp_path: Path
) -> None:
    _, report = run
    assert report.succeeded > 300 and report.virtual_s > SMALL.duration_s
    _, again = simulate(SMALL, tmp_path / "again")
    assert figures(again) == figures(report)


def test_the_funnel_holds_12_12_6(run: tuple[Double11, Double11Report]) -> None:
    _, report = run
    clicks, cashier, payments = report.clicks, report.cashier_visits, report.payments_attempted
    assert cashier == clicks  # every buy click opens the cashier
    assert payments / cashier == pytest.approx(0.5, abs=0.05)
    assert report.funnel_ratio[0] == 12 and report.funnel_ratio[2] == pytest.approx(6, abs=0.6)
    # The peak is the first seconds after midnight.
    assert report.peak_at.startswith("11-11 00:00:")


def test_the_ledger_conserves_money(run: tuple[Double11, Double11Report]) -> None:
    _, report = run
    failed = [c for c in report.conservation if not c.ok]
    assert not failed, failed
    names = {c.name for c in report.conservation}
    assert "trial balance" in names and "wallets never negative" in names
    assert "banks captured exactly the succeeded card payments" in names
    assert report.coupon_spent_fen <= report.coupon_budget_fen
    assert any(c.exhausted for c in report.coupons)  # budgets sized to run out


def test_a_failing_bank_trips_its_breaker_and_traffic_fails_over(
    run: tuple[Double11, Double11Report],
) -> None:
    sim, report = run
    failing = report.banks[0]
    assert (failing.code, failing.kind) == ("B001", "override")
    assert failing.breaker_opened >= 1 and failing.breaker_rejected > 0
    assert report.throttled_by_reason.get("breaker_open", 0) > 0
    assert report.failovers > 0

    # Shoppers whose first choice was a card at the failing bank paid with something else.
    def first_bank(j: Journey) -> str:
        first = j.options[0]
        return dict(j.user.cards)[int(first.ref)] if first.kind == "card" else ""

    first_at_b001 = [j for j in sim.journeys if j.pays and first_bank(j) == "B001"]
    rescued = [j for j in first_at_b001 if j.outcome == "succeeded" and j.paid_option > 0]
    assert rescued


def test_a_bank_with_tiny_capacity_is_held_at_its_limit(
    run: tuple[Double11, Double11Report],
) -> None:
    sim, report = run
    tiny = report.banks[1]
    assert tiny.capacity_tps == 2
    assert tiny.throttled > 0  # demand was above the limit ...
    # ... and the channel let through at most the limit per virtual second (+1: the bucket),
    # reaching it when the demand was there.
    assert 2 <= tiny.passed_per_s_max <= 3
    assert sim.world is not None
    passed = sim.world.router.channel("B002").stats.series().column("passed")
    assert max(passed) == tiny.passed_per_s_max


def test_throttled_payments_are_retried_and_nothing_is_lost(
    run: tuple[Double11, Double11Report],
) -> None:
    sim, report = run
    assert report.throttled > 0 and report.retries > 0
    paying = [j for j in sim.journeys if j.pays]
    assert len(paying) == report.payments_attempted
    assert all(j.outcome for j in paying)  # succeeded, or failed with a reason
    assert report.succeeded + report.failed == report.payments_attempted
    assert sum(report.failed_by_reason.values()) == report.failed
    # Some shoppers were told "bank busy, retry", came back and paid.
    assert any(j.rounds > 0 and j.outcome == "succeeded" for j in paying)
    ended = next(c for c in report.conservation if c.name == "every attempt ended with a reason")
    assert ended.ok
