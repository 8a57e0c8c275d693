"""Fixtures for the payments tests: a real LedgerService on a temporary SQLite store, an
in-memory payments store, a fake bank and a manual clock shared by the ledger and payments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from formicary.ledger import LedgerService, open_store
from formicary.payments import FakeBank, Payments, PaymentsStore
from tests.payments.world import SECRET, T0_NS, ManualClock, World


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0_NS)


@pytest.fixture
def ledger(tmp_path: Path, clock: ManualClock) -> Iterator[LedgerService]:
    service = LedgerService(open_store(f"sqlite:///{tmp_path}/ledger.db"), clock_ns=clock)
    service.start()
    yield service
    service.close()


@pytest.fixture
def bank() -> FakeBank:
    return FakeBank()


@pytest.fixture
def payments(ledger: LedgerService, bank: FakeBank, clock: ManualClock) -> Iterator[Payments]:
    store = PaymentsStore(None)
    payments = Payments(ledger, store, bank, secret=SECRET, clock_ns=clock)
    payments.setup()
    yield payments
    store.close()


@pytest.fixture
def world(payments: Payments, ledger: LedgerService, bank: FakeBank, clock: ManualClock) -> World:
    return World(payments, ledger, bank, clock)
