"""Builds a schemathesis schema for one app (one ledger backend), seeds it, checks coverage.

Shared by test_schemathesis.py (SQLite) and test_schemathesis_postgres.py (PostgreSQL): the
same property-based conformance run against each store.

`positive_data_acceptance` is left out on purpose: some requests that the schema admits are
rightly refused with a 4xx the check does not expect — a 39-digit id above 2^128 - 1 (the
digit pattern cannot express the bound; 400), a string that is not a cursor we issued (400), an
Idempotency-Key reused with another body (422).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import schemathesis
from litestar import Litestar
from litestar.serialization import encode_json
from schemathesis.python.asgi import get_client

from formicary.api import create_app

MAX_EXAMPLES = 100

ROUTES = (
    "/v1/accounts",
    "/v1/transfers",
    "/v1/accounts/{account_id}",
    "/v1/transfers/{transfer_id}",
    "/v1/accounts/{account_id}/transfers",
    "/v1/accounts/{account_id}/balances",
    "/v1/accounts/{account_id}/balance",
    "/v1/ledgers/{ledger}/trial-balance",
    # The payments routes whose example id (1) `seed` fills, and the creations.
    "/v1/payments/users",
    "/v1/payments/users/{user_id}",
    "/v1/payments/users/{user_id}/wallet",
    "/v1/payments/users/{user_id}/cards",
    "/v1/payments/users/{user_id}/payment-codes",
    "/v1/payments/merchants",
    "/v1/payments/merchants/{merchant_id}",
    "/v1/payments/merchants/{merchant_id}/wallet",
    "/v1/payments/merchants/{merchant_id}/qr",
    "/v1/payments/campaigns",
    "/v1/payments/campaigns/{campaign_id}",
    "/v1/payments/campaigns/{campaign_id}/claims",
    "/v1/payments/claims/{claim_id}",
    "/v1/payments/orders",
    "/v1/payments/orders/{order_id}",
    "/v1/payments/orders/{order_id}/quote",
    "/v1/payments/payments/{payment_id}",
    "/v1/payments/payments/{payment_id}/refunds",
    "/v1/payments/settlements/{business_date}",
    # The fixed-term marketplace: `seed` lists product p-1, on sale for weeks.
    "/v1/wealth/issuers",
    "/v1/wealth/products/{product_id}",
    "/v1/wealth/reservations",
    "/v1/wealth/users/{user_id}/notifications",
    "/v1/wealth/tick",
)

_CONFIG = {
    "checks": {
        # 413 is how the API refuses a batch of more than 8,190 events (`batch_too_large`).
        "negative_data_rejection": {
            "expected-statuses": ["400", "404", "405", "409", "413", "422"]
        },
        "positive_data_acceptance": {"enabled": False},
    }
}


def build(
    database_url: str, funds_dir: str, payments_dir: str, wealth_dir: str
) -> tuple[Litestar, Any]:
    """The app on `database_url` (the fund's files in `funds_dir`, the payments core's in
    `payments_dir`, the marketplace's in `wealth_dir`) and its schema. Nothing starts here:
    schemathesis starts the app's lifespan at the first request.
    (`schemathesis.pytest.from_fixture` would be tidier but does not work with pytest 9.)"""
    app = create_app(
        database_url=database_url,
        funds_dir=funds_dir,
        payments_dir=payments_dir,
        wealth_dir=wealth_dir,
    )
    config = schemathesis.config.SchemathesisConfig.from_dict(_CONFIG)
    schema = schemathesis.openapi.from_dict(
        msgspec.json.decode(encode_json(app.openapi_schema.to_schema())), config=config
    )
    schema.app = app
    schema.location = "/openapi.json"
    return app, schema


def seed(app: Litestar) -> None:
    """Start the app the way schemathesis will call it, and put records behind the example ids
    of the OpenAPI document ("1", ledger 156) so that lookups and pages answer 200 too."""
    with get_client(app) as client:
        accounts = [
            {"id": "1", "ledger": 156, "code": 1, "flags": ["history"]},
            {"id": "2", "ledger": 156, "code": 1},
        ]
        transfers = [
            {
                "id": str(i),
                "debit_account_id": "2",
                "credit_account_id": "1",
                "amount": i,
                "ledger": 156,
                "code": 1,
            }
            for i in range(1, 6)
        ]
        for path, body in (("/v1/accounts", accounts), ("/v1/transfers", transfers)):
            response = client.post(path, json=body)
            assert response.status_code == 200, response.text
            assert {r["result"] for r in response.json()["results"]} == {"ok"}
        # Payments: user, card, merchant, campaign, red-packet claim, order, payment and refund
        # number 1.
        merchant = {
            "name": "Shop",
            "category": "5411",
            "fee_plan": "online",
            "settlement_bank_code": "CMB",
            "settlement_account_number": "6214830012345678",
        }
        card = {"bank_code": "ICBC", "card_number": "6222020200112233446"}
        campaign = {"name": "D11", "kind": "red_packet", "discount_fen": 100, "budget_fen": 10**6}
        for path, body in (
            ("/v1/payments/users", {"name": "Ada", "identity_level": "full"}),
            ("/v1/payments/users/1/cards", card),
            (
                "/v1/payments/users/1/top-ups",
                {"card_id": 1, "amount_fen": 10**6, "request_id": "s"},
            ),
            ("/v1/payments/merchants", merchant),
            ("/v1/payments/campaigns", campaign),
            ("/v1/payments/campaigns/1/claims", {"user_id": 1, "request_id": "s"}),
            (
                "/v1/payments/orders",
                {"merchant_id": 1, "amount_fen": 500, "merchant_order_no": "1"},
            ),
            ("/v1/payments/orders/1/pay", {"user_id": 1, "campaign_id": 1}),
            ("/v1/payments/payments/1/refunds", {"amount_fen": 100, "request_no": "1"}),
        ):
            response = client.post(path, json=body)
            assert response.status_code == 200, (path, response.text)
            assert response.json()["id"] == 1, (path, response.text)
        # The marketplace: a vetted bank and product p-1, on sale from an hour ago for 80 days.
        now = datetime.now(UTC)
        bank = {"issuer_id": "bank-1", "name": "Bank", "kind": "bank", "total_assets_fen": 10**17}
        listing = {
            "product_id": "p-1",
            "issuer_id": "bank-1",
            "name": "Note",
            "term_days": 30,
            "yield_bp": 400,
            "size_fen": 10**8,
            "min_purchase_fen": 100,
            "sale_open": (now - timedelta(hours=1)).isoformat(),
            "sale_close": (now + timedelta(days=80)).isoformat(),
        }
        for path, body in (("/v1/wealth/issuers", bank), ("/v1/wealth/products", listing)):
            response = client.post(path, json=body)
            assert response.status_code == 200, (path, response.text)


def assert_every_route_answered(app: Litestar) -> None:
    """Each route answered 200 at least once and nothing answered 5xx."""
    requests = app.state.context.http_metrics.requests
    ok_routes = {route for (_, route, status), count in requests.items() if status == 200}
    for route in ROUTES:
        assert route in ok_routes, (route, sorted(requests.items()))
    assert not [key for key in requests if key[2] >= 500], sorted(requests.items())
