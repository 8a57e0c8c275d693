"""Red-packet claims over HTTP, on both ledger backends: a claim moves the packet into the
user's wallet to the fen; a retry with the same request id answers the same claim and moves
nothing again; every refusal with its status and code (and no money moved); and the budget is
never overspent by concurrent claims, re-sent or not."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from formicary.payments import MARKETING_ID
from tests.api.payments_http import PaymentsHttp, payments_app
from tests.payments.world import T0_NS

MERCHANT = {
    "name": "Shop",
    "category": "5411",
    "fee_plan": "online",
    "settlement_bank_code": "CMB",
    "settlement_account_number": "6214830012345678",
}


class Api(PaymentsHttp):
    """The payments routes' test client, with what claims need."""

    def user(self) -> int:
        user: int = self.ok("POST", "/users", {"name": "u", "identity_level": "full"})["id"]
        return user

    def red_packet(self, discount_fen: int, budget_fen: int, **more: Any) -> int:
        body = {
            "name": "Double 11",
            "kind": "red_packet",
            "discount_fen": discount_fen,
            "budget_fen": budget_fen,
            **more,
        }
        campaign: int = self.ok("POST", "/campaigns", body)["id"]
        return campaign

    def claim(self, campaign_id: int, user_id: int, request_id: str) -> httpx.Response:
        body = {"user_id": user_id, "request_id": request_id}
        return self.call("POST", f"/campaigns/{campaign_id}/claims", body)

    def wallet(self, user_id: int) -> int:
        available: int = self.ok("GET", f"/users/{user_id}/wallet")["available_fen"]
        return available

    def account(self, account_id: int | str) -> dict[str, Any]:
        """A ledger account, read through the ledger API."""
        response = self.client.get(f"/v1/accounts/{account_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def posted(self, account_id: int | str) -> int:
        """An account's posted balance (credits minus debits); nothing may be pending."""
        a = self.account(account_id)
        assert (a["debits_pending"], a["credits_pending"]) == (0, 0)
        balance: int = a["credits_posted"] - a["debits_posted"]
        return balance


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    with payments_app(database_url, tmp_path) as (client, clock):
        yield Api(client, clock)


@pytest.fixture
def served_api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The app under uvicorn in a thread, for requests that really run concurrently."""
    with payments_app(database_url, tmp_path, serve=True) as (client, clock):
        yield Api(client, clock)


# ----------------------------------------------------------------------------- claims


def test_a_claim_moves_the_packet_into_the_wallet_to_the_fen(api: Api) -> None:
    packet = api.red_packet(888, 2_664)  # three packets of 8.88 yuan
    campaign = api.ok("GET", f"/campaigns/{packet}")
    ada = api.user()
    wallet_account = api.ok("GET", f"/users/{ada}")["wallet_account_id"]

    response = api.claim(packet, ada, "grab-1")
    assert response.status_code == 200, response.text
    claim = response.json()
    assert claim == {
        "id": 1,
        "campaign_id": packet,
        "user_id": ada,
        "request_id": "grab-1",
        "amount_fen": 888,
        "state": "succeeded",
        "failure_code": "",
        "failure_detail": "",
        "wallet_account_id": wallet_account,
        "created_ns": T0_NS,
        "completed_ns": T0_NS,
    }
    # The packet is in the wallet: the payments view and the ledger's own account agree.
    assert api.wallet(ada) == 888
    assert api.posted(wallet_account) == 888
    # ... and came out of the budget, nowhere else: the platform funded the budget once.
    assert api.ok("GET", f"/campaigns/{packet}")["remaining_fen"] == 2_664 - 888
    assert api.posted(campaign["budget_account_id"]) == 2_664 - 888
    assert api.posted(MARKETING_ID) == -2_664

    assert api.ok("GET", f"/claims/{claim['id']}") == claim
    assert api.ok("GET", f"/campaigns/{packet}/claims") == {
        "campaign_id": packet,
        "claims": [claim],
        "next_after_id": None,
    }
    # A full page names where the next one starts.
    assert api.ok("GET", f"/campaigns/{packet}/claims?limit=1")["next_after_id"] == claim["id"]
    after = f"/campaigns/{packet}/claims?after_id={claim['id']}"
    assert api.ok("GET", after) == {"campaign_id": packet, "claims": [], "next_after_id": None}

    # It is the user's money: it pays an order of exactly that much from the wallet.
    shop = api.ok("POST", "/merchants", MERCHANT)["id"]
    order = api.ok(
        "POST", "/orders", {"merchant_id": shop, "amount_fen": 888, "merchant_order_no": "A-1"}
    )["id"]
    paid = api.ok("POST", f"/orders/{order}/pay", {"user_id": ada})
    assert (paid["state"], paid["payer_fen"]) == ("succeeded", 888)
    assert api.wallet(ada) == 0
    api.books()


def test_a_retry_answers_the_same_claim_and_moves_nothing_again(api: Api) -> None:
    packet = api.red_packet(500, 1_500)
    ada, bo = api.user(), api.user()
    first = api.claim(packet, ada, "grab-1")
    assert first.status_code == 200, first.text
    books = api.books()
    for _ in range(3):
        again = api.claim(packet, ada, "grab-1")
        assert (again.status_code, again.json()) == (200, first.json())
    assert api.books() == books
    assert api.wallet(ada) == 500
    assert len(api.ok("GET", f"/campaigns/{packet}/claims")["claims"]) == 1
    # The request id is per user: another user's claim under the same id is that user's own.
    other = api.claim(packet, bo, "grab-1").json()
    assert (other["id"], other["user_id"], other["amount_fen"]) == (2, bo, 500)
    assert (api.wallet(ada), api.wallet(bo)) == (500, 500)
    assert api.ok("GET", f"/campaigns/{packet}")["remaining_fen"] == 500


def test_the_same_request_id_for_another_campaign_is_a_conflict(api: Api) -> None:
    first, second = api.red_packet(500, 1_500), api.red_packet(300, 900)
    ada = api.user()
    assert api.claim(first, ada, "grab-1").status_code == 200
    books = api.books()
    problem = api.refused(
        "POST",
        f"/campaigns/{second}/claims",
        {"user_id": ada, "request_id": "grab-1"},
        409,
        "idempotency_conflict",
    )
    assert "grab-1" in problem["detail"]
    assert api.books() == books
    assert api.ok("GET", f"/campaigns/{second}/claims")["claims"] == []
    # Under a new id the user may claim the other campaign's packet too.
    assert api.claim(second, ada, "grab-2").json()["amount_fen"] == 300
    assert api.wallet(ada) == 800


def test_an_exhausted_budget_refuses_the_claim_and_records_it(api: Api) -> None:
    packet = api.red_packet(500, 1_000)  # two packets
    users = [api.user() for _ in range(3)]
    for n, user in enumerate(users[:2]):
        assert api.claim(packet, user, f"r-{n}").status_code == 200
    assert api.ok("GET", f"/campaigns/{packet}")["remaining_fen"] == 0
    books = api.books()
    late = users[2]
    body = {"user_id": late, "request_id": "r-late"}
    api.refused("POST", f"/campaigns/{packet}/claims", body, 422, "coupon_exhausted")
    # The refusal is recorded under the request id: a retry answers it again.
    api.refused("POST", f"/campaigns/{packet}/claims", body, 422, "coupon_exhausted")
    assert api.books() == books and api.wallet(late) == 0
    claims = api.ok("GET", f"/campaigns/{packet}/claims")["claims"]
    assert [(c["user_id"], c["state"], c["failure_code"]) for c in claims] == [
        (users[0], "succeeded", ""),
        (users[1], "succeeded", ""),
        (late, "failed", "coupon_exhausted"),
    ]
    assert api.ok("GET", f"/claims/{claims[2]['id']}") == claims[2]
    assert sum(api.wallet(u) for u in users) == 1_000
    # Closed, the campaign has nothing to return and takes no claim at all.
    assert api.ok("POST", f"/campaigns/{packet}/close")["swept_fen"] == 0
    body = {"user_id": api.user(), "request_id": "r-closed"}
    api.refused("POST", f"/campaigns/{packet}/claims", body, 422, "coupon_not_applicable")


def test_one_packet_per_user(api: Api) -> None:
    packet = api.red_packet(500, 5_000)
    ada = api.user()
    claim = api.claim(packet, ada, "grab-1").json()
    books = api.books()
    problem = api.refused(
        "POST",
        f"/campaigns/{packet}/claims",
        {"user_id": ada, "request_id": "grab-2"},
        409,
        "invalid_state",
    )
    assert f"claim {claim['id']}" in problem["detail"]
    assert api.books() == books and api.wallet(ada) == 500
    assert api.ok("GET", f"/campaigns/{packet}/claims")["claims"] == [claim]


def _refusals(api: Api) -> list[tuple[str, str, Any, int, str]]:
    """(method, path, body, status, code) of requests refused with nothing moved."""
    packet = api.red_packet(500, 5_000)
    ada = api.user()
    shop = api.ok("POST", "/merchants", MERCHANT)["id"]
    coupon = api.ok(
        "POST",
        "/campaigns",
        {"name": "c", "kind": "coupon", "discount_fen": 100, "budget_fen": 1_000},
    )["id"]
    at_one_shop = api.red_packet(100, 1_000, merchant_id=shop)
    closed = api.red_packet(100, 1_000)
    api.ok("POST", f"/campaigns/{closed}/close")
    claims = f"/campaigns/{packet}/claims"
    good = {"user_id": ada, "request_id": "r"}
    return [
        ("GET", "/claims/99", None, 404, "unknown_party"),
        ("GET", "/claims/0", None, 400, "validation_failed"),
        ("GET", "/campaigns/99/claims", None, 404, "unknown_party"),
        ("GET", f"{claims}?limit=0", None, 400, "validation_failed"),
        ("GET", f"{claims}?limit=10001", None, 400, "validation_failed"),
        ("GET", f"{claims}?after_id=-1", None, 400, "validation_failed"),
        ("POST", "/campaigns/99/claims", good, 404, "unknown_party"),
        ("POST", "/campaigns/0/claims", good, 400, "validation_failed"),
        ("POST", claims, {"user_id": 99, "request_id": "r"}, 404, "unknown_party"),
        ("POST", f"/campaigns/{coupon}/claims", good, 422, "coupon_not_applicable"),
        ("POST", f"/campaigns/{at_one_shop}/claims", good, 422, "coupon_not_applicable"),
        ("POST", f"/campaigns/{closed}/claims", good, 422, "coupon_not_applicable"),
        # Strict bodies: nothing is coerced, nothing unknown is ignored.
        ("POST", claims, {"user_id": ada}, 400, "validation_failed"),
        ("POST", claims, {"request_id": "r"}, 400, "validation_failed"),
        ("POST", claims, {"user_id": str(ada), "request_id": "r"}, 400, "validation_failed"),
        ("POST", claims, {"user_id": True, "request_id": "r"}, 400, "validation_failed"),
        ("POST", claims, {"user_id": 0, "request_id": "r"}, 400, "validation_failed"),
        ("POST", claims, {"user_id": ada, "request_id": ""}, 400, "validation_failed"),
        ("POST", claims, {"user_id": ada, "request_id": "r" * 129}, 400, "validation_failed"),
        ("POST", claims, {"user_id": ada, "request_id": 7}, 400, "validation_failed"),
        ("POST", claims, {**good, "amount_fen": 500}, 400, "validation_failed"),
        ("POST", claims, [good], 400, "validation_failed"),
    ]


def test_refusals_answer_a_problem_and_move_nothing(api: Api) -> None:
    cases = _refusals(api)
    books = api.books()
    for method, path, body, status, code in cases:
        problem = api.refused(method, path, body, status, code)
        assert problem["detail"], (method, path, body)
    assert api.books() == books
    assert api.wallet(1) == 0
    # A malformed body is refused before the core sees it: no claim row either.
    assert api.ok("GET", "/campaigns/1/claims")["claims"] == []
    # ... and the user may still claim.
    assert api.claim(1, 1, "r").json()["state"] == "succeeded"


def test_the_claims_routes_answer_options_and_are_documented(api: Api) -> None:
    response = api.call("OPTIONS", "/campaigns/1/claims")
    assert (response.status_code, response.headers["allow"]) == (204, "GET, OPTIONS, POST")
    paths = api.client.get("/openapi.json").json()["paths"]
    post = paths["/v1/payments/campaigns/{campaign_id}/claims"]["post"]
    assert {"400", "404", "409", "422", "503"} <= set(post["responses"])
    assert "get" in paths["/v1/payments/campaigns/{campaign_id}/claims"]
    assert "get" in paths["/v1/payments/claims/{claim_id}"]


# ----------------------------------------------------------------------------- concurrency


def test_concurrent_claims_never_overspend_the_budget(served_api: Api) -> None:
    api = served_api
    packet = api.red_packet(333, 1_665)  # five packets of 3.33 yuan
    budget_account = api.ok("GET", f"/campaigns/{packet}")["budget_account_id"]
    users = [api.user() for _ in range(12)]

    def claim(user_id: int) -> tuple[int, Any]:
        response = api.claim(packet, user_id, f"grab-{user_id}")
        body = response.json()
        return response.status_code, body if response.status_code == 200 else body["code"]

    # Every user claims twice at once with the same request id (an app re-sending on a timeout).
    with ThreadPoolExecutor(max_workers=2 * len(users)) as pool:
        futures = {u: (pool.submit(claim, u), pool.submit(claim, u)) for u in users}
        answers = {u: (a.result(), b.result()) for u, (a, b) in futures.items()}
    for user, (first, second) in answers.items():
        assert first == second, user  # the same claim, or the same refusal
    outcomes = sorted(str(first[1] if first[0] != 200 else "ok") for first, _ in answers.values())
    assert outcomes == ["coupon_exhausted"] * 7 + ["ok"] * 5, answers

    wallets = {u: api.wallet(u) for u in users}
    assert sorted(wallets.values()) == [0] * 7 + [333] * 5
    assert sum(wallets.values()) == 1_665
    assert api.posted(budget_account) == 0
    assert api.ok("GET", f"/campaigns/{packet}")["remaining_fen"] == 0
    claims = api.ok("GET", f"/campaigns/{packet}/claims")["claims"]
    assert len(claims) == 12
    assert sorted(c["state"] for c in claims) == ["failed"] * 7 + ["succeeded"] * 5
    for c in claims:
        assert wallets[c["user_id"]] == (333 if c["state"] == "succeeded" else 0)
    api.books()
