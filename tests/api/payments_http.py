"""What the HTTP tests of the payments routes share: a client for /v1/payments with the app's
clock, and the app on a fresh ledger, in process or served by uvicorn (for requests that really
run concurrently)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import TestClient

from formicary.api import create_app
from formicary.ledger.service import LedgerService
from formicary.ledger.store import open_store
from tests.client.client_builders import served
from tests.payments.world import T0_NS, ManualClock


class PaymentsHttp:
    """A test client for the payments routes (a TestClient, or httpx against uvicorn)."""

    def __init__(self, client: TestClient | httpx.Client, clock: ManualClock) -> None:
        self.client = client
        self.clock = clock

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return self.client.request(method, f"/v1/payments{path}", json=body, params=params or None)

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.call(method, path, body, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def refused(
        self, method: str, path: str, body: Any, status: int, code: str, **params: Any
    ) -> Any:
        response = self.call(method, path, body, **params)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        return response.json()

    def books(self) -> dict[str, Any]:
        """The CNY ledger's trial balance: any movement of money changes it."""
        response = self.client.get("/v1/ledgers/156/trial-balance")
        assert response.status_code == 200, response.text
        books: dict[str, Any] = response.json()
        assert books["balanced"]
        return books


@contextmanager
def payments_app(
    database_url: str, tmp_path: Path, *, serve: bool = False
) -> Iterator[tuple[TestClient | httpx.Client, ManualClock]]:
    """A client of the app on a new ledger whose clock starts at 10:00 China Standard Time on
    Double 11, 2025; with `serve`, the app runs under uvicorn in a thread."""
    clock = ManualClock(T0_NS)
    service = LedgerService(open_store(database_url), clock_ns=clock)
    service.start()
    try:
        app = create_app(service=service, payments_dir=tmp_path / "payments")
        if serve:
            with served(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
                yield client, clock
        else:
            with TestClient(app) as test_client:
                yield test_client, clock
    finally:
        service.close()
