"""`formicary bench funds`: the daily income run for millions of holders, end to end, durable.

Setup (not timed): a SQLite ledger and fund in a temporary directory; `holders` users onboarded
(registry rows and one share account each); their holdings seeded the way a fund that already
exists would have them: one cash transfer into custody and bulk share issues, with log-normal
holding sizes (median 1,000 yuan, a long tail), as a fund's register looks.

Timed: `DailyRun.run` for one day with the income a SHIBOR-based portfolio earned on
2013-12-20, from the snapshot of every holder's shares in the ledger to the last bulk posting
committed (fsync) and the day published. Then the books are checked: custody cash equals shares
outstanding, holder income plus remainder equals the income, and sampled holders' ledger shares
equal their seeded holding plus their planned income.

Also timed: subscriptions and instant redemptions per second, from 32 threads (each order is a
two-leg linked chain, group-committed with the others).
"""

from __future__ import annotations

import os
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from formicary.funds import ledger_ids as ids
from formicary.funds.calendar import BEIJING
from formicary.funds.daily import DailyRun
from formicary.funds.fund import MoneyMarketFund
from formicary.funds.ledger_ids import Code
from formicary.funds.rates import daily_income_fen, load_shibor
from formicary.funds.store import FundStore
from formicary.ledger import (
    BULK_LEGS_MAX,
    Account,
    AccountFlags,
    BulkTransfer,
    LedgerService,
    Transfer,
    open_store,
)

__all__ = ["TARGET_SECONDS", "run_funds_bench"]

# The target: 10M holders in <= 40 s (80M in under 5 minutes), peak memory <= 8 GiB.
TARGET_SECONDS = 40.0
TARGET_PEAK_MIB = 8 * 1024
BENCH_DAY = date(2013, 12, 20)
ORDER_THREADS = 32
_SEED_WALLET = 1
_MONEY = 156
_HOLDING_MEDIAN_FEN = 100_000  # 1,000 yuan
_SAMPLES = 1_000

Progress = Callable[[str, int, int], None]


def run_funds_bench(
    *, holders: int, orders: int, progress: Progress, workdir: str | None = None
) -> dict[str, Any]:
    """Run the benchmark; returns its figures (see docs/benchmarks.md for the keys)."""
    with tempfile.TemporaryDirectory(prefix="formicary-bench-funds-", dir=workdir) as tmp:
        path = Path(tmp)
        clock_ns = _fixed_clock(BENCH_DAY)
        ledger = LedgerService(open_store(f"sqlite:///{path}/ledger.db"), clock_ns=clock_ns)
        ledger.start()
        store = FundStore(path / "fund.db")
        try:
            fund = MoneyMarketFund(ledger, store, clock_ns=clock_ns)
            fund.start()
            started = time.perf_counter()
            holdings = _seed(fund, holders, progress)
            setup_s = time.perf_counter() - started

            run = DailyRun(fund, path / "plans")
            total_assets = int(holdings.sum())
            income = daily_income_fen(total_assets, BENCH_DAY, load_shibor())
            started = time.perf_counter()
            record = run.run(BENCH_DAY, income, progress)
            run_s = time.perf_counter() - started

            books = fund.reconcile()
            planned = run.plan_amounts(record)
            sample = np.random.default_rng(7).choice(holders, size=min(_SAMPLES, holders))
            accounts = ledger.lookup_accounts([fund.holder_base + int(i) for i in sample])
            sampled_ok = all(
                a.credits_posted - a.debits_posted == int(holdings[i]) + int(planned[i])
                for a, i in zip(accounts, sample, strict=True)
            )
            balanced = (
                books["difference_fen"] == 0
                and int(planned.sum()) + record.remainder_fen == income + record.carried_fen
                and sampled_ok
            )
            rates = _orders_per_second(fund, orders, progress)
        finally:
            store.close()
            ledger.close()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "machine": {"cores": os.cpu_count()},
        "holders": holders,
        "setup_seconds": round(setup_s, 2),
        "daily_run_seconds": round(run_s, 2),
        "holders_per_s": round(holders / run_s),
        "extrapolated_80m_seconds": round(run_s * 80_000_000 / holders, 1),
        "peak_rss_mib": round(peak_mib),
        "income_fen": income,
        "wanfen_yuan": str(record.wanfen),
        "paid_holders": record.paid_holders,
        "remainder_fen": record.remainder_fen,
        "books_balanced": balanced,
        "target_seconds": TARGET_SECONDS * holders / 10_000_000,
        "target_peak_mib": TARGET_PEAK_MIB,
        "met_target": balanced
        and rates["orders_failed"] == 0
        and run_s <= TARGET_SECONDS * holders / 10_000_000
        and peak_mib <= TARGET_PEAK_MIB,
        **rates,
    }


def _fixed_clock(day: date) -> Callable[[], int]:
    """Wall time moving forward from 09:00 Beijing on `day` (the run's "now")."""
    from datetime import datetime

    origin = int(datetime(day.year, day.month, day.day, 9, tzinfo=BEIJING).timestamp() * 1e9)
    offset = origin - time.time_ns()
    return lambda: time.time_ns() + offset


def _seed(fund: MoneyMarketFund, holders: int, progress: Progress) -> np.ndarray:
    """Onboard `holders` users with log-normal holdings; returns the holdings by index."""
    rng = np.random.default_rng(2013)
    holdings = np.maximum(
        100, rng.lognormal(np.log(_HOLDING_MEDIAN_FEN), 1.5, size=holders).astype(np.int64)
    )
    step = BULK_LEGS_MAX
    for start in range(0, holders, step):
        stop = min(holders, start + step)
        fund.open_holders([f"user-{n}" for n in range(start, stop)])
        progress("onboarding", stop, holders)
    ledger = fund.ledger
    total = int(holdings.sum())
    ledger.create_accounts([Account(id=_SEED_WALLET, ledger=_MONEY, code=1)])
    results = ledger.create_transfers(
        [
            Transfer(
                id=ids.transfer_id(fund.config.fund_no, ids.TransferKind.SUBSCRIBE_CASH, 1),
                debit_account_id=_SEED_WALLET,
                credit_account_id=fund.custody,
                amount=total,
                ledger=_MONEY,
                code=Code.SUBSCRIPTION,
            )
        ]
    )
    assert results == ["ok"], results
    for chunk, start in enumerate(range(0, holders, step)):
        stop = min(holders, start + step)
        result = ledger.create_bulk(
            BulkTransfer(
                id=ids.transfer_id(fund.config.fund_no, ids.TransferKind.SUBSCRIBE_SHARES, chunk),
                account_id=fund.issuance,
                debit_common=True,
                ledger=fund.config.share_ledger,
                code=Code.SUBSCRIPTION,
                leg_account_ids=list(range(fund.holder_base + start, fund.holder_base + stop)),
                leg_amounts=holdings[start:stop].tolist(),
            )
        )
        assert result == ("ok", -1), result
        progress("seeding", stop, holders)
    return holdings


def _orders_per_second(fund: MoneyMarketFund, orders: int, progress: Progress) -> dict[str, Any]:
    """Subscriptions, then instant redemptions, from ORDER_THREADS threads at once."""
    if orders <= 0:
        return {"subscriptions_per_s": 0, "redemptions_per_s": 0, "orders_failed": 0}
    ledger = fund.ledger
    # Order k goes to user k % users, so every user who redeems has subscribed first.
    users = min(ORDER_THREADS * 8, orders)
    dmnec = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    wallet_base = 10**12
    ledger.create_accounts(
        [Account(id=wallet_base + n, ledger=_MONEY, code=2, flags=dmnec) for n in range(users)]
    )
    ledger.create_transfers(
        [
            Transfer(
                id=10**12 + n,
                debit_account_id=_SEED_WALLET,
                credit_account_id=wallet_base + n,
                amount=10**9,
                ledger=_MONEY,
                code=1,
            )
            for n in range(users)
        ]
    )
    for n in range(users):
        fund.open_holder(f"orders-{n}")

    failed: list[BaseException] = []

    def drive(kind: str) -> float:
        counter = iter(range(orders))
        lock = threading.Lock()
        done = [0]

        def worker() -> None:
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                user = k % users
                try:
                    if kind == "subscribe":
                        fund.subscribe(f"orders-{user}", wallet_base + user, 10_000, f"s{k}")
                    else:
                        fund.redeem(f"orders-{user}", wallet_base + user, 100, f"r{k}")
                except Exception as error:  # counted and reported, never a silent dead thread
                    with lock:
                        failed.append(error)
                with lock:
                    done[0] += 1
                    if done[0] % 1000 == 0:
                        progress(kind, done[0], orders)

        threads = [threading.Thread(target=worker) for _ in range(ORDER_THREADS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return orders / (time.perf_counter() - started)

    subscriptions = drive("subscribe")
    redemptions = drive("redeem")
    return {
        "subscriptions_per_s": round(subscriptions),
        "redemptions_per_s": round(redemptions),
        "orders_failed": len(failed),
    }
