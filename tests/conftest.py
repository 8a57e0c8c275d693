"""Fixtures shared by every test directory: a fresh database URL on each backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

# The local PostgreSQL server the tests create their throw-away databases on (trust auth).
PG_ADMIN_URL = os.environ.get(
    "FORMICARY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database_url_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], str]]:
    """A function that returns the URL of a new, empty database on the parametrized backend
    each time it is called; every database it made is dropped after the test. PostgreSQL
    tests are skipped when the server is unreachable."""
    if request.param == "sqlite":

        def new_sqlite() -> str:
            return f"sqlite:///{tmp_path_factory.mktemp('ledger')}/ledger.db"

        yield new_sqlite
        return

    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {e}")
    created: list[str] = []

    def new_postgres() -> str:
        name = f"formicary_test_{uuid.uuid4().hex[:16]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"

    try:
        yield new_postgres
    finally:
        for name in created:
            # FORCE: a connection the test leaked must not leave the database behind.
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def database_url(database_url_factory: Callable[[], str]) -> str:
    """A fresh, empty database URL, parametrized over ["sqlite", "postgres"]:
    sqlite:///<tmp>/ledger.db, or a new PostgreSQL database dropped after the test."""
    return database_url_factory()
