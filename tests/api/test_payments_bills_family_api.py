"""Bill payments and family accounts over HTTP, on both ledger backends: billers, lookup and
full or partial payment; grants, member payments, statements and revocation; every refusal with
its status and code (and no money moved); retries that apply once; and the family limit holding
under concurrent HTTP payments."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from formicary.payments.parties import luhn_ok
from tests.api.payments_http import PaymentsHttp, payments_app
from tests.payments.world import card_number

PHONE = "13800138000"  # every well-formed mobile number is a customer of the phone biller
DAY_S = 24 * 3600


def biller_body(name: str, category: str) -> dict[str, Any]:
    return {
        "name": name,
        "category": category,
        "settlement_bank_code": "CMB",
        "settlement_account_number": "6214830000000001",
    }


def phone_bill(api: Api, biller_id: int, min_fen: int = 0) -> dict[str, Any]:
    """The latest bill of a phone account whose bill is at least `min_fen`."""
    for n in range(1_000):
        found = api.ok("GET", f"/billers/{biller_id}/bills", account_number=f"1380013{n:04d}")
        if found["bills"][-1]["amount_fen"] >= min_fen:
            bill: dict[str, Any] = found["bills"][-1]
            return bill
    raise AssertionError("no such account")  # pragma: no cover


def luhn_account(n: int, digits: int = 10) -> str:
    body = f"{n:0{digits - 1}d}"
    return next(body + str(d) for d in range(10) if luhn_ok(body + str(d)))


class Api(PaymentsHttp):
    """The payments routes' test client, with what bills and family accounts need."""

    def user(self, balance_fen: int = 0, level: str = "full") -> int:
        """A user with `balance_fen` topped up from a bound card."""
        user: int = self.ok("POST", "/users", {"name": "u", "identity_level": level})["id"]
        if balance_fen:
            card = self.ok(
                "POST",
                f"/users/{user}/cards",
                {"bank_code": "ICBC", "card_number": card_number(user)},
            )
            body = {"card_id": card["id"], "amount_fen": balance_fen, "request_id": f"seed-{user}"}
            self.ok("POST", f"/users/{user}/top-ups", body)
        return user

    def merchant(self) -> int:
        body = {
            "name": "Shop",
            "category": "5411",
            "fee_plan": "online",
            "settlement_bank_code": "CMB",
            "settlement_account_number": "6214830012345678",
        }
        merchant: int = self.ok("POST", "/merchants", body)["id"]
        return merchant

    def order(self, merchant_id: int, amount_fen: int, order_no: str) -> int:
        body = {"merchant_id": merchant_id, "amount_fen": amount_fen, "merchant_order_no": order_no}
        order: int = self.ok("POST", "/orders", body)["id"]
        return order

    def wallet(self, owner: str, owner_id: int) -> int:
        available: int = self.ok("GET", f"/{owner}s/{owner_id}/wallet")["available_fen"]
        return available


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    with payments_app(database_url, tmp_path) as (client, clock):
        yield Api(client, clock)


@pytest.fixture
def served_api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The app under uvicorn in a thread, for requests that really run concurrently."""
    with payments_app(database_url, tmp_path, serve=True) as (client, clock):
        yield Api(client, clock)


# ----------------------------------------------------------------------------- bills


def test_billers_bill_lookup_and_payments_in_full_and_in_part(api: Api) -> None:
    mobile = api.ok("POST", "/billers", biller_body("China Mobile", "phone"))
    assert (mobile["category"], mobile["name"]) == ("phone", "China Mobile")
    # Registering the same name again answers the same biller; it is a merchant (MCC 4814).
    assert api.ok("POST", "/billers", biller_body("China Mobile", "phone")) == mobile
    merchant = api.ok("GET", f"/merchants/{mobile['merchant_id']}")
    assert (merchant["category"], merchant["wallet_account_id"]) == (
        "4814",
        mobile["wallet_account_id"],
    )
    grid = api.ok(
        "POST", "/billers", {**biller_body("State Grid", "electricity"), "fee_plan": "online"}
    )
    assert api.ok("GET", "/billers") == {"billers": [mobile, grid]}
    assert api.ok("GET", "/billers", category="electricity") == {"billers": [grid]}
    assert api.ok("GET", "/billers", category="water") == {"billers": []}
    assert api.ok("GET", f"/billers/{grid['id']}") == grid

    # Today is 2025-11-11 in Beijing: the latest bill is October's, due on 20 November.
    found = api.ok("GET", f"/billers/{mobile['id']}/bills", account_number=PHONE)
    assert (found["biller_id"], found["account_number"]) == (mobile["id"], PHONE)
    bill = found["bills"][-1]
    assert (bill["period"], bill["due_date"], bill["paid_fen"]) == ("2025-10", "2025-11-20", 0)
    assert 1_800 <= bill["amount_fen"] <= 29_900 and bill["outstanding_fen"] == bill["amount_fen"]
    # A lookup is deterministic: the same bills, the same ids and amounts.
    assert api.ok("GET", f"/billers/{mobile['id']}/bills", account_number=PHONE) == found
    assert api.ok("GET", f"/bills/{bill['id']}") == bill

    ada = api.user(balance_fen=100_000)
    books = api.books()
    part = api.ok(
        "POST",
        f"/bills/{bill['id']}/payments",
        {"user_id": ada, "request_id": "b-1", "amount_fen": 1_000},
    )
    assert (part["state"], part["amount_fen"], part["funding"]) == ("succeeded", 1_000, "wallet")
    assert (part["card_id"], part["grant_id"], part["failure_code"]) == (None, None, "")
    assert part["order_id"] is not None and part["payment_id"] is not None
    assert api.ok("GET", f"/bill-payments/{part['id']}") == part
    # The re-sent request is applied once: the same answer, no money moved.
    moved = api.books()
    assert moved != books
    assert (
        api.ok(
            "POST",
            f"/bills/{bill['id']}/payments",
            {"user_id": ada, "request_id": "b-1", "amount_fen": 1_000},
        )
        == part
    )
    assert api.books() == moved
    after_part = api.ok("GET", f"/bills/{bill['id']}")
    assert (after_part["paid_fen"], after_part["outstanding_fen"]) == (
        1_000,
        bill["amount_fen"] - 1_000,
    )

    # The rest (no amount: all that is outstanding); then the bill is gone from lookups.
    rest = api.ok("POST", f"/bills/{bill['id']}/payments", {"user_id": ada, "request_id": "b-2"})
    assert rest["amount_fen"] == bill["amount_fen"] - 1_000
    assert bill["id"] not in [
        b["id"]
        for b in api.ok("GET", f"/billers/{mobile['id']}/bills", account_number=PHONE)["bills"]
    ]
    assert api.wallet("user", ada) == 100_000 - bill["amount_fen"]
    # The biller's merchant got the bill less its fee (0.6% online, per payment, rounded).
    received = api.wallet("merchant", mobile["merchant_id"])
    fees = [api.ok("GET", f"/payments/{p['payment_id']}")["fee_fen"] for p in (part, rest)]
    assert received == bill["amount_fen"] - sum(fees) and all(f > 0 for f in fees)
    # Nothing is left to pay: 422 bill_overpayment, no money moved.
    books = api.books()
    api.refused(
        "POST",
        f"/bills/{bill['id']}/payments",
        {"user_id": ada, "request_id": "b-3"},
        422,
        "bill_overpayment",
    )
    assert api.books() == books


def test_a_bill_paid_by_card_and_the_request_id_bound_to_its_terms(api: Api) -> None:
    mobile = api.ok("POST", "/billers", biller_body("China Unicom", "phone"))
    bill = api.ok("GET", f"/billers/{mobile['id']}/bills", account_number="13912345678")["bills"][
        -1
    ]
    ada = api.user(balance_fen=1)  # a card, and a wallet too poor to pay
    card = api.ok("GET", f"/users/{ada}/cards")["cards"][0]["id"]
    api.refused(
        "POST",
        f"/bills/{bill['id']}/payments",
        {"user_id": ada, "request_id": "w"},
        422,
        "insufficient_funds",
    )
    # A failed bill payment answers its failure again under the same key, and releases its part.
    api.refused(
        "POST",
        f"/bills/{bill['id']}/payments",
        {"user_id": ada, "request_id": "w"},
        422,
        "insufficient_funds",
    )
    body = {"user_id": ada, "request_id": "c", "funding": "card", "card_id": card}
    paid = api.ok("POST", f"/bills/{bill['id']}/payments", body)
    assert (paid["funding"], paid["card_id"], paid["amount_fen"]) == (
        "card",
        card,
        bill["amount_fen"],
    )
    failed = api.ok("GET", f"/bill-payments/{paid['id'] - 1}")
    assert (failed["state"], failed["failure_code"]) == ("failed", "insufficient_funds")
    # The same request id with other terms: 409.
    api.refused(
        "POST",
        f"/bills/{bill['id']}/payments",
        {"user_id": ada, "request_id": "c"},
        409,
        "idempotency_conflict",
    )


# ----------------------------------------------------------------------------- family accounts


def test_family_grant_member_payments_statement_and_revocation(api: Api) -> None:
    ada = api.user(balance_fen=100_000)  # the payer
    bo = api.user()  # the member: an empty wallet
    shop = api.merchant()
    grant = api.ok(
        "POST", "/family/grants", {"payer_id": ada, "member_id": bo, "monthly_limit_fen": 10_000}
    )
    assert (grant["payer_id"], grant["member_id"], grant["state"]) == (ada, bo, "active")
    assert (grant["monthly_limit_fen"], grant["remaining_fen"], grant["revoked_ns"]) == (
        10_000,
        10_000,
        0,
    )
    # Granting the same limit again answers the same grant.
    again = {"payer_id": ada, "member_id": bo, "monthly_limit_fen": 10_000}
    assert api.ok("POST", "/family/grants", again) == grant
    assert api.ok("GET", "/family/grants", payer_id=ada) == {"grants": [grant]}
    assert api.ok("GET", "/family/grants", member_id=bo) == {"grants": [grant]}
    assert api.ok("GET", "/family/grants", payer_id=ada, member_id=bo) == {"grants": [grant]}
    assert api.ok("GET", "/family/grants", payer_id=bo) == {"grants": []}

    lunch = api.order(shop, 2_500, "lunch")
    paid = api.ok(
        "POST", f"/family/grants/{grant['id']}/payments", {"member_id": bo, "order_id": lunch}
    )
    assert (paid["user_id"], paid["funding"], paid["payer_fen"]) == (bo, "family", 2_500)
    # Paying the paid order again answers its payment.
    assert (
        api.ok(
            "POST", f"/family/grants/{grant['id']}/payments", {"member_id": bo, "order_id": lunch}
        )
        == paid
    )
    # The month's limit is set aside from the payer's wallet at the first payment.
    assert api.wallet("user", ada) == 90_000 and api.wallet("user", bo) == 0
    assert api.ok("GET", f"/family/grants/{grant['id']}")["remaining_fen"] == 7_500

    # The member pays a bill with the payer's money too.
    mobile = api.ok("POST", "/billers", biller_body("China Mobile", "phone"))
    bill = phone_bill(api, mobile["id"], min_fen=10_000)
    by_grant = api.ok(
        "POST",
        f"/bills/{bill['id']}/payments",
        {
            "user_id": bo,
            "request_id": "phone",
            "amount_fen": 1_000,
            "funding": "family",
            "grant_id": grant["id"],
        },
    )
    assert (by_grant["funding"], by_grant["grant_id"], by_grant["state"]) == (
        "family",
        grant["id"],
        "succeeded",
    )

    # Beyond what is left of the limit: 422, nothing moved.
    books = api.books()
    dinner = api.order(shop, 6_501, "dinner")
    api.refused(
        "POST",
        f"/family/grants/{grant['id']}/payments",
        {"member_id": bo, "order_id": dinner},
        422,
        "family_limit_exceeded",
    )
    api.refused(
        "POST",
        f"/bills/{bill['id']}/payments",
        {"user_id": bo, "request_id": "too much", "funding": "family", "grant_id": grant["id"]},
        422,
        "family_limit_exceeded",
    )
    assert api.books() == books

    statement = api.ok(
        "GET", f"/family/grants/{grant['id']}/statement", payer_id=ada, month="2025-11"
    )
    assert api.ok("GET", f"/family/grants/{grant['id']}/statement", payer_id=ada) == statement
    assert (statement["month"], statement["state"], statement["limit_fen"]) == (
        "2025-11",
        "open",
        10_000,
    )
    assert [line["drawn_fen"] for line in statement["lines"]] == [2_500, 1_000]
    assert statement["lines"][0]["order_id"] == lunch
    assert (statement["spent_fen"], statement["remaining_fen"], statement["returned_fen"]) == (
        3_500,
        6_500,
        0,
    )
    assert statement["ledger_spent_fen"] == 3_500 and statement["reconciled"]
    assert statement["grant"]["id"] == grant["id"]
    october = api.ok(
        "GET", f"/family/grants/{grant['id']}/statement", payer_id=ada, month="2025-10"
    )
    assert (october["state"], october["lines"], october["remaining_fen"]) == ("unused", [], 0)

    # Revoked: the unused 65 yuan go back to the payer; every new payment is refused.
    revoked = api.ok("POST", f"/family/grants/{grant['id']}/revoke", {"payer_id": ada})
    assert (revoked["state"], revoked["remaining_fen"]) == ("revoked", 0) and revoked["revoked_ns"]
    assert api.ok("POST", f"/family/grants/{grant['id']}/revoke", {"payer_id": ada}) == revoked
    assert api.wallet("user", ada) == 100_000 - 3_500
    api.refused(
        "POST",
        f"/family/grants/{grant['id']}/payments",
        {"member_id": bo, "order_id": api.order(shop, 100, "late")},
        422,
        "grant_revoked",
    )
    # A retry of a payment made before the revocation still answers it.
    assert (
        api.ok(
            "POST", f"/family/grants/{grant['id']}/payments", {"member_id": bo, "order_id": lunch}
        )
        == paid
    )
    retried = api.ok(
        "POST",
        f"/bills/{bill['id']}/payments",
        {
            "user_id": bo,
            "request_id": "phone",
            "amount_fen": 1_000,
            "funding": "family",
            "grant_id": grant["id"],
        },
    )
    assert retried == by_grant
    closed = api.ok("GET", f"/family/grants/{grant['id']}/statement", payer_id=ada)
    assert (closed["state"], closed["returned_fen"], closed["spent_fen"]) == (
        "closed",
        6_500,
        3_500,
    )
    assert closed["reconciled"]
    # A new grant may follow the revoked one.
    renewed = api.ok(
        "POST", "/family/grants", {"payer_id": ada, "member_id": bo, "monthly_limit_fen": 5_000}
    )
    assert renewed["id"] != grant["id"]
    assert [g["state"] for g in api.ok("GET", "/family/grants", member_id=bo)["grants"]] == [
        "revoked",
        "active",
    ]


def test_a_new_month_returns_the_unused_limit_and_starts_afresh(api: Api) -> None:
    ada, bo = api.user(balance_fen=50_000), api.user()
    shop = api.merchant()
    grant = api.ok(
        "POST", "/family/grants", {"payer_id": ada, "member_id": bo, "monthly_limit_fen": 10_000}
    )["id"]
    pay = {"member_id": bo, "order_id": api.order(shop, 4_000, "nov")}
    api.ok("POST", f"/family/grants/{grant}/payments", pay)
    api.clock.advance(20 * DAY_S)  # 1 December, 10:00 in Beijing
    assert api.ok("GET", f"/family/grants/{grant}")["remaining_fen"] == 10_000
    pay = {"member_id": bo, "order_id": api.order(shop, 9_000, "dec")}
    api.ok("POST", f"/family/grants/{grant}/payments", pay)
    november = api.ok("GET", f"/family/grants/{grant}/statement", payer_id=ada, month="2025-11")
    assert (november["state"], november["spent_fen"], november["returned_fen"]) == (
        "closed",
        4_000,
        6_000,
    )
    december = api.ok("GET", f"/family/grants/{grant}/statement", payer_id=ada)
    assert (december["month"], december["spent_fen"], december["remaining_fen"]) == (
        "2025-12",
        9_000,
        1_000,
    )
    assert november["reconciled"] and december["reconciled"]
    # Set aside for December: 10,000; November's 4,000 spent.
    assert api.wallet("user", ada) == 50_000 - 4_000 - 10_000


# ----------------------------------------------------------------------------- refusals


def test_refusals_answer_a_clear_problem_and_move_no_money(api: Api) -> None:
    ada = api.user(balance_fen=100_000)
    bo = api.user()
    poor = api.user(level="basic")  # may grant at most 1,000 yuan a month
    shop = api.merchant()
    mobile = api.ok("POST", "/billers", biller_body("China Mobile", "phone"))["id"]
    grid = api.ok("POST", "/billers", biller_body("State Grid", "electricity"))["id"]
    bill = api.ok("GET", f"/billers/{mobile}/bills", account_number=PHONE)["bills"][-1]
    grant = api.ok(
        "POST", "/family/grants", {"payer_id": ada, "member_id": bo, "monthly_limit_fen": 1_000}
    )["id"]
    # The month is open (its limit set aside): what follows must not move money.
    spent = {"member_id": bo, "order_id": api.order(shop, 600, "first")}
    api.ok("POST", f"/family/grants/{grant}/payments", spent)
    order = api.order(shop, 500, "second")
    over = (422, "family_limit_exceeded")
    good = luhn_account(7)
    bad_check_digit = good[:-1] + str((int(good[-1]) + 1) % 10)
    pay_bill = f"/bills/{bill['id']}/payments"
    books = api.books()

    def pay(**more: Any) -> dict[str, Any]:
        return {"user_id": ada, "request_id": "x", **more}

    def granting(payer: int, member: int, limit: Any) -> dict[str, Any]:
        return {"payer_id": payer, "member_id": member, "monthly_limit_fen": limit}

    g = f"/family/grants/{grant}"
    v400, u404 = (400, "validation_failed"), (404, "unknown_party")
    i400, b404 = (400, "invalid_request"), (404, "unknown_bill")
    grants = "/family/grants"
    cases: list[tuple[str, str, Any, dict[str, Any], tuple[int, str]]] = [
        # bills
        ("GET", "/billers/99", None, {}, b404),
        ("GET", "/billers/99/bills", None, {"account_number": PHONE}, b404),
        ("GET", f"/billers/{mobile}/bills", None, {"account_number": "1"}, i400),
        ("GET", f"/billers/{grid}/bills", None, {"account_number": "12"}, i400),
        ("GET", f"/billers/{grid}/bills", None, {"account_number": bad_check_digit}, b404),
        ("GET", f"/billers/{grid}/bills", None, {}, v400),
        ("GET", f"/billers/{grid}/bills", None, {"account_number": "1" * 33}, v400),
        ("GET", "/billers", None, {"category": "internet"}, v400),
        ("GET", "/bills/99", None, {}, b404),
        ("GET", "/bill-payments/99", None, {}, b404),
        ("POST", "/billers", biller_body("x", "internet"), {}, v400),
        ("POST", "/billers", {**biller_body("y", "gas"), "mcc": "4900"}, {}, v400),
        ("POST", "/billers", biller_body("China Mobile", "gas"), {}, (409, "idempotency_conflict")),
        ("POST", "/bills/99/payments", pay(), {}, b404),
        ("POST", pay_bill, pay(user_id=99), {}, u404),
        ("POST", pay_bill, pay(amount_fen="500"), {}, v400),
        ("POST", pay_bill, pay(amount_fen=0), {}, v400),
        ("POST", pay_bill, pay(amount_fen=1.0), {}, v400),
        ("POST", pay_bill, pay(request_id=""), {}, v400),
        ("POST", pay_bill, pay(extra=1), {}, v400),
        ("POST", pay_bill, pay(amount_fen=10**6), {}, (422, "bill_overpayment")),
        ("POST", pay_bill, pay(funding="family"), {}, v400),
        ("POST", pay_bill, pay(funding="card"), {}, v400),
        ("POST", pay_bill, pay(card_id=1), {}, v400),
        ("POST", pay_bill, pay(grant_id=grant), {}, v400),
        ("POST", pay_bill, pay(funding="family", grant_id=grant), {}, u404),
        ("POST", pay_bill, pay(funding="mmf"), {}, v400),
        # family accounts
        ("POST", grants, granting(ada, ada, 1), {}, i400),
        ("POST", grants, granting(ada, 99, 1), {}, u404),
        ("POST", grants, granting(ada, bo, 0), {}, v400),
        ("POST", grants, granting(ada, bo, 1.5), {}, v400),
        ("POST", grants, granting(ada, bo, "1000"), {}, v400),
        ("POST", grants, granting(ada, bo, 2_000), {}, (409, "invalid_state")),
        ("POST", grants, granting(poor, bo, 100_001), {}, (422, "identity_level_too_low")),
        ("GET", grants, None, {}, v400),
        ("GET", grants, None, {"payer_id": 99}, u404),
        ("GET", grants, None, {"member_id": 0}, v400),
        ("GET", grants, None, {"payer_id": "ada"}, v400),
        ("GET", "/family/grants/99", None, {}, u404),
        ("POST", f"{g}/payments", {"member_id": bo, "order_id": order}, {}, over),
        ("POST", f"{g}/payments", {"member_id": ada, "order_id": order}, {}, u404),
        ("POST", f"{g}/payments", {"member_id": bo, "order_id": 99}, {}, u404),
        ("POST", "/family/grants/99/payments", {"member_id": bo, "order_id": order}, {}, u404),
        ("POST", f"{g}/payments", {"member_id": bo}, {}, v400),
        ("GET", f"{g}/statement", None, {"payer_id": bo}, u404),
        ("GET", f"{g}/statement", None, {}, v400),
        ("GET", f"{g}/statement", None, {"payer_id": ada, "month": "2025-13"}, i400),
        ("GET", f"{g}/statement", None, {"payer_id": ada, "month": "2025-1"}, v400),
        ("GET", f"{g}/statement", None, {"payer_id": ada, "month": "nov"}, v400),
        ("GET", "/family/grants/99/statement", None, {"payer_id": ada}, u404),
        ("POST", f"{g}/revoke", {"payer_id": bo}, {}, u404),
        ("POST", f"{g}/revoke", {"payer_id": ada, "why": "x"}, {}, v400),
        ("POST", f"{g}/revoke", {"payer_id": "1"}, {}, v400),
        ("POST", f"{g}/revoke", None, {}, v400),
        ("POST", "/family/grants/99/revoke", {"payer_id": ada}, {}, u404),
    ]  # fmt: skip
    for method, path, body, params, (status, code) in cases:
        problem = api.refused(method, path, body, status, code, **params)
        assert problem["detail"], (method, path)
    assert api.books() == books
    assert api.ok("GET", f"/family/grants/{grant}")["state"] == "active"
    assert api.ok("GET", f"/bills/{bill['id']}")["paid_fen"] == 0


# ----------------------------------------------------------------------------- concurrency


def test_the_family_limit_holds_under_concurrent_http_payments(served_api: Api) -> None:
    api = served_api
    ada, bo = api.user(balance_fen=100_000), api.user()
    shop = api.merchant()
    grant = api.ok(
        "POST", "/family/grants", {"payer_id": ada, "member_id": bo, "monthly_limit_fen": 10_000}
    )["id"]
    mobile = api.ok("POST", "/billers", biller_body("China Mobile", "phone"))["id"]
    bills = [
        api.ok("GET", f"/billers/{mobile}/bills", account_number=f"1380013{n:04d}")["bills"][-1]
        for n in range(4)
    ]
    orders = [api.order(shop, 700, f"o{n}") for n in range(16)]

    def member_pays(order_id: int) -> str:
        body = {"member_id": bo, "order_id": order_id}
        response = api.call("POST", f"/family/grants/{grant}/payments", body)
        return "paid" if response.status_code == 200 else response.json()["code"]

    def bill_paid(bill_id: int) -> str:
        body = {
            "user_id": bo,
            "request_id": f"bill-{bill_id}",
            "amount_fen": 700,
            "funding": "family",
            "grant_id": grant,
        }
        response = api.call("POST", f"/bills/{bill_id}/payments", body)
        return "paid" if response.status_code == 200 else response.json()["code"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(member_pays, o) for o in orders]
        futures += [pool.submit(bill_paid, b["id"]) for b in bills]
        outcomes = [f.result() for f in futures]
    # 20 payments of 7 yuan against a limit of 100: exactly 14 fit.
    assert sorted(set(outcomes)) == ["family_limit_exceeded", "paid"], outcomes
    assert outcomes.count("paid") == 14
    statement = api.ok("GET", f"/family/grants/{grant}/statement", payer_id=ada)
    assert (statement["spent_fen"], statement["remaining_fen"]) == (9_800, 200)
    assert statement["reconciled"] and len(statement["lines"]) == 14
    assert api.wallet("user", ada) == 90_000
    api.ok("POST", f"/family/grants/{grant}/revoke", {"payer_id": ada})
    assert api.wallet("user", ada) == 100_000 - 9_800


def test_a_re_sent_request_id_is_applied_once_under_concurrency(served_api: Api) -> None:
    api = served_api
    ada = api.user(balance_fen=100_000)
    mobile = api.ok("POST", "/billers", biller_body("China Mobile", "phone"))["id"]
    bill = api.ok("GET", f"/billers/{mobile}/bills", account_number=PHONE)["bills"][-1]
    body = {"user_id": ada, "request_id": "app-7", "amount_fen": 1_000}

    def send(_: int) -> httpx.Response:
        return api.call("POST", f"/bills/{bill['id']}/payments", body)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(send, range(10)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1  # the same bill payment, every time
    assert api.wallet("user", ada) == 100_000 - 1_000
    after = api.ok("GET", f"/bills/{bill['id']}")
    assert (after["paid_fen"], after["outstanding_fen"]) == (1_000, bill["amount_fen"] - 1_000)


def test_the_new_routes_answer_options_with_every_method(api: Api) -> None:
    for path, allow in (
        ("/billers", "GET, OPTIONS, POST"),
        ("/family/grants", "GET, OPTIONS, POST"),
    ):
        response = api.call("OPTIONS", path)
        assert (response.status_code, response.headers["allow"]) == (204, allow)
