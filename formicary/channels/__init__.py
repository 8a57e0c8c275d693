"""Bank channels: simulated banks behind Sentinel-style flow control and circuit breakers,
failover routing over funding options, per-bank counters, and capacity planning.

The banks are simulated (`SimulatedBank`): a seeded discrete-event model with capacity,
lognormal latency, failure rates and maintenance windows. Time is explicit: banks take
`now_ns`, channels and the router read the `Clock` they are given (`ManualClock` in tests and
simulations). A `Channel` puts one bank behind its `FlowRule` and `BreakerRule`; a `Router`
tries funding options in order and answers "bank busy, retry" (RETRY_LATER) when none is
left. Money semantics stay out: the payments layer moves money in the ledger.
"""

from formicary.channels.bank import (
    AbsoluteWindow,
    BankProfile,
    DailyWindow,
    Hold,
    HoldState,
    MaintenanceWindow,
    SimulatedBank,
)
from formicary.channels.breaker import BreakerRule, BreakerState, CircuitBreaker, Permit
from formicary.channels.channel import CHANNEL_METRICS, Channel, ChannelResult, ChannelStatus
from formicary.channels.clock import NS_PER_MS, NS_PER_S, Clock, ManualClock, MonotonicClock
from formicary.channels.errors import ChannelError, InvalidPlanInput, InvalidRule
from formicary.channels.fleet import build_channels, fleet_profiles
from formicary.channels.flow import Admitted, FlowController, FlowRule, Throttled
from formicary.channels.latency import LatencyModel
from formicary.channels.messages import BankOutcome, BankReply, BankRequest, Operation, Reason
from formicary.channels.planning import (
    BankDemand,
    BankPlan,
    CapacityPlan,
    long_tail_demands,
    plan_capacity,
    read_demands_csv,
    zipf_shares,
)
from formicary.channels.router import (
    Attempt,
    CardOption,
    FundingOption,
    Routed,
    Router,
    RouteStatus,
    WalletOption,
)
from formicary.channels.stats import LatencyHistogram, PerSecond, TimeSeries

__all__ = [
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
]
