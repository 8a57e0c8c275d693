"""How payments reads the ledger's answers: retries, `exists` on resubmission, conflicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from formicary.ledger import Account, AccountFlags, LedgerService, ServiceBusy, Transfer
from formicary.payments import CNY, LedgerBusy, LedgerRejected
from formicary.payments.ledger_client import BUSY_RETRIES_MAX, LedgerClient, leg

WALLET = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)


class BusyLedger:
    """Answers ServiceBusy `busy_times` times, then passes through."""

    def __init__(self, inner: LedgerService, busy_times: int) -> None:
        self.inner = inner
        self.busy_times = busy_times
        self.calls = 0

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[str]:
        self.calls += 1
        if self.calls <= self.busy_times:
            raise ServiceBusy("queue full (injected)")
        return self.inner.create_transfers(transfers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def accounts(ledger: LedgerService) -> LedgerService:
    ledger.create_accounts(
        [Account(id=1, ledger=CNY, code=1), Account(id=2, ledger=CNY, code=1, flags=WALLET)]
    )
    return ledger


def test_a_busy_ledger_is_retried_then_given_up_on(accounts: LedgerService) -> None:
    slept: list[float] = []
    flaky = BusyLedger(accounts, 3)
    client = LedgerClient(flaky, sleep=slept.append)  # type: ignore[arg-type]
    assert client.submit([leg(10, 1, 2, 5, 1)]).applied
    assert flaky.calls == 4 and slept == [0.001, 0.002, 0.004]
    stuck = LedgerClient(BusyLedger(accounts, 10**6), sleep=lambda s: None)  # type: ignore[arg-type]
    with pytest.raises(LedgerBusy):
        stuck.submit([leg(11, 1, 2, 5, 1)])
    assert accounts.lookup_transfers([11]) == []
    assert BUSY_RETRIES_MAX * 0.2 < 5  # a caller waits about a second at most, not forever


def test_a_resubmitted_chain_reads_as_applied(accounts: LedgerService) -> None:
    client = LedgerClient(accounts)
    chain = [leg(20, 1, 2, 100, 1), leg(21, 2, 1, 40, 1), leg(22, 2, 1, 60, 1)]
    assert client.submit(chain).applied
    assert client.submit(chain).applied  # the ledger said exists, linked_event_failed...
    assert client.available_fen(2) == 0


def test_a_failed_chain_names_its_failing_leg(accounts: LedgerService) -> None:
    client = LedgerClient(accounts)
    outcome = client.submit([leg(30, 1, 2, 100, 1), leg(31, 2, 1, 101, 1)])
    assert not outcome.applied
    assert (outcome.failed_index, outcome.failed_id, outcome.failed_result) == (
        1,
        31,
        "exceeds_credits",
    )
    assert accounts.lookup_transfers([30, 31]) == []


def test_an_id_reused_for_another_movement_is_never_papered_over(
    accounts: LedgerService,
) -> None:
    client = LedgerClient(accounts)
    assert client.submit([leg(40, 1, 2, 100, 1)]).applied
    with pytest.raises(LedgerRejected, match="exists_with_different_amount"):
        client.submit([leg(40, 1, 2, 101, 1)])
