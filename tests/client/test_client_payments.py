"""The SDK's payments calls against the real app served by uvicorn (a manual clock at 10:00 China
Standard Time on Double 11, 2025, that the tests move)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import formicary.client as sdk
from formicary.api import create_app
from formicary.client import _payments as p
from formicary.ledger import LedgerService, open_store
from formicary.payments import FakeBank
from tests.client.client_builders import served
from tests.payments.world import DAY_T, T0_NS, ManualClock, card_number


class Server:
    def __init__(self, base_url: str, clock: ManualClock, bank: FakeBank) -> None:
        self.base_url = base_url
        self.clock = clock
        self.bank = bank


@contextmanager
def serve(tmp_path: Path, clock: Callable[[], int]) -> Iterator[tuple[str, FakeBank]]:
    """The app on a fresh ledger and payments directory, served by uvicorn on a free port."""
    service = LedgerService(open_store(f"sqlite:///{tmp_path}/ledger.db"), clock_ns=clock)
    service.start()
    app = create_app(service=service, payments_dir=tmp_path / "payments")
    try:
        with served(app) as base_url:
            yield base_url, app.state.payments.bank
    finally:
        service.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    clock = ManualClock(T0_NS)
    with serve(tmp_path, clock) as (base_url, bank):
        yield Server(base_url, clock, bank)


def test_sync_client_payments_round_trip(server: Server) -> None:
    with sdk.Client(server.base_url, backoff_s=0.001, backoff_max_s=0.01) as client:
        ada = client.payments_register_user("Ada", identity_level="full")
        assert isinstance(ada, sdk.UserOut) and client.payments_user(ada.id) == ada
        card = client.payments_bind_card(ada.id, "ICBC", card_number(1))
        assert client.payments_cards(ada.id) == [card]
        top_up = client.payments_top_up(ada.id, card.id, 50_000, request_id="app-1")
        assert client.payments_top_up(ada.id, card.id, 50_000, request_id="app-1") == top_up
        client.payments_withdraw(ada.id, card.id, 10_000)
        assert client.payments_user_wallet(ada.id).available_fen == 40_000

        shop = client.payments_register_merchant(
            "Shop",
            category="5411",
            fee_plan="offline_qr",
            settlement_bank_code="CMB",
            settlement_account_number="6214830012345678",
        )
        assert client.payments_merchant(shop.id) == shop
        d11 = client.payments_create_campaign(
            "Double 11", "red_packet", discount_fen=500, budget_fen=1_000_000
        )
        assert client.payments_campaign(d11.id).remaining_fen == 1_000_000

        order = client.payments_create_order(shop.id, 8_800, merchant_order_no="A-1")
        assert client.payments_create_order(shop.id, 8_800, merchant_order_no="A-1") == order
        quote = client.payments_quote(order.id, campaign_id=d11.id)
        assert (quote.coupon_fen, quote.payer_fen, quote.fee_fen) == (500, 8_300, 53)
        paid = client.payments_pay(order.id, ada.id, card_id=card.id, campaign_id=d11.id)
        assert (paid.state, paid.funding, paid.payer_fen) == ("succeeded", "card", 8_300)
        assert client.payments_pay(order.id, ada.id, card_id=card.id, campaign_id=d11.id) == paid
        assert client.payments_payment(paid.id) == paid
        assert client.payments_order(order.id).payment_id == paid.id

        refund = client.payments_refund(paid.id, 3_000, request_no="R-1")
        assert client.payments_refund(paid.id, 3_000, request_no="R-1") == refund
        refunds = client.payments_refunds(paid.id)
        assert (refunds.refunded_fen, refunds.refunds) == (3_000, [refund])

        qr = client.payments_merchant_qr(shop.id)
        by_qr = client.payments_pay_qr(ada.id, qr, 1_000, request_id="scan-1")
        assert client.payments_pay_qr(ada.id, qr, 1_000, request_id="scan-1") == by_qr
        code = client.payments_issue_code(ada.id)
        by_code = client.payments_pay_with_code(shop.id, code.code, 1_200, merchant_order_no="t-1")
        assert (by_code.user_id, by_code.amount_fen) == (ada.id, 1_200)

        with pytest.raises(sdk.Conflict) as early:
            client.payments_settle(DAY_T)
        assert early.value.code == "settlement_too_early"
        server.clock.advance(24 * 3600)
        report = client.payments_settle(DAY_T)
        assert report.reconciled and [line.merchant_id for line in report.lines] == [shop.id]
        assert report.settled_fen == 8_800 - 53 - 3_000 + 18 + 1_000 - 6 + 1_200 - 7
        assert client.payments_settlement(DAY_T) == report
        assert client.payments_merchant_wallet(shop.id).available_fen == 0
        closed = client.payments_close_campaign(d11.id)
        assert closed.campaign.state == "closed" and closed.swept_fen == 1_000_000 - 500 + 170

        # Refusals: the exception tree, with the stable code.
        with pytest.raises(sdk.NotFound) as missing:
            client.payments_user(99)
        assert missing.value.code == "unknown_party"
        with pytest.raises(sdk.BadRequest) as poor:
            client.payments_pay(
                client.payments_create_order(shop.id, 10**6, merchant_order_no="B").id, ada.id
            )
        assert poor.value.code == "insufficient_funds"
        with pytest.raises(sdk.Conflict) as reused:
            client.payments_create_order(shop.id, 1, merchant_order_no="A-1")
        assert reused.value.code == "idempotency_conflict"
        with pytest.raises(sdk.BadRequest) as replayed:
            client.payments_pay_with_code(shop.id, code.code, 1_200, merchant_order_no="t-2")
        assert replayed.value.code == "code_replayed"
        server.bank.busy_banks.add("ICBC")
        with pytest.raises(sdk.BusyError) as busy:
            client.payments_top_up(ada.id, card.id, 100)
        assert busy.value.code == "bank_busy" and busy.value.retry_after_s == 1.0
        with pytest.raises(ValueError):
            client.payments_user("1/../2")  # type: ignore[arg-type]


def test_async_client_payments_never_overspend_a_budget(server: Server) -> None:
    async def main() -> None:
        async with sdk.AsyncClient(server.base_url) as client:
            shop = await client.payments_register_merchant(
                "Shop",
                category="5411",
                fee_plan="online",
                settlement_bank_code="CMB",
                settlement_account_number="6214830012345678",
            )
            # A red packet whose budget covers exactly five discounts, and ten buyers.
            packet = await client.payments_create_campaign(
                "five", "red_packet", discount_fen=100, budget_fen=500
            )
            users = await asyncio.gather(
                *(client.payments_register_user(f"u{n}", identity_level="full") for n in range(10))
            )
            cards = await asyncio.gather(
                *(client.payments_bind_card(u.id, "ICBC", card_number(u.id)) for u in users)
            )
            await asyncio.gather(
                *(
                    client.payments_top_up(u.id, c.id, 1_000)
                    for u, c in zip(users, cards, strict=True)
                )
            )
            orders = await asyncio.gather(
                *(
                    client.payments_create_order(shop.id, 1_000, merchant_order_no=f"o{u.id}")
                    for u in users
                )
            )

            async def buy(order_id: int, user_id: int) -> str:
                try:
                    await client.payments_pay(order_id, user_id, campaign_id=packet.id)
                except sdk.ApiError as error:
                    return error.code
                return "paid"

            outcomes = await asyncio.gather(
                *(buy(o.id, u.id) for o, u in zip(orders, users, strict=True))
            )
            assert sorted(outcomes) == ["coupon_exhausted"] * 5 + ["paid"] * 5
            assert (await client.payments_campaign(packet.id)).remaining_fen == 0
            wallet = await client.payments_merchant_wallet(shop.id)
            assert wallet.available_fen == 5 * (1_000 - 6)  # 0.55% of 1,000 is 5.5: 6 fen
            assert (await client.payments_user(users[0].id)).name == "u0"

    asyncio.run(main())


def test_calls_carry_their_keys_and_refuse_ids_that_could_escape_the_path() -> None:
    creation = p.register_user("Ada", "basic")
    headers = p.headers(creation)
    assert headers is not None and len(headers["Idempotency-Key"]) == 32
    assert p.register_user("Ada", "basic").idempotency_key != creation.idempotency_key
    top_up = p.top_up(1, 2, 300, None)
    assert p.headers(top_up) == {"content-type": "application/json", "accept": "application/json"}
    assert b'"request_id":"' in (top_up.content or b"")
    assert p.headers(p.user(1)) is None and p.user(1).path == "/v1/payments/users/1"
    assert (
        p.pay(1, 2, 3, None).content
        == b'{"user_id":2,"funding":"card","card_id":3,"campaign_id":null}'
    )
    for bad in (0, -1, 2**63, True, "1", 1.0):
        with pytest.raises(ValueError):
            p.payment(bad)  # type: ignore[arg-type]


def test_the_api_doc_payments_example_runs(tmp_path: Path) -> None:
    """docs/api.md's SDK example, as written, against a server on the real clock."""
    doc = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "payments_" in b]
    with serve(tmp_path, time.time_ns) as (base_url, bank):
        exec(example.replace("http://127.0.0.1:8000", base_url), {})
        assert bank.captured_fen["ICBC"] == 8_300 and bank.paid_out_fen["ICBC"] == 2_830
