"""HTTP scenarios of `formicary bench ledger`: a real `formicary serve` child process, loaded
from separate client processes on the same machine (so the load generator's CPU is counted
against the same 2 cores, as it would be for a single-box deployment).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import httpx
import msgspec

from formicary.api.wire import account_out
from formicary.bench.ledger import ScenarioResult, make_result
from formicary.bench.workload import LEDGER_CNY, Workload
from formicary.ledger.types import BATCH_EVENTS_MAX, Account, Transfer
from formicary.process import ServerProcess

__all__ = ["bench_http_batches", "bench_http_sdk"]

HTTP_BATCH = 1_000
# Client processes and requests in flight per process for (d).
BATCH_CLIENT_PROCESSES = 1
BATCH_CONCURRENCY = 8
# (e): 64 single-transfer callers sharing one AsyncClient, which coalesces their calls. One
# client process: split over 2 processes they measured 22.7k vs 29.3k transfers/s, because a
# second client process takes CPU from the server on this 2-core box.
SDK_CALLERS = 64
SDK_CLIENT_PROCESSES = 1

Progress = Callable[[int], None]


def _account_wire(a: Account) -> dict[str, Any]:
    return {"id": str(a.id), "ledger": a.ledger, "code": a.code, "flags": account_out(a).flags}


def _transfer_wire(t: Transfer) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "debit_account_id": str(t.debit_account_id),
        "credit_account_id": str(t.credit_account_id),
        "amount": t.amount,
        "ledger": t.ledger,
        "code": t.code,
    }


def _post_all(client: httpx.Client, path: str, body: list[dict[str, Any]]) -> None:
    response = client.post(path, content=msgspec.json.encode(body))
    response.raise_for_status()
    results = response.json()["results"]
    bad = [r for r in results if r["result"] != "ok"]
    assert not bad, f"setup failed: {bad[:3]}"


def _prepare(server: ServerProcess, workload: Workload) -> None:
    """Open the wallets and fund them, in full batches."""
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as client:
        for accounts in workload.account_batches():
            _post_all(client, "/v1/accounts", [_account_wire(a) for a in accounts])
        for transfers in workload.topup_batches():
            _post_all(client, "/v1/transfers", [_transfer_wire(t) for t in transfers])


def _trial_balance_ok(server: ServerProcess) -> bool:
    body = httpx.get(f"{server.base_url}/v1/ledgers/{LEDGER_CNY}/trial-balance", timeout=60).json()
    return bool(body["balanced"]) and body["debits_posted"] == body["credits_posted"]


def _run_children(
    worker: Callable[..., tuple[list[float], int]],
    shares: list[Any],
    base_url: str,
    progress: Progress | None,
    extra: tuple[Any, ...] = (),
) -> tuple[float, list[float], int]:
    """Run `worker(base_url, share, *extra)` in one process per share, all released at once."""
    context = mp.get_context("spawn")
    manager_counter = context.Value("q", 0)
    start = context.Event()
    with ProcessPoolExecutor(
        len(shares), mp_context=context, initializer=_init_child, initargs=(manager_counter, start)
    ) as pool:
        futures = [pool.submit(worker, base_url, share, *extra) for share in shares]
        time.sleep(1.0)  # let the children import and connect before the clock starts
        started = time.perf_counter()
        start.set()
        reported = 0
        while not all(f.done() for f in futures):
            time.sleep(0.1)
            if progress:
                now = int(manager_counter.value)
                progress(now - reported)
                reported = now
        seconds = time.perf_counter() - started
        latencies: list[float] = []
        failed = 0
        for future in futures:
            child_latencies, child_failed = future.result()
            latencies.extend(child_latencies)
            failed += child_failed
    if progress:
        progress(int(manager_counter.value) - reported)
    return seconds, latencies, failed


# Shared with each child process at spawn time (they cannot travel as task arguments).
_counter: Synchronized[int] | None = None
_start: Any = None


def _init_child(counter: Synchronized[int], start: Any) -> None:
    global _counter, _start
    _counter, _start = counter, start


def _shared() -> tuple[Synchronized[int], Any]:
    assert _counter is not None and _start is not None, "run in a child of _run_children"
    return _counter, _start


# ----------------------------------------------------------------------------- (d)


def _batch_worker(base_url: str, bodies: list[bytes]) -> tuple[list[float], int]:
    return asyncio.run(_batch_worker_async(base_url, bodies, *_shared()))


async def _batch_worker_async(
    base_url: str, bodies: list[bytes], counter: Synchronized[int], start: Any
) -> tuple[list[float], int]:
    latencies: list[float] = []
    failed = 0
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=BATCH_CONCURRENCY)
    headers = {"content-type": "application/json"}
    decoder = msgspec.json.Decoder()
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, headers=headers, timeout=120
    ) as client:
        await asyncio.to_thread(start.wait)

        async def lane() -> None:
            nonlocal failed
            while queue:
                body = queue.pop()
                t0 = time.perf_counter()
                response = await client.post("/v1/transfers", content=body)
                latencies.append(time.perf_counter() - t0)
                response.raise_for_status()
                results = decoder.decode(response.content)["results"]
                failed += sum(1 for r in results if r["result"] != "ok")
                with counter.get_lock():
                    counter.value += len(results)

        await asyncio.gather(*(lane() for _ in range(BATCH_CONCURRENCY)))
    return latencies, failed


def bench_http_batches(
    database_url: str, transfers: int, accounts: int, target: int, progress: Progress | None
) -> ScenarioResult:
    """(d) POST /v1/transfers with 1,000 transfers per request, several requests in flight."""
    workload = Workload(accounts)
    with ServerProcess(database_url) as server:
        _prepare(server, workload)
        batches = workload.payment_batches(transfers, HTTP_BATCH)
        bodies = [msgspec.json.encode([_transfer_wire(t) for t in b]) for b in batches]
        shares = [bodies[i::BATCH_CLIENT_PROCESSES] for i in range(BATCH_CLIENT_PROCESSES)]
        seconds, latencies, failed = _run_children(_batch_worker, shares, server.base_url, progress)
        conserved = _trial_balance_ok(server)
    return make_result(
        "d",
        f"HTTP, {HTTP_BATCH:,} transfers per request, {BATCH_CONCURRENCY} in flight",
        transfers,
        seconds,
        HTTP_BATCH,
        latencies,
        target,
        failed,
        conserved,
        note="latency is per HTTP request",
    )


# ----------------------------------------------------------------------------- (e)


def _sdk_worker(base_url: str, transfers: list[Transfer], callers: int) -> tuple[list[float], int]:
    counter, start = _shared()
    return asyncio.run(_sdk_worker_async(base_url, transfers, counter, start, callers))


async def _sdk_worker_async(
    base_url: str,
    transfers: list[Transfer],
    counter: Synchronized[int],
    start: Any,
    callers: int,
) -> tuple[list[float], int]:
    from formicary.api.wire import TransferIn
    from formicary.client import AsyncClient

    latencies: list[float] = []
    failed = 0
    queue = list(reversed(transfers))
    async with AsyncClient(base_url) as client:
        await asyncio.to_thread(start.wait)

        async def caller() -> None:
            nonlocal failed
            done = 0
            while queue:
                t = queue.pop()
                event = TransferIn(
                    id=str(t.id),
                    debit_account_id=str(t.debit_account_id),
                    credit_account_id=str(t.credit_account_id),
                    amount=t.amount,
                    ledger=t.ledger,
                    code=t.code,
                )
                t0 = time.perf_counter()
                result = await client.create_transfer(event)
                latencies.append(time.perf_counter() - t0)
                failed += result != "ok"
                done += 1
                if done == 100:
                    with counter.get_lock():
                        counter.value += done
                    done = 0
            with counter.get_lock():
                counter.value += done

        await asyncio.gather(*(caller() for _ in range(callers)))
    return latencies, failed


def bench_http_sdk(
    database_url: str, transfers: int, accounts: int, target: int, progress: Progress | None
) -> ScenarioResult:
    """(e) 64 callers each awaiting one create_transfer at a time; the SDK coalesces them."""
    workload = Workload(accounts)
    with ServerProcess(database_url) as server:
        _prepare(server, workload)
        batches = workload.payment_batches(transfers, BATCH_EVENTS_MAX)
        flat = [t for b in batches for t in b]
        shares = [flat[i::SDK_CLIENT_PROCESSES] for i in range(SDK_CLIENT_PROCESSES)]
        seconds, latencies, failed = _run_children(
            _sdk_worker,
            shares,
            server.base_url,
            progress,
            extra=(SDK_CALLERS // SDK_CLIENT_PROCESSES,),
        )
        conserved = _trial_balance_ok(server)
    return make_result(
        "e",
        f"HTTP, single-transfer calls from {SDK_CALLERS} SDK callers "
        "sharing one AsyncClient (auto-batching)",
        transfers,
        seconds,
        1,
        latencies,
        target,
        failed,
        conserved,
        note="latency is per create_transfer call",
    )
