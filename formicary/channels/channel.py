"""A channel: one bank behind its flow rule and circuit breaker, with per-second counters.

`Channel.submit(request)` at the clock's time: the breaker may reject at once; the flow
controller may throttle (or schedule a queued start); otherwise the bank gets the request at its
start time and its reply is returned. The reply is known at once (discrete-event model) but is
dated `completed_ns`: the channel feeds it to the breaker and the counters only when the clock
reaches that time (`advance`, which `submit` also does first), so the breaker never reacts to an
answer before it could have arrived, and a half-open breaker waits for its probe.

Completions have priority: the capture or void of an authorization the bank already holds
passes an open breaker (`BreakerRule.completions_pass`) and may borrow the flow bucket's next
slots, waiting up to `FlowRule.completion_wait_ms` longer than a new call; the new calls behind
it are throttled instead. So a bank at its limit, or one whose breaker opened, still finishes
the holds it granted rather than leaving them to expire. The bank's own queue still applies.
"""

from __future__ import annotations

import heapq
from enum import StrEnum

import msgspec

from formicary.channels.bank import SimulatedBank
from formicary.channels.breaker import BreakerRule, BreakerState, CircuitBreaker, Permit
from formicary.channels.clock import NS_PER_MS, NS_PER_S, Clock
from formicary.channels.flow import Admitted, FlowController, FlowRule
from formicary.channels.messages import BankOutcome, BankReply, BankRequest, Operation, Reason
from formicary.channels.stats import SECONDS_KEPT_MAX, LatencyHistogram, PerSecond

__all__ = ["CHANNEL_METRICS", "Channel", "ChannelResult", "ChannelStatus"]


class ChannelStatus(StrEnum):
    """How a call through a channel ended. The last three mean nothing was applied."""

    SUCCEEDED = "succeeded"  # the bank approved
    DECLINED = "declined"  # the bank refused: final (reason says why)
    FAILED = "failed"  # the bank erred, or timed out (outcome unknown: retry the same id)
    THROTTLED = "throttled"  # not sent: over the flow rule (retry_after_ns)
    BREAKER_OPEN = "breaker_open"  # not sent: the bank's breaker is open (retry_after_ns)
    UNAVAILABLE = "unavailable"  # sent; the bank is in maintenance or its queue is full


class ChannelResult(msgspec.Struct, frozen=True):
    channel: str
    status: ChannelStatus
    reason: Reason
    reply: BankReply | None = None  # None when the request was not sent
    retry_after_ns: int = 0  # THROTTLED, BREAKER_OPEN, UNAVAILABLE: when to try again


# Per-second counters. offered = every call; passed = calls handed to the bank (dated when the
# bank gets them); the outcome counters are dated when the answer arrives.
CHANNEL_METRICS = (
    "offered",
    "passed",
    "throttled",
    "breaker_rejected",
    "succeeded",
    "declined",
    "failed",
    "unavailable",
    "answered",  # answers with a latency: succeeded + declined + failed
    "latency_us_sum",
    "latency_us_max",
)
_OFFERED, _PASSED, _THROTTLED, _BREAKER_REJECTED = range(4)
_SUCCEEDED, _DECLINED, _FAILED, _UNAVAILABLE = range(4, 8)
_ANSWERED, _LATENCY_SUM, _LATENCY_MAX = range(8, 11)

_STATUS_OF = {
    BankOutcome.APPROVED: ChannelStatus.SUCCEEDED,
    BankOutcome.DECLINED: ChannelStatus.DECLINED,
    BankOutcome.ERROR: ChannelStatus.FAILED,
    BankOutcome.TIMEOUT: ChannelStatus.FAILED,
    BankOutcome.UNAVAILABLE: ChannelStatus.UNAVAILABLE,
    BankOutcome.BUSY: ChannelStatus.UNAVAILABLE,
}
_METRIC_OF = {
    BankOutcome.APPROVED: _SUCCEEDED,
    BankOutcome.DECLINED: _DECLINED,
    BankOutcome.ERROR: _FAILED,
    BankOutcome.TIMEOUT: _FAILED,
    BankOutcome.UNAVAILABLE: _UNAVAILABLE,
    BankOutcome.BUSY: _UNAVAILABLE,
}
# What counts against the bank's health. A decline is a business answer, not a fault.
_FAULTS = frozenset(
    {BankOutcome.ERROR, BankOutcome.TIMEOUT, BankOutcome.UNAVAILABLE, BankOutcome.BUSY}
)
_TIMED = frozenset(
    {BankOutcome.APPROVED, BankOutcome.DECLINED, BankOutcome.ERROR, BankOutcome.TIMEOUT}
)
# Calls that finish an authorization the bank already granted: they have priority.
COMPLETIONS = frozenset({Operation.CAPTURE, Operation.VOID})


class Channel:
    """One bank with its flow rule and breaker. Driven by one clock, in time order."""

    def __init__(
        self,
        bank: SimulatedBank,
        flow: FlowRule,
        breaker: BreakerRule | None = None,
        *,
        clock: Clock,
        seconds_max: int = SECONDS_KEPT_MAX,
    ) -> None:
        self.bank = bank
        self.name = bank.name
        self.clock = clock
        self.flow = FlowController(flow)
        self.breaker = CircuitBreaker(breaker or BreakerRule())
        self.stats = PerSecond(CHANNEL_METRICS, maxima=("latency_us_max",), seconds_max=seconds_max)
        self.latency = LatencyHistogram()
        # Answers not yet arrived: (completed_ns, sequence, outcome, latency_ns, is_probe).
        self._pending: list[tuple[int, int, BankOutcome, int, bool]] = []
        self._sequence = 0
        self._probe_done_ns = 0
        # Completions that passed a breaker which was not closed (see the module docstring).
        self.completions_past_breaker = 0
        # Every answer arrives within the bank's timeout of its start, and starts are at most
        # the longest wait ahead: so this many calls at most can be awaiting their answer.
        horizon_ns = (bank.profile.timeout_ms + flow.wait_max_ms) * NS_PER_MS
        self.in_flight_max = flow.admitted_max(horizon_ns + NS_PER_S)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, request: BankRequest) -> ChannelResult:
        now_ns = self.clock.now_ns()
        self._deliver(now_ns)
        self.stats.add(_OFFERED, now_ns)
        completion = request.operation in COMPLETIONS
        if completion and self.breaker.rule.completions_pass:
            # Never the probe, never refused by the breaker: the bank owes this answer.
            permit = Permit.PASS
            past_breaker = self.breaker.state is not BreakerState.CLOSED
        else:
            permit = self.breaker.try_pass(now_ns)
            past_breaker = False
        if permit is Permit.REJECT:
            self.stats.add(_BREAKER_REJECTED, now_ns)
            if self._probe_done_ns > now_ns:  # half-open: the probe's answer is due then
                retry_ns, reason = self._probe_done_ns - now_ns, Reason.BREAKER_PROBING
            else:
                retry_ns, reason = self.breaker.retry_after_ns(now_ns), Reason.BREAKER_OPEN
            return ChannelResult(self.name, ChannelStatus.BREAKER_OPEN, reason, None, retry_ns)
        decision = self.flow.try_acquire(now_ns, priority=completion)
        if not isinstance(decision, Admitted):
            if permit is Permit.PROBE:
                self.breaker.cancel_probe(now_ns)
            self.stats.add(_THROTTLED, now_ns)
            return ChannelResult(
                self.name,
                ChannelStatus.THROTTLED,
                decision.reason,
                None,
                decision.retry_after_ns,
            )
        self.stats.add(_PASSED, decision.start_ns)
        self.completions_past_breaker += past_breaker
        reply = self.bank.submit(request, decision.start_ns)
        probe = permit is Permit.PROBE
        if probe:
            self._probe_done_ns = reply.completed_ns
        self._sequence += 1
        heapq.heappush(
            self._pending,
            (reply.completed_ns, self._sequence, reply.outcome, reply.latency_ns, probe),
        )
        assert len(self._pending) <= self.in_flight_max, (self.name, len(self._pending))
        return ChannelResult(
            self.name,
            _STATUS_OF[reply.outcome],
            reply.reason,
            reply,
            reply.retry_after_ns,
        )

    def advance(self) -> None:
        """Deliver every answer due by the clock's time to the breaker and the counters. Call
        it before reading the counters of a second that has just ended."""
        self._deliver(self.clock.now_ns())

    def _deliver(self, now_ns: int) -> None:
        pending = self._pending
        while pending and pending[0][0] <= now_ns:
            done_ns, _, outcome, latency_ns, probe = heapq.heappop(pending)
            self.breaker.on_complete(done_ns, latency_ns, error=outcome in _FAULTS, probe=probe)
            self.stats.add(_METRIC_OF[outcome], done_ns)
            if outcome in _TIMED:
                latency_us = latency_ns // 1_000
                self.stats.add(_ANSWERED, done_ns)
                self.stats.add(_LATENCY_SUM, done_ns, latency_us)
                self.stats.peak(_LATENCY_MAX, done_ns, latency_us)
                self.latency.add(latency_ns)
