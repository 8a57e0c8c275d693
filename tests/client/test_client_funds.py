"""The SDK's fund calls against the real app served by uvicorn (a clock fixed in March 2026)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

import formicary.client as sdk
from formicary.api import create_app
from formicary.funds.calendar import BEIJING
from formicary.ledger import LedgerService, open_store
from tests.client.client_builders import served

MONDAY_10AM_NS = int(datetime(2026, 3, 2, 10, 0, tzinfo=BEIJING).timestamp() * 1e9)


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    clock = iter(range(MONDAY_10AM_NS, MONDAY_10AM_NS + 10**15, 1_000))
    service = LedgerService(open_store(f"sqlite:///{tmp_path}/ledger.db"), clock_ns=clock.__next__)
    service.start()
    app = create_app(service=service, funds_dir=tmp_path / "funds")
    try:
        with served(app) as base_url:
            yield base_url
    finally:
        service.close()


def _fund_wallet(client: sdk.Client) -> None:
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


def test_sync_client_fund_round_trip(base_url: str) -> None:
    with sdk.Client(base_url) as client:
        _fund_wallet(client)
        order = client.fund_subscribe("alice", 11, 500_000, request_id="s1")
        assert (order.kind, order.earning_day, order.replayed) == ("subscribe", "2026-03-03", False)
        assert client.fund_subscribe("alice", "11", 500_000, request_id="s1").replayed
        income = client.fund_post_income(date(2026, 3, 3), 50)
        assert income.balanced and income.day.wanfen_yuan == "1.0000"
        holding = client.fund_holding("alice")
        assert holding.shares == 500_050 and [i.income_fen for i in holding.income] == [50]
        assert client.fund_redeem("alice", 11, 50_000, instant=False).pay_day == "2026-03-03"
        assert client.fund_pay_redemptions(date(2026, 3, 3)) == 1
        assert [d.day for d in client.fund_days(start=date(2026, 3, 1))] == ["2026-03-03"]
        assert client.fund_books().balanced
        with pytest.raises(sdk.NotFound):
            client.fund_holding("nobody")
        with pytest.raises(sdk.ApiError) as refused:
            client.fund_redeem("alice", 11, 10**7)
        assert refused.value.code == "instant_limit_exceeded"


def test_async_client_fund_calls(base_url: str) -> None:
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
            orders = await asyncio.gather(
                *(client.fund_subscribe(f"u{n}", 12, 1_000, request_id=f"s{n}") for n in range(20))
            )
            assert all(not o.replayed for o in orders)
            books = await client.fund_books()
            assert books.custody_cash_fen == 20_000 and books.balanced

    asyncio.run(main())
