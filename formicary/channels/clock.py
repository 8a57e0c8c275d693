"""Time for the channel layer: explicit, in integer nanoseconds, and replaceable in tests.

Nothing in `formicary.channels` reads the system time by itself: the banks take `now_ns` as an
argument and the channels read the `Clock` they were given. A simulation advances a
`ManualClock`, so a Double-11 minute runs in a fraction of a real second and every run with the
same seed gives the same figures. Virtual time counts nanoseconds since the Unix epoch (UTC):
that is what a bank's daily maintenance window is measured against, so a simulation that wants a
particular date starts its clock there.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["NS_PER_MS", "NS_PER_S", "Clock", "ManualClock", "MonotonicClock"]

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


@runtime_checkable
class Clock(Protocol):
    """A source of time: nanoseconds since the Unix epoch, never decreasing."""

    def now_ns(self) -> int: ...


class ManualClock:
    """A clock that moves only when told to: the time of a discrete-event simulation."""

    __slots__ = ("_now_ns",)

    def __init__(self, start_ns: int = 0) -> None:
        assert start_ns >= 0, start_ns
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def advance(self, delta_ns: int) -> int:
        """Move forward by `delta_ns` (never back) and return the new time."""
        assert delta_ns >= 0, f"time does not run backwards: {delta_ns} ns"
        self._now_ns += delta_ns
        return self._now_ns

    def set(self, now_ns: int) -> None:
        """Jump to `now_ns`, which must not be earlier than the current time."""
        assert now_ns >= self._now_ns, f"time does not run backwards: {now_ns} < {self._now_ns}"
        self._now_ns = now_ns


class MonotonicClock:
    """Production time: the wall clock read once at start, then advanced by the monotonic clock,
    so that it is anchored to real dates (for daily windows) but never jumps back when the
    system clock is adjusted."""

    __slots__ = ("_mono0_ns", "_wall0_ns")

    def __init__(self) -> None:
        self._wall0_ns = time.time_ns()
        self._mono0_ns = time.monotonic_ns()

    def now_ns(self) -> int:
        return self._wall0_ns + (time.monotonic_ns() - self._mono0_ns)
