"""A sliding window of call statistics in a fixed ring of buckets (Sentinel's LeapArray).

The window of `window_ns` is cut into `buckets` equal buckets. A call is counted in the bucket
of its time; a bucket whose start is a full window or more in the past is stale and is reset
before reuse, so memory is `buckets` rows however many calls there are, and totals cover the
current bucket plus the `buckets - 1` before it.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["BUCKETS_MAX", "SlidingWindow", "WindowTotals"]

BUCKETS_MAX = 1_000


class WindowTotals(NamedTuple):
    total: int
    slow: int
    errors: int


class SlidingWindow:
    """Counts of (total, slow, error) calls over the last `window_ns`, in `buckets` buckets."""

    __slots__ = ("_errors", "_last_ns", "_slow", "_starts", "_total", "bucket_ns", "buckets")

    def __init__(self, window_ns: int, buckets: int) -> None:
        assert 0 < buckets <= BUCKETS_MAX, buckets
        assert window_ns > 0 and window_ns % buckets == 0, (window_ns, buckets)
        self.buckets = buckets
        self.bucket_ns = window_ns // buckets
        self._starts = [-1] * buckets
        self._total = [0] * buckets
        self._slow = [0] * buckets
        self._errors = [0] * buckets
        self._last_ns = 0

    @property
    def window_ns(self) -> int:
        return self.bucket_ns * self.buckets

    def add(self, now_ns: int, *, slow: bool, error: bool) -> None:
        # Calls are recorded in time order; an older call could otherwise wipe a newer bucket.
        assert now_ns >= self._last_ns, (now_ns, self._last_ns)
        self._last_ns = now_ns
        i = self._bucket(now_ns)
        self._total[i] += 1
        self._slow[i] += slow
        self._errors[i] += error

    def totals(self, now_ns: int) -> WindowTotals:
        """Sums over the buckets that are still inside the window at `now_ns`."""
        oldest_start_ns = now_ns - now_ns % self.bucket_ns - self.window_ns
        total = slow = errors = 0
        for i, start_ns in enumerate(self._starts):
            if start_ns > oldest_start_ns:
                total += self._total[i]
                slow += self._slow[i]
                errors += self._errors[i]
        return WindowTotals(total, slow, errors)

    def reset(self) -> None:
        for i in range(self.buckets):
            self._starts[i] = -1
            self._total[i] = self._slow[i] = self._errors[i] = 0

    def _bucket(self, now_ns: int) -> int:
        start_ns = now_ns - now_ns % self.bucket_ns
        i = (now_ns // self.bucket_ns) % self.buckets
        if self._starts[i] != start_ns:  # stale: a full window old (or never used)
            self._starts[i] = start_ns
            self._total[i] = self._slow[i] = self._errors[i] = 0
        return i
