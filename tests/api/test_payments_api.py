"""The payments core over HTTP, on both ledger backends (the payments file itself is SQLite):
a happy path per group, every refusal with its status and code (and nothing changed), retries
that apply once, and the lazily opened payments files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from formicary.api import create_app
from formicary.api.payments_routes import PAYMENTS_SECRET_ENV, PaymentsHost
from formicary.api.payments_routes import _problem as payments_problem
from formicary.ledger.service import LedgerService
from formicary.ledger.store import open_store
from formicary.payments import FakeBank, PaymentError, Reply
from formicary.payments.bank import Outcome
from tests.payments.world import DAY_T, T0_NS, ManualClock, card_number

CARD = card_number(1)
MERCHANT = {
    "name": "Shop",
    "category": "5411",
    "fee_plan": "offline_qr",
    "settlement_bank_code": "CMB",
    "settlement_account_number": "6214830012345678",
}


class Api:
    """A test client for the payments routes, with the clock and the simulated bank."""

    def __init__(self, client: TestClient, clock: ManualClock) -> None:
        self.client = client
        self.clock = clock
        self.host: PaymentsHost = client.app.state.payments

    @property
    def bank(self) -> FakeBank:
        return self.host.bank

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = self.client.request(method, f"/v1/payments{path}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def refused(self, method: str, path: str, body: Any, status: int, code: str) -> Any:
        response = self.client.request(method, f"/v1/payments{path}", json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        return response

    # -- parties

    def user(self, level: str = "full", balance_fen: int = 0) -> tuple[int, int]:
        """A user with a bound card (card number n) and `balance_fen` topped up."""
        user = self.ok("POST", "/users", {"name": "Ada", "identity_level": level})
        number = card_number(user["id"])
        card = self.ok(
            "POST", f"/users/{user['id']}/cards", {"bank_code": "ICBC", "card_number": number}
        )
        if balance_fen:
            self.top_up(user["id"], card["id"], balance_fen, f"seed-{user['id']}")
        return user["id"], card["id"]

    def top_up(self, user_id: int, card_id: int, amount_fen: int, request_id: str) -> Any:
        body = {"card_id": card_id, "amount_fen": amount_fen, "request_id": request_id}
        return self.ok("POST", f"/users/{user_id}/top-ups", body)

    def merchant(self, plan: str = "offline_qr") -> int:
        merchant: int = self.ok("POST", "/merchants", {**MERCHANT, "fee_plan": plan})["id"]
        return merchant

    def wallet(self, owner: str, owner_id: int) -> int:
        available: int = self.ok("GET", f"/{owner}s/{owner_id}/wallet")["available_fen"]
        return available

    def order(self, merchant_id: int, amount_fen: int, order_no: str) -> int:
        body = {"merchant_id": merchant_id, "amount_fen": amount_fen, "merchant_order_no": order_no}
        order: int = self.ok("POST", "/orders", body)["id"]
        return order

    def pay(self, order_id: int, user_id: int, **more: Any) -> Any:
        return self.ok("POST", f"/orders/{order_id}/pay", {"user_id": user_id, **more})

    def books(self) -> dict[str, Any]:
        """The CNY ledger's trial balance: any movement of money changes it."""
        response = self.client.get("/v1/ledgers/156/trial-balance")
        assert response.status_code == 200, response.text
        books: dict[str, Any] = response.json()
        assert books["balanced"]
        return books


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    clock = ManualClock(T0_NS)  # 10:00 China Standard Time on Double 11, 2025
    service = LedgerService(open_store(database_url), clock_ns=clock)
    service.start()
    try:
        app = create_app(service=service, payments_dir=tmp_path / "payments")
        with TestClient(app) as client:
            yield Api(client, clock)
    finally:
        service.close()


# ----------------------------------------------------------------------------- happy paths


def test_parties_cards_top_ups_withdrawals_and_wallets(api: Api) -> None:
    user = api.ok("POST", "/users", {"name": "Ada", "identity_level": "verified"})
    assert (user["id"], user["identity_level"]) == (1, "verified")
    assert api.ok("GET", "/users/1") == user
    card = api.ok("POST", "/users/1/cards", {"bank_code": "ICBC", "card_number": CARD})
    assert card["masked_number"] == CARD[:6] + "*" * 9 + CARD[-4:]
    # Binding the same card again answers the same binding.
    assert api.ok("POST", "/users/1/cards", {"bank_code": "ICBC", "card_number": CARD}) == card
    assert api.ok("GET", "/users/1/cards") == {"cards": [card]}

    top_up = api.top_up(1, card["id"], 50_000, "app-1")
    assert (top_up["kind"], top_up["state"], top_up["amount_fen"]) == (
        "top_up",
        "succeeded",
        50_000,
    )
    assert api.top_up(1, card["id"], 50_000, "app-1") == top_up  # a retry applies once
    withdrawal = api.ok(
        "POST",
        "/users/1/withdrawals",
        {"card_id": card["id"], "amount_fen": 20_000, "request_id": "w"},
    )
    assert (withdrawal["kind"], withdrawal["state"]) == ("withdrawal", "succeeded")
    wallet = api.ok("GET", "/users/1/wallet")
    assert wallet == {
        "owner": "user",
        "owner_id": 1,
        "account_id": user["wallet_account_id"],
        "available_fen": 30_000,
    }
    # The wallet is a ledger account: the ledger API shows the same money.
    account = api.client.get(f"/v1/accounts/{user['wallet_account_id']}").json()
    assert account["credits_posted"] - account["debits_posted"] == 30_000
    assert (api.bank.collected_fen["ICBC"], api.bank.paid_out_fen["ICBC"]) == (50_000, 20_000)

    merchant = api.ok("POST", "/merchants", MERCHANT)
    assert (merchant["fee_plan"], merchant["fee_rate_bp"]) == ("offline_qr", 60)
    assert merchant["settlement_account_masked"] == "************5678"
    assert api.ok("GET", f"/merchants/{merchant['id']}") == merchant
    assert api.ok("GET", f"/merchants/{merchant['id']}/wallet")["available_fen"] == 0


def test_campaigns_pay_discounts_and_return_what_is_left(api: Api) -> None:
    user, _ = api.user(balance_fen=100_000)
    shop = api.merchant()
    platform = api.ok(
        "POST",
        "/campaigns",
        {"name": "D11", "kind": "red_packet", "discount_fen": 500, "budget_fen": 10_000},
    )
    assert (platform["state"], platform["remaining_fen"], platform["funder_merchant_id"]) == (
        "active",
        10_000,
        None,
    )
    paid = api.pay(api.order(shop, 8_800, "A-1"), user, campaign_id=platform["id"])
    assert (paid["coupon_fen"], paid["payer_fen"]) == (500, 8_300)
    assert api.ok("GET", f"/campaigns/{platform['id']}")["remaining_fen"] == 9_500

    # A merchant-funded coupon, paid from the merchant's wallet and valid there only.
    merchant_funded = api.ok(
        "POST",
        "/campaigns",
        {
            "name": "shop coupon",
            "kind": "coupon",
            "discount_fen": 100,
            "budget_fen": 1_000,
            "funder_merchant_id": shop,
            "min_order_fen": 1_000,
        },
    )
    assert (merchant_funded["merchant_id"], merchant_funded["remaining_fen"]) == (shop, 1_000)
    shop_balance = api.wallet("merchant", shop)
    closed = api.ok("POST", f"/campaigns/{merchant_funded['id']}/close")
    assert closed["swept_fen"] == 1_000
    assert (closed["campaign"]["state"], closed["campaign"]["remaining_fen"]) == ("closed", 0)
    assert api.wallet("merchant", shop) == shop_balance + 1_000
    # Closing again sweeps whatever came back since: nothing.
    assert api.ok("POST", f"/campaigns/{merchant_funded['id']}/close")["swept_fen"] == 0


def test_cashier_orders_quotes_and_payments(api: Api) -> None:
    user, card = api.user(balance_fen=20_000)
    shop = api.merchant()
    campaign = api.ok(
        "POST",
        "/campaigns",
        {"name": "D11", "kind": "red_packet", "discount_fen": 500, "budget_fen": 10**6},
    )["id"]
    order = api.ok(
        "POST",
        "/orders",
        {
            "merchant_id": shop,
            "amount_fen": 8_800,
            "merchant_order_no": "A-1",
            "description": "tea",
        },
    )
    assert (order["payment_id"], order["description"]) == (None, "tea")
    # The same merchant order number answers the same order.
    again = {
        "merchant_id": shop,
        "amount_fen": 8_800,
        "merchant_order_no": "A-1",
        "description": "tea",
    }
    assert api.ok("POST", "/orders", again) == order
    quote = api.ok("GET", f"/orders/{order['id']}/quote?campaign_id={campaign}")
    assert quote == {
        "order_id": order["id"],
        "campaign_id": campaign,
        "amount_fen": 8_800,
        "coupon_fen": 500,
        "payer_fen": 8_300,
        "fee_fen": 53,
        "fee_rate_bp": 60,
    }
    assert api.ok("GET", f"/orders/{order['id']}/quote")["fee_fen"] == 53

    paid = api.pay(order["id"], user, funding="card", card_id=card, campaign_id=campaign)
    assert (paid["state"], paid["funding"], paid["card_id"]) == ("succeeded", "card", card)
    assert (paid["coupon_fen"], paid["payer_fen"], paid["fee_fen"]) == (500, 8_300, 53)
    # Paying the paid order again (same user) answers its payment; nothing moves twice.
    books = api.books()
    assert api.pay(order["id"], user, funding="card", card_id=card, campaign_id=campaign) == paid
    assert api.books() == books
    assert api.ok("GET", f"/payments/{paid['id']}") == paid
    assert api.ok("GET", f"/orders/{order['id']}")["payment_id"] == paid["id"]
    assert api.bank.captured_fen["ICBC"] == 8_300

    by_wallet = api.pay(api.order(shop, 1_000, "A-2"), user)
    assert (by_wallet["funding"], by_wallet["card_id"], by_wallet["fee_fen"]) == ("wallet", None, 6)
    assert api.wallet("user", user) == 19_000
    assert api.wallet("merchant", shop) == 8_800 - 53 + 1_000 - 6


def test_refunds_full_and_partial_apply_once(api: Api) -> None:
    user, _ = api.user(balance_fen=20_000)
    shop = api.merchant()
    paid = api.pay(api.order(shop, 10_000, "A-1"), user)
    refund = api.ok(
        "POST", f"/payments/{paid['id']}/refunds", {"amount_fen": 3_000, "request_no": "R-1"}
    )
    assert (refund["state"], refund["payer_fen"], refund["fee_fen"]) == ("succeeded", 3_000, 18)
    books = api.books()
    # The same request number answers the same refund and moves nothing again.
    retry = api.ok(
        "POST", f"/payments/{paid['id']}/refunds", {"amount_fen": 3_000, "request_no": "R-1"}
    )
    assert retry == refund
    assert api.books() == books
    rest = api.ok(
        "POST", f"/payments/{paid['id']}/refunds", {"amount_fen": 7_000, "request_no": "R-2"}
    )
    listed = api.ok("GET", f"/payments/{paid['id']}/refunds")
    assert listed == {"payment_id": paid["id"], "refunded_fen": 10_000, "refunds": [refund, rest]}
    assert refund["fee_fen"] + rest["fee_fen"] == paid["fee_fen"] == 60
    assert api.ok("GET", f"/payments/{paid['id']}")["refunded_fen"] == 10_000
    assert api.wallet("user", user) == 20_000
    assert api.wallet("merchant", shop) == 0


def test_settlement_pays_each_merchant_t_plus_1_and_reconciles(api: Api) -> None:
    user, _ = api.user(balance_fen=50_000)
    shop, other = api.merchant(), api.merchant("online")
    api.pay(api.order(shop, 10_000, "A-1"), user)
    paid = api.pay(api.order(other, 20_000, "B-1"), user)
    api.ok("POST", f"/payments/{paid['id']}/refunds", {"amount_fen": 5_000, "request_no": "R"})
    day = DAY_T.isoformat()
    api.refused("POST", "/settlements", {"business_date": day}, 409, "settlement_too_early")

    api.clock.advance(timedelta(days=1).total_seconds())
    report = api.ok("POST", "/settlements", {"business_date": day})
    assert report["business_date"] == day and report["reconciled"]
    lines = {line["merchant_id"]: line for line in report["lines"]}
    assert lines[shop]["net_fen"] == lines[shop]["settled_fen"] == 10_000 - 60
    assert lines[other]["net_fen"] == 20_000 - 110 - 5_000 + 28
    assert all(line["state"] == "succeeded" and line["reconciled"] for line in lines.values())
    assert report["settled_fen"] == sum(line["net_fen"] for line in lines.values())
    assert api.bank.paid_out_fen["CMB"] == report["settled_fen"]
    assert api.wallet("merchant", shop) == api.wallet("merchant", other) == 0
    # Re-running answers the same report and pays nothing twice; the report reads back.
    assert api.ok("POST", "/settlements", {"business_date": day}) == report
    assert api.ok("GET", f"/settlements/{day}") == report
    assert api.bank.paid_out_fen["CMB"] == report["settled_fen"]
    assert api.ok("GET", "/settlements/2025-11-10")["lines"] == []


def test_offline_static_qr_and_one_time_payment_codes(api: Api) -> None:
    user, _ = api.user(balance_fen=10_000)
    shop = api.merchant()
    qr = api.ok("GET", f"/merchants/{shop}/qr")
    assert qr["merchant_id"] == shop and qr["qr"].startswith(f"fmq1.{shop}.")
    scan = {"user_id": user, "qr": qr["qr"], "amount_fen": 1_500, "request_id": "scan-1"}
    paid = api.ok("POST", "/qr-payments", scan)
    assert (paid["merchant_id"], paid["amount_fen"], paid["fee_fen"]) == (shop, 1_500, 9)
    assert api.ok("POST", "/qr-payments", scan) == paid  # the app's retry: the same payment

    code = api.ok("POST", f"/users/{user}/payment-codes")
    assert code["user_id"] == user and code["expires_ns"] - code["issued_ns"] == 60 * 10**9
    till = {"code": code["code"], "amount_fen": 1_200, "merchant_order_no": "till-7"}
    by_code = api.ok("POST", f"/merchants/{shop}/code-payments", till)
    assert (by_code["user_id"], by_code["funding"], by_code["amount_fen"]) == (
        user,
        "wallet",
        1_200,
    )
    # The till's retry of the same order is not a replay; another order with the code is.
    assert api.ok("POST", f"/merchants/{shop}/code-payments", till) == by_code
    books = api.books()
    api.refused(
        "POST",
        f"/merchants/{shop}/code-payments",
        {**till, "merchant_order_no": "till-8"},
        422,
        "code_replayed",
    )
    fresh = api.ok("POST", f"/users/{user}/payment-codes")["code"]
    forged = fresh[:-1] + ("0" if fresh[-1] != "0" else "1")
    api.refused(
        "POST", f"/merchants/{shop}/code-payments", {**till, "code": forged}, 422, "code_forged"
    )
    api.clock.advance(61)
    api.refused(
        "POST",
        f"/merchants/{shop}/code-payments",
        {**till, "code": fresh, "merchant_order_no": "t9"},
        422,
        "code_expired",
    )
    api.refused(
        "POST", "/qr-payments", {**scan, "qr": "fmq1.1.0", "request_id": "x"}, 422, "code_forged"
    )
    assert api.books() == books
    assert api.wallet("user", user) == 10_000 - 1_500 - 1_200


def test_creations_replay_with_an_idempotency_key(api: Api) -> None:
    def create(body: dict[str, Any], key: str) -> Any:
        return api.client.post(
            "/v1/payments/campaigns", json=body, headers={"Idempotency-Key": key}
        )

    body = {"name": "D11", "kind": "red_packet", "discount_fen": 500, "budget_fen": 10_000}
    first = create(body, "k1")
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    books = api.books()
    again = create(body, "k1")
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert api.books() == books  # the budget was funded once
    reused = create({**body, "budget_fen": 20_000}, "k1")
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    assert create(body, "k2").json()["id"] == first.json()["id"] + 1


# ----------------------------------------------------------------------------- refusals


Setup = Callable[[Api, dict[str, int]], tuple[str, str, Any]]


def _world(api: Api) -> dict[str, int]:
    """A funded user (10,000 fen) with a card, a merchant, a platform red packet whose budget
    covers one discount, and an order of 5,000 fen paid by the user."""
    user, card = api.user(balance_fen=10_000)
    shop = api.merchant()
    campaign = api.ok(
        "POST",
        "/campaigns",
        {"name": "one", "kind": "red_packet", "discount_fen": 500, "budget_fen": 500},
    )["id"]
    paid = api.pay(api.order(shop, 5_000, "paid"), user)
    return {"user": user, "card": card, "shop": shop, "campaign": campaign, "payment": paid["id"]}


def _other_user_pays(api: Api, w: dict[str, int]) -> tuple[str, str, Any]:
    other, _ = api.user(balance_fen=10_000)
    order = api.ok("GET", f"/payments/{w['payment']}")["order_id"]
    return "POST", f"/orders/{order}/pay", {"user_id": other}


def _coupon_spent(api: Api, w: dict[str, int]) -> tuple[str, str, Any]:
    api.pay(api.order(w["shop"], 1_000, "first"), w["user"], campaign_id=w["campaign"])
    return (
        "POST",
        f"/orders/{api.order(w['shop'], 1_000, 'second')}/pay",
        {
            "user_id": w["user"],
            "campaign_id": w["campaign"],
        },
    )


def _coupon_minimum(api: Api, w: dict[str, int]) -> tuple[str, str, Any]:
    coupon = api.ok(
        "POST",
        "/campaigns",
        {
            "name": "c",
            "kind": "coupon",
            "discount_fen": 100,
            "budget_fen": 1_000,
            "min_order_fen": 2_000,
        },
    )["id"]
    order = api.order(w["shop"], 1_000, "small")
    return "POST", f"/orders/{order}/pay", {"user_id": w["user"], "campaign_id": coupon}


def _declined_card(api: Api, w: dict[str, int]) -> tuple[str, str, Any]:
    masked = api.ok("GET", f"/users/{w['user']}/cards")["cards"][0]["masked_number"]
    api.bank.declined_cards.add(masked)
    order = api.order(w["shop"], 1_000, "declined")
    return (
        "POST",
        f"/orders/{order}/pay",
        {"user_id": w["user"], "funding": "card", "card_id": w["card"]},
    )


def _slow_bank(api: Api, w: dict[str, int]) -> tuple[str, str, Any]:
    def slow(operation: str, request_id: str) -> None:
        if operation == "capture":
            api.clock.advance(301)  # past the card reservation's 300 s

    api.bank.on_call = slow
    order = api.order(w["shop"], 1_000, "slow")
    return (
        "POST",
        f"/orders/{order}/pay",
        {"user_id": w["user"], "funding": "card", "card_id": w["card"]},
    )


def _failed_payment(api: Api, w: dict[str, int]) -> tuple[str, str, Any]:
    order = api.order(w["shop"], 50_000, "too much")
    api.refused("POST", f"/orders/{order}/pay", {"user_id": w["user"]}, 422, "insufficient_funds")
    return "POST", f"/payments/{w['payment'] + 1}/refunds", {"amount_fen": 1, "request_no": "r"}


def _failed_campaign(api: Api, w: dict[str, int]) -> tuple[str, str, Any]:
    poor = api.merchant()
    body = {
        "name": "x",
        "kind": "coupon",
        "discount_fen": 1,
        "budget_fen": 10,
        "funder_merchant_id": poor,
    }
    api.refused("POST", "/campaigns", body, 422, "merchant_balance_insufficient")
    return "POST", f"/campaigns/{w['campaign'] + 1}/close", None


def _unverified(api: Api, w: dict[str, int]) -> tuple[str, str, Any]:
    user, card = api.user(level="unverified")
    return "POST", f"/users/{user}/top-ups", {"card_id": card, "amount_fen": 100, "request_id": "t"}


def _refund(amount: int, request_no: str) -> Setup:
    def setup(api: Api, w: dict[str, int]) -> tuple[str, str, Any]:
        api.ok(
            "POST", f"/payments/{w['payment']}/refunds", {"amount_fen": 1_000, "request_no": "R"}
        )
        return (
            "POST",
            f"/payments/{w['payment']}/refunds",
            {"amount_fen": amount, "request_no": request_no},
        )

    return setup


def _fixed(method: str, path: str, body: Any = None) -> Setup:
    def setup(api: Api, w: dict[str, int]) -> tuple[str, str, Any]:
        return method, path.format(**w), body

    return setup


REFUSALS: list[tuple[str, Any, int, str]] = [
    ("unknown user", _fixed("GET", "/users/99"), 404, "unknown_party"),
    ("a day past int64 ns", _fixed("GET", "/settlements/2262-04-12"), 400, "validation_failed"),
    (
        "not a day",
        _fixed("POST", "/settlements", {"business_date": "9999-99-99"}),
        400,
        "validation_failed",
    ),
    ("unknown merchant wallet", _fixed("GET", "/merchants/99/wallet"), 404, "unknown_party"),
    (
        "unknown payment",
        _fixed("POST", "/payments/99/refunds", {"amount_fen": 1, "request_no": "r"}),
        404,
        "unknown_party",
    ),
    (
        "unknown card",
        _fixed(
            "POST", "/users/{user}/top-ups", {"card_id": 99, "amount_fen": 1, "request_id": "t"}
        ),
        404,
        "unknown_party",
    ),
    ("unknown campaign", _fixed("GET", "/orders/1/quote?campaign_id=99"), 404, "unknown_party"),
    (
        "bad card number",
        _fixed(
            "POST",
            "/users/{user}/cards",
            {"bank_code": "ICBC", "card_number": "6222020200112233445"},
        ),
        400,
        "invalid_card",
    ),
    (
        "budget below one discount",
        _fixed(
            "POST",
            "/campaigns",
            {"name": "x", "kind": "coupon", "discount_fen": 10, "budget_fen": 5},
        ),
        400,
        "invalid_request",
    ),
    (
        "card funding without a card",
        _fixed("POST", "/orders/1/pay", {"user_id": 1, "funding": "card"}),
        400,
        "validation_failed",
    ),
    (
        "a string for an amount",
        _fixed("POST", "/orders", {"merchant_id": 1, "amount_fen": "5", "merchant_order_no": "n"}),
        400,
        "validation_failed",
    ),
    (
        "an unknown field",
        _fixed("POST", "/users", {"name": "x", "level": "full"}),
        400,
        "validation_failed",
    ),
    (
        "not a date",
        _fixed("POST", "/settlements", {"business_date": "2025-02-30"}),
        400,
        "validation_failed",
    ),
    ("unverified identity", _unverified, 422, "identity_level_too_low"),
    (
        "wallet too low",
        _fixed(
            "POST",
            "/users/{user}/withdrawals",
            {"card_id": 1, "amount_fen": 10_001, "request_id": "w"},
        ),
        422,
        "insufficient_funds",
    ),
    (
        "merchant cannot fund",
        _fixed(
            "POST",
            "/campaigns",
            {
                "name": "x",
                "kind": "coupon",
                "discount_fen": 1,
                "budget_fen": 10**6,
                "funder_merchant_id": 1,
            },
        ),
        422,
        "merchant_balance_insufficient",
    ),
    ("coupon minimum", _coupon_minimum, 422, "coupon_not_applicable"),
    ("coupon budget spent", _coupon_spent, 422, "coupon_exhausted"),
    ("bank declined", _declined_card, 422, "bank_declined"),
    ("reservation expired", _slow_bank, 422, "payment_timed_out"),
    ("refund too much", _refund(4_001, "R-2"), 422, "refund_exceeds_payment"),
    ("refund number reused", _refund(2_000, "R"), 409, "idempotency_conflict"),
    (
        "order number reused",
        _fixed("POST", "/orders", {"merchant_id": 1, "amount_fen": 1, "merchant_order_no": "paid"}),
        409,
        "idempotency_conflict",
    ),
    (
        "top-up id reused",
        _fixed(
            "POST", "/users/{user}/top-ups", {"card_id": 1, "amount_fen": 1, "request_id": "seed-1"}
        ),
        409,
        "idempotency_conflict",
    ),
    ("paid by another", _other_user_pays, 409, "order_already_paid"),
    ("refund of a failed payment", _failed_payment, 409, "invalid_state"),
    ("close a failed campaign", _failed_campaign, 409, "invalid_state"),
    (
        "settle today",
        _fixed("POST", "/settlements", {"business_date": "2025-11-11"}),
        409,
        "settlement_too_early",
    ),
]


@pytest.mark.parametrize(
    ("setup", "status", "code"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_answer_a_problem_and_change_nothing(
    api: Api, setup: Setup, status: int, code: str
) -> None:
    w = _world(api)
    method, path, body = setup(api, w)
    books = api.books()
    wallets = (api.wallet("user", w["user"]), api.wallet("merchant", w["shop"]))
    api.refused(method, path, body, status, code)
    assert api.books() == books
    assert (api.wallet("user", w["user"]), api.wallet("merchant", w["shop"])) == wallets


def test_a_busy_bank_is_503_with_retry_after_and_moves_nothing(api: Api) -> None:
    w = _world(api)
    api.bank.busy_banks.add("ICBC")
    books = api.books()
    response = api.refused(
        "POST",
        f"/users/{w['user']}/top-ups",
        {"card_id": w["card"], "amount_fen": 100, "request_id": "b"},
        503,
        "bank_busy",
    )
    assert response.headers["retry-after"] == "1"
    order = api.order(w["shop"], 1_000, "busy")
    card = {"user_id": w["user"], "funding": "card", "card_id": w["card"]}
    api.refused("POST", f"/orders/{order}/pay", card, 503, "bank_busy")
    assert api.books() == books
    # Once the bank answers again, the order can be paid (a refused attempt left nothing).
    api.bank.busy_banks.clear()
    assert api.pay(order, **card)["state"] == "succeeded"


def test_the_bank_scripted_busy_for_a_refund_payout_leaves_it_reversed(api: Api) -> None:
    w = _world(api)
    order = api.order(w["shop"], 1_000, "card")
    paid = api.pay(order, w["user"], funding="card", card_id=w["card"])
    api.bank.script("payout", Reply(Outcome.BUSY, "maintenance"))
    refund = api.ok(
        "POST", f"/payments/{paid['id']}/refunds", {"amount_fen": 1_000, "request_no": "R"}
    )
    assert refund["state"] == "reversed"  # the ledger moved it back; the payout waits
    # Retrying the same refund later asks the bank again and finishes it.
    again = api.ok(
        "POST", f"/payments/{paid['id']}/refunds", {"amount_fen": 1_000, "request_no": "R"}
    )
    assert again["state"] == "succeeded" and api.bank.paid_out_fen["ICBC"] == 1_000


def _error_classes(cls: type[PaymentError]) -> list[type[PaymentError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _error_classes(sub))]


def test_every_payments_error_has_its_own_stable_problem_code() -> None:
    # A new error in the core must be given its code and status here deliberately (until then
    # it answers with its base class's code, never a 500).
    for cls in _error_classes(PaymentError):
        if cls.__module__ != "formicary.payments.errors":
            continue  # e.g. the simulator's own errors, never raised through these routes
        problem = payments_problem(cls("why"))
        expected = "service_busy" if cls.code == "ledger_busy" else cls.code
        assert (problem.code, problem.detail) == (expected, "why"), cls
        assert 400 <= problem.status < 500 or problem.code in ("bank_busy", "service_busy"), cls
        retry = problem.headers is not None and problem.headers.get("Retry-After") == "1"
        assert retry == (problem.status == 503), cls


# ----------------------------------------------------------------------------- the files


def test_a_ledger_only_server_creates_no_payments_files(tmp_path: Path) -> None:
    service = LedgerService(open_store(f"sqlite:///{tmp_path}/ledger.db"))
    service.start()
    try:
        files = tmp_path / "payments"
        with TestClient(create_app(service=service, payments_dir=files)) as client:
            assert (
                client.post(
                    "/v1/accounts", json=[{"id": "1", "ledger": 156, "code": 1}]
                ).status_code
                == 200
            )
            assert client.get("/v1/accounts/1").status_code == 200
            assert client.get("/openapi.json").status_code == 200
            assert not files.exists()
            assert client.post("/v1/payments/users", json={"name": "Ada"}).status_code == 200
        assert sorted(p.name for p in files.iterdir() if not p.name.startswith("payments.db-")) == [
            "payments.db",
            "secret",
        ]
        assert (files / "secret").stat().st_mode & 0o777 == 0o600
        secret = (files / "secret").read_bytes()
        # A restart on the same files keeps the parties and the secret (the same QR text).
        with TestClient(create_app(service=service, payments_dir=files)) as client:
            merchant = client.post("/v1/payments/merchants", json=MERCHANT).json()["id"]
            qr = client.get(f"/v1/payments/merchants/{merchant}/qr").json()["qr"]
            assert client.get("/v1/payments/users/1").json()["name"] == "Ada"
        with TestClient(create_app(service=service, payments_dir=files)) as client:
            assert client.get(f"/v1/payments/merchants/{merchant}/qr").json()["qr"] == qr
        assert (files / "secret").read_bytes() == secret
    finally:
        service.close()


def test_the_secret_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PAYMENTS_SECRET_ENV, "s" * 16)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        create_app(database_url=f"sqlite:///{tmp_path}/ledger.db", payments_dir=tmp_path / "p")
    monkeypatch.setenv(PAYMENTS_SECRET_ENV, "an operator's secret of 32 bytes or more")
    app = create_app(database_url=f"sqlite:///{tmp_path}/ledger.db", payments_dir=tmp_path / "p")
    with TestClient(app) as client:
        assert client.post("/v1/payments/users", json={"name": "Ada"}).status_code == 200
    assert os.listdir(tmp_path / "p") and not (tmp_path / "p" / "secret").exists()


def test_a_stopped_ledger_is_503_not_500(tmp_path: Path) -> None:
    service = LedgerService(open_store(f"sqlite:///{tmp_path}/ledger.db"))
    service.start()
    app = create_app(service=service, payments_dir=tmp_path / "payments")
    with TestClient(app) as client:
        service.close()
        response = client.post("/v1/payments/users", json={"name": "Ada"})
        assert (response.status_code, response.json()["code"]) == (503, "service_unavailable")
        assert not (tmp_path / "payments").exists()
