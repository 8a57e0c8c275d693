"""The SDK's red-packet claim calls against the real app served by uvicorn (a manual clock at
10:00 China Standard Time on Double 11, 2025)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

import formicary.client as sdk
from formicary.api import create_app
from formicary.client import _payments as p
from formicary.ledger import LedgerService, open_store
from tests.client.client_builders import FAST, served
from tests.payments.world import T0_NS, ManualClock


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    service = LedgerService(
        open_store(f"sqlite:///{tmp_path}/ledger.db"), clock_ns=ManualClock(T0_NS)
    )
    service.start()
    app = create_app(service=service, payments_dir=tmp_path / "payments")
    try:
        with served(app) as url:
            yield url
    finally:
        service.close()


class LostAnswers(httpx.BaseTransport):
    """Sends every request to the server, but loses the answer to the first `losses` claims
    (the server applied them; the client sees a dropped connection and retries)."""

    def __init__(self, losses: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.losses = losses
        self.claim_bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/claims"):
            self.claim_bodies.append(request.read())
            if self.losses > 0:
                self.losses -= 1
                response.read()
                response.close()
                raise httpx.ReadError("connection reset", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_sync_client_claims_red_packets(base_url: str) -> None:
    with sdk.Client(base_url, **FAST) as client:
        packet = client.payments_create_campaign(
            "Double 11", "red_packet", discount_fen=666, budget_fen=1_332
        )
        ada = client.payments_register_user("Ada")
        bo = client.payments_register_user("Bo")
        cy = client.payments_register_user("Cy")

        claim = client.payments_claim_red_packet(packet.id, ada.id, request_id="grab-1")
        assert isinstance(claim, sdk.CampaignClaimOut)
        assert (claim.campaign_id, claim.user_id, claim.request_id) == (packet.id, ada.id, "grab-1")
        assert (claim.amount_fen, claim.state, claim.failure_code) == (666, "succeeded", "")
        assert claim.wallet_account_id == ada.wallet_account_id
        assert client.payments_user_wallet(ada.id).available_fen == 666
        # A retry answers the same claim; nothing moves again.
        assert client.payments_claim_red_packet(packet.id, ada.id, request_id="grab-1") == claim
        assert client.payments_user_wallet(ada.id).available_fen == 666
        assert client.payments_claim(claim.id) == claim

        # Without a request id the client makes one up.
        by_bo = client.payments_claim_red_packet(packet.id, bo.id)
        assert len(by_bo.request_id) == 32 and by_bo.amount_fen == 666
        assert client.payments_campaign(packet.id).remaining_fen == 0

        # Refusals: the exception tree, with the stable code.
        with pytest.raises(sdk.BadRequest) as spent:
            client.payments_claim_red_packet(packet.id, cy.id, request_id="late")
        assert spent.value.code == "coupon_exhausted"
        with pytest.raises(sdk.Conflict) as twice:
            client.payments_claim_red_packet(packet.id, ada.id, request_id="grab-2")
        assert twice.value.code == "invalid_state"
        other = client.payments_create_campaign(
            "other", "red_packet", discount_fen=100, budget_fen=1_000
        )
        with pytest.raises(sdk.Conflict) as reused:
            client.payments_claim_red_packet(other.id, ada.id, request_id="grab-1")
        assert reused.value.code == "idempotency_conflict"
        coupon = client.payments_create_campaign("c", "coupon", discount_fen=100, budget_fen=1_000)
        with pytest.raises(sdk.BadRequest) as not_a_packet:
            client.payments_claim_red_packet(coupon.id, cy.id)
        assert not_a_packet.value.code == "coupon_not_applicable"
        with pytest.raises(sdk.NotFound) as missing:
            client.payments_claim(99)
        assert missing.value.code == "unknown_party"
        with pytest.raises(sdk.NotFound):
            client.payments_campaign_claims(99)

        page = client.payments_campaign_claims(packet.id)
        claims = page.claims
        assert page.next_after_id is None
        assert [(c.user_id, c.state, c.failure_code) for c in claims] == [
            (ada.id, "succeeded", ""),
            (bo.id, "succeeded", ""),
            (cy.id, "failed", "coupon_exhausted"),
        ]
        assert claims[:2] == [claim, by_bo]
        # Pages of two: the first names where the next starts; the last says no more.
        first = client.payments_campaign_claims(packet.id, limit=2)
        assert first.claims == claims[:2] and first.next_after_id == claims[1].id
        rest = client.payments_campaign_claims(packet.id, after_id=first.next_after_id, limit=2)
        assert rest.claims == claims[2:] and rest.next_after_id is None
        with pytest.raises(sdk.BadRequest):
            client.payments_campaign_claims(packet.id, limit=0)
        assert client.payments_campaign_claims(other.id).claims == []
        assert client.payments_user_wallet(cy.id).available_fen == 0


def test_the_client_s_own_retry_reuses_the_request_id(base_url: str) -> None:
    transport = LostAnswers(losses=2)
    with sdk.Client(base_url, transport=transport, **FAST) as client:
        packet = client.payments_create_campaign(
            "Double 11", "red_packet", discount_fen=500, budget_fen=5_000
        )
        ada = client.payments_register_user("Ada")
        # The server applied the first send; the client never saw its answer and sent it again
        # (twice): the same body, so the same claim, not a second one (409 `invalid_state`).
        claim = client.payments_claim_red_packet(packet.id, ada.id)
        assert claim.state == "succeeded"
        assert len(transport.claim_bodies) == 3 and len(set(transport.claim_bodies)) == 1
        assert client.payments_user_wallet(ada.id).available_fen == 500
        assert client.payments_campaign_claims(packet.id).claims == [claim]


def test_async_client_claims_never_overspend_a_budget(base_url: str) -> None:
    async def main() -> None:
        async with sdk.AsyncClient(base_url, **FAST) as client:
            packet = await client.payments_create_campaign(
                "five", "red_packet", discount_fen=250, budget_fen=1_250
            )
            users = await asyncio.gather(
                *(client.payments_register_user(f"u{n}") for n in range(10))
            )

            async def grab(user_id: int) -> str:
                try:
                    # Each user's app sends its claim twice: one claim, one answer.
                    first, second = await asyncio.gather(
                        client.payments_claim_red_packet(packet.id, user_id, request_id="g"),
                        client.payments_claim_red_packet(packet.id, user_id, request_id="g"),
                    )
                except sdk.ApiError as error:
                    return error.code
                assert first == second
                return first.state

            outcomes = await asyncio.gather(*(grab(u.id) for u in users))
            assert sorted(outcomes) == ["coupon_exhausted"] * 5 + ["succeeded"] * 5
            wallets = await asyncio.gather(*(client.payments_user_wallet(u.id) for u in users))
            assert sum(w.available_fen for w in wallets) == 1_250
            assert {w.available_fen for w in wallets} == {0, 250}
            assert (await client.payments_campaign(packet.id)).remaining_fen == 0
            claims = (await client.payments_campaign_claims(packet.id)).claims
            assert len(claims) == 10
            one = await client.payments_claim(claims[0].id)
            assert one == claims[0]

    asyncio.run(main())


def test_claim_calls_build_their_requests() -> None:
    call = p.claim_red_packet(7, 2, None)
    assert (call.method, call.path) == ("POST", "/v1/payments/campaigns/7/claims")
    body = msgspec.json.decode(call.content or b"")
    assert body["user_id"] == 2 and len(body["request_id"]) == 32  # fresh, reused by retries
    assert p.claim_red_packet(7, 2, None).content != call.content
    assert p.claim_red_packet(7, 2, "k").content == b'{"user_id":2,"request_id":"k"}'
    assert p.headers(call) == {"content-type": "application/json", "accept": "application/json"}
    assert p.campaign_claims(7).path == "/v1/payments/campaigns/7/claims"
    assert p.claim(3).path == "/v1/payments/claims/3" and p.headers(p.claim(3)) is None
    for bad in (0, -1, 2**63, True, "1", 1.0):
        with pytest.raises(ValueError):
            p.claim(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            p.campaign_claims(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            p.claim_red_packet(bad, 1, None)  # type: ignore[arg-type]
