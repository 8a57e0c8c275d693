"""Property-based API conformance: schemathesis drives every documented operation of the app.

Checks every response: no 5xx, status codes and content types declared per route, bodies valid
against the OpenAPI schema, invalid (negative) data rejected with a 4xx.

`positive_data_acceptance` is left out on purpose: some requests that the schema admits are
rightly refused with a 4xx the check does not expect — a 39-digit id above 2^128 - 1 (the
digit pattern cannot express the bound; 400), a string that is not a cursor we issued (400), an
Idempotency-Key reused with another body (422).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar.serialization import encode_json
from schemathesis.python.asgi import get_client, shutdown_lifespans

from formicary.api import create_app

MAX_EXAMPLES = 100

# The app owns its service: schemathesis starts the app's lifespan (opening a fresh SQLite
# ledger) at the first request and the fixture below shuts it down. The schema is built here,
# at import, without starting anything. (`schemathesis.pytest.from_fixture` would be tidier
# but does not work with pytest 9.)
_DB_DIR = tempfile.mkdtemp(prefix="formicary-schemathesis-")
app = create_app(database_url=f"sqlite:///{_DB_DIR}/ledger.db")
config = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "checks": {
            # 413 is how the API refuses a batch of more than 8,190 events (`batch_too_large`).
            "negative_data_rejection": {
                "expected-statuses": ["400", "404", "405", "409", "413", "422"]
            },
            "positive_data_acceptance": {"enabled": False},
        }
    }
)
schema = schemathesis.openapi.from_dict(
    msgspec.json.decode(encode_json(app.openapi_schema.to_schema())), config=config
)
schema.app = app
schema.location = "/openapi.json"


@pytest.fixture(scope="module", autouse=True)
def _ledger_lifespan() -> Iterator[None]:
    # Start the app the way schemathesis will call it, and put records behind the example ids
    # of the OpenAPI document ("1", ledger 156) so that lookups and pages answer 200 too.
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
    try:
        yield
    finally:
        shutdown_lifespans()
        shutil.rmtree(_DB_DIR, ignore_errors=True)


def test_schema_matches_the_served_one() -> None:
    from litestar.testing import TestClient

    with TestClient(create_app(database_url=f"sqlite:///{_DB_DIR}/other.db")) as client:
        served = client.get("/openapi.json").json()
    assert served == schema.raw_schema


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()


def test_the_fuzzing_reached_every_route() -> None:
    """Runs after the generated tests (file order): each route answered 200 at least once."""
    requests = app.state.context.http_metrics.requests
    ok_routes = {route for (_, route, status), count in requests.items() if status == 200}
    for route in (
        "/v1/accounts",
        "/v1/transfers",
        "/v1/accounts/{account_id}",
        "/v1/transfers/{transfer_id}",
        "/v1/accounts/{account_id}/transfers",
        "/v1/accounts/{account_id}/balances",
        "/v1/accounts/{account_id}/balance",
        "/v1/ledgers/{ledger}/trial-balance",
    ):
        assert route in ok_routes, (route, sorted(requests.items()))
    assert not [key for key in requests if key[2] >= 500], sorted(requests.items())
