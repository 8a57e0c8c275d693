"""The Idempotency-Key map on its own: replay, conflicts, in-flight twins, bounds, expiry."""

from __future__ import annotations

import asyncio

import pytest

from formicary.api.idempotency import IdempotencyCache
from formicary.api.problems import Problem


class Counter:
    def __init__(self, results: list[str]) -> None:
        self.calls = 0
        self.results = results

    async def __call__(self) -> list[str]:
        self.calls += 1
        await asyncio.sleep(0.01)
        return list(self.results)


def test_replay_conflict_and_scope() -> None:
    async def main() -> None:
        cache = IdempotencyCache()
        compute = Counter(["ok", "exceeds_credits"])
        assert await cache.run("transfers", "k", b"body", compute) == (
            ["ok", "exceeds_credits"],
            False,
        )
        assert await cache.run("transfers", "k", b"body", compute) == (
            ["ok", "exceeds_credits"],
            True,
        )
        assert compute.calls == 1
        with pytest.raises(Problem) as raised:
            await cache.run("transfers", "k", b"other body", compute)
        assert raised.value.code == "idempotency_key_reused"
        assert raised.value.status == 422
        # Another route, same key: a different scope.
        assert (await cache.run("accounts", "k", b"other body", compute))[1] is False
        assert cache.replays == 1 and cache.conflicts == 1

    asyncio.run(main())


def test_concurrent_twins_compute_once() -> None:
    async def main() -> None:
        cache = IdempotencyCache()
        compute = Counter(["ok"] * 3)
        answers = await asyncio.gather(
            *(cache.run("transfers", "k", b"body", compute) for _ in range(5))
        )
        assert compute.calls == 1
        assert [replayed for _, replayed in answers].count(False) == 1
        assert all(results == ["ok"] * 3 for results, _ in answers)

    asyncio.run(main())


def test_failures_are_forgotten_and_twins_retry() -> None:
    async def main() -> None:
        cache = IdempotencyCache()
        attempts = 0

        async def flaky() -> list[str]:
            nonlocal attempts
            attempts += 1
            await asyncio.sleep(0.01)
            if attempts == 1:
                raise RuntimeError("busy")
            return ["ok"]

        first, second = await asyncio.gather(
            cache.run("transfers", "k", b"body", flaky),
            cache.run("transfers", "k", b"body", flaky),
            return_exceptions=True,
        )
        assert isinstance(first, RuntimeError)
        assert second == (["ok"], False)  # the waiting twin computed after the failure
        assert await cache.run("transfers", "k", b"body", flaky) == (["ok"], True)
        assert attempts == 2

    asyncio.run(main())


def test_bounded_by_keys_results_and_time() -> None:
    async def main() -> None:
        now = [0.0]
        cache = IdempotencyCache(keys_max=3, results_max=4, retention_s=10, clock_s=lambda: now[0])
        for i in range(5):
            await cache.run("t", f"k{i}", b"b", Counter(["ok"]))
        assert len(cache) == 3  # oldest keys evicted first
        assert (await cache.run("t", "k0", b"other", Counter(["ok"])))[1] is False
        # Non-ok answers are stored per event and bounded in total.
        await cache.run("t", "f1", b"b", Counter(["exists", "ok", "exists"]))
        await cache.run("t", "f2", b"b", Counter(["exists", "exists"]))
        assert cache._results_stored <= 4
        assert (await cache.run("t", "f2", b"b", Counter([])))[1] is True
        now[0] = 11.0
        assert (await cache.run("t", "f2", b"b", Counter(["ok", "ok"])))[1] is False
        assert len(cache) == 1

    asyncio.run(main())
