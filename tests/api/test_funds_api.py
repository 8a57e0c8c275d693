"""The money-market fund over HTTP, on both ledger backends: orders, income, errors."""

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


class FixedClock:
    def __init__(self) -> None:
        self.ns = MONDAY_10AM_NS

    def __call__(self) -> int:
        self.ns += 1_000  # strictly moving, never jumping a day
        return self.ns


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    service = LedgerService(open_store(database_url), clock_ns=FixedClock())
    service.start()
    try:
        app = create_app(service=service, funds_dir=tmp_path / "funds")
        with TestClient(app) as client:
            # A bank and two wallets with 1,000,000 fen each.
            accounts = [
                {"id": "1", "ledger": 156, "code": 1},
                {"id": "11", "ledger": 156, "code": 2, "flags": ["debits_must_not_exceed_credits"]},
                {"id": "12", "ledger": 156, "code": 2, "flags": ["debits_must_not_exceed_credits"]},
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


def order(wallet: str, amount: int, request_id: str, user: str = "alice") -> dict[str, object]:
    return {
        "user_id": user,
        "wallet_account_id": wallet,
        "amount": amount,
        "request_id": request_id,
    }


def test_subscribe_post_income_redeem_and_read_back(api: TestClient) -> None:
    r = api.post("/v1/funds/1/subscriptions", json=order("11", 600_000, "s1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["confirm_day"], body["earning_day"], body["replayed"]) == (
        "2026-03-02",
        "2026-03-03",
        False,
    )
    assert api.post("/v1/funds/1/subscriptions", json=order("11", 600_000, "s1")).json()["replayed"]
    api.post("/v1/funds/1/subscriptions", json=order("12", 400_000, "s1", user="bob"))

    r = api.post("/v1/funds/1/days/2026-03-03/income", json={"income_fen": 100})
    assert r.status_code == 200, r.text
    day = r.json()
    assert day["balanced"] is True
    assert day["day"]["wanfen_yuan"] == "1.0000" and day["day"]["paid_holders"] == 2
    # The same day again: unchanged; with another income: a conflict.
    assert api.post("/v1/funds/1/days/2026-03-03/income", json={"income_fen": 100}).json() == day
    r = api.post("/v1/funds/1/days/2026-03-03/income", json={"income_fen": 101})
    assert (r.status_code, r.json()["code"]) == (409, "fund_conflict")

    holding = api.get("/v1/funds/1/holders/alice").json()
    assert holding["shares"] == 600_060
    assert holding["income"] == [{"day": "2026-03-03", "income_fen": 60, "wanfen_yuan": "1.0000"}]

    r = api.post("/v1/funds/1/redemptions", json={**order("11", 60, "r1"), "instant": True})
    assert r.status_code == 200 and r.json()["kind"] == "redeem_instant"
    wallet = api.get("/v1/accounts/11").json()
    assert wallet["credits_posted"] - wallet["debits_posted"] == 1_000_000 - 600_000 + 60
    days = api.get("/v1/funds/1/days", params={"from": "2026-03-01"}).json()["days"]
    assert [d["day"] for d in days] == ["2026-03-03"]
    books = api.get("/v1/funds/1/books").json()
    assert books["balanced"] is True and books["custody_cash_fen"] == 1_000_100 - 60


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/funds/1/subscriptions", order("11", 99, "x"), 422, "invalid_order"),
        ("/v1/funds/1/subscriptions", order("11", 2_000_000, "x"), 422, "insufficient_funds"),
        ("/v1/funds/1/subscriptions", order("99", 500, "x"), 422, "invalid_order"),
        ("/v1/funds/1/subscriptions", order("1x", 500, "x"), 400, "validation_failed"),
        ("/v1/funds/1/subscriptions", order("11", 0, "x"), 400, "validation_failed"),
        ("/v1/funds/1/subscriptions", {"user_id": "a"}, 400, "validation_failed"),
        # Strict bodies: no string for a number, no unknown (misspelt) field.
        (
            "/v1/funds/1/subscriptions",
            {**order("11", 500, "x"), "amount_fen": "500"},
            400,
            "validation_failed",
        ),
        (
            "/v1/funds/1/subscriptions",
            {**order("11", 500, "x"), "amout_fen": 5},
            400,
            "validation_failed",
        ),
        ("/v1/funds/1/days/2026-03-03/income", {"income_fen": "7"}, 400, "validation_failed"),
        ("/v1/funds/2/subscriptions", order("11", 500, "x"), 404, "not_found"),
        ("/v1/funds/1/redemptions", order("11", 500, "x", user="nobody"), 404, "not_found"),
        ("/v1/funds/1/redemptions", order("11", 5_000_001, "x"), 422, "instant_limit_exceeded"),
        ("/v1/funds/1/days/2026-13-01/income", {"income_fen": 1}, 400, "validation_failed"),
        ("/v1/funds/1/days/2026-03-02/income", {"income_fen": 1}, 409, "fund_conflict"),
    ],
)
def test_bad_requests_get_a_problem_and_change_nothing(
    api: TestClient, path: str, body: dict[str, object], status: int, code: str
) -> None:
    api.post("/v1/funds/1/subscriptions", json=order("11", 10_000, "seed"))
    r = api.post(path, json=body)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert api.get("/v1/funds/1/books").json()["custody_cash_fen"] == 10_000


def test_redeeming_more_than_held_is_refused(api: TestClient) -> None:
    api.post("/v1/funds/1/subscriptions", json=order("11", 10_000, "s"))
    r = api.post("/v1/funds/1/redemptions", json={**order("11", 10_001, "r"), "instant": False})
    assert (r.status_code, r.json()["code"]) == (422, "insufficient_shares")
    assert api.get("/v1/funds/1/holders/alice").json()["shares"] == 10_000
