"""`formicary bench ledger`: transfers/s and batch latency of the ledger, five ways.

(a) engine alone in memory; (b) engine + SQLite, durable; (c) engine + PostgreSQL, durable;
(d) over HTTP in batches of 1,000; (e) over HTTP, single-transfer calls from 64 concurrent SDK
callers (auto-batching). Each scenario applies the same deterministic workload (see workload.py)
and checks afterwards that the books balance, so a fast but wrong run cannot pass unnoticed.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Future

import msgspec

from formicary.bench.workload import LEDGER_CNY, Workload
from formicary.ledger.engine import Engine
from formicary.ledger.service import LedgerService
from formicary.ledger.store import open_store
from formicary.ledger.types import BATCH_EVENTS_MAX

__all__ = ["ScenarioResult", "bench_engine", "bench_store", "make_result", "percentile"]

# Batches kept in flight against the service: enough to overlap the next batch's queueing with
# the current commit, few enough that latency still reflects one batch's work.
PIPELINE_DEPTH = 2

Progress = Callable[[int], None]


class ScenarioResult(msgspec.Struct):
    """One scenario's figures (the --json keys are these field names)."""

    scenario: str
    description: str
    transfers: int
    seconds: float
    transfers_per_s: float
    batch_size: int
    batch_latency_ms_p50: float
    batch_latency_ms_p99: float
    target_transfers_per_s: int
    met_target: bool
    failed_results: int
    conserved: bool
    note: str = ""


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of latency samples (seconds) in milliseconds."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[rank] * 1000


def make_result(
    scenario: str,
    description: str,
    transfers: int,
    seconds: float,
    batch_size: int,
    latencies_s: list[float],
    target: int,
    failed: int,
    conserved: bool,
    note: str = "",
) -> ScenarioResult:
    rate = transfers / seconds if seconds > 0 else 0.0
    return ScenarioResult(
        scenario=scenario,
        description=description,
        transfers=transfers,
        seconds=round(seconds, 3),
        transfers_per_s=round(rate),
        batch_size=batch_size,
        batch_latency_ms_p50=round(statistics.median(latencies_s) * 1000, 3)
        if latencies_s
        else 0.0,
        batch_latency_ms_p99=round(percentile(latencies_s, 0.99), 3),
        target_transfers_per_s=target,
        met_target=rate >= target and failed == 0 and conserved,
        failed_results=failed,
        conserved=conserved,
        note=note,
    )


def bench_engine(transfers: int, accounts: int, progress: Progress | None = None) -> ScenarioResult:
    """(a) Engine.create_transfers alone over pre-built batches of 8,190."""
    workload = Workload(accounts)
    engine = Engine(time.time_ns)
    for batch in workload.account_batches():
        engine.create_accounts(batch)
    for batch in workload.topup_batches():
        engine.create_transfers(batch)
    batches = workload.payment_batches(transfers, BATCH_EVENTS_MAX)
    gc.collect()
    gc.freeze()
    latencies: list[float] = []
    failed = 0
    started = time.perf_counter()
    for batch in batches:
        t0 = time.perf_counter()
        outcome = engine.create_transfers(batch)
        latencies.append(time.perf_counter() - t0)
        failed += len(batch) - outcome.results.count("ok")
        if progress:
            progress(len(batch))
    seconds = time.perf_counter() - started
    dp, dpo, cp, cpo = engine.trial_balance(LEDGER_CNY)
    return make_result(
        "a",
        "engine alone, in memory",
        transfers,
        seconds,
        BATCH_EVENTS_MAX,
        latencies,
        0,
        failed,
        dp == cp and dpo == cpo,
    )


def bench_store(
    scenario: str,
    database_url: str,
    transfers: int,
    accounts: int,
    target: int,
    progress: Progress | None = None,
) -> ScenarioResult:
    """(b)/(c) The LedgerService (engine + group commit) on a durable store."""
    workload = Workload(accounts)
    store = open_store(database_url)
    service = LedgerService(store)
    service.start()
    try:
        for batch in workload.account_batches():
            service.create_accounts(batch)
        for batch in workload.topup_batches():
            service.create_transfers(batch)
        batches = workload.payment_batches(transfers, BATCH_EVENTS_MAX)
        gc.collect()
        gc.freeze()
        latencies: list[float] = []
        failed = 0
        in_flight: list[tuple[float, int, Future[list[str]]]] = []

        def settle(entry: tuple[float, int, Future[list[str]]]) -> None:
            nonlocal failed
            submitted, size, future = entry
            results = future.result()
            latencies.append(time.perf_counter() - submitted)
            failed += size - results.count("ok")
            if progress:
                progress(size)

        started = time.perf_counter()
        for batch in batches:
            if len(in_flight) >= PIPELINE_DEPTH:
                settle(in_flight.pop(0))
            in_flight.append((time.perf_counter(), len(batch), service.submit_transfers(batch)))
        for entry in in_flight:
            settle(entry)
        seconds = time.perf_counter() - started
        # The per-account postings index is derived data built behind the log (see
        # _storekit.py); say how long it needed to catch up after the burst, and the
        # throughput if that time is counted too.
        index_started = time.perf_counter()
        store.index_now()
        index_catch_up_s = time.perf_counter() - index_started
        dp, dpo, cp, cpo = service.trial_balance(LEDGER_CNY)
    finally:
        service.close()
    kind = "SQLite" if database_url.startswith("sqlite") else "PostgreSQL"
    sustained = transfers / (seconds + index_catch_up_s)
    return make_result(
        scenario,
        f"engine + {kind}, durable (group commit, batches of {BATCH_EVENTS_MAX})",
        transfers,
        seconds,
        BATCH_EVENTS_MAX,
        latencies,
        target,
        failed,
        dp == cp and dpo == cpo,
        note=(
            f"postings index caught up {index_catch_up_s:.2f} s after the burst; "
            f"{sustained:,.0f} transfers/s counting that time"
        ),
    )
