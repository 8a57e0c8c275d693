"""The served app the SDK's marketplace tests share: a ledger, a fund and a marketplace on
temporary files, behind uvicorn, on a clock fixed in March 2026 that a test may move."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import formicary.client as sdk
from formicary.api import create_app
from formicary.funds.calendar import BEIJING
from formicary.ledger import LedgerService, open_store
from tests.client.client_builders import served

MONDAY_10AM_NS = int(datetime(2026, 3, 2, 10, 0, tzinfo=BEIJING).timestamp() * 1e9)
OPEN = datetime(2026, 3, 2, 9, 0, tzinfo=BEIJING)
CLOSE = datetime(2026, 3, 3, 9, 0, tzinfo=BEIJING)


class Clock:
    def __init__(self) -> None:
        self.ns = MONDAY_10AM_NS
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.ns += 1_000
            return self.ns


@contextmanager
def serve_wealth(tmp_path: Path, clock: Clock) -> Iterator[str]:
    """The app with its ledger, fund and marketplace under `tmp_path`, served; yields its URL."""
    service = LedgerService(open_store(f"sqlite:///{tmp_path}/ledger.db"), clock_ns=clock)
    service.start()
    app = create_app(service=service, funds_dir=tmp_path / "funds", wealth_dir=tmp_path / "w")
    try:
        with served(app) as base_url:
            yield base_url
    finally:
        service.close()


def seed_fund_and_bank(client: sdk.Client) -> None:
    """A bank, wallet 11 with 300,000 yuan, alice's 200,000 yuan of fund shares, a big bank."""
    client.create_accounts(
        [
            sdk.AccountIn(id="1", ledger=156, code=1),
            sdk.AccountIn(id="11", ledger=156, code=2, flags=["debits_must_not_exceed_credits"]),
        ]
    )
    client.create_transfer(
        sdk.TransferIn(
            id="1",
            debit_account_id="1",
            credit_account_id="11",
            amount=3 * 10**7,
            ledger=156,
            code=1,
        )
    )
    client.fund_subscribe("alice", 11, 2 * 10**7, request_id="s1")
    client.wealth_register_issuer("icbc", "Big Bank", "bank", total_assets_fen=10**17)
