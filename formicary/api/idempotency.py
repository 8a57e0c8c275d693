"""`Idempotency-Key` for batch POSTs: replay the first answer to a retried request.

Scope: a key is remembered per route for `retention_s` after its first use, or until `keys_max`
newer keys push it out (first in, first out), whichever comes first. Within that window the
same key with the same body answers the first response again (`Idempotent-Replayed: true`),
and the same key with a different body is a 422. Only successful (200) answers are remembered:
a request that failed (busy, invalid) applied nothing and may simply be retried.

The map is in memory, so it is lost on restart. That is safe because the ledger is idempotent by
event id: a batch re-sent after a restart answers `exists` for every event already applied (and
`ok` for the rest), and nothing is applied twice. The key only adds exact replay of the first
answer (`ok` rather than `exists`) within one process's lifetime.

Memory is bounded: an all-`ok` answer is stored as one int; other answers keep one reference
per event (shared interned result strings), and at most `results_max` such references are kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from formicary.api.problems import Problem

__all__ = ["IdempotencyCache"]

KEYS_MAX = 100_000
RESULTS_MAX = 10_000_000  # ~80 MB of references in the worst case
RETENTION_S = 24 * 3600


class _Entry:
    __slots__ = ("created_s", "digest", "done", "results")

    def __init__(self, digest: bytes, created_s: float) -> None:
        self.digest = digest
        self.created_s = created_s
        # None while the first request is in flight; then an int n (n results, all "ok") or
        # the list of results.
        self.results: int | list[str] | None = None
        self.done: asyncio.Event | None = asyncio.Event()


class IdempotencyCache:
    """Bounded map of (route, key) -> (body digest, results of the first answer)."""

    def __init__(
        self,
        *,
        keys_max: int = KEYS_MAX,
        results_max: int = RESULTS_MAX,
        retention_s: float = RETENTION_S,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        assert keys_max > 0 and results_max >= 0 and retention_s > 0
        self.keys_max = keys_max
        self.results_max = results_max
        self.retention_s = retention_s
        self._clock_s = clock_s
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._results_stored = 0
        self.replays = 0
        self.conflicts = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def run(
        self,
        route: str,
        key: str,
        body: bytes,
        compute: Callable[[], Awaitable[list[str]]],
    ) -> tuple[list[str], bool]:
        """The results for this request and whether they are a replay of an earlier answer."""
        digest = hashlib.blake2b(body, digest_size=16).digest()
        scope = (route, key)
        # Bounded: each pass either returns or waits for an in-flight twin to finish; a twin
        # that failed is removed, so the next pass finds nothing and computes.
        for _ in range(1000):
            self._expire()
            entry = self._entries.get(scope)
            if entry is None:
                break
            if entry.digest != digest:
                self.conflicts += 1
                raise Problem(
                    "idempotency_key_reused",
                    f"Idempotency-Key {key!r} was already used on this route with a different "
                    "request body; use a new key for a new request",
                )
            if entry.results is not None:
                self.replays += 1
                results = entry.results
                return (["ok"] * results if isinstance(results, int) else results), True
            assert entry.done is not None
            await entry.done.wait()
        else:  # pragma: no cover - would need 1000 failed twins in a row
            raise Problem("service_busy", "too many concurrent retries of one idempotency key")

        entry = _Entry(digest, self._clock_s())
        self._entries[scope] = entry
        done = entry.done
        assert done is not None
        try:
            results = await compute()
        except BaseException:
            if self._entries.get(scope) is entry:
                del self._entries[scope]
            raise
        else:
            if results.count("ok") == len(results):
                entry.results = len(results)
            else:
                entry.results = results
                if self._entries.get(scope) is entry:
                    self._results_stored += len(results)
            self._evict()
            return results, False
        finally:
            entry.done = None
            done.set()

    def _expire(self) -> None:
        deadline = self._clock_s() - self.retention_s
        entries = self._entries
        while entries:
            scope, oldest = next(iter(entries.items()))
            if oldest.created_s > deadline:
                return
            self._drop(scope)

    def _evict(self) -> None:
        entries = self._entries
        while entries and (len(entries) > self.keys_max or self._results_stored > self.results_max):
            self._drop(next(iter(entries)))

    def _drop(self, scope: tuple[str, str]) -> None:
        entry = self._entries.pop(scope)
        if isinstance(entry.results, list):
            self._results_stored -= len(entry.results)
        assert self._results_stored >= 0
