"""The SDK against the real API app (formicary.api.create_app) over real HTTP, SQLite store.

The app runs under uvicorn in a thread on a free loopback port, so the sync Client and the
AsyncClient both go through sockets, keep-alive and the app's own lifespan (store opened on
startup). Skipped, with the reason, while the API or the SQLite store is not importable yet.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_builders import BANK, LEDGER, accounts, transfer

import formicary.client as sdk
from tests.client.client_builders import served


def _require(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        pytest.skip(f"{module} is not importable yet ({exc}); the SDK integration test needs it")


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    _require("formicary.api.app")
    _require("formicary.ledger.sqlite_store")
    from formicary.api import create_app

    app = create_app(database_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    with served(app) as base_url:
        yield base_url


def test_sync_client_against_the_real_app(base_url: str) -> None:
    count = 64
    with sdk.Client(base_url, timeout=30) as client:
        assert client.healthz() and client.readyz()
        results = client.create_accounts(accounts(count, "history"))
        assert {r.result for r in results} == {"ok"}
        assert client.create_account(sdk.AccountIn(id=BANK, ledger=LEDGER, code=1)) == "exists"
        funding = client.create_transfers(
            [transfer(10_000 + i, BANK, 100 + i, 100) for i in range(count)],
            idempotency_key="funding",
        )
        assert {r.result for r in funding} == {"ok"}
        # A linked chain in one list: its overdrawing leg fails it as a whole.
        chain = client.create_transfers(
            [transfer(20_000, 100, 101, 50, "linked"), transfer(20_001, 101, 100, 10_000)]
        )
        assert [r.result for r in chain] == ["linked_event_failed", "exceeds_credits"]

        # 64 threads, one transfer each: coalesced, and each gets its own result.
        barrier = threading.Barrier(count)
        outcomes: dict[int, str | BaseException] = {}

        def work(i: int) -> None:
            barrier.wait()
            try:
                outcomes[i] = client.create_transfer(
                    transfer(i + 1, 100 + i, BANK, 1_000 if i % 4 == 0 else 60)
                )
            except BaseException as exc:  # reported by the assertion below
                outcomes[i] = exc

        threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for i in range(count):
            assert outcomes[i] == ("exceeds_credits" if i % 4 == 0 else "ok"), (i, outcomes[i])
        assert client._transfers.requests < count

        wallet = client.get_account(101)
        assert wallet is not None and (wallet.debits_posted, wallet.credits_posted) == (60, 100)
        assert client.get_account(999_999) is None
        got = client.get_transfer(2)
        assert got is not None and got.amount == 60 and got.debit_account_id == "101"
        assert client.get_transfer(999_999) is None

        walked = list(client.iter_account_transfers(BANK, limit=10))
        assert len(walked) == count + (count - count // 4)
        assert len({t.id for t in walked}) == len(walked)
        history = list(client.iter_account_balances(101, limit=1))
        assert [b.credits_posted - b.debits_posted for b in history] == [100, 40]
        assert client.balance(101, at=history[0].timestamp).credits_posted == 100
        trial = client.trial_balance(LEDGER)
        assert trial.balanced and trial.debits_posted == trial.credits_posted

        with pytest.raises(sdk.NotFound) as missing:
            client.balance(999_999)
        assert missing.value.code == "not_found" and missing.value.status == 404
        with pytest.raises(sdk.BadRequest) as bad:
            client.create_transfers([sdk.TransferIn(id="1", amount=-1)])
        assert bad.value.code == "validation_failed"


def test_async_client_against_the_real_app(base_url: str) -> None:
    count = 64

    async def main() -> None:
        async with sdk.AsyncClient(base_url, timeout=30) as client:
            assert await client.readyz()
            assert {r.result for r in await client.create_accounts(accounts(count))} == {"ok"}
            outcomes = await asyncio.gather(
                *(client.create_transfer(transfer(i + 1, BANK, 100 + i, 7)) for i in range(count))
            )
            assert outcomes == ["ok"] * count
            assert client._transfers.requests < count
            again = await client.create_transfer(transfer(1, BANK, 100, 7))
            assert again == "exists"
            page = await client.account_transfers(BANK, limit=50, order="desc")
            assert len(page.items) == 50 and page.next_cursor is not None
            walked = [t async for t in client.iter_account_transfers(BANK, limit=50)]
            assert len(walked) == count
            assert (await client.trial_balance(LEDGER)).balanced

    asyncio.run(main())
