"""The schemathesis conformance run of test_schemathesis.py, on a PostgreSQL ledger.

The app and its schema are built at import (the schema must exist before collection), the
database when the module's tests start; it is dropped when they are done. The module is skipped
if the server is unreachable.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python.asgi import shutdown_lifespans

from tests.api.schemathesis_support import (
    MAX_EXAMPLES,
    assert_every_route_answered,
    build,
    seed,
)
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.postgres

try:
    _admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
except psycopg.OperationalError as error:
    pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {error}", allow_module_level=True)

# The app only connects when its lifespan starts (first request), so the database itself is
# created by the fixture: a run that stops before this module (-x, -k) leaves nothing behind.
_DB_NAME = f"formicary_schemathesis_{uuid.uuid4().hex[:12]}"
# The fund's, the payments core's and the marketplace's own files (SQLite, whatever the
# ledger's backend).
_FILES_DIR = tempfile.mkdtemp(prefix="formicary-schemathesis-files-")
app, schema = build(
    f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{_DB_NAME}",
    f"{_FILES_DIR}/funds",
    f"{_FILES_DIR}/payments",
    f"{_FILES_DIR}/wealth",
)


@pytest.fixture(scope="module", autouse=True)
def _ledger_lifespan() -> Iterator[None]:
    _admin.execute(f'CREATE DATABASE "{_DB_NAME}"')
    try:
        seed(app)
        yield
    finally:
        shutdown_lifespans()
        _admin.execute(f'DROP DATABASE IF EXISTS "{_DB_NAME}" WITH (FORCE)')
        _admin.close()
        shutil.rmtree(_FILES_DIR, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()


def test_the_fuzzing_reached_every_route() -> None:
    """Runs after the generated tests (file order)."""
    assert_every_route_answered(app)
