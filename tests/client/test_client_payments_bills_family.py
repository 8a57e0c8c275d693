"""The SDK's bill-payment and family-account calls against the real app served by uvicorn (a
manual clock at 10:00 China Standard Time on Double 11, 2025)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import formicary.client as sdk
from formicary.api import create_app
from formicary.client import _payments as p
from formicary.ledger import LedgerService, open_store
from tests.client.client_builders import FAST, served
from tests.payments.world import T0_NS, ManualClock, card_number

PHONE = "13800138000"


class Server:
    def __init__(self, base_url: str, clock: ManualClock) -> None:
        self.base_url = base_url
        self.clock = clock


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    clock = ManualClock(T0_NS)
    service = LedgerService(open_store(f"sqlite:///{tmp_path}/ledger.db"), clock_ns=clock)
    service.start()
    app = create_app(service=service, payments_dir=tmp_path / "payments")
    try:
        with served(app) as base_url:
            yield Server(base_url, clock)
    finally:
        service.close()


def funded_user(client: sdk.Client, balance_fen: int) -> int:
    user = client.payments_register_user("u", identity_level="full")
    card = client.payments_bind_card(user.id, "ICBC", card_number(user.id))
    client.payments_top_up(user.id, card.id, balance_fen)
    return user.id


def register_shop(client: sdk.Client) -> int:
    shop = client.payments_register_merchant(
        "Shop",
        category="5411",
        fee_plan="online",
        settlement_bank_code="CMB",
        settlement_account_number="6214830012345678",
    )
    return shop.id


def test_sync_client_bills_and_family_round_trip(server: Server) -> None:
    with sdk.Client(server.base_url, **FAST) as client:
        ada = funded_user(client, 100_000)
        bo = client.payments_register_user("Bo").id
        shop = register_shop(client)

        # Bills: register, look up, pay in part and in full; a retry applies once.
        mobile = client.payments_register_biller(
            "China Mobile",
            "phone",
            settlement_bank_code="CMB",
            settlement_account_number="6214830000000001",
        )
        assert isinstance(mobile, sdk.BillerOut) and mobile.category == "phone"
        assert client.payments_biller(mobile.id) == mobile
        assert client.payments_billers() == [mobile]
        assert client.payments_billers(category="gas") == []
        bills = client.payments_lookup_bills(mobile.id, PHONE)
        bill = bills[-1]
        assert isinstance(bill, sdk.BillOut) and bill.period == "2025-10"
        assert client.payments_bill(bill.id) == bill
        part = client.payments_pay_bill(bill.id, ada, amount_fen=1_000, request_id="app-1")
        assert isinstance(part, sdk.BillPaymentOut)
        assert (part.state, part.amount_fen, part.funding) == ("succeeded", 1_000, "wallet")
        again = client.payments_pay_bill(bill.id, ada, amount_fen=1_000, request_id="app-1")
        assert again == part
        assert client.payments_user_wallet(ada).available_fen == 100_000 - 1_000
        assert client.payments_bill_payment(part.id) == part
        rest = client.payments_pay_bill(bill.id, ada)  # a fresh request id: all that is left
        assert rest.amount_fen == bill.amount_fen - 1_000
        assert bill.id not in [b.id for b in client.payments_lookup_bills(mobile.id, PHONE)]
        with pytest.raises(sdk.BadRequest) as overpaid:
            client.payments_pay_bill(bill.id, ada, amount_fen=1)
        assert overpaid.value.code == "bill_overpayment"
        with pytest.raises(sdk.Conflict) as reused:
            client.payments_pay_bill(bill.id, ada, amount_fen=999, request_id="app-1")
        assert reused.value.code == "idempotency_conflict"
        with pytest.raises(sdk.NotFound) as missing:
            client.payments_lookup_bills(99, PHONE)
        assert missing.value.code == "unknown_bill"

        # Family: grant, the member pays an order and a bill, the payer reads and revokes.
        grant = client.payments_grant_family(ada, bo, 10_000)
        assert isinstance(grant, sdk.FamilyGrantOut)
        assert (grant.state, grant.remaining_fen) == ("active", 10_000)
        assert client.payments_grant_family(ada, bo, 10_000) == grant
        assert client.payments_family_grants(payer_id=ada) == [grant]
        assert client.payments_family_grants(member_id=bo) == [grant]
        order = client.payments_create_order(shop, 2_500, merchant_order_no="lunch")
        paid = client.payments_pay_family(grant.id, bo, order.id)
        assert (paid.user_id, paid.funding, paid.payer_fen) == (bo, "family", 2_500)
        assert client.payments_pay_family(grant.id, bo, order.id) == paid
        other = client.payments_lookup_bills(mobile.id, "13900139000")[-1]
        by_grant = client.payments_pay_bill(
            other.id, bo, amount_fen=1_500, grant_id=grant.id, request_id="bo-1"
        )
        assert (by_grant.funding, by_grant.grant_id) == ("family", grant.id)
        assert client.payments_family_grant(grant.id).remaining_fen == 6_000
        big = client.payments_create_order(shop, 6_001, merchant_order_no="dinner")
        with pytest.raises(sdk.BadRequest) as over:
            client.payments_pay_family(grant.id, bo, big.id)
        assert over.value.code == "family_limit_exceeded"

        statement = client.payments_family_statement(grant.id, ada)
        assert isinstance(statement, sdk.FamilyStatementOut)
        assert client.payments_family_statement(grant.id, ada, month="2025-11") == statement
        assert (statement.month, statement.spent_fen, statement.remaining_fen) == (
            "2025-11",
            4_000,
            6_000,
        )
        assert [line.drawn_fen for line in statement.lines] == [2_500, 1_500]
        assert isinstance(statement.lines[0], sdk.FamilyStatementLineOut)
        assert statement.reconciled and statement.ledger_spent_fen == 4_000
        with pytest.raises(sdk.NotFound) as not_payer:
            client.payments_family_statement(grant.id, bo)
        assert not_payer.value.code == "unknown_party"
        with pytest.raises(sdk.BadRequest) as bad_month:
            client.payments_family_statement(grant.id, ada, month="2025-13")
        assert bad_month.value.code == "invalid_request"
        with pytest.raises(sdk.NotFound):
            client.payments_revoke_family(grant.id, bo)

        revoked = client.payments_revoke_family(grant.id, ada)
        assert (revoked.state, revoked.remaining_fen) == ("revoked", 0)
        assert client.payments_user_wallet(ada).available_fen == 100_000 - bill.amount_fen - 4_000
        with pytest.raises(sdk.BadRequest) as gone:
            client.payments_pay_family(
                grant.id, bo, client.payments_create_order(shop, 1, merchant_order_no="x").id
            )
        assert gone.value.code == "grant_revoked"
        # Retries of what was paid before the revocation still answer it.
        assert client.payments_pay_family(grant.id, bo, order.id) == paid
        retried = client.payments_pay_bill(
            other.id, bo, amount_fen=1_500, grant_id=grant.id, request_id="bo-1"
        )
        assert retried == by_grant


def test_async_client_family_limit_holds_and_a_re_sent_request_id_applies_once(
    server: Server,
) -> None:
    async def main() -> None:
        async with sdk.AsyncClient(server.base_url, **FAST) as client:
            ada = await client.payments_register_user("Ada", identity_level="full")
            card = await client.payments_bind_card(ada.id, "ICBC", card_number(ada.id))
            await client.payments_top_up(ada.id, card.id, 100_000)
            bo = await client.payments_register_user("Bo")
            shop = await client.payments_register_merchant(
                "Shop",
                category="5411",
                fee_plan="online",
                settlement_bank_code="CMB",
                settlement_account_number="6214830012345678",
            )
            mobile = await client.payments_register_biller(
                "China Mobile",
                "phone",
                settlement_bank_code="CMB",
                settlement_account_number="6214830000000001",
            )
            grant = await client.payments_grant_family(ada.id, bo.id, 5_000)
            orders = await asyncio.gather(
                *(
                    client.payments_create_order(shop.id, 900, merchant_order_no=f"o{n}")
                    for n in range(8)
                )
            )
            bills = [
                (await client.payments_lookup_bills(mobile.id, f"1390013{n:04d}"))[-1]
                for n in range(3)
            ]

            async def member_pays(order_id: int) -> str:
                try:
                    await client.payments_pay_family(grant.id, bo.id, order_id)
                except sdk.ApiError as error:
                    return error.code
                return "paid"

            async def bill_paid(bill_id: int) -> str:
                try:
                    await client.payments_pay_bill(
                        bill_id, bo.id, amount_fen=900, grant_id=grant.id
                    )
                except sdk.ApiError as error:
                    return error.code
                return "paid"

            outcomes = await asyncio.gather(
                *(member_pays(o.id) for o in orders), *(bill_paid(b.id) for b in bills)
            )
            # 11 payments of 9 yuan against a limit of 50: exactly 5 fit.
            assert sorted(outcomes) == ["family_limit_exceeded"] * 6 + ["paid"] * 5
            statement = await client.payments_family_statement(grant.id, ada.id)
            assert (statement.spent_fen, statement.remaining_fen) == (4_500, 500)
            assert statement.reconciled

            # The same bill payment sent ten times at once is one payment.
            target = bills[0]
            answers = await asyncio.gather(
                *(
                    client.payments_pay_bill(target.id, ada.id, amount_fen=100, request_id="r")
                    for _ in range(10)
                )
            )
            assert len({a.id for a in answers}) == 1
            after = await client.payments_bill(target.id)
            paid_before = 900 if outcomes[8] == "paid" else 0  # bills[0] by the grant
            assert after.paid_fen == paid_before + 100
            wallet = await client.payments_user_wallet(ada.id)
            assert wallet.available_fen == 100_000 - 5_000 - 100

    asyncio.run(main())


def test_bills_and_family_calls_build_their_requests() -> None:
    call = p.pay_bill(7, 2, None, None, None, 3)
    body = msgspec.json.decode(call.content or b"")
    assert call.path == "/v1/payments/bills/7/payments"
    assert (body["funding"], body["grant_id"], body["amount_fen"]) == ("family", 3, None)
    assert len(body["request_id"]) == 32  # a fresh key, reused by the client's own retries
    assert msgspec.json.decode(p.pay_bill(7, 2, 100, "k", 4, None).content or b"") == {
        "user_id": 2,
        "request_id": "k",
        "amount_fen": 100,
        "funding": "card",
        "card_id": 4,
        "grant_id": None,
    }
    with pytest.raises(ValueError):
        p.pay_bill(7, 2, None, None, 4, 3)
    assert p.family_statement(5, 1, "2025-11").params == {"payer_id": "1", "month": "2025-11"}
    assert p.family_statement(5, 1, None).params == {"payer_id": "1"}
    assert p.family_grants(None, 2).params == {"member_id": "2"}
    with pytest.raises(ValueError):
        p.family_grants(None, None)
    assert p.lookup_bills(1, PHONE).params == {"account_number": PHONE}
    assert p.billers(None).params is None and p.billers("gas").params == {"category": "gas"}
    assert p.revoke_family(5, 1).content == b'{"payer_id":1}'
    for bad in (0, -1, 2**63, True, "1", 1.0):
        with pytest.raises(ValueError):
            p.bill(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            p.family_grant(bad)  # type: ignore[arg-type]
