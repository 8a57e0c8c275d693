"""Pins the channel layer's public surface: changing it must be a deliberate edit here."""

from __future__ import annotations

import formicary.channels
from formicary.channels import messages

EXPECTED = {
    "CHANNEL_METRICS",
    "NS_PER_MS",
    "NS_PER_S",
    "AbsoluteWindow",
    "Admitted",
    "Attempt",
    "BankDemand",
    "BankOutcome",
    "BankPlan",
    "BankProfile",
    "BankReply",
    "BankRequest",
    "BreakerRule",
    "BreakerState",
    "CapacityPlan",
    "CardOption",
    "Channel",
    "ChannelError",
    "ChannelResult",
    "ChannelStatus",
    "CircuitBreaker",
    "Clock",
    "DailyWindow",
    "FlowController",
    "FlowRule",
    "FundingOption",
    "Hold",
    "HoldState",
    "InvalidPlanInput",
    "InvalidRule",
    "LatencyHistogram",
    "LatencyModel",
    "MaintenanceWindow",
    "ManualClock",
    "MonotonicClock",
    "Operation",
    "PerSecond",
    "Permit",
    "Reason",
    "RouteStatus",
    "Routed",
    "Router",
    "SimulatedBank",
    "Throttled",
    "TimeSeries",
    "WalletOption",
    "build_channels",
    "fleet_profiles",
    "long_tail_demands",
    "plan_capacity",
    "read_demands_csv",
    "zipf_shares",
}


def test_public_names_are_pinned() -> None:
    assert set(formicary.channels.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(formicary.channels, name), name


def test_errors_share_one_base() -> None:
    for error in (formicary.channels.InvalidRule, formicary.channels.InvalidPlanInput):
        assert issubclass(error, formicary.channels.ChannelError)
        assert issubclass(error, ValueError)


def test_amounts_have_the_ledgers_bound() -> None:
    from formicary.ledger import AMOUNT_MAX

    assert messages.AMOUNT_FEN_MAX == AMOUNT_MAX


def test_the_clocks_keep_the_protocol() -> None:
    manual = formicary.channels.ManualClock(5)
    real = formicary.channels.MonotonicClock()
    assert isinstance(manual, formicary.channels.Clock)
    assert isinstance(real, formicary.channels.Clock)
    assert manual.advance(10) == manual.now_ns() == 15
    first = real.now_ns()
    assert real.now_ns() >= first > 1_600_000_000 * formicary.channels.NS_PER_S  # wall-anchored
