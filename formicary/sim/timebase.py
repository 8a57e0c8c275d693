"""Virtual time for a simulation that runs real service calls on several threads at once.

The event loop owns a `ManualClock` and moves it window by window (never by sleeping). Within a
window, events run concurrently on worker threads, each *at its own virtual time*: the
`EventClock` answers a worker thread with the time of the event it is running (set with `at`),
and any other thread (the ledger's writer, the loop itself) with the loop's clock. Payments and
the ledger read the `EventClock`, so a payment row carries its event's time.

Channels require time to run forward (their token buckets and breaker windows assert it), but
events of one window may reach a bank slightly out of order when they run concurrently. Each
channel therefore reads a `ForwardClock`: the event's time, or the latest time that channel has
already seen if that is later. The skew this introduces is bounded by the window length (events
of a later window start only after the earlier window finished) and is reported (`skew_ns_max`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from formicary.channels import Clock, ManualClock

__all__ = ["EventClock", "ForwardClock"]


class EventClock:
    """The time of the event the calling thread runs, else the loop's clock. Callable, so it can
    be passed where a `clock_ns` function is expected (payments, the ledger service)."""

    def __init__(self, base: ManualClock) -> None:
        self.base = base
        self._local = threading.local()

    def now_ns(self) -> int:
        local = getattr(self._local, "now_ns", None)
        return self.base.now_ns() if local is None else local

    def __call__(self) -> int:
        return self.now_ns()

    @contextmanager
    def at(self, now_ns: int) -> Iterator[None]:
        """Run the body at virtual time `now_ns` (on this thread only)."""
        assert now_ns >= 0, now_ns
        previous = getattr(self._local, "now_ns", None)
        self._local.now_ns = now_ns
        try:
            yield
        finally:
            self._local.now_ns = previous

    def move_to(self, now_ns: int) -> None:
        """Inside `at`: the event's own time moves on (e.g. after waiting for a bank)."""
        assert getattr(self._local, "now_ns", None) is not None, "only inside at()"
        self._local.now_ns = now_ns


class ForwardClock:
    """A clock that never runs backwards: max(source time, latest time returned). One per
    channel; not thread-safe by itself (the gateway serialises channel calls)."""

    __slots__ = ("_last_ns", "skew_ns_max", "source")

    def __init__(self, source: Clock) -> None:
        self.source = source
        self._last_ns = 0
        self.skew_ns_max = 0  # the largest correction applied: how out of order calls came

    def now_ns(self) -> int:
        now_ns = self.source.now_ns()
        if now_ns < self._last_ns:
            self.skew_ns_max = max(self.skew_ns_max, self._last_ns - now_ns)
            return self._last_ns
        self._last_ns = now_ns
        return now_ns
