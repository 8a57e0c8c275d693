"""The AsyncClient against the in-memory fake server, served as ASGI (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from client_builders import BANK, FAST, LEDGER, accounts, transfer
from fake_server import AsyncFlakyTransport, FakeLedger

import formicary.client as sdk

Scenario = Callable[[sdk.AsyncClient, FakeLedger], Awaitable[None]]


def run(scenario: Scenario, fake: FakeLedger | None = None, **options: Any) -> FakeLedger:
    """Run one scenario on a fresh event loop with a client bound to it."""
    fake = fake or FakeLedger()
    transport = options.pop("transport", None) or httpx.ASGITransport(app=fake.asgi)

    async def main() -> None:
        async with sdk.AsyncClient(
            "http://ledger.test", transport=transport, **{**FAST, **options}
        ) as client:
            await scenario(client, fake)

    asyncio.run(main())
    return fake


def test_create_and_read_back() -> None:
    async def scenario(client: sdk.AsyncClient, fake: FakeLedger) -> None:
        results = await client.create_accounts(accounts(2))
        assert [r.result for r in results] == ["ok"] * 3
        results = await client.create_transfers(
            [transfer(1, BANK, 100, 500), transfer(2, 100, 101, 800)]
        )
        assert [r.result for r in results] == ["ok", "exceeds_credits"]
        wallet = await client.get_account(100)
        assert wallet is not None and wallet.credits_posted == 500
        assert await client.get_account(5) is None
        got = await client.get_transfer(1)
        assert got is not None and got.amount == 500
        assert await client.get_transfer(2) is None
        assert (await client.balance(100)).credits_posted == 500
        assert (await client.trial_balance(LEDGER)).balanced
        assert await client.healthz() and await client.readyz()

    run(scenario)


def test_many_coroutines_are_coalesced_into_few_posts() -> None:
    count = 64

    async def scenario(client: sdk.AsyncClient, fake: FakeLedger) -> None:
        await client.create_accounts(accounts(count))
        await client.create_transfers(
            [transfer(10_000 + i, BANK, 100 + i, 100) for i in range(count)]
        )
        before = len(fake.posts("/v1/transfers"))
        fake.post_delay_s = 0.01
        outcomes = await asyncio.gather(
            *(
                client.create_transfer(transfer(i + 1, 100 + i, BANK, 1_000 if i % 4 == 0 else 60))
                for i in range(count)
            ),
            return_exceptions=True,
        )
        for i, outcome in enumerate(outcomes):
            assert outcome == ("exceeds_credits" if i % 4 == 0 else "ok"), (i, outcome)
        posts = fake.posts("/v1/transfers")[before:]
        assert len(posts) <= 4, f"{len(posts)} POSTs for {count} calls"
        assert sum(len(p.json()) for p in posts) == count
        # Accounts batch on their own endpoint, concurrently with transfers.
        results = await asyncio.gather(
            *(
                client.create_account(sdk.AccountIn(id=5000 + i, ledger=LEDGER, code=3))
                for i in range(count)
            ),
            *(client.create_transfer(transfer(20_000 + i, BANK, 100, 1)) for i in range(count)),
        )
        assert results == ["ok"] * (2 * count)
        assert len(fake.posts("/v1/accounts")) <= 4

    run(scenario)


def test_batches_never_exceed_batch_max_and_arrivals_ride_the_next_request() -> None:
    async def scenario(client: sdk.AsyncClient, fake: FakeLedger) -> None:
        await client.create_accounts(accounts(1))
        fake.post_delay_s = 0.005
        first = [
            asyncio.create_task(client.create_transfer(transfer(i, BANK, 100, 1)))
            for i in range(1, 31)
        ]
        await asyncio.sleep(0.002)  # the first request is in flight now
        later = [
            asyncio.create_task(client.create_transfer(transfer(i, BANK, 100, 1)))
            for i in range(31, 41)
        ]
        assert await asyncio.gather(*first, *later) == ["ok"] * 40
        sizes = [len(p.json()) for p in fake.posts("/v1/transfers")]
        assert sum(sizes) == 40 and max(sizes) <= 7

    run(scenario, batch_max=7)


def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    async def scenario(client: sdk.AsyncClient, fake: FakeLedger) -> None:
        await client.create_accounts(accounts(1))
        fake.post_delay_s = 0.01
        tasks = [
            asyncio.create_task(client.create_transfer(transfer(i, BANK, 100, 1)))
            for i in range(1, 11)
        ]
        await asyncio.sleep(0)  # every task has queued its event; the drain is lingering
        tasks[3].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[3], asyncio.CancelledError)
        assert [d for i, d in enumerate(done) if i != 3] == ["ok"] * 9
        # The cancelled call had not been sent yet, so it was dropped.
        assert sum(len(p.json()) for p in fake.posts("/v1/transfers")) == 9
        assert await client.get_transfer(4) is None

    run(scenario)


def test_linked_single_is_refused() -> None:
    async def scenario(client: sdk.AsyncClient, fake: FakeLedger) -> None:
        with pytest.raises(ValueError, match="linked"):
            await client.create_transfer(transfer(1, BANK, 100, 1, "linked"))
        assert fake.posts() == []

    run(scenario)


def test_long_lists_are_chunked_and_reindexed() -> None:
    async def scenario(client: sdk.AsyncClient, fake: FakeLedger) -> None:
        await client.create_accounts(accounts(1))
        results = await client.create_transfers([transfer(i, BANK, 100, 1) for i in range(1, 24)])
        assert [r.index for r in results] == list(range(23))
        assert [len(p.json()) for p in fake.posts("/v1/transfers")] == [10, 10, 3]

    run(scenario, batch_max=10)


def test_errors_map_to_the_exception_tree() -> None:
    async def scenario(client: sdk.AsyncClient, fake: FakeLedger) -> None:
        with pytest.raises(sdk.BadRequest) as bad:
            await client.create_transfers([sdk.TransferIn(id="1", amount=-1)])
        assert bad.value.status == 400 and bad.value.code == "validation_failed"
        with pytest.raises(sdk.NotFound):
            await client.balance(1)
        fake.busy_next = 2
        assert [r.result for r in await client.create_accounts(accounts(0))] == ["ok"]
        fake.busy_next = 100
        with pytest.raises(sdk.BusyError) as busy:
            await client.create_transfer(transfer(1, BANK, 100, 1))
        assert busy.value.status == 503

    fake = run(scenario, retries=3)
    assert len(fake.posts("/v1/accounts")) == 3
    assert len(fake.posts("/v1/transfers")) == 1 + 4  # the 400 (never retried), then 1 + 3


def test_network_errors_are_retried() -> None:
    fake = FakeLedger()
    flaky = AsyncFlakyTransport(httpx.ASGITransport(app=fake.asgi), failures=2)

    async def scenario(client: sdk.AsyncClient, fake: FakeLedger) -> None:
        assert await client.create_account(sdk.AccountIn(id=1, ledger=1, code=1)) == "ok"
        assert flaky.attempts == 3
        flaky.failures = 100
        with pytest.raises(sdk.NetworkError):
            await client.get_account(1)
        assert await client.healthz() is False

    run(scenario, fake, transport=flaky, retries=4)


def test_pagination_walks_every_page() -> None:
    async def scenario(client: sdk.AsyncClient, fake: FakeLedger) -> None:
        await client.create_accounts(accounts(1, "history"))
        await client.create_transfers([transfer(i, BANK, 100, i) for i in range(1, 26)])
        page = await client.account_transfers(100, limit=10, order="desc")
        assert [t.amount for t in page.items] == list(range(25, 15, -1))
        walked = [t.amount async for t in client.iter_account_transfers(100, limit=6)]
        assert walked == list(range(1, 26))
        balances = [b async for b in client.iter_account_balances(100, limit=9)]
        assert [b.credits_posted for b in balances][-1] == sum(range(1, 26))
        page = await client.account_balances(100, limit=5)
        assert isinstance(page, sdk.BalancePage) and len(page.items) == 5

    run(scenario)


def test_closed_client_refuses_calls() -> None:
    async def main() -> None:
        fake = FakeLedger()
        client = sdk.AsyncClient("http://x", transport=httpx.ASGITransport(app=fake.asgi))
        await client.aclose()
        await client.aclose()
        with pytest.raises(sdk.ClientClosedError):
            await client.create_transfer(transfer(1, BANK, 100, 1))
        with pytest.raises(sdk.ClientClosedError):
            await client.get_transfer(1)

    asyncio.run(main())


def test_aclose_sends_what_is_queued() -> None:
    async def main() -> None:
        fake = FakeLedger(post_delay_s=0.01)
        client = sdk.AsyncClient("http://x", transport=httpx.ASGITransport(app=fake.asgi))
        await client.create_accounts(accounts(1))
        tasks = [
            asyncio.create_task(client.create_transfer(transfer(i, BANK, 100, 1)))
            for i in range(1, 6)
        ]
        await asyncio.sleep(0)
        await client.aclose()
        assert await asyncio.gather(*tasks) == ["ok"] * 5

    asyncio.run(main())
