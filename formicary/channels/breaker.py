"""Circuit breaking per bank, after Sentinel's degrade rules (slow-call ratio, error ratio).

CLOSED: every call passes; completed calls are counted in a sliding window (`SlidingWindow`).
Once the window holds at least `min_requests` calls and the share of slow calls exceeds
`slow_ratio_max`, or the share of failed calls exceeds `error_ratio_max` (a maximum of 1.0 is
reached only when every call is slow or failed), the breaker OPENs.
OPEN: every call is rejected at once, without touching the bank, for `open_ms`.
HALF_OPEN: the first call after that is let through as a single probe and every other call is
rejected until the probe's answer arrives: a good answer CLOSEs the breaker (with fresh
statistics), a slow or failed one re-OPENs it for another `open_ms`. A probe that never reaches
the bank (throttled) hands its turn to the next call.

Completions (`completions_pass`, on by default): the channel lets the capture or void of an
authorization the bank already granted pass an open (or probing) breaker. The breaker protects
the bank from new work; finishing work it already accepted is what releases the card holder's
money, and refusing it would leave holds hanging until they expire. They are bounded all the
same: by the flow rule, and by the holds outstanding (at most a capture and a void each), since
no new authorization passes while the breaker is open. They never act as the half-open probe
(only a new call's answer closes the breaker); their answers are counted like any other.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import NamedTuple

import msgspec

from formicary.channels.clock import NS_PER_MS
from formicary.channels.errors import InvalidRule
from formicary.channels.window import BUCKETS_MAX, SlidingWindow

__all__ = ["BreakerRule", "BreakerState", "CircuitBreaker", "Permit", "Transition"]

TRANSITIONS_KEPT = 1_000
HOUR_MS = 3_600_000


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Permit(StrEnum):
    PASS = "pass"
    PROBE = "probe"  # passes as the half-open breaker's one probe
    REJECT = "reject"


class Transition(NamedTuple):
    at_ns: int
    before: BreakerState
    after: BreakerState


class BreakerRule(msgspec.Struct, frozen=True, kw_only=True):
    """When to open a bank's breaker and for how long. Defaults follow Sentinel where it has
    one (min_requests 5, a 1 s statistics window); None disables a criterion."""

    slow_call_ms: int = 1_000  # a call that takes longer than this is slow
    slow_ratio_max: float | None = 0.5
    error_ratio_max: float | None = 0.5
    min_requests: int = 5  # calls in the window before either ratio is judged
    stat_window_ms: int = 1_000
    buckets: int = 10  # the window's resolution: stat_window_ms / buckets per bucket
    open_ms: int = 5_000  # how long an open breaker rejects before it probes
    # Capture and void of granted authorizations pass an open breaker (see the module doc).
    completions_pass: bool = True

    def __post_init__(self) -> None:
        if self.slow_ratio_max is None and self.error_ratio_max is None:
            raise InvalidRule("a breaker rule needs slow_ratio_max or error_ratio_max")
        for ratio in (self.slow_ratio_max, self.error_ratio_max):
            if ratio is not None and not 0 <= ratio <= 1:
                raise InvalidRule(f"breaker ratios are within 0..1, got {ratio}")
        if not 0 < self.slow_call_ms <= HOUR_MS:
            raise InvalidRule("slow_call_ms must be 1 ms..1 h")
        if not 0 < self.min_requests <= 1_000_000:
            raise InvalidRule("min_requests must be 1..1000000")
        if not 0 < self.buckets <= BUCKETS_MAX:
            raise InvalidRule(f"buckets must be 1..{BUCKETS_MAX}")
        if not 0 < self.stat_window_ms <= HOUR_MS or self.stat_window_ms % self.buckets:
            raise InvalidRule("stat_window_ms must be 1 ms..1 h and a multiple of buckets")
        if not 0 < self.open_ms <= HOUR_MS:
            raise InvalidRule("open_ms must be 1 ms..1 h")


def _exceeds(count: int, total: int, ratio_max: float | None) -> bool:
    if ratio_max is None:
        return False
    ratio = count / total
    return ratio > ratio_max or (ratio_max == 1.0 and count == total)


class CircuitBreaker:
    """The breaker of one bank. Time is passed in; calls must be reported in time order."""

    def __init__(self, rule: BreakerRule) -> None:
        self.rule = rule
        self.state = BreakerState.CLOSED
        self.window = SlidingWindow(rule.stat_window_ms * NS_PER_MS, rule.buckets)
        self._slow_ns = rule.slow_call_ms * NS_PER_MS
        self._open_ns = rule.open_ms * NS_PER_MS
        self._retry_at_ns = 0
        self.transitions: deque[Transition] = deque(maxlen=TRANSITIONS_KEPT)
        self.opened_count = 0

    def try_pass(self, now_ns: int) -> Permit:
        if self.state is BreakerState.CLOSED:
            return Permit.PASS
        if self.state is BreakerState.OPEN and now_ns >= self._retry_at_ns:
            self._move(now_ns, BreakerState.HALF_OPEN)
            return Permit.PROBE
        return Permit.REJECT

    def cancel_probe(self, now_ns: int) -> None:
        """The probe was stopped before the bank (throttled): the next call probes instead."""
        assert self.state is BreakerState.HALF_OPEN, self.state
        self._move(now_ns, BreakerState.OPEN)  # _retry_at_ns is already past: no new wait

    def retry_after_ns(self, now_ns: int) -> int:
        """For a rejected call: how long until the breaker may let a probe through."""
        return max(1, self._retry_at_ns - now_ns)

    def on_complete(self, now_ns: int, latency_ns: int, *, error: bool, probe: bool) -> None:
        """Report a call's answer, at the time it arrived."""
        slow = latency_ns > self._slow_ns
        self.window.add(now_ns, slow=slow, error=error)
        if probe:
            assert self.state is BreakerState.HALF_OPEN, self.state
            failed = (error and self.rule.error_ratio_max is not None) or (
                slow and self.rule.slow_ratio_max is not None
            )
            if failed:
                self._open(now_ns)
            else:
                self.window.reset()
                self._move(now_ns, BreakerState.CLOSED)
            return
        if self.state is not BreakerState.CLOSED:
            return  # answers to calls sent before the breaker opened change nothing
        total, slow_count, errors = self.window.totals(now_ns)
        if total < self.rule.min_requests:
            return
        if _exceeds(slow_count, total, self.rule.slow_ratio_max) or _exceeds(
            errors, total, self.rule.error_ratio_max
        ):
            self._open(now_ns)

    def _open(self, now_ns: int) -> None:
        self._retry_at_ns = now_ns + self._open_ns
        self.opened_count += 1
        self._move(now_ns, BreakerState.OPEN)

    def _move(self, now_ns: int, state: BreakerState) -> None:
        self.transitions.append(Transition(now_ns, self.state, state))
        self.state = state
