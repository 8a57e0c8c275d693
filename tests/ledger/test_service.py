"""LedgerService: group commit, back-pressure, request boundaries, recovery, idle expiry."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from formicary.ledger.engine import BatchOutcome
from formicary.ledger.service import (
    BatchTooLarge,
    LedgerService,
    ServiceBusy,
    ServiceUnavailable,
)
from formicary.ledger.store import Store, open_store
from formicary.ledger.types import Account, AccountFlags, Transfer, TransferFlags

CNY = 156
WALLET = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)


def _accounts(service: LedgerService, count: int) -> None:
    batch = [Account(id=1, ledger=CNY, code=1)]
    batch += [Account(id=i, ledger=CNY, code=2, flags=WALLET) for i in range(2, count + 2)]
    assert set(service.create_accounts(batch)) == {"ok"}


def _transfer(tid: int, debit: int, credit: int, amount: int, **fields: Any) -> Transfer:
    return Transfer(
        id=tid,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        ledger=CNY,
        code=1,
        **fields,
    )


class SlowStore:
    """Wraps a store; commits wait on a gate so requests pile up behind the writer."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.commits = 0
        self.fail_next = False
        self.waiting = threading.Event()  # a commit has started (and waits on the gate)

    def commit(self, outcome: BatchOutcome) -> None:
        self.waiting.set()
        self.gate.wait(timeout=30)
        if self.fail_next:
            self.fail_next = False
            raise OSError("disk on fire (injected)")
        self.commits += 1
        self.inner.commit(outcome)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def slow_store(database_url: str) -> SlowStore:
    return SlowStore(open_store(database_url))


def test_concurrent_requests_share_one_commit(slow_store: SlowStore) -> None:
    with LedgerService(slow_store) as service:  # type: ignore[arg-type]
        _accounts(service, 10)
        assert service.create_transfers([_transfer(1, 1, 2, 1_000)]) == ["ok"]
        commits_before = slow_store.commits
        slow_store.gate.clear()
        # One request occupies the writer; 50 more queue behind it and must coalesce.
        first = service.submit_transfers([_transfer(2, 1, 3, 5)])
        time.sleep(0.05)  # let the writer pick up the first request and block on the gate
        futures = [service.submit_transfers([_transfer(100 + i, 1, 4, 1)]) for i in range(50)]
        slow_store.gate.set()
        assert first.result(timeout=30) == ["ok"]
        assert [f.result(timeout=30) for f in futures] == [["ok"]] * 50
        assert slow_store.commits - commits_before == 2
        assert service.metrics.batches >= 3


def test_full_queue_answers_busy_and_applies_nothing(database_url: str) -> None:
    store = SlowStore(open_store(database_url))
    with LedgerService(store, batch_events_max=10, queue_events_max=20) as service:  # type: ignore[arg-type]
        _accounts(service, 3)
        store.gate.clear()
        running = service.submit_transfers([_transfer(1, 1, 2, 1)])
        time.sleep(0.05)
        queued = [service.submit_transfers([_transfer(10 + i, 1, 2, 1)] * 1) for i in range(20)]
        with pytest.raises(ServiceBusy, match="retry"):
            service.submit_transfers([_transfer(99, 1, 2, 1)])
        store.gate.set()
        running.result(timeout=30)
        for future in queued:
            future.result(timeout=30)
        assert service.lookup_transfers([99]) == []
        assert service.metrics.busy_rejections == 1


def test_batch_limits(database_url: str) -> None:
    with LedgerService(open_store(database_url), batch_events_max=5) as service:
        with pytest.raises(BatchTooLarge):
            service.create_transfers([])
        with pytest.raises(BatchTooLarge):
            service.create_transfers([_transfer(i, 1, 2, 1) for i in range(1, 7)])


def test_a_chain_never_crosses_request_boundaries(slow_store: SlowStore) -> None:
    with LedgerService(slow_store) as service:  # type: ignore[arg-type]
        _accounts(service, 3)
        service.create_transfers([_transfer(1, 1, 2, 100)])
        slow_store.gate.clear()
        blocker = service.submit_transfers([_transfer(2, 1, 2, 1)])
        time.sleep(0.05)
        linked = int(TransferFlags.LINKED)
        open_chain = service.submit_transfers([_transfer(3, 2, 3, 10, flags=linked)])
        next_request = service.submit_transfers([_transfer(4, 2, 3, 10)])
        slow_store.gate.set()
        blocker.result(timeout=30)
        assert open_chain.result(timeout=30) == ["linked_event_chain_open"]
        assert next_request.result(timeout=30) == ["ok"]


def test_failed_commit_answers_unavailable_and_rebuilds_from_store(
    slow_store: SlowStore,
) -> None:
    with LedgerService(slow_store) as service:  # type: ignore[arg-type]
        _accounts(service, 3)
        assert service.create_transfers([_transfer(1, 1, 2, 100)]) == ["ok"]
        slow_store.fail_next = True
        with pytest.raises(ServiceUnavailable, match="nothing was applied"):
            service.create_transfers([_transfer(2, 1, 2, 50)])
        # The engine had applied transfer 2 in memory; it must be gone after the rebuild.
        (wallet,) = service.lookup_accounts([2])
        assert wallet.credits_posted == 100
        assert service.create_transfers([_transfer(2, 1, 2, 50)]) == ["ok"]
        (wallet,) = service.lookup_accounts([2])
        assert wallet.credits_posted == 150
        assert service.metrics.commit_failures == 1


def test_a_failed_commit_fails_the_batches_applied_after_it(slow_store: SlowStore) -> None:
    """While batch A commits, the engine already applies batch B (the pipeline); B spends money
    that only A brought. If A's commit fails, B must be failed too, never committed."""
    with LedgerService(slow_store) as service:  # type: ignore[arg-type]
        _accounts(service, 3)
        assert service.create_transfers([_transfer(1, 1, 2, 100)]) == ["ok"]
        slow_store.gate.clear()
        slow_store.waiting.clear()
        a = service.submit_transfers([_transfer(2, 1, 2, 50)])
        assert slow_store.waiting.wait(timeout=30)  # A is being committed
        b = service.submit_transfers([_transfer(3, 2, 3, 140)])  # needs A's 50
        deadline = time.monotonic() + 30
        while service.queued_events and time.monotonic() < deadline:
            time.sleep(0.001)  # until the writer has taken B (and applied it)
        slow_store.fail_next = True
        slow_store.gate.set()
        with pytest.raises(ServiceUnavailable, match="nothing was applied"):
            a.result(timeout=30)
        with pytest.raises(ServiceUnavailable, match="nothing was applied"):
            b.result(timeout=30)
        wallet2, wallet3 = service.lookup_accounts([2, 3])
        assert (wallet2.credits_posted, wallet2.debits_posted) == (100, 0)
        assert wallet3.credits_posted == 0
        # The engine was rebuilt from the store: had B been committed, transfer 3 would be back.
        assert service.lookup_transfers([2, 3]) == []
        # B alone now lacks the money; A applies again, then B.
        assert service.create_transfers([_transfer(3, 2, 3, 140)]) == ["exceeds_credits"]
        assert service.create_transfers([_transfer(2, 1, 2, 50)]) == ["ok"]
        assert service.create_transfers([_transfer(3, 2, 3, 140)]) == ["ok"]


def test_restart_recovers_every_balance(database_url: str) -> None:
    with LedgerService(open_store(database_url)) as service:
        _accounts(service, 5)
        service.create_transfers([_transfer(i, 1, 2 + i % 5, i) for i in range(1, 200)])
        before = service.lookup_accounts(list(range(1, 7)))
    with LedgerService(open_store(database_url)) as service:
        assert service.lookup_accounts(list(range(1, 7))) == before
        assert service.create_transfers([_transfer(5, 1, 2, 5)]) == ["exists"]


def test_idle_writer_expires_pending_transfers_on_time(tmp_path: Path) -> None:
    clock = {"now": time.time_ns()}
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    with LedgerService(store, clock_ns=lambda: clock["now"]) as service:
        _accounts(service, 2)
        service.create_transfers([_transfer(1, 1, 2, 100)])
        pending = int(TransferFlags.PENDING)
        assert service.create_transfers([_transfer(2, 2, 3, 60, flags=pending, timeout=1)]) == [
            "ok"
        ]
        (wallet,) = service.lookup_accounts([2])
        assert wallet.debits_pending == 60
        clock["now"] += 2_000_000_000
        # No further writes: the idle writer must notice the deadline by itself.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            (wallet,) = service.lookup_accounts([2])
            if wallet.debits_pending == 0:
                break
            time.sleep(0.05)  # polling for the writer's wake-up (at most EXPIRY_POLL_S_MAX)
        assert wallet.debits_pending == 0
    # The expiration is durable: a restart sees it too.
    with LedgerService(open_store(f"sqlite:///{tmp_path / 'ledger.db'}")) as service:
        (wallet,) = service.lookup_accounts([2])
        assert wallet.debits_pending == 0


def test_closed_service_refuses_work(database_url: str) -> None:
    service = LedgerService(open_store(database_url))
    service.start()
    service.close()
    with pytest.raises(ServiceUnavailable):
        service.create_transfers([_transfer(1, 1, 2, 1)])


def test_many_threads_conserve_money(database_url: str) -> None:
    with LedgerService(open_store(database_url)) as service:
        _accounts(service, 8)
        service.create_transfers([_transfer(i, 1, i, 1_000) for i in range(2, 10)])

        def pay(worker: int) -> None:
            for n in range(200):
                tid = 1_000_000 * (worker + 1) + n
                debit = 2 + (worker + n) % 8
                credit = 2 + (worker + n + 1) % 8
                service.create_transfers([_transfer(tid, debit, credit, 7)])

        threads = [threading.Thread(target=pay, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dp, dpo, cp, cpo = service.trial_balance(CNY)
        assert (dp, dpo) == (cp, cpo)
        for wallet in service.lookup_accounts(list(range(2, 10))):
            assert wallet.debits_posted <= wallet.credits_posted


def test_an_engine_failure_mid_batch_rebuilds_from_the_store(database_url: str) -> None:
    with LedgerService(open_store(database_url)) as service:
        _accounts(service, 3)
        assert service.create_transfers([_transfer(1, 1, 2, 100)]) == ["ok"]
        real = service.engine.create_transfers

        def half_applied(batch: Any, ends: Any = ()) -> BatchOutcome:
            real(batch, ends)  # the batch's effects are in memory...
            raise RuntimeError("engine bug (injected)")  # ...but it never reaches the store

        service.engine.create_transfers = half_applied  # type: ignore[method-assign]
        with pytest.raises(ServiceUnavailable, match="engine bug"):
            service.create_transfers([_transfer(2, 1, 2, 50)])
        (wallet,) = service.lookup_accounts([2])
        assert wallet.credits_posted == 100  # rebuilt from the store, without transfer 2
        assert service.create_transfers([_transfer(2, 1, 2, 50)]) == ["ok"]
