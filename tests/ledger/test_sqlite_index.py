"""The SQLite store's per-account index across buckets and steps: small buckets (patched) so
that a test crosses many, indexed after every commit (partial steps, which a bucket compacts
into one once it has too many or is whole), natively and in Python."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from formicary.ledger import sqlite_store
from formicary.ledger.engine import BatchOutcome
from formicary.ledger.sqlite_store import SQLiteStore
from formicary.ledger.types import Transfer

T0 = 1_700_000_000_000_000_000
I64_MAX = 2**63 - 1


@pytest.mark.parametrize("grouping", ["native", "python"])
def test_queries_match_the_log_across_buckets_and_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grouping: str
) -> None:
    monkeypatch.setattr(sqlite_store, "BUCKET_TRANSFERS", 50)
    store = SQLiteStore(f"sqlite:///{tmp_path}/ledger.db", index_in_background=False)
    store.migrate()
    if grouping == "python" or store._index_writer is None:
        if grouping == "native":
            pytest.skip("the compiled SQLite writer is not built or switched off")
        if store._index_writer is not None:
            store._index_writer.close()
            store._index_writer = None
    rng = random.Random(7)
    ids = [1, 2, 3, 2**63 - 1, 2**63, 2**64 + 5, 2**127 + 9, *range(100, 140)]
    log: list[Transfer] = []
    ts = T0
    try:
        for _ in range(60):
            batch = []
            for _ in range(rng.randint(1, 12)):
                dr, cr = rng.sample(ids, 2)
                ts += rng.randint(1, 3)
                batch.append(
                    Transfer(
                        id=len(log) + len(batch) + 1,
                        debit_account_id=dr,
                        credit_account_id=cr,
                        amount=1,
                        ledger=1,
                        code=1,
                        timestamp=ts,
                    )
                )
            store.commit(BatchOutcome(results=[], transfers=batch))
            log += batch
            if rng.random() < 0.8:
                store.index_now()
        steps = store._index_conn.execute(  # type: ignore[union-attr]
            "SELECT bucket, count(*) FROM steps GROUP BY bucket ORDER BY bucket"
        ).fetchall()
        buckets = (len(log) - 1) // 50 + 1
        assert [b for b, _ in steps] == list(range(len(steps)))
        assert len(steps) in (buckets - 1, buckets)  # the last bucket may be unindexed yet
        assert all(n == 1 for _, n in steps[: len(log) // 50])  # a whole bucket: one step
        assert all(n <= sqlite_store._STEPS_PER_BUCKET_MAX for _, n in steps)
        for account in [*ids, 999]:
            for lo, hi in [(0, I64_MAX), (log[30].timestamp, log[200].timestamp)]:
                for limit, reverse in [(1, False), (7, True), (1000, False), (1000, True)]:
                    rows = [
                        t
                        for t in log
                        if account in (t.debit_account_id, t.credit_account_id)
                        and lo <= t.timestamp <= hi
                    ]
                    expected = (rows[::-1] if reverse else rows)[:limit]
                    got = store.account_transfers(
                        account, timestamp_min=lo, timestamp_max=hi, limit=limit, reverse=reverse
                    )
                    assert got == expected
    finally:
        store.close()
