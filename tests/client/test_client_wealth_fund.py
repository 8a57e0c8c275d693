"""The SDK's marketplace calls with the money-market fund, whitelisting, reservations, listings
and books, on both clients, against the real app served by uvicorn (a clock fixed in March
2026 that the test moves past the sale's close)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import formicary.client as sdk
from tests.client.wealth_server import (
    CLOSE,
    MONDAY_10AM_NS,
    OPEN,
    Clock,
    seed_fund_and_bank,
    serve_wealth,
)

PER_ORDER = 5_000_000  # the fund's default instant (T+0) limit for one redemption


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def base_url(tmp_path: Path, clock: Clock) -> Iterator[str]:
    with serve_wealth(tmp_path, clock) as url:
        yield url


def _product(client: sdk.Client, product_id: str, issuer_id: str = "icbc") -> sdk.ProductOut:
    return client.wealth_list_product(
        product_id,
        issuer_id,
        "30-day note",
        term_days=30,
        yield_bp=425,
        size_fen=50_000_000,
        min_purchase_fen=100_000,
        min_raise_fen=100_000,
        sale_open=OPEN,
        sale_close=CLOSE,
    )


def test_sync_client_fund_purchases_whitelist_reservations_and_books(
    base_url: str, clock: Clock
) -> None:
    with sdk.Client(base_url) as client:
        seed_fund_and_bank(client)
        # Whitelisting admits an issuer of kind `other`.
        trust = client.wealth_register_issuer("trust", "A Trust", "other")
        assert (trust.vetting.passed, trust.vetting.rule, trust.whitelisted) == (
            False,
            "whitelist",
            False,
        )
        with pytest.raises(sdk.ApiError) as refused:
            _product(client, "t1", "trust")
        assert refused.value.code == "issuer_refused"
        admitted = client.wealth_whitelist("trust", note="risk committee 2026-03")
        assert admitted.whitelisted and admitted.vetting.passed
        assert client.wealth_issuer("trust").whitelisted
        assert _product(client, "t1", "trust").status == "listed"
        assert not client.wealth_unwhitelist("trust").vetting.passed
        with pytest.raises(sdk.NotFound):
            client.wealth_whitelist("nobody")

        # A fund reservation: its fill is capped at one instant redemption; the rest waits.
        reservation = client.wealth_reserve(
            "alice",
            11,
            8_000_000,
            term_min_days=7,
            term_max_days=60,
            request_id="auto",
            source="fund",
            payout="fund",
        )
        assert (reservation.source_kind, reservation.payout_into_fund) == ("fund", True)
        _product(client, "p1")
        got = client.wealth_reservation(reservation.reservation_no)
        assert (got.filled_fen, got.status) == (PER_ORDER, "open")

        bought = client.wealth_purchase(
            "p1", "alice", 11, PER_ORDER, request_id="b1", source="fund", fund_no=1
        )
        assert (bought.source_kind, bought.source_ref, bought.status) == (
            "fund",
            "alice",
            "reserved",
        )
        with pytest.raises(sdk.ApiError) as over:
            client.wealth_purchase("p1", "alice", 11, PER_ORDER + 1, source="fund")
        assert over.value.code == "instant_limit_exceeded"
        with pytest.raises(sdk.NotFound):
            client.wealth_purchase("p1", "alice", 11, 100_000, source="fund", fund_no=7)
        with pytest.raises(ValueError):
            client.wealth_purchase("p1", "alice", 11, 100_000, source="card")
        client.wealth_purchase("p1", "bob", 11, 1_000_000, request_id="w1")

        books = client.wealth_product_books("p1")
        assert (books.reserved_fen, books.escrow_pending_fen, books.balanced) == (
            2 * PER_ORDER + 1_000_000,
            2 * PER_ORDER + 1_000_000,
            True,
        )
        page = client.wealth_purchases(product_id="p1", limit=2)
        assert [p.request_id for p in page.purchases] == ["reservation-1", "b1"]
        rest = client.wealth_purchases(product_id="p1", after_no=page.next_after_no or 0)
        assert [p.user_id for p in rest.purchases] == ["bob"] and rest.next_after_no is None
        assert [p.request_id for p in client.wealth_purchases(user_id="bob").purchases] == ["w1"]
        assert [p.product_id for p in client.wealth_products()] == ["t1", "p1"]
        assert client.wealth_products(status="matured") == []

        other = client.wealth_reserve("bob", 11, 100_000, term_min_days=400, term_max_days=500)
        with pytest.raises(sdk.NotFound):
            client.wealth_cancel_reservation(other.reservation_no, "alice")
        cancelled = client.wealth_cancel_reservation(other.reservation_no, "bob")
        assert cancelled.status == "cancelled"
        assert [r.reservation_no for r in client.wealth_reservations(user_id="bob")] == [
            other.reservation_no
        ]
        assert len(client.wealth_reservations()) == 2

        clock.ns = MONDAY_10AM_NS + 86_400 * 10**9
        closed = {c.product_id: c.launched for c in client.wealth_tick().closed}
        assert closed == {"t1": False, "p1": True}
        assert client.fund_holding("alice").shares == 2 * 10**7 - 2 * PER_ORDER
        assert client.fund_books().difference_fen == 0
        assert client.wealth_product_books("p1").balanced


def test_async_client_fund_calls(base_url: str) -> None:
    with sdk.Client(base_url) as setup:
        seed_fund_and_bank(setup)

    async def main() -> None:
        async with sdk.AsyncClient(base_url) as client:
            await client.wealth_register_issuer("trust", "A Trust", "other")
            assert (await client.wealth_whitelist("trust")).whitelisted
            assert (await client.wealth_issuer("trust")).vetting.passed
            assert not (await client.wealth_unwhitelist("trust")).whitelisted
            await client.wealth_list_product(
                "p1",
                "icbc",
                "note",
                term_days=30,
                yield_bp=400,
                size_fen=50_000_000,
                min_purchase_fen=100,
                sale_open=OPEN,
                sale_close=CLOSE,
            )
            # Eight concurrent fund purchases of 30,000 yuan: the 200,000 yuan daily limit
            # lets six through.
            results = await asyncio.gather(
                *(
                    client.wealth_purchase(
                        "p1", "alice", 11, 3_000_000, request_id=f"a{n}", source="fund"
                    )
                    for n in range(8)
                ),
                return_exceptions=True,
            )
            refused = [r for r in results if isinstance(r, sdk.ApiError)]
            assert len(refused) == 2
            assert {r.code for r in refused} == {"instant_limit_exceeded"}
            page = await client.wealth_purchases(user_id="alice")
            assert len(page.purchases) == 6
            books = await client.wealth_product_books("p1")
            assert books.reserved_fen == 18_000_000 and books.balanced
            assert [p.product_id for p in await client.wealth_products(status="listed")] == ["p1"]
            reservation = await client.wealth_reserve(
                "alice", 11, 100_000, term_min_days=400, term_max_days=500, source="fund"
            )
            assert (await client.wealth_reservation(reservation.reservation_no)).status == "open"
            assert len(await client.wealth_reservations(user_id="alice")) == 1
            cancelled = await client.wealth_cancel_reservation(reservation.reservation_no, "alice")
            assert cancelled.status == "cancelled"

    asyncio.run(main())
