"""Small helpers shared by the marketplace and its runs: chains, verdicts, times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from formicary.ledger import Transfer, TransferFlags, TransferResult

__all__ = ["chain_verdict", "link", "ns_of"]

_LINKED = int(TransferFlags.LINKED)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def link(chain: Sequence[Transfer]) -> list[Transfer]:
    """The chain with `linked` on every transfer but the last (which closes it)."""
    last = len(chain) - 1
    return [
        msgspec.structs.replace(t, flags=(t.flags | _LINKED) if i < last else (t.flags & ~_LINKED))
        for i, t in enumerate(chain)
    ]


def chain_verdict(results: Sequence[str]) -> tuple[int, str] | None:
    """None if a chain was applied, now or before (its first event `exists`: chains are atomic
    and their ids deterministic, so then all of it was); else (index, result) of the failure."""
    if results[0] == TransferResult.EXISTS or all(r == TransferResult.OK for r in results):
        return None
    for index, result in enumerate(results):
        if result != TransferResult.LINKED_EVENT_FAILED:
            return index, result
    return 0, results[0]


def ns_of(when: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime, exactly (no float on the way)."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
