"""Fixtures for the HTTP API tests: a ledger service on each backend and a client for it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from formicary.api import create_app
from formicary.ledger.service import LedgerService
from formicary.ledger.store import open_store

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class Clock:
    """Wall-clock ns plus an offset the test can advance (to expire pending transfers)."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def __call__(self) -> int:
        return time.time_ns() + self.offset_ns

    def advance(self, seconds: float) -> None:
        self.offset_ns += int(seconds * 1_000_000_000)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api_database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database URL on each backend (PostgreSQL skipped when unreachable)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    psycopg = pytest.importorskip("psycopg")
    name = f"formicary_api_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL unreachable: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _open_store(url: str):  # TEMPORARY until the real stores land
    try:
        return open_store(url)
    except ModuleNotFoundError:
        if url.startswith("postgresql"):
            pytest.skip("postgres store not written yet")
        from memory_store import MemoryStore

        return MemoryStore()


@pytest.fixture
def service(api_database_url: str, clock: Clock) -> Iterator[LedgerService]:
    svc = LedgerService(_open_store(api_database_url), clock_ns=clock)
    svc.start()
    try:
        yield svc
    finally:
        if svc.ready:
            svc.close()


@pytest.fixture
def client(service: LedgerService) -> Iterator[TestClient]:
    with TestClient(create_app(service=service)) as test_client:
        yield test_client
