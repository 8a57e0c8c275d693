"""Flow control per bank: a QPS limit as a token bucket, Sentinel's warm-up, and queueing with
a maximum wait.

The bucket is kept as a GCRA ("generic cell rate algorithm"): instead of a token count it keeps
the theoretical arrival time `tat_ns` of the next request at the current rate; a request passes
if `tat_ns - tolerance_ns <= now`, and each pass pushes `tat_ns` one interval (1/rate) ahead.
That is exactly a bucket of `bucket_size` tokens refilled at `qps` — in integer nanoseconds, with
no rounding drift — so in any window of T seconds at most `qps * T + bucket_size` requests pass
(`FlowRule.admitted_max`).

Queueing (`max_queueing_ms > 0`, Sentinel's rate limiter): a request that does not pass at once
is given a scheduled start `tat_ns - tolerance_ns` in the future, if that wait is at most
`max_queueing_ms`; requests then reach the bank evenly spaced. The wait is virtual: the channel
hands the request to the bank at its scheduled start, nobody sleeps.

Warm-up (`warm_up_s > 0`, Sentinel's WarmUpController with its Guava-derived constants): after
idleness the limit starts at qps / cold_factor and climbs to qps over about `warm_up_s` of
steady traffic. Once per second a count of stored tokens is refilled (by qps per second while
below the warning line, or while traffic is under qps / cold_factor) and drained by the previous
second's passes; above the warning line the interval is `above * slope + 1/qps`, with

    warning_token = warm_up_s * qps / (cold_factor - 1)
    max_token     = warning_token + 2 * warm_up_s * qps / (1 + cold_factor)
    slope         = (cold_factor - 1) / qps / (max_token - warning_token)

so that a full bucket (max_token) means an interval of cold_factor / qps.

Priority (`try_acquire(now, priority=True)`, for the capture or void of an authorization the
bank already holds; after Sentinel's prioritized entries, which may occupy tokens of the coming
window): a prioritized request may wait `completion_wait_ms` longer than an ordinary one (which
waits up to `max_queueing_ms`, 0 when rejecting). It takes the next free slot of the same
bucket, so the ordinary requests behind it are throttled instead: a bank at its limit still
finishes the holds it granted, and the bound above holds for all requests together. Beyond
that extra wait prioritized requests are throttled too (so they cannot take more than the
bucket either).

A request that cannot pass gets `Throttled` with the time after which a retry would pass
(assuming no one else takes the slot first): nothing is dropped silently.
"""

from __future__ import annotations

import math

import msgspec

from formicary.channels.clock import NS_PER_MS, NS_PER_S
from formicary.channels.errors import InvalidRule
from formicary.channels.messages import Reason

__all__ = ["QPS_MAX", "Admitted", "FlowController", "FlowRule", "Throttled"]

QPS_MAX = 10_000_000
WARM_UP_S_MAX = 3_600
COLD_FACTOR_MAX = 100
QUEUEING_MS_MAX = 60_000


class FlowRule(msgspec.Struct, frozen=True, kw_only=True):
    """A bank's flow limit. Defaults: reject at once (no queueing), no warm-up, cold factor 3
    (Sentinel's), a bucket of qps/10 tokens (at least 1) when rejecting and of 1 when queueing
    (requests then reach the bank strictly evenly spaced, as with Sentinel's rate limiter)."""

    qps: int
    burst: int | None = None  # the bucket size in requests
    warm_up_s: int = 0
    cold_factor: int = 3
    max_queueing_ms: int = 0
    # Capture and void may wait this much longer than an ordinary request (Sentinel's
    # occupy timeout for prioritized entries is 500 ms); 0: no priority.
    completion_wait_ms: int = 500

    def __post_init__(self) -> None:
        if not 0 < self.qps <= QPS_MAX:
            raise InvalidRule(f"qps must be 1..{QPS_MAX}, got {self.qps}")
        if self.burst is not None and not 0 < self.burst <= self.qps * 60:
            raise InvalidRule("burst must be 1..60 seconds' worth of qps")
        if not 0 <= self.warm_up_s <= WARM_UP_S_MAX:
            raise InvalidRule(f"warm_up_s must be 0..{WARM_UP_S_MAX}")
        if not 1 < self.cold_factor <= COLD_FACTOR_MAX:
            raise InvalidRule(f"cold_factor must be 2..{COLD_FACTOR_MAX}")
        if self.warm_up_s and 2 * self.warm_up_s * self.qps < 1 + self.cold_factor:
            raise InvalidRule("warm-up too short for this qps: need 2 * warm_up_s * qps >= 4")
        if not 0 <= self.max_queueing_ms <= QUEUEING_MS_MAX:
            raise InvalidRule(f"max_queueing_ms must be 0..{QUEUEING_MS_MAX}")
        if not 0 <= self.completion_wait_ms <= QUEUEING_MS_MAX:
            raise InvalidRule(f"completion_wait_ms must be 0..{QUEUEING_MS_MAX}")

    @property
    def bucket_size(self) -> int:
        if self.burst is not None:
            return self.burst
        return 1 if self.max_queueing_ms else max(1, math.ceil(self.qps / 10))

    def admitted_max(self, window_ns: int) -> int:
        """The most requests that can pass (in queueing mode: start) in any window of
        `window_ns`: qps * T + bucket_size, whatever the arrival pattern."""
        return self.qps * window_ns // NS_PER_S + self.bucket_size

    @property
    def wait_max_ms(self) -> int:
        """The longest any admitted request waits for its start (a prioritized one)."""
        return self.max_queueing_ms + self.completion_wait_ms


class Admitted(msgspec.Struct, frozen=True):
    """Passed: hand the request to the bank at `start_ns` (now, or later when queued)."""

    start_ns: int


class Throttled(msgspec.Struct, frozen=True):
    """Not passed, nothing sent: retrying after `retry_after_ns` would pass."""

    retry_after_ns: int
    reason: Reason


class FlowController:
    """Applies one `FlowRule`. Requests must be presented in time order."""

    def __init__(self, rule: FlowRule) -> None:
        self.rule = rule
        self._interval_min_ns = -(-NS_PER_S // rule.qps)  # rounded up: never above qps
        self._tolerance_ns = (rule.bucket_size - 1) * self._interval_min_ns
        self._max_wait_ns = rule.max_queueing_ms * NS_PER_MS
        self._priority_wait_ns = rule.wait_max_ms * NS_PER_MS
        self._reason = Reason.FLOW_QUEUE_FULL if rule.max_queueing_ms else Reason.FLOW_LIMIT
        self._tat_ns = 0
        self._last_ns = 0
        self._interval_ns = self._interval_min_ns
        # Warm-up state (Sentinel's names); it starts cold, as after a long idle time.
        self._second = -1
        self._passed_in_second = 0
        self._warning_token = 0
        self._max_token = 0
        self._slope = 0.0
        if rule.warm_up_s:
            self._warning_token = rule.warm_up_s * rule.qps // (rule.cold_factor - 1)
            self._max_token = self._warning_token + int(
                2 * rule.warm_up_s * rule.qps / (1 + rule.cold_factor)
            )
            assert self._max_token > self._warning_token, rule
            self._slope = (
                (rule.cold_factor - 1.0) / rule.qps / (self._max_token - self._warning_token)
            )
        self._stored_tokens = self._max_token

    @property
    def limit_qps(self) -> float:
        """The rate currently allowed (below qps while warming up)."""
        return NS_PER_S / self._interval_ns

    def try_acquire(self, now_ns: int, *, priority: bool = False) -> Admitted | Throttled:
        """Admit a request arriving at `now_ns` (in time order), or say when to retry. A
        `priority` request (a capture or void) may wait `completion_wait_ms` longer."""
        assert now_ns >= self._last_ns, f"time runs forward: {now_ns} < {self._last_ns}"
        self._last_ns = now_ns
        if self.rule.warm_up_s:
            self._sync(now_ns)
        start_ns = max(now_ns, self._tat_ns - self._tolerance_ns)
        wait_ns = start_ns - now_ns
        max_wait_ns = self._priority_wait_ns if priority else self._max_wait_ns
        if wait_ns > max_wait_ns:
            return Throttled(wait_ns - max_wait_ns, self._reason)
        self._tat_ns = max(self._tat_ns, now_ns) + self._interval_ns
        self._passed_in_second += 1
        return Admitted(start_ns)

    def _sync(self, now_ns: int) -> None:
        """Once per second: refill or drain the stored tokens and set the interval from them."""
        second = now_ns // NS_PER_S
        if second == self._second:
            return
        rule = self.rule
        previous_passed = self._passed_in_second if second == self._second + 1 else 0
        elapsed_s = second - self._second
        stored = self._stored_tokens
        if stored < self._warning_token or (
            stored > self._warning_token and previous_passed < rule.qps // rule.cold_factor
        ):
            stored = min(self._max_token, stored + elapsed_s * rule.qps)
        self._stored_tokens = stored = max(0, stored - previous_passed)
        self._second = second
        self._passed_in_second = 0
        if stored >= self._warning_token:
            above = stored - self._warning_token
            interval_s = above * self._slope + 1.0 / rule.qps
            self._interval_ns = max(self._interval_min_ns, math.ceil(interval_s * NS_PER_S))
        else:
            self._interval_ns = self._interval_min_ns
