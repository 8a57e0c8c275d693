"""The SDK's marketplace calls against the real app served by uvicorn (a clock fixed in March
2026 that the test moves past the sale's close)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import formicary.client as sdk
from tests.client.wealth_server import CLOSE, MONDAY_10AM_NS, OPEN, Clock, serve_wealth


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def base_url(tmp_path: Path, clock: Clock) -> Iterator[str]:
    with serve_wealth(tmp_path, clock) as url:
        yield url


def _wallet(client: sdk.Client) -> None:
    client.create_accounts(
        [
            sdk.AccountIn(id="1", ledger=156, code=1),
            sdk.AccountIn(id="11", ledger=156, code=2, flags=["debits_must_not_exceed_credits"]),
        ]
    )
    client.create_transfer(
        sdk.TransferIn(
            id="1", debit_account_id="1", credit_account_id="11", amount=10**6, ledger=156, code=1
        )
    )


def _product(client: sdk.Client, product_id: str, issuer_id: str = "icbc") -> sdk.ProductOut:
    return client.wealth_list_product(
        product_id,
        issuer_id,
        "30-day note",
        term_days=30,
        yield_bp=425,
        size_fen=500_000,
        min_purchase_fen=100_000,
        sale_open=OPEN,
        sale_close=CLOSE,
    )


def test_sync_client_wealth_round_trip(base_url: str, clock: Clock) -> None:
    with sdk.Client(base_url) as client:
        _wallet(client)
        issuer = client.wealth_register_issuer("icbc", "Big Bank", "bank", total_assets_fen=10**17)
        assert issuer.vetting.passed and issuer.vetting.rule == "bank_total_assets"
        small = client.wealth_register_issuer("tiny", "Tiny", "bank", total_assets_fen=1)
        assert not small.vetting.passed
        with pytest.raises(sdk.ApiError) as refused:
            _product(client, "p0", "tiny")
        assert refused.value.code == "issuer_refused"

        reservation = client.wealth_reserve(
            "bob", 11, 100_000, term_min_days=7, term_max_days=60, request_id="r1"
        )
        assert reservation.status == "open"
        listed = _product(client, "p1")
        assert listed.remaining_fen == 400_000 and listed.maturity_date == "2026-04-03"
        bought = client.wealth_purchase("p1", "alice", 11, 200_000, request_id="b1")
        assert (bought.status, bought.replayed) == ("reserved", False)
        assert client.wealth_purchase("p1", "alice", "11", 200_000, request_id="b1").replayed
        assert client.wealth_product("p1").remaining_fen == 200_000
        with pytest.raises(sdk.ApiError) as sold_out:
            client.wealth_purchase("p1", "alice", 11, 300_000)
        assert sold_out.value.code == "sold_out"
        with pytest.raises(sdk.NotFound):
            client.wealth_product("nope")
        (note,) = client.wealth_notifications("bob")
        assert note.product_id == "p1" and note.amount_fen == 100_000
        assert client.wealth_notifications("bob", after_seq=note.seq) == []

        clock.ns = MONDAY_10AM_NS + 86_400 * 10**9
        report = client.wealth_tick()
        assert [(c.product_id, c.launched, c.raised_fen) for c in report.closed] == [
            ("p1", True, 300_000)
        ]
        assert client.wealth_product("p1").status == "launched"


def test_async_client_wealth_calls(base_url: str) -> None:
    async def main() -> None:
        async with sdk.AsyncClient(base_url) as client:
            await client.create_accounts(
                [
                    sdk.AccountIn(id="1", ledger=156, code=1),
                    sdk.AccountIn(id="12", ledger=156, code=2),
                ]
            )
            await client.create_transfer(
                sdk.TransferIn(
                    id="2",
                    debit_account_id="1",
                    credit_account_id="12",
                    amount=10**6,
                    ledger=156,
                    code=1,
                )
            )
            await client.wealth_register_issuer("amc", "AMC", "asset_manager", licensed=True)
            await client.wealth_list_product(
                "p1",
                "amc",
                "note",
                term_days=30,
                yield_bp=400,
                size_fen=500_000,
                min_purchase_fen=100,
                sale_open=OPEN,
                sale_close=CLOSE,
            )
            bought = await asyncio.gather(
                *(client.wealth_purchase("p1", f"u{n}", 12, 1_000) for n in range(20))
            )
            assert all(not b.replayed for b in bought)
            assert (await client.wealth_product("p1")).remaining_fen == 480_000
            assert (await client.wealth_tick()).closed == []

    asyncio.run(main())
