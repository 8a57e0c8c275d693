"""LedgerService: one writer per store, a bounded request queue, and group commit.

Many callers submit small requests; the single writer thread coalesces consecutive requests of
the same kind into one engine batch (up to BATCH_EVENTS_MAX events), and hands the batch's
records to the committer thread, which commits them in one transaction (one fsync) and only
then answers every caller of that batch. While batch N commits, the writer already applies
batch N+1 to the engine (a pipeline of depth COMMITS_IN_FLIGHT): with the store's commit running
outside the GIL (native.py) the two overlap on two cores. Batches commit in the order the engine
applied them; if a commit fails, that batch and every later one already applied are answered
"unavailable, nothing applied", none of them is committed, and the engine is rebuilt from the
store before the next batch. Reads of balances run on the writer between batches once every
applied batch is committed, so they see exactly the committed state.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

from formicary.ledger.engine import BatchOutcome, Engine
from formicary.ledger.store import Store
from formicary.ledger.types import (
    BATCH_EVENTS_MAX,
    Account,
    AccountBalance,
    BulkTransfer,
    Transfer,
)

__all__ = [
    "BatchTooLarge",
    "LedgerError",
    "LedgerService",
    "ServiceBusy",
    "ServiceUnavailable",
]

log = logging.getLogger("formicary.ledger")

T = TypeVar("T")
_Kind = Literal["accounts", "transfers", "bulk", "query"]

# Default queue bound: enough for a few full batches in flight, small enough that a caller who
# gets "busy" retries within tens of milliseconds instead of waiting behind seconds of work.
QUEUE_EVENTS_MAX = BATCH_EVENTS_MAX * 8
# Commit latency histogram buckets (seconds) for /metrics.
# While idle, the writer wakes at the next pending deadline, but at least this often, so a clock
# that jumps (NTP, tests) cannot leave a reservation unreleased for long.
EXPIRY_POLL_S_MAX = 1.0
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Batches applied by the engine but not yet committed: one committing, one waiting. More would
# add latency and memory, not throughput (one store, one fsync at a time).
COMMITS_IN_FLIGHT = 2


class LedgerError(Exception):
    """Base of the ledger service's errors."""


class ServiceBusy(LedgerError):
    """The request queue is full: nothing was applied, retry shortly."""


class BatchTooLarge(LedgerError):
    """A request holds more events than one batch may (or none at all)."""


class ServiceUnavailable(LedgerError):
    """The service is stopped or its store failed: nothing was applied, retry later."""


class _Request:
    __slots__ = ("events", "future", "kind", "query")

    def __init__(
        self,
        kind: _Kind,
        events: Sequence[Any],
        query: Callable[[Engine], Any] | None = None,
    ) -> None:
        self.kind = kind
        self.events = events
        self.query = query
        self.future: Future[Any] = Future()


class Metrics:
    """Counters the writer updates and /metrics reads (plain ints: the GIL keeps them whole)."""

    def __init__(self) -> None:
        self.batches = 0
        self.events = {"accounts": 0, "transfers": 0, "bulk": 0}
        self.results_failed = 0
        self.busy_rejections = 0
        self.commit_failures = 0
        self.commit_seconds_sum = 0.0
        self.commit_buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)

    def observe_commit(self, seconds: float) -> None:
        self.commit_seconds_sum += seconds
        for i, bound in enumerate(LATENCY_BUCKETS_S):
            if seconds <= bound:
                self.commit_buckets[i] += 1
                return
        self.commit_buckets[-1] += 1


class _Commit:
    """A batch the engine applied: its records, and how to answer its callers once durable."""

    __slots__ = ("answer", "outcome", "requests")

    def __init__(
        self, outcome: BatchOutcome, requests: list[_Request], answer: Callable[[], None]
    ) -> None:
        self.outcome = outcome
        self.requests = requests
        self.answer = answer


# Tells the committer to stop (after every batch queued before it).
_STOP = _Commit(BatchOutcome(results=[]), [], lambda: None)


class LedgerService:
    """The only writer of one ledger store. Thread-safe; use `start()` before submitting."""

    def __init__(
        self,
        store: Store,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        batch_events_max: int = BATCH_EVENTS_MAX,
        queue_events_max: int = QUEUE_EVENTS_MAX,
    ) -> None:
        assert 0 < batch_events_max <= BATCH_EVENTS_MAX
        assert queue_events_max >= batch_events_max
        self.store = store
        self._clock_ns = clock_ns
        self.batch_events_max = batch_events_max
        self.queue_events_max = queue_events_max
        self.engine = Engine(clock_ns)
        self.metrics = Metrics()
        self._queue: deque[_Request] = deque()
        self._queued_events = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        # The commit pipeline (writer -> committer), guarded by _commit_cond.
        self._commits: deque[_Commit] = deque()
        self._committing = False
        self._commit_cond = threading.Condition()
        self._committer: threading.Thread | None = None
        # Set when a commit failed: the committer fails (never commits) the batches applied
        # after it, until the writer has rebuilt the engine from the store.
        self._engine_stale = False
        self.ready = False

    # ----------------------------------------------------------------- life cycle

    def start(self) -> None:
        """Migrate the store, recover every balance from it, and start the writer."""
        assert self._thread is None, "start() once"
        self.store.migrate()
        self._recover()
        self._committer = threading.Thread(
            target=self._commit_loop, name="ledger-committer", daemon=True
        )
        self._committer.start()
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()
        self.ready = True

    def close(self) -> None:
        """Finish queued work, stop the writer, close the store."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        # The writer has stopped: the committer finishes what it was given, then stops.
        with self._commit_cond:
            self._commits.append(_STOP)
            self._commit_cond.notify_all()
        if self._committer is not None:
            self._committer.join()
        self.ready = False
        self.store.close()

    def __enter__(self) -> LedgerService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recover(self) -> None:
        engine = Engine(self._clock_ns)
        engine.replay(self.store.load_accounts(), self.store.load_log())
        self.engine = engine
        self._engine_stale = False
        # Millions of long-lived records: keep the cyclic GC from rescanning them every batch.
        gc.collect()
        gc.freeze()
        log.info(
            "recovered %d accounts and %d transfers",
            len(engine.accounts),
            len(engine.transfers),
        )

    # ----------------------------------------------------------------- submitting

    def clock_ns(self) -> int:
        """The service's wall clock (ns): what its timestamps follow; products share it."""
        return self._clock_ns()

    def submit_accounts(self, accounts: Sequence[Account]) -> Future[list[str]]:
        return self._submit(_Request("accounts", accounts))

    def submit_transfers(self, transfers: Sequence[Transfer]) -> Future[list[str]]:
        return self._submit(_Request("transfers", transfers))

    def submit_bulk(self, bulk: BulkTransfer) -> Future[tuple[str, int]]:
        """One bulk transfer, alone in its batch; answers (result, index of the failed leg or
        -1). It counts as one event against the queue bound: it is one commit."""
        return self._submit(_Request("bulk", (bulk,)))

    def submit_query(self, query: Callable[[Engine], T]) -> Future[T]:
        """Run `query(engine)` on the writer between batches: it sees committed state only."""
        return self._submit(_Request("query", (), query))

    def create_accounts(self, accounts: Sequence[Account]) -> list[str]:
        return self.submit_accounts(accounts).result()

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[str]:
        return self.submit_transfers(transfers).result()

    def create_bulk(self, bulk: BulkTransfer) -> tuple[str, int]:
        return self.submit_bulk(bulk).result()

    async def create_accounts_async(self, accounts: Sequence[Account]) -> list[str]:
        return await asyncio.wrap_future(self.submit_accounts(accounts))

    async def create_transfers_async(self, transfers: Sequence[Transfer]) -> list[str]:
        return await asyncio.wrap_future(self.submit_transfers(transfers))

    async def query_async(self, query: Callable[[Engine], T]) -> T:
        return await asyncio.wrap_future(self.submit_query(query))

    def lookup_accounts(self, ids: Sequence[int]) -> list[Account]:
        return self.submit_query(lambda engine: engine.lookup_accounts(ids)).result()

    def lookup_transfers(self, ids: Sequence[int]) -> list[Transfer]:
        return self.submit_query(lambda engine: engine.lookup_transfers(ids)).result()

    def trial_balance(self, ledger: int) -> tuple[int, int, int, int]:
        return self.submit_query(lambda engine: engine.trial_balance(ledger)).result()

    def account_transfers(self, account_id: int, **window: Any) -> list[Transfer]:
        """An account's committed transfers, straight from the store (see Store)."""
        return self.store.account_transfers(account_id, **window)

    def account_balances(self, account_id: int, **window: Any) -> list[AccountBalance]:
        return self.store.account_balances(account_id, **window)

    def _submit(self, request: _Request) -> Future[Any]:
        count = len(request.events)
        if request.kind != "query" and not 0 < count <= self.batch_events_max:
            raise BatchTooLarge(
                f"a batch holds 1 to {self.batch_events_max} events, this one has {count}"
            )
        with self._cond:
            if self._stopping or self._thread is None:
                raise ServiceUnavailable("the ledger service is not running")
            if self._queued_events + count > self.queue_events_max:
                self.metrics.busy_rejections += 1
                raise ServiceBusy(
                    f"ledger busy: {self._queued_events} events queued (limit "
                    f"{self.queue_events_max}); nothing was applied, retry shortly"
                )
            self._queue.append(request)
            self._queued_events += count
            self._cond.notify()
        return request.future

    @property
    def queued_events(self) -> int:
        return self._queued_events

    # ----------------------------------------------------------------- the writer

    def _take(self) -> list[_Request] | None:
        """Block for work; return consecutive requests of one kind that fit in one batch.

        Returns [] when a pending transfer's deadline passed while idle (time to expire it),
        None when stopping with nothing left to do.
        """
        with self._cond:
            while not self._queue and not self._stopping:
                deadline = self.engine.next_deadline()
                if deadline is None:
                    self._cond.wait()
                    continue
                wait_s = (deadline - self._clock_ns()) / 1e9
                if wait_s <= 0:
                    return []
                self._cond.wait(min(wait_s, EXPIRY_POLL_S_MAX))
            if not self._queue:
                return None
            first = self._queue.popleft()
            taken = [first]
            events = len(first.events)
            while self._queue and first.kind != "bulk":
                nxt = self._queue[0]
                if nxt.kind != first.kind or events + len(nxt.events) > self.batch_events_max:
                    break
                taken.append(self._queue.popleft())
                events += len(nxt.events)
            self._queued_events -= events
            return taken

    def _run(self) -> None:
        while (requests := self._take()) is not None:
            try:
                self._process(requests)
            except BaseException as error:  # never leave a caller waiting forever
                log.exception("ledger writer failed a batch")
                # The engine may hold half a batch that the store does not: rebuild it.
                self._engine_stale = True
                for request in requests:
                    if not request.future.done():
                        request.future.set_exception(
                            ServiceUnavailable(f"ledger write failed: {error}")
                        )

    def _process(self, requests: list[_Request]) -> None:
        if self._engine_stale:
            # A commit failed after the engine applied its batch (and maybe later ones): once
            # the committer has failed them all, rebuild the engine from the store.
            self._drain_commits()
            self._recover()
        if not requests:
            outcome = self.engine.expire()
            if outcome.expirations:
                self._hand_over(outcome, [], lambda: None)
            return
        kind = requests[0].kind
        if kind == "query":
            self._drain_commits()  # a query sees committed state only
            for request in requests:
                assert request.query is not None
                try:
                    request.future.set_result(request.query(self.engine))
                except Exception as error:
                    request.future.set_exception(error)
            return
        if len(requests) == 1:
            batch: Sequence[Any] = requests[0].events
            ends: set[int] = set()
        else:
            batch = [event for request in requests for event in request.events]
            ends = set()
            end = -1
            for request in requests[:-1]:
                end += len(request.events)
                ends.add(end)
        outcome: BatchOutcome
        if kind == "bulk":
            (request,) = requests
            outcome = self.engine.create_bulk(request.events[0])

            def answer_bulk() -> None:
                self.metrics.batches += 1
                self.metrics.events["bulk"] += 1
                self.metrics.results_failed += outcome.results[0] != "ok"
                request.future.set_result((outcome.results[0], outcome.failed_leg))

            self._hand_over(outcome, requests, answer_bulk)
            return
        if kind == "accounts":
            outcome = self.engine.create_accounts(batch)
        else:
            outcome = self.engine.create_transfers(batch, ends)

        def answer() -> None:
            self.metrics.batches += 1
            self.metrics.events[kind] += len(batch)
            results = outcome.results
            self.metrics.results_failed += len(batch) - results.count("ok")
            start = 0
            for request in requests:
                stop = start + len(request.events)
                request.future.set_result(results[start:stop])
                start = stop

        self._hand_over(outcome, requests, answer)

    # ----------------------------------------------------------------- the committer

    def _hand_over(
        self, outcome: BatchOutcome, requests: list[_Request], answer: Callable[[], None]
    ) -> None:
        """Queue an applied batch for the committer; wait while the pipeline is full."""
        with self._commit_cond:
            while len(self._commits) + self._committing >= COMMITS_IN_FLIGHT:
                self._commit_cond.wait()
            self._commits.append(_Commit(outcome, requests, answer))
            self._commit_cond.notify_all()

    def _drain_commits(self) -> None:
        """Wait until every batch handed over is committed (or failed)."""
        with self._commit_cond:
            while self._commits or self._committing:
                self._commit_cond.wait()

    def _commit_loop(self) -> None:
        while True:
            with self._commit_cond:
                while not self._commits:
                    self._commit_cond.wait()
                job = self._commits.popleft()
                if job is _STOP:
                    return
                self._committing = True
                stale = self._engine_stale
            try:
                if stale:
                    # An earlier batch failed to commit, and this one was applied on top of it.
                    _fail(job.requests, "an earlier batch failed to commit")
                elif self._commit(job.outcome, job.requests):
                    job.answer()
            except BaseException as error:  # never leave a caller waiting, keep committing
                log.exception("ledger committer failed a batch")
                _fail(job.requests, f"{error}")
            finally:
                with self._commit_cond:
                    self._committing = False
                    self._commit_cond.notify_all()

    def _commit(self, outcome: BatchOutcome, requests: list[_Request]) -> bool:
        """Make the outcome durable; on failure answer the requests and mark the engine stale
        (it holds effects the store does not), so that it is rebuilt before the next batch."""
        started = time.perf_counter()
        try:
            self.store.commit(outcome)
        except Exception as error:
            with self._commit_cond:
                self._engine_stale = True
            self.metrics.commit_failures += 1
            log.exception("commit failed; rebuilding the engine from the store")
            _fail(requests, f"the store failed: {error}")
            return False
        self.metrics.observe_commit(time.perf_counter() - started)
        return True


def _fail(requests: list[_Request], why: str) -> None:
    for request in requests:
        if not request.future.done():
            request.future.set_exception(
                ServiceUnavailable(f"ledger write failed ({why}); nothing was applied")
            )
