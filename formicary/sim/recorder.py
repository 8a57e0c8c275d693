"""Per-second counters and latency samples of a simulation, in virtual time.

Written by the event loop's thread only (workers hand their observations back with their
results), so nothing here locks. Memory is bounded: a fixed span of seconds, and at most
`SAMPLES_MAX` latency samples (beyond that, samples are counted but not kept).
"""

from __future__ import annotations

import numpy as np

from formicary.channels import NS_PER_S

__all__ = ["COUNTERS", "Recorder"]

COUNTERS = (
    "clicks",  # "buy" clicks (the funnel's first stage)
    "cashier",  # cashier visits: an order created (second stage)
    "pay_intents",  # users who went on to pay (third stage)
    "attempts",  # payment attempts (rows in the payments store)
    "succeeded",  # attempts that paid (dated when the bank's answer arrived)
    "throttled",  # attempts refused as busy: flow limit, breaker, maintenance, bank queue
    "declined",  # attempts declined (by the bank) or refused (insufficient funds)
    "failed",  # intents that ended without paying (dated at the end)
    "retries",  # "bank busy, retry" rounds scheduled
    "failovers",  # attempts on a second or later funding source
    "unknown",  # attempts whose bank call timed out (resumed later with the same id)
)
SPAN_S_MAX = 2 * 3_600 + 600
SAMPLES_MAX = 5_000_000


class Recorder:
    """Counters per virtual second from `first_second` (seconds since the epoch)."""

    def __init__(self, first_second: int, span_s: int) -> None:
        assert 0 < span_s <= SPAN_S_MAX, span_s
        self.first_second = first_second
        self.span_s = span_s
        self.counts = {name: np.zeros(span_s, dtype=np.int64) for name in COUNTERS}
        self.bank_ms: list[list[float]] = [[] for _ in range(span_s)]
        self.service_ms: list[list[float]] = [[] for _ in range(span_s)]
        self.samples = 0
        self.samples_dropped = 0

    def index(self, at_ns: int) -> int:
        """The row of the second holding `at_ns`, clamped into the span (late drains land in
        the last second rather than being lost)."""
        return min(max(0, at_ns // NS_PER_S - self.first_second), self.span_s - 1)

    def add(self, name: str, at_ns: int, n: int = 1) -> None:
        self.counts[name][self.index(at_ns)] += n

    def latency(self, at_ns: int, bank_ms: float | None, service_ms: float) -> None:
        if self.samples >= SAMPLES_MAX:
            self.samples_dropped += 1
            return
        self.samples += 1
        i = self.index(at_ns)
        if bank_ms is not None:
            self.bank_ms[i].append(bank_ms)
        self.service_ms[i].append(service_ms)

    def total(self, name: str) -> int:
        return int(self.counts[name].sum())

    def quantiles(self, which: str, seconds: slice, qs: tuple[float, ...]) -> list[float]:
        """Quantiles (ms) over a range of rows; 0 where nothing was recorded."""
        rows = self.bank_ms if which == "bank" else self.service_ms
        values = [v for row in rows[seconds] for v in row]
        if not values:
            return [0.0 for _ in qs]
        return [float(x) for x in np.quantile(np.asarray(values), qs)]

    def per_second_quantiles(self, which: str, q: float, last: int) -> np.ndarray:
        """One quantile per second for rows 0..last (NaN for seconds without samples)."""
        rows = self.bank_ms if which == "bank" else self.service_ms
        out = np.full(last + 1, np.nan)
        for i, row in enumerate(rows[: last + 1]):
            if row:
                out[i] = float(np.quantile(np.asarray(row), q))
        return out
