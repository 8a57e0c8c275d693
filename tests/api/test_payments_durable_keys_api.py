"""An Idempotency-Key on the payments creations (users, merchants, campaigns) is durable: it is
passed down as the record's request id, so a retry after the server restarted (and lost its
in-memory replay cache) answers the same record, never a second one; other terms under the key
are a 409 `idempotency_conflict`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from formicary.api import create_app
from formicary.ledger.service import LedgerService
from formicary.ledger.store import open_store
from formicary.payments import PaymentsStore
from tests.payments.world import T0_NS, ManualClock

MERCHANT = {
    "name": "Shop",
    "category": "5411",
    "fee_plan": "offline_qr",
    "settlement_bank_code": "CMB",
    "settlement_account_number": "6214830012345678",
}
CAMPAIGN = {"name": "Double 11", "kind": "red_packet", "discount_fen": 500, "budget_fen": 10_000}


class Server:
    """A ledger and payments server on files in one directory, restartable as a whole."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = ManualClock(T0_NS)

    @contextmanager
    def run(self) -> Iterator[TestClient]:
        """One process lifetime: a fresh ledger service and app on the same files."""
        service = LedgerService(open_store(f"sqlite:///{self.root}/ledger.db"), clock_ns=self.clock)
        service.start()
        try:
            app = create_app(service=service, payments_dir=self.root / "payments")
            with TestClient(app) as client:
                yield client
        finally:
            service.close()

    def count(self, table: str) -> int:
        """Rows in the payments store (read while no server runs)."""
        store = PaymentsStore(self.root / "payments" / "payments.db")
        try:
            found: int = store.scalar(f"SELECT count(*) FROM {table}")
            return found
        finally:
            store.close()


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return Server(tmp_path)


def post(client: TestClient, path: str, body: Any, key: str | None = None) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(f"/v1/payments{path}", json=body, headers=headers)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def conflict(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "idempotency_conflict"
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_user_retried_after_a_restart_is_the_same_user(server: Server) -> None:
    with server.run() as client:
        ada = ok(post(client, "/users", {"name": "Ada", "identity_level": "full"}, "signup-1"))
        replay = post(client, "/users", {"name": "Ada", "identity_level": "full"}, "signup-1")
        assert ok(replay) == ada and replay.headers["Idempotent-Replayed"] == "true"
    with server.run() as client:
        retry = post(client, "/users", {"name": "Ada", "identity_level": "full"}, "signup-1")
        assert ok(retry) == ada
        assert "Idempotent-Replayed" not in retry.headers  # found in the store, not the cache
        assert ok(client.get(f"/v1/payments/users/{ada['id']}")) == ada
        # Now cached again in this process: the next retry is an exact replay.
        again = post(client, "/users", {"name": "Ada", "identity_level": "full"}, "signup-1")
        assert ok(again) == ada and again.headers["Idempotent-Replayed"] == "true"
    assert server.count("users") == 1


def test_a_merchant_retried_after_a_restart_is_the_same_merchant(server: Server) -> None:
    with server.run() as client:
        shop = ok(post(client, "/merchants", MERCHANT, "onboard-1"))
    with server.run() as client:
        assert ok(post(client, "/merchants", MERCHANT, "onboard-1")) == shop
    assert server.count("merchants") == 1


def test_a_campaign_retried_after_a_restart_is_funded_once(server: Server) -> None:
    with server.run() as client:
        campaign = ok(post(client, "/campaigns", CAMPAIGN, "d11"))
        books = ok(client.get("/v1/ledgers/156/trial-balance"))
    with server.run() as client:
        assert ok(post(client, "/campaigns", CAMPAIGN, "d11")) == campaign
        assert ok(client.get("/v1/ledgers/156/trial-balance")) == books  # nothing moved again
        shop = ok(post(client, "/merchants", MERCHANT))["id"]
    with server.run() as client:
        # The key is per funder: under it, a merchant's campaign is another campaign (once the
        # cache, which knows the key by route and body only, is gone).
        funded = {**CAMPAIGN, "funder_merchant_id": shop, "budget_fen": 500}
        refused = post(client, "/campaigns", funded, "d11")  # its wallet is empty
        assert (refused.status_code, refused.json()["code"]) == (
            422,
            "merchant_balance_insufficient",
        )
    with server.run() as client:
        # The refused campaign keeps its answer under its key (a new try needs a new key).
        again = post(client, "/campaigns", funded, "d11")
        assert again.json()["code"] == "merchant_balance_insufficient"
    assert server.count("campaigns") == 2  # the merchant's row stays, failed, under its key


@pytest.mark.parametrize(
    ("path", "first", "other"),
    [
        ("/users", {"name": "Ada"}, {"name": "Bo"}),
        ("/users", {"name": "Ada"}, {"name": "Ada", "identity_level": "full"}),
        ("/merchants", MERCHANT, {**MERCHANT, "settlement_account_number": "6214830099995678"}),
        ("/campaigns", CAMPAIGN, {**CAMPAIGN, "budget_fen": 20_000}),
    ],
)
def test_other_terms_under_a_key_after_a_restart_are_409(
    server: Server, path: str, first: dict[str, Any], other: dict[str, Any]
) -> None:
    table = path.strip("/")
    with server.run() as client:
        ok(post(client, path, first, "k-1"))
        # Within the process the cache sees another body first: 422, as before.
        reused = post(client, path, other, "k-1")
        assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    with server.run() as client:
        conflict(post(client, path, other, "k-1"))
        conflict(post(client, path, other, "k-1"))  # a refusal is not cached: the store answers
        ok(post(client, path, first, "k-1"))
    assert server.count(table) == 1


def test_same_terms_in_another_body_after_a_restart_are_the_same_user(server: Server) -> None:
    # The store compares terms, not bytes: the default level spelled out is the same request.
    with server.run() as client:
        ada = ok(post(client, "/users", {"name": "Ada"}, "signup-1"))
    with server.run() as client:
        body = {"identity_level": "basic", "name": "Ada"}
        assert ok(post(client, "/users", body, "signup-1")) == ada
    assert server.count("users") == 1


def test_a_long_key_is_durable_too(server: Server) -> None:
    # Header keys may be 255 characters, longer than the core keeps: they are stored digested.
    key = "k" * 255
    with server.run() as client:
        ada = ok(post(client, "/users", {"name": "Ada"}, key))
        other = ok(post(client, "/users", {"name": "Ada"}, key[:-1] + "j"))
        assert other["id"] != ada["id"]
    with server.run() as client:
        conflict(post(client, "/users", {"name": "Bo"}, key))
        assert ok(post(client, "/users", {"name": "Ada"}, key)) == ada
    assert server.count("users") == 2


def test_without_a_key_every_creation_is_new(server: Server) -> None:
    with server.run() as client:
        first = ok(post(client, "/users", {"name": "Ada"}))
        second = ok(post(client, "/users", {"name": "Ada"}))
        assert second["id"] == first["id"] + 1
        assert ok(post(client, "/merchants", MERCHANT))["id"] == 1
        assert ok(post(client, "/merchants", MERCHANT))["id"] == 2
    assert (server.count("users"), server.count("merchants")) == (2, 2)
