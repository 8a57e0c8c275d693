"""The fund's own durable state: who holds which account, and what each day's run published.

Money and shares are never stored here: they are ledger balances. This file keeps only what the
ledger cannot: the user id behind each holder index (names the holder's share account), and for
each income day the published figures and the run's progress. One SQLite file in WAL mode with
`synchronous=FULL`, written by the fund service (one process).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

__all__ = ["DayRecord", "FundStore", "FundStoreError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS holders (
    holder_index INTEGER PRIMARY KEY,  -- dense from 0: the share account is base + index
    user_id TEXT NOT NULL UNIQUE
) STRICT;
CREATE TABLE IF NOT EXISTS days (
    day TEXT PRIMARY KEY,              -- ISO date of the calendar day the income belongs to
    income_fen INTEGER NOT NULL,
    earning_shares INTEGER NOT NULL,   -- fen-shares that earned this day
    holders INTEGER NOT NULL,          -- holder indexes 0 .. holders-1 were allocated over
    paid_holders INTEGER NOT NULL,     -- holders with a non-zero posting
    carried_fen INTEGER NOT NULL,      -- the rounding account's balance, distributed with it
    distributed_fen INTEGER NOT NULL,
    remainder_fen INTEGER NOT NULL,    -- the rounding account's balance after the day
    wanfen TEXT NOT NULL,              -- 万份收益, yuan, 4 decimals
    yield_7d TEXT,                     -- percent, 3 decimals, NULL before 7 days of history
    chunk_holders INTEGER NOT NULL,    -- holders per bulk transfer (fixes the bulks' ids)
    plan_sha256 TEXT NOT NULL,         -- of the per-holder amounts file
    status TEXT NOT NULL CHECK (status IN ('planned', 'posted')),
    posted_ns INTEGER
) STRICT;
"""

# Indexes are dense from 0, and max() of the rowid is one B-tree probe, where count(*) would
# scan millions of rows.
_NEXT_INDEX = "SELECT coalesce(max(holder_index) + 1, 0) FROM holders"


class FundStoreError(Exception):
    """The fund's state file cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class DayRecord:
    """One income day as published (or planned, before its postings are done)."""

    day: date
    income_fen: int
    earning_shares: int
    holders: int
    paid_holders: int
    carried_fen: int
    distributed_fen: int
    remainder_fen: int
    wanfen: Decimal
    yield_7d: Decimal | None
    chunk_holders: int
    plan_sha256: str
    status: str
    posted_ns: int | None


class FundStore:
    """The fund's SQLite file (see the module docstring). Thread-safe: one lock per store."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
        except sqlite3.Error as e:
            raise FundStoreError(f"cannot open the fund state file {self.path}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)

    # ----------------------------------------------------------------- holders

    def holder_index(self, user_id: str) -> int | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT holder_index FROM holders WHERE user_id = ?", (user_id,)
            ).fetchone()
        return None if row is None else row[0]

    def add_holder(self, user_id: str) -> int:
        """The user's holder index, assigning the next one if the user is new."""
        with self._lock, self._transaction():
            row = self._conn.execute(
                "SELECT holder_index FROM holders WHERE user_id = ?", (user_id,)
            ).fetchone()
            if row is not None:
                return int(row[0])
            (count,) = self._conn.execute(
                "SELECT coalesce(max(holder_index) + 1, 0) FROM holders"
            ).fetchone()
            self._conn.execute("INSERT INTO holders VALUES (?, ?)", (count, user_id))
            return int(count)

    def add_holders(self, user_ids: Sequence[str]) -> int:
        """Register many new users at once (bulk onboarding); returns the first new index."""
        with self._lock, self._transaction():
            (first,) = self._conn.execute(_NEXT_INDEX).fetchone()
            self._conn.executemany(
                "INSERT INTO holders VALUES (?, ?)",
                ((first + n, user) for n, user in enumerate(user_ids)),
            )
            return int(first)

    def holder_count(self) -> int:
        with self._lock:
            return int(self._conn.execute(_NEXT_INDEX).fetchone()[0])

    def user_of(self, holder_index: int) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT user_id FROM holders WHERE holder_index = ?", (holder_index,)
            ).fetchone()
        return None if row is None else row[0]

    # ----------------------------------------------------------------- days

    def save_day(self, record: DayRecord) -> None:
        with self._lock, self._transaction():
            self._conn.execute(
                "INSERT INTO days VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (day) DO UPDATE"
                " SET status = excluded.status, posted_ns = excluded.posted_ns,"
                " yield_7d = excluded.yield_7d",
                (
                    record.day.isoformat(),
                    record.income_fen,
                    record.earning_shares,
                    record.holders,
                    record.paid_holders,
                    record.carried_fen,
                    record.distributed_fen,
                    record.remainder_fen,
                    str(record.wanfen),
                    None if record.yield_7d is None else str(record.yield_7d),
                    record.chunk_holders,
                    record.plan_sha256,
                    record.status,
                    record.posted_ns,
                ),
            )

    def day(self, day: date) -> DayRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM days WHERE day = ?", (day.isoformat(),)
            ).fetchone()
        return None if row is None else _day_record(row)

    def days(self, start: date | None = None, end: date | None = None) -> list[DayRecord]:
        """Days in [start, end] (all when open), oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM days WHERE day >= ? AND day <= ? ORDER BY day",
                (
                    (start or date.min).isoformat(),
                    (end or date.max).isoformat(),
                ),
            ).fetchall()
        return [_day_record(row) for row in rows]

    def last_day(self) -> DayRecord | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM days ORDER BY day DESC LIMIT 1").fetchone()
        return None if row is None else _day_record(row)


def _day_record(row: tuple) -> DayRecord:
    fields = dict(zip(DayRecord.__dataclass_fields__, row, strict=True))
    fields["day"] = date.fromisoformat(fields["day"])
    fields["wanfen"] = Decimal(fields["wanfen"])
    if fields["yield_7d"] is not None:
        fields["yield_7d"] = Decimal(fields["yield_7d"])
    return DayRecord(**fields)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
