"""Counters by second of virtual time, readable as time series (for plots), and a latency
histogram. Memory is bounded: only the newest `seconds_max` seconds are kept.

Counters are dated by the event they count: an arrival by its arrival time, a call sent to a
bank by the time the bank receives it, an outcome by the time the answer arrives.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from formicary.channels.clock import NS_PER_MS, NS_PER_S

__all__ = ["LATENCY_BOUNDS_MS", "SECONDS_KEPT_MAX", "LatencyHistogram", "PerSecond", "TimeSeries"]

# One hour of per-second rows per channel by default; a row is a short list of ints.
SECONDS_KEPT_MAX = 3_600
# Upper bounds of the histogram's buckets, roughly 1-2-5 per decade, plus one overflow bucket.
LATENCY_BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000)


@dataclass(frozen=True, slots=True)
class TimeSeries:
    """Dense per-second columns: `columns[name][i]` is the value in second `first_second + i`
    (seconds since the epoch of the clock). Seconds without events hold 0."""

    first_second: int
    columns: Mapping[str, tuple[int, ...]]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), ()))

    def seconds(self) -> range:
        return range(self.first_second, self.first_second + len(self))

    def column(self, name: str) -> tuple[int, ...]:
        return self.columns[name]


class PerSecond:
    """A row of integer counters per second. Metrics named in `maxima` keep the largest value
    seen in the second; the others are sums."""

    __slots__ = ("_index", "_is_max", "_rows", "metrics", "seconds_max", "totals")

    def __init__(
        self,
        metrics: Iterable[str],
        *,
        maxima: Iterable[str] = (),
        seconds_max: int = SECONDS_KEPT_MAX,
    ) -> None:
        self.metrics = tuple(metrics)
        assert self.metrics and len(set(self.metrics)) == len(self.metrics), self.metrics
        self.seconds_max = seconds_max
        assert 0 < self.seconds_max <= 10 * 86_400, self.seconds_max
        self._index = {name: i for i, name in enumerate(self.metrics)}
        maxima = frozenset(maxima)
        assert maxima <= set(self.metrics), maxima
        self._is_max = tuple(name in maxima for name in self.metrics)
        self._rows: dict[int, list[int]] = {}
        # Whole-run totals (sums, or the overall maximum), never evicted.
        self.totals = [0] * len(self.metrics)

    def index(self, metric: str) -> int:
        return self._index[metric]

    def add(self, metric: int, at_ns: int, n: int = 1) -> None:
        """Add `n` to counter number `metric` in the second holding `at_ns`."""
        self._row(at_ns // NS_PER_S)[metric] += n
        self.totals[metric] += n

    def peak(self, metric: int, at_ns: int, value: int) -> None:
        """Raise maximum number `metric` of the second holding `at_ns` to `value`."""
        row = self._row(at_ns // NS_PER_S)
        if value > row[metric]:
            row[metric] = value
        if value > self.totals[metric]:
            self.totals[metric] = value

    def total(self, metric: str) -> int:
        return self.totals[self._index[metric]]

    def series(self, first_second: int | None = None, last_second: int | None = None) -> TimeSeries:
        """Columns for seconds first..last inclusive (default: every second kept)."""
        if not self._rows and (first_second is None or last_second is None):
            return TimeSeries(first_second or 0, {name: () for name in self.metrics})
        first = min(self._rows) if first_second is None else first_second
        last = max(self._rows) if last_second is None else last_second
        assert -1 <= last - first < 10 * 86_400, "a series is at most ten days of seconds"
        empty = [0] * len(self.metrics)
        rows = [self._rows.get(second, empty) for second in range(first, last + 1)]
        columns = {name: tuple(row[i] for row in rows) for i, name in enumerate(self.metrics)}
        return TimeSeries(first, columns)

    def _row(self, second: int) -> list[int]:
        row = self._rows.get(second)
        if row is None:
            row = self._rows[second] = [0] * len(self.metrics)
            # Evict in bulk, rarely: keep the newest seconds_max rows once there are twice as
            # many, so that the cost per new second stays O(log n) amortised.
            if len(self._rows) > 2 * self.seconds_max:
                keep = sorted(self._rows)[-self.seconds_max :]
                self._rows = {s: self._rows[s] for s in keep}
        return row


class LatencyHistogram:
    """Counts of response times in fixed buckets (bounded memory, whole run)."""

    __slots__ = ("_bounds_ns", "counts")

    def __init__(self) -> None:
        self._bounds_ns = tuple(ms * NS_PER_MS for ms in LATENCY_BOUNDS_MS)
        self.counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)

    def add(self, latency_ns: int) -> None:
        self.counts[bisect.bisect_left(self._bounds_ns, latency_ns)] += 1

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile_ms(self, q: float) -> float:
        """Upper bound (ms) of the bucket holding the q-quantile; inf if it is the overflow
        bucket, 0 if nothing was recorded. Coarse by design: for dashboards and plans."""
        assert 0 < q <= 1, q
        total = self.count
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return float(LATENCY_BOUNDS_MS[i]) if i < len(LATENCY_BOUNDS_MS) else float("inf")
        return float("inf")  # unreachable: seen == total >= rank at the last bucket
