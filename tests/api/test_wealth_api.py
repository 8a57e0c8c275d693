"""The fixed-term marketplace over HTTP, on both ledger backends: list, buy, reserve, tick."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from litestar.testing import TestClient

from formicary.api import create_app
from formicary.funds.calendar import BEIJING
from formicary.ledger.service import LedgerService
from formicary.ledger.store import open_store

MONDAY_10AM_NS = int(datetime(2026, 3, 2, 10, 0, tzinfo=BEIJING).timestamp() * 1e9)
DAY_NS = 86_400 * 10**9
RICH_BANK = {"issuer_id": "icbc", "name": "Big Bank", "kind": "bank", "total_assets_fen": 10**17}


class FixedClock:
    def __init__(self) -> None:
        self.ns = MONDAY_10AM_NS

    def __call__(self) -> int:
        self.ns += 1_000  # strictly moving; tests jump it by hand
        return self.ns


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
            # A bank, two wallets with 1,000,000 fen each and an empty one.
            flags = ["debits_must_not_exceed_credits"]
            accounts = [
                {"id": "1", "ledger": 156, "code": 1},
                *({"id": n, "ledger": 156, "code": 2, "flags": flags} for n in ("11", "12", "13")),
            ]
            assert client.post("/v1/accounts", json=accounts).status_code == 200
            transfers = [
                {
                    "id": str(n),
                    "debit_account_id": "1",
                    "credit_account_id": str(wallet),
                    "amount": 1_000_000,
                    "ledger": 156,
                    "code": 1,
                }
                for n, wallet in ((100, 11), (101, 12))
            ]
            assert client.post("/v1/transfers", json=transfers).status_code == 200
            yield client
    finally:
        service.close()


def product(
    product_id: str, open_at: str, close_at: str, issuer: str = "icbc"
) -> dict[str, object]:
    return {
        "product_id": product_id,
        "issuer_id": issuer,
        "name": "30-day note",
        "term_days": 30,
        "yield_bp": 425,
        "size_fen": 500_000,
        "min_purchase_fen": 100_000,
        "sale_open": open_at,
        "sale_close": close_at,
    }


def buy(wallet: str, amount: int, request_id: str, user: str = "alice") -> dict[str, object]:
    return {
        "user_id": user,
        "wallet_account_id": wallet,
        "amount": amount,
        "request_id": request_id,
    }


def balance(api: TestClient, account: str) -> int:
    a = api.get(f"/v1/accounts/{account}").json()
    return int(a["credits_posted"]) - int(a["debits_posted"])


def test_issuer_vetting_and_refused_listing(api: TestClient) -> None:
    r = api.post("/v1/wealth/issuers", json=RICH_BANK)
    assert r.status_code == 200, r.text
    assert r.json()["vetting"]["passed"] is True
    assert r.json()["vetting"]["rule"] == "bank_total_assets"
    small = {"issuer_id": "tiny", "name": "Small Bank", "kind": "bank", "total_assets_fen": 100}
    r = api.post("/v1/wealth/issuers", json=small)
    assert (r.status_code, r.json()["vetting"]["passed"]) == (200, False)
    insurer = {"issuer_id": "pc", "name": "PC", "kind": "pc_insurer", "solvency_ratio_pct": "180.5"}
    assert api.post("/v1/wealth/issuers", json=insurer).json()["vetting"]["passed"] is True

    r = api.post(
        "/v1/wealth/products",
        json=product("p0", "2026-03-02T09:00:00+08:00", "2026-03-03T09:00:00+08:00", "tiny"),
    )
    assert (r.status_code, r.json()["code"]) == (422, "issuer_refused")
    assert "bank_total_assets" in r.json()["detail"]
    r = api.post(
        "/v1/wealth/products",
        json=product("p0", "2026-03-02T09:00:00+08:00", "2026-03-03T09:00:00+08:00", "nobody"),
    )
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert api.get("/v1/wealth/products/p0").status_code == 404
    bad = {**RICH_BANK, "kind": "casino"}
    assert api.post("/v1/wealth/issuers", json=bad).status_code == 400


def test_reserve_buy_close_and_mature(api: TestClient, clock: FixedClock) -> None:
    assert api.post("/v1/wealth/issuers", json=RICH_BANK).status_code == 200
    reservation = {
        "user_id": "bob",
        "request_id": "res-1",
        "wallet_account_id": "12",
        "amount_fen": 200_000,
        "term_min_days": 7,
        "term_max_days": 90,
        "min_yield_bp": 400,
    }
    r = api.post("/v1/wealth/reservations", json=reservation)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["replayed"]) == ("open", False)
    assert api.post("/v1/wealth/reservations", json=reservation).json()["replayed"] is True

    # On sale now: bob's reservation buys at the listing.
    r = api.post(
        "/v1/wealth/products",
        json=product("p1", "2026-03-02T09:00:00+08:00", "2026-03-03T09:00:00+08:00"),
    )
    assert r.status_code == 200, r.text
    listed = r.json()
    assert (listed["status"], listed["remaining_fen"], listed["yield_percent"]) == (
        "listed",
        300_000,
        "4.25",
    )
    assert (listed["value_date"], listed["maturity_date"]) == ("2026-03-04", "2026-04-03")
    # Listing again with the same terms answers the product.
    same = api.post(
        "/v1/wealth/products",
        json=product("p1", "2026-03-02T09:00:00+08:00", "2026-03-03T09:00:00+08:00"),
    )
    assert same.json()["product_no"] == listed["product_no"]

    r = api.post("/v1/wealth/products/p1/purchases", json=buy("11", 200_000, "b1"))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["replayed"]) == ("reserved", False)
    again = api.post("/v1/wealth/products/p1/purchases", json=buy("11", 200_000, "b1"))
    assert again.json()["replayed"] is True
    assert api.get("/v1/wealth/products/p1").json()["remaining_fen"] == 100_000

    r = api.post("/v1/wealth/products/p1/purchases", json=buy("11", 200_000, "b2"))
    assert (r.status_code, r.json()["code"]) == (422, "sold_out")
    r = api.post("/v1/wealth/products/p1/purchases", json=buy("13", 100_000, "b3", user="carol"))
    assert (r.status_code, r.json()["code"]) == (422, "insufficient_funds")
    r = api.post("/v1/wealth/products/p1/purchases", json=buy("11", 50_000, "b4"))
    assert (r.status_code, r.json()["code"]) == (422, "invalid_wealth_request")
    r = api.post("/v1/wealth/products/nope/purchases", json=buy("11", 100_000, "b5"))
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    later = product("p2", "2026-03-05T09:00:00+08:00", "2026-03-06T09:00:00+08:00")
    assert api.post("/v1/wealth/products", json=later).status_code == 200
    r = api.post("/v1/wealth/products/p2/purchases", json=buy("11", 100_000, "b6"))
    assert (r.status_code, r.json()["code"]) == (422, "not_on_sale")
    assert balance(api, "11") == 1_000_000  # pending until the close

    notes = api.get("/v1/wealth/users/bob/notifications").json()["notifications"]
    assert notes and notes[0]["product_id"] == "p1" and notes[0]["amount_fen"] == 200_000
    assert api.get("/v1/wealth/users/nobody/notifications").json()["notifications"] == []

    # After the close: p1 launches with 400,000 fen raised.
    clock.ns = MONDAY_10AM_NS + DAY_NS
    r = api.post("/v1/wealth/tick")
    assert r.status_code == 200, r.text
    (closed,) = r.json()["closed"]
    assert (closed["product_id"], closed["launched"], closed["raised_fen"]) == ("p1", True, 400_000)
    assert api.get("/v1/wealth/products/p1").json()["status"] == "launched"
    assert balance(api, "11") == 800_000

    # At maturity the issuer must hold principal plus interest: give it the interest.
    issuer_account = api.post("/v1/wealth/issuers", json=RICH_BANK).json()["account_id"]
    interest = 2 * (200_000 * 425 * 30 // (10_000 * 365))
    top_up = {
        "id": "102",
        "debit_account_id": "1",
        "credit_account_id": issuer_account,
        "amount": interest,
        "ledger": 156,
        "code": 1,
    }
    assert api.post("/v1/transfers", json=[top_up]).status_code == 200
    clock.ns = int(datetime(2026, 4, 3, 10, 0, tzinfo=BEIJING).timestamp() * 1e9)
    r = api.post("/v1/wealth/tick")
    assert r.status_code == 200, r.text
    matured = [m for m in r.json()["matured"] if m["product_id"] == "p1"]
    assert matured and matured[0]["paid"] == 2 and matured[0]["interest_fen"] == interest
    assert balance(api, "11") == 1_000_000 + interest // 2
    assert api.get("/v1/wealth/products/p1").json()["status"] == "matured"
    # Nothing more is due.
    assert api.post("/v1/wealth/tick").json()["matured"] == []


def test_bad_requests_get_a_problem(api: TestClient) -> None:
    assert api.post("/v1/wealth/issuers", json=RICH_BANK).status_code == 200
    far = product("p9", "9999-03-02T09:00:00+08:00", "9999-03-03T09:00:00+08:00")
    assert api.post("/v1/wealth/products", json=far).status_code == 400
    ended = product("p8", "2026-02-01T09:00:00+08:00", "2026-02-02T09:00:00+08:00")
    r = api.post("/v1/wealth/products", json=ended)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_wealth_request")
    r = api.post("/v1/wealth/products/p1/purchases", json=buy("x1", 100_000, "b1"))
    assert r.status_code == 400
    r = api.get("/v1/wealth/users/bob/notifications", params={"limit": 0})
    assert r.status_code == 400
