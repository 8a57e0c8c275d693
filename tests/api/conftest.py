"""Fixtures for the HTTP API tests: a ledger service on each backend and a client for it.

`database_url` (tests/conftest.py) is parametrized over SQLite and PostgreSQL, so every test
that uses `client` runs against both stores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from formicary.api import create_app
from formicary.ledger.service import LedgerService
from formicary.ledger.store import open_store


class Clock:
    """Wall-clock ns plus an offset the test can advance (to expire pending transfers)."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def __call__(self) -> int:
        return time.time_ns() + self.offset_ns

    def advance(self, seconds: float) -> None:
        self.offset_ns += int(seconds * 1_000_000_000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(database_url: str, clock: Clock) -> Iterator[LedgerService]:
    svc = LedgerService(open_store(database_url), clock_ns=clock)
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
