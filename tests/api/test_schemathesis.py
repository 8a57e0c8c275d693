"""Property-based API conformance on SQLite: schemathesis drives every documented operation.

Checks every response: no 5xx, status codes and content types declared per route, bodies valid
against the OpenAPI schema, invalid (negative) data rejected with a 4xx. See
schemathesis_support.py; test_schemathesis_postgres.py runs the same on PostgreSQL.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python.asgi import shutdown_lifespans

from formicary.api import create_app
from tests.api.schemathesis_support import (
    MAX_EXAMPLES,
    assert_every_route_answered,
    build,
    seed,
)

_DB_DIR = tempfile.mkdtemp(prefix="formicary-schemathesis-")
app, schema = build(
    f"sqlite:///{_DB_DIR}/ledger.db", f"{_DB_DIR}/funds", f"{_DB_DIR}/payments", f"{_DB_DIR}/wealth"
)


@pytest.fixture(scope="module", autouse=True)
def _ledger_lifespan() -> Iterator[None]:
    seed(app)
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
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()


def test_the_fuzzing_reached_every_route() -> None:
    """Runs after the generated tests (file order)."""
    assert_every_route_answered(app)
