"""The fixed-term marketplace over HTTP with the server's money-market fund: purchases and
reservations paid from fund shares within the fund's T+0 limits, payouts into the fund,
whitelisting, cancelling reservations, listings and a product's books; bad input is a 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from formicary.api import create_app
from formicary.funds.calendar import BEIJING
from formicary.ledger.service import LedgerService
from formicary.ledger.store import open_store

MONDAY_10AM_NS = int(datetime(2026, 3, 2, 10, 0, tzinfo=BEIJING).timestamp() * 1e9)
RICH_BANK = {"issuer_id": "icbc", "name": "Big Bank", "kind": "bank", "total_assets_fen": 10**17}
PER_ORDER = 5_000_000  # the fund's default instant limits: 50,000 yuan an order,
PER_DAY = 20_000_000  # 200,000 yuan a user and day


class FixedClock:
    def __init__(self) -> None:
        self.ns = MONDAY_10AM_NS

    def __call__(self) -> int:
        self.ns += 1_000
        return self.ns

    def at(self, *when: int) -> None:
        self.ns = int(datetime(*when, tzinfo=BEIJING).timestamp() * 1e9)  # type: ignore[misc]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def api(database_url: str, tmp_path: Path, clock: FixedClock) -> Iterator[TestClient]:
    service = LedgerService(open_store(database_url), clock_ns=clock)
    service.start()
    try:
        app = create_app(
            service=service, funds_dir=tmp_path / "funds", wealth_dir=tmp_path / "wealth"
        )
        with TestClient(app) as client:
            # A bank and three wallets of 500,000 yuan each.
            flags = ["debits_must_not_exceed_credits"]
            accounts = [
                {"id": "1", "ledger": 156, "code": 1},
                *({"id": n, "ledger": 156, "code": 2, "flags": flags} for n in ("11", "12", "13")),
            ]
            assert client.post("/v1/accounts", json=accounts).status_code == 200
            transfers = [
                {
                    "id": str(100 + n),
                    "debit_account_id": "1",
                    "credit_account_id": wallet,
                    "amount": 50_000_000,
                    "ledger": 156,
                    "code": 1,
                }
                for n, wallet in enumerate(("11", "12", "13"))
            ]
            assert client.post("/v1/transfers", json=transfers).status_code == 200
            assert client.post("/v1/wealth/issuers", json=RICH_BANK).status_code == 200
            yield client
    finally:
        service.close()


def product(product_id: str, open_at: str, close_at: str, **extra: Any) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "issuer_id": "icbc",
        "name": "30-day note",
        "term_days": 30,
        "yield_bp": 425,
        "size_fen": 100_000_000,
        "min_purchase_fen": 100_000,
        "min_raise_fen": 1_000_000,
        "sale_open": open_at,
        "sale_close": close_at,
        **extra,
    }


MONDAY_SALE = ("2026-03-02T09:00:00+08:00", "2026-03-03T09:00:00+08:00")
MONDAY_MORNING_SALE = ("2026-03-02T09:00:00+08:00", "2026-03-02T11:00:00+08:00")


def from_fund(
    amount: int, request_id: str, user: str = "alice", wallet: str = "11", **extra: Any
) -> dict[str, Any]:
    return {
        "user_id": user,
        "wallet_account_id": wallet,
        "amount": amount,
        "request_id": request_id,
        "source": "fund",
        **extra,
    }


def subscribe(api: TestClient, user: str, wallet: str, amount: int) -> None:
    body = {"user_id": user, "wallet_account_id": wallet, "amount": amount, "request_id": "s1"}
    r = api.post("/v1/funds/1/subscriptions", json=body)
    assert r.status_code == 200, r.text


def shares(api: TestClient, user: str) -> int:
    r = api.get(f"/v1/funds/1/holders/{user}")
    assert r.status_code == 200, r.text
    return int(r.json()["shares"])


def fund_balanced(api: TestClient) -> bool:
    books = api.get("/v1/funds/1/books").json()
    return bool(books["balanced"]) and books["difference_fen"] == 0


def balance(api: TestClient, account: str) -> int:
    a = api.get(f"/v1/accounts/{account}").json()
    return int(a["credits_posted"]) - int(a["debits_posted"])


def test_fund_funded_purchases_honour_the_fund_limits(api: TestClient, clock: FixedClock) -> None:
    subscribe(api, "alice", "11", 30_000_000)
    assert api.post("/v1/wealth/products", json=product("p1", *MONDAY_SALE)).status_code == 200

    r = api.post("/v1/wealth/products/p1/purchases", json=from_fund(PER_ORDER + 1, "big"))
    assert (r.status_code, r.json()["code"]) == (422, "instant_limit_exceeded")
    assert f"at most {PER_ORDER} fen" in r.json()["detail"]
    for k in range(4):
        r = api.post("/v1/wealth/products/p1/purchases", json=from_fund(PER_ORDER, f"b{k}"))
        assert r.status_code == 200, r.text
        bought = r.json()
        assert (bought["source_kind"], bought["source_ref"], bought["status"]) == (
            "fund",
            "alice",
            "reserved",
        )
    r = api.post("/v1/wealth/products/p1/purchases", json=from_fund(100_000, "b4"))
    assert (r.status_code, r.json()["code"]) == (422, "instant_limit_exceeded")
    assert "daily limit" in r.json()["detail"]
    # The fund's own instant redemptions share the room the purchases used.
    redeem = {"user_id": "alice", "wallet_account_id": "11", "amount": 100, "request_id": "x"}
    r = api.post("/v1/funds/1/redemptions", json=redeem)
    assert (r.status_code, r.json()["code"]) == (422, "instant_limit_exceeded")
    # A retry of an applied purchase is answered, not refused.
    again = api.post("/v1/wealth/products/p1/purchases", json=from_fund(PER_ORDER, "b0"))
    assert (again.status_code, again.json()["replayed"]) == (200, True)

    assert shares(api, "alice") == 30_000_000  # reserved, still the holder's
    books = api.get("/v1/wealth/products/p1/books").json()
    assert (books["reserved_fen"], books["escrow_pending_fen"], books["balanced"]) == (
        PER_DAY,
        PER_DAY,
        True,
    )
    assert books["quota_remaining_fen"] == 100_000_000 - PER_DAY
    listed = api.get("/v1/wealth/purchases", params={"user_id": "alice", "limit": 3}).json()
    assert [p["request_id"] for p in listed["purchases"]] == ["b0", "b1", "b2"]
    rest = api.get(
        "/v1/wealth/purchases",
        params={"product_id": "p1", "after_no": listed["next_after_no"]},
    ).json()
    assert [p["request_id"] for p in rest["purchases"]] == ["b3"]
    assert rest["next_after_no"] is None

    clock.at(2026, 3, 3, 10, 0)
    (closed,) = api.post("/v1/wealth/tick").json()["closed"]
    assert (closed["launched"], closed["raised_fen"]) == (True, PER_DAY)
    assert shares(api, "alice") == 10_000_000
    assert fund_balanced(api)
    books = api.get("/v1/wealth/products/p1/books").json()
    assert (books["escrow_pending_fen"], books["raised_fen"], books["balanced"]) == (
        0,
        PER_DAY,
        True,
    )
    # A new day: the limits start again.
    r = api.post(
        "/v1/wealth/products",
        json=product("p2", "2026-03-03T09:00:00+08:00", "2026-03-04T09:00:00+08:00"),
    )
    assert r.status_code == 200, r.text
    r = api.post("/v1/wealth/products/p2/purchases", json=from_fund(PER_ORDER, "c0"))
    assert r.status_code == 200, r.text


def test_a_failed_launch_gives_the_shares_and_the_limit_back(
    api: TestClient, clock: FixedClock
) -> None:
    subscribe(api, "alice", "11", 30_000_000)
    fails = product("f1", *MONDAY_MORNING_SALE, min_raise_fen=90_000_000)
    assert api.post("/v1/wealth/products", json=fails).status_code == 200
    for k in range(4):
        r = api.post("/v1/wealth/products/f1/purchases", json=from_fund(PER_ORDER, f"b{k}"))
        assert r.status_code == 200, r.text
    clock.at(2026, 3, 2, 11, 0)  # the close, still Monday
    (closed,) = api.post("/v1/wealth/tick").json()["closed"]
    assert closed["launched"] is False
    assert shares(api, "alice") == 30_000_000
    purchases = api.get("/v1/wealth/purchases", params={"product_id": "f1"}).json()["purchases"]
    assert {p["status"] for p in purchases} == {"voided"}
    # The day's room is free again: the fund redeems instantly up to the per-order limit.
    redeem = {"user_id": "alice", "wallet_account_id": "11", "amount": PER_ORDER, "request_id": "x"}
    r = api.post("/v1/funds/1/redemptions", json=redeem)
    assert r.status_code == 200, r.text
    assert shares(api, "alice") == 25_000_000
    assert fund_balanced(api)
    kinds = {
        n["kind"] for n in api.get("/v1/wealth/users/alice/notifications").json()["notifications"]
    }
    assert kinds == {"purchase_released"}


def test_payout_into_the_fund_and_fund_reservations(api: TestClient, clock: FixedClock) -> None:
    subscribe(api, "alice", "11", 10_000_000)
    subscribe(api, "bob", "12", 10_000_000)
    reservation = {
        "user_id": "bob",
        "request_id": "auto",
        "wallet_account_id": "12",
        "amount_fen": 8_000_000,
        "term_min_days": 7,
        "term_max_days": 90,
        "source": "fund",
        "fund_no": 1,
        "payout": "fund",
    }
    r = api.post("/v1/wealth/reservations", json=reservation)
    assert r.status_code == 200, r.text
    made = r.json()
    assert (made["source_kind"], made["source_ref"], made["payout_into_fund"]) == (
        "fund",
        "bob",
        True,
    )
    assert made["payout_account_id"] == "12"
    assert api.post("/v1/wealth/products", json=product("p1", *MONDAY_SALE)).status_code == 200
    # Bob's reservation bought what the fund lets one instant redemption take; the rest waits.
    got = api.get(f"/v1/wealth/reservations/{made['reservation_no']}").json()
    assert (got["filled_fen"], got["status"]) == (PER_ORDER, "open")
    r = api.post("/v1/wealth/products/p1/purchases", json=from_fund(2_000_000, "a1", payout="fund"))
    assert r.status_code == 200, r.text
    assert r.json()["payout_into_fund"] is True

    clock.at(2026, 3, 3, 10, 0)
    assert api.post("/v1/wealth/tick").json()["closed"][0]["launched"] is True
    assert (shares(api, "alice"), shares(api, "bob")) == (8_000_000, 5_000_000)
    issuer_account = api.get("/v1/wealth/issuers/icbc").json()["account_id"]
    interest_a = 2_000_000 * 425 * 30 // (10_000 * 365)
    interest_b = PER_ORDER * 425 * 30 // (10_000 * 365)
    top_up = {
        "id": "200",
        "debit_account_id": "1",
        "credit_account_id": issuer_account,
        "amount": interest_a + interest_b,
        "ledger": 156,
        "code": 1,
    }
    assert api.post("/v1/transfers", json=[top_up]).status_code == 200
    clock.at(2026, 4, 3, 10, 0)
    (matured,) = api.post("/v1/wealth/tick").json()["matured"]
    assert (matured["paid"], matured["reinvested"]) == (2, 2)
    assert shares(api, "alice") == 10_000_000 + interest_a
    assert shares(api, "bob") == 10_000_000 + interest_b
    assert balance(api, "11") == 40_000_000 and balance(api, "12") == 40_000_000
    assert fund_balanced(api)
    statuses = {p["status"] for p in api.get("/v1/wealth/purchases").json()["purchases"]}
    assert statuses == {"reinvested"}


def test_whitelisting_an_issuer(api: TestClient) -> None:
    trust = {"issuer_id": "trust-co", "name": "A Trust", "kind": "other"}
    r = api.post("/v1/wealth/issuers", json=trust)
    assert (r.json()["vetting"]["passed"], r.json()["vetting"]["rule"]) == (False, "whitelist")
    assert r.json()["whitelisted"] is False
    r = api.post("/v1/wealth/products", json=product("t1", *MONDAY_SALE, issuer_id="trust-co"))
    assert (r.status_code, r.json()["code"]) == (422, "issuer_refused")
    assert "whitelist" in r.json()["detail"]

    r = api.post("/v1/wealth/issuers/trust-co/whitelist", json={"note": "approved by risk"})
    assert r.status_code == 200, r.text
    assert (r.json()["whitelisted"], r.json()["vetting"]["passed"]) == (True, True)
    assert api.post("/v1/wealth/issuers/trust-co/whitelist", json={}).status_code == 200
    r = api.post("/v1/wealth/products", json=product("t1", *MONDAY_SALE, issuer_id="trust-co"))
    assert r.status_code == 200, r.text

    r = api.delete("/v1/wealth/issuers/trust-co/whitelist")
    assert r.status_code == 200, r.text
    assert (r.json()["whitelisted"], r.json()["vetting"]["passed"]) == (False, False)
    r = api.post("/v1/wealth/products", json=product("t2", *MONDAY_SALE, issuer_id="trust-co"))
    assert (r.status_code, r.json()["code"]) == (422, "issuer_refused")
    assert api.get("/v1/wealth/products/t1").json()["status"] == "listed"  # stays listed

    # The whitelist is not a way around a category's rule.
    small = {"issuer_id": "tiny", "name": "Small", "kind": "bank", "total_assets_fen": 100}
    assert api.post("/v1/wealth/issuers", json=small).status_code == 200
    r = api.post("/v1/wealth/issuers/tiny/whitelist", json={})
    assert (r.json()["whitelisted"], r.json()["vetting"]["rule"]) == (True, "bank_total_assets")
    assert r.json()["vetting"]["passed"] is False
    for call in (
        lambda: api.post("/v1/wealth/issuers/nobody/whitelist", json={}),
        lambda: api.delete("/v1/wealth/issuers/nobody/whitelist"),
        lambda: api.get("/v1/wealth/issuers/nobody"),
    ):
        r = call()
        assert (r.status_code, r.json()["code"]) == (404, "not_found")


def test_listing_and_cancelling_reservations_and_products(api: TestClient) -> None:
    base = {
        "wallet_account_id": "11",
        "amount_fen": 1_000_000,
        "term_min_days": 400,
        "term_max_days": 500,
    }
    first = api.post(
        "/v1/wealth/reservations", json={**base, "user_id": "alice", "request_id": "r1"}
    )
    second = api.post(
        "/v1/wealth/reservations", json={**base, "user_id": "bob", "request_id": "r1"}
    )
    assert first.status_code == second.status_code == 200
    no = first.json()["reservation_no"]
    mine = api.get("/v1/wealth/reservations", params={"user_id": "alice"}).json()
    assert [r["reservation_no"] for r in mine["reservations"]] == [no]
    assert len(api.get("/v1/wealth/reservations").json()["reservations"]) == 2

    r = api.post(f"/v1/wealth/reservations/{no}/cancel", json={"user_id": "bob"})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = api.post(f"/v1/wealth/reservations/{no}/cancel", json={"user_id": "alice"})
    assert (r.status_code, r.json()["status"]) == (200, "cancelled")
    r = api.post(f"/v1/wealth/reservations/{no}/cancel", json={"user_id": "alice"})
    assert (r.status_code, r.json()["status"]) == (200, "cancelled")
    notes = api.get("/v1/wealth/users/alice/notifications").json()["notifications"]
    assert [n["kind"] for n in notes] == ["reservation_cancelled"]
    assert api.get("/v1/wealth/reservations/999").status_code == 404

    assert api.post("/v1/wealth/products", json=product("p1", *MONDAY_SALE)).status_code == 200
    later = product("p2", "2026-03-09T09:00:00+08:00", "2026-03-10T09:00:00+08:00")
    assert api.post("/v1/wealth/products", json=later).status_code == 200
    all_products = api.get("/v1/wealth/products").json()["products"]
    assert [p["product_id"] for p in all_products] == ["p1", "p2"]
    listed = api.get("/v1/wealth/products", params={"status": "listed"}).json()["products"]
    assert len(listed) == 2
    assert api.get("/v1/wealth/products", params={"status": "matured"}).json()["products"] == []
    assert api.get("/v1/wealth/products/nope/books").status_code == 404


def test_bad_fund_requests_get_a_named_problem(api: TestClient) -> None:
    assert api.post("/v1/wealth/products", json=product("p1", *MONDAY_SALE)).status_code == 200
    path = "/v1/wealth/products/p1/purchases"
    # Nobody named "carol" holds fund shares.
    r = api.post(path, json=from_fund(100_000, "c1", user="carol", wallet="13"))
    assert (r.status_code, r.json()["code"]) == (422, "insufficient_funds")
    assert "holds nothing" in r.json()["detail"]
    subscribe(api, "alice", "11", 1_000_000)
    r = api.post(path, json=from_fund(2_000_000, "a1"))  # more than her shares
    assert (r.status_code, r.json()["code"]) == (422, "insufficient_funds")
    r = api.post(path, json=from_fund(100_000, "a2", fund_no=2))
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert "fund 2" in r.json()["detail"]
    wallet_with_fund_no = {**from_fund(100_000, "a3", fund_no=1), "source": "wallet"}
    r = api.post(path, json=wallet_with_fund_no)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_wealth_request")
    for bad in (
        {**from_fund(100_000, "a4"), "source": "card"},
        {**from_fund(100_000, "a4"), "payout": "bank"},
        {**from_fund(100_000, "a4"), "fund_no": 0},
        {k: v for k, v in from_fund(100_000, "a4").items() if k != "wallet_account_id"},
    ):
        r = api.post(path, json=bad)
        assert (r.status_code, r.json()["code"]) == (400, "validation_failed"), bad
    for method, url, params in (
        ("GET", "/v1/wealth/products", {"status": "bogus"}),
        ("GET", "/v1/wealth/purchases", {"limit": 0}),
        ("GET", "/v1/wealth/purchases", {"product_id": "a b"}),
        ("GET", "/v1/wealth/reservations/0", None),
        ("GET", "/v1/wealth/issuers/bad id", None),
    ):
        r = api.request(method, url, params=params)
        assert r.status_code == 400, (url, params, r.text)
    r = api.post("/v1/wealth/reservations/1/cancel", json={"user_id": "alice", "x": 1})
    assert r.status_code == 400
    r = api.post("/v1/wealth/issuers/icbc/whitelist", json={"note": "x" * 501})
    assert r.status_code == 400
