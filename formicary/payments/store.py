"""The payments package's own tables, on SQLite (a file in WAL mode, or in memory for tests).

Why this shape (first increment): one connection behind a lock, short transactions, no ORM.
Domain rows are small and written a few times per operation; the ledger does the heavy,
contended part (balances, limits, atomicity). The file runs with `synchronous=FULL` because
the order of durability matters: a payment's row must be durable *before* its transfers are
submitted, or a crash could lose the row while the ledger keeps transfers whose ids a new row
would then reuse. PostgreSQL (shared by several service processes) is left for later.

The schema is versioned with `PRAGMA user_version`; tables are STRICT.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec

__all__ = ["PaymentsStore"]

T = TypeVar("T")

SCHEMA_VERSION = 4
# Each migration takes the schema from version i to i + 1; a store at an older version is
# brought forward on open (new tables, indexes and nullable columns: existing rows are never
# rewritten).
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        identity_level INTEGER NOT NULL,
        created_ns INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE merchants (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        fee_plan TEXT NOT NULL,
        settlement_bank_code TEXT NOT NULL,
        settlement_account_masked TEXT NOT NULL,
        created_ns INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE cards (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users (id),
        bank_code TEXT NOT NULL,
        masked_number TEXT NOT NULL,
        fingerprint TEXT NOT NULL,  -- keyed hash of the full number: binding twice is a no-op
        created_ns INTEGER NOT NULL,
        UNIQUE (user_id, bank_code, fingerprint)
    ) STRICT;
    CREATE TABLE card_transfers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users (id),
        card_id INTEGER NOT NULL REFERENCES cards (id),
        amount_fen INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        state TEXT NOT NULL,
        failure_code TEXT NOT NULL DEFAULT '',
        failure_detail TEXT NOT NULL DEFAULT '',
        created_ns INTEGER NOT NULL,
        completed_ns INTEGER NOT NULL DEFAULT 0,
        UNIQUE (user_id, kind, request_id)
    ) STRICT;
    CREATE TABLE campaigns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        funder_merchant_id INTEGER REFERENCES merchants (id),
        merchant_id INTEGER REFERENCES merchants (id),
        discount_fen INTEGER NOT NULL,
        min_order_fen INTEGER NOT NULL,
        budget_fen INTEGER NOT NULL,
        state TEXT NOT NULL,
        sweeps INTEGER NOT NULL DEFAULT 0,
        failure_code TEXT NOT NULL DEFAULT '',
        created_ns INTEGER NOT NULL,
        funded_ns INTEGER NOT NULL DEFAULT 0,
        settlement_id INTEGER  -- merchant-funded: the settlement that netted the funding
    ) STRICT;
    CREATE TABLE campaign_sweeps (
        campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
        number INTEGER NOT NULL,
        merchant_id INTEGER,  -- the funder merchant, NULL for platform campaigns
        amount_fen INTEGER NOT NULL,
        created_ns INTEGER NOT NULL,
        settlement_id INTEGER,
        PRIMARY KEY (campaign_id, number)
    ) STRICT;
    CREATE TABLE orders (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        merchant_id INTEGER NOT NULL REFERENCES merchants (id),
        merchant_order_no TEXT NOT NULL,
        amount_fen INTEGER NOT NULL,
        description TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        UNIQUE (merchant_id, merchant_order_no)
    ) STRICT;
    CREATE TABLE payments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id INTEGER NOT NULL REFERENCES orders (id),
        user_id INTEGER NOT NULL REFERENCES users (id),
        merchant_id INTEGER NOT NULL REFERENCES merchants (id),
        funding_kind TEXT NOT NULL,
        funding_ref TEXT NOT NULL,
        campaign_id INTEGER REFERENCES campaigns (id),
        amount_fen INTEGER NOT NULL,
        coupon_fen INTEGER NOT NULL,
        payer_fen INTEGER NOT NULL,
        fee_fen INTEGER NOT NULL,
        fee_rate_bp INTEGER NOT NULL,
        state TEXT NOT NULL,
        failure_code TEXT NOT NULL DEFAULT '',
        failure_detail TEXT NOT NULL DEFAULT '',
        created_ns INTEGER NOT NULL,
        completed_ns INTEGER NOT NULL DEFAULT 0,
        settlement_id INTEGER
    ) STRICT;
    CREATE INDEX payments_by_order ON payments (order_id);
    CREATE INDEX payments_open ON payments (state) WHERE state NOT IN ('succeeded', 'failed');
    CREATE INDEX payments_unsettled ON payments (merchant_id, completed_ns)
        WHERE settlement_id IS NULL AND state = 'succeeded';
    CREATE TABLE refunds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        payment_id INTEGER NOT NULL REFERENCES payments (id),
        merchant_id INTEGER NOT NULL REFERENCES merchants (id),
        request_no TEXT NOT NULL,
        amount_fen INTEGER NOT NULL,
        payer_fen INTEGER NOT NULL,
        coupon_fen INTEGER NOT NULL,
        fee_fen INTEGER NOT NULL,
        state TEXT NOT NULL,
        to_wallet INTEGER NOT NULL DEFAULT 0,
        failure_code TEXT NOT NULL DEFAULT '',
        failure_detail TEXT NOT NULL DEFAULT '',
        created_ns INTEGER NOT NULL,
        reversed_ns INTEGER NOT NULL DEFAULT 0,
        completed_ns INTEGER NOT NULL DEFAULT 0,
        settlement_id INTEGER,
        UNIQUE (payment_id, request_no)
    ) STRICT;
    CREATE INDEX refunds_open ON refunds (state) WHERE state NOT IN ('succeeded', 'failed');
    CREATE TABLE settlements (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        merchant_id INTEGER NOT NULL REFERENCES merchants (id),
        business_date TEXT NOT NULL,
        net_fen INTEGER NOT NULL,
        state TEXT NOT NULL,
        failure_code TEXT NOT NULL DEFAULT '',
        failure_detail TEXT NOT NULL DEFAULT '',
        created_ns INTEGER NOT NULL,
        completed_ns INTEGER NOT NULL DEFAULT 0,
        UNIQUE (merchant_id, business_date)
    ) STRICT;
    CREATE TABLE payment_codes (
        user_id INTEGER NOT NULL,
        nonce INTEGER NOT NULL,
        issued_ns INTEGER NOT NULL,
        used_ns INTEGER NOT NULL,
        merchant_id INTEGER NOT NULL,
        merchant_order_no TEXT NOT NULL,
        PRIMARY KEY (user_id, nonce)
    ) STRICT;
    CREATE INDEX payment_codes_by_use ON payment_codes (used_ns);
    """,
    # 2: bill payments (billers are merchants; bills materialise on lookup) and family grants.
    """
    CREATE TABLE billers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        category TEXT NOT NULL,
        merchant_id INTEGER NOT NULL REFERENCES merchants (id),
        created_ns INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE bills (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        biller_id INTEGER NOT NULL REFERENCES billers (id),
        account_number TEXT NOT NULL,
        period TEXT NOT NULL,  -- the billed calendar month, YYYY-MM
        amount_fen INTEGER NOT NULL,
        due_date TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        UNIQUE (biller_id, account_number, period)
    ) STRICT;
    CREATE TABLE bill_payments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        bill_id INTEGER NOT NULL REFERENCES bills (id),
        user_id INTEGER NOT NULL REFERENCES users (id),
        request_id TEXT NOT NULL,
        amount_fen INTEGER NOT NULL,
        funding_kind TEXT NOT NULL,
        funding_ref TEXT NOT NULL,
        order_id INTEGER REFERENCES orders (id),
        payment_id INTEGER REFERENCES payments (id),
        state TEXT NOT NULL,
        failure_code TEXT NOT NULL DEFAULT '',
        failure_detail TEXT NOT NULL DEFAULT '',
        created_ns INTEGER NOT NULL,
        completed_ns INTEGER NOT NULL DEFAULT 0,
        UNIQUE (user_id, request_id)
    ) STRICT;
    CREATE INDEX bill_payments_by_bill ON bill_payments (bill_id);
    CREATE INDEX bill_payments_open ON bill_payments (state)
        WHERE state NOT IN ('succeeded', 'failed');
    CREATE TABLE family_grants (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        payer_id INTEGER NOT NULL REFERENCES users (id),
        member_id INTEGER NOT NULL REFERENCES users (id),
        monthly_limit_fen INTEGER NOT NULL,
        state TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        revoked_ns INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE UNIQUE INDEX family_grants_active ON family_grants (payer_id, member_id)
        WHERE state = 'active';
    CREATE INDEX family_grants_by_member ON family_grants (member_id);
    CREATE TABLE family_months (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        grant_id INTEGER NOT NULL REFERENCES family_grants (id),
        month INTEGER NOT NULL,  -- yyyymm, a calendar month in Beijing time
        limit_fen INTEGER NOT NULL,
        state TEXT NOT NULL,
        sweeps INTEGER NOT NULL DEFAULT 0,
        swept_fen INTEGER NOT NULL DEFAULT 0,
        created_ns INTEGER NOT NULL,
        opened_ns INTEGER NOT NULL DEFAULT 0,
        closed_ns INTEGER NOT NULL DEFAULT 0,
        UNIQUE (grant_id, month)
    ) STRICT;
    CREATE INDEX family_months_unclosed ON family_months (state) WHERE state != 'closed';
    CREATE INDEX payments_by_family_funding ON payments (funding_ref)
        WHERE funding_kind = 'family';
    """,
    # 3: durable idempotency for campaigns: a creation's request id, and red-packet claims.
    """
    ALTER TABLE campaigns ADD COLUMN request_id TEXT;
    CREATE UNIQUE INDEX campaigns_by_request ON campaigns
        (coalesce(funder_merchant_id, 0), request_id) WHERE request_id IS NOT NULL;
    CREATE TABLE campaign_claims (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
        user_id INTEGER NOT NULL REFERENCES users (id),
        request_id TEXT NOT NULL,
        amount_fen INTEGER NOT NULL,
        state TEXT NOT NULL,
        failure_code TEXT NOT NULL DEFAULT '',
        failure_detail TEXT NOT NULL DEFAULT '',
        created_ns INTEGER NOT NULL,
        completed_ns INTEGER NOT NULL DEFAULT 0,
        UNIQUE (user_id, request_id)
    ) STRICT;
    CREATE UNIQUE INDEX campaign_claims_one_per_user ON campaign_claims (campaign_id, user_id)
        WHERE state != 'failed';
    CREATE INDEX campaign_claims_open ON campaign_claims (state)
        WHERE state NOT IN ('succeeded', 'failed');
    """,
    # 4: durable idempotency for registrations: a user's or merchant's creation request id
    # (unique per table) and a keyed digest of the terms it was created with, so that a retry
    # after a restart finds its party, and other terms under the same id are a conflict.
    """
    ALTER TABLE users ADD COLUMN request_id TEXT;
    ALTER TABLE users ADD COLUMN request_digest TEXT;
    CREATE UNIQUE INDEX users_by_request ON users (request_id) WHERE request_id IS NOT NULL;
    ALTER TABLE merchants ADD COLUMN request_id TEXT;
    ALTER TABLE merchants ADD COLUMN request_digest TEXT;
    CREATE UNIQUE INDEX merchants_by_request ON merchants (request_id)
        WHERE request_id IS NOT NULL;
    """,
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


class PaymentsStore:
    """The payments tables: a SQLite file (WAL, durable commits) or `None` for memory.

    Thread-safe: one connection, one lock; hold transactions short (never across a ledger or
    bank call).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = ":memory:" if path is None else str(path)
        # check_same_thread=False: the lock below serialises every use of the connection.
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        if self.path != ":memory:":
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            assert mode == "wal", mode
            self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            assert version <= SCHEMA_VERSION, f"payments schema {version} is newer than this code"
            for i in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[i].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction, committed on success."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ----------------------------------------------------------------- small helpers

    def insert(self, conn: sqlite3.Connection, table: str, values: dict[str, Any]) -> int:
        """Insert one row (inside a transaction); return its id."""
        columns = ", ".join(values)
        marks = ", ".join("?" * len(values))
        cursor = conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", [*values.values()]
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def one(self, kind: type[T], sql: str, params: Sequence[Any] = ()) -> T | None:
        with self._lock:
            row = self._conn.execute(sql, params).fetchone()
        return None if row is None else _decode(kind, row)

    def all(self, kind: type[T], sql: str, params: Sequence[Any] = ()) -> list[T]:
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [_decode(kind, row) for row in rows]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def get(self, kind: type[T], table: str, row_id: int) -> T | None:
        return self.one(kind, f"SELECT * FROM {table} WHERE id = ?", (row_id,))

    def open_ids(self, table: str, final_states: Sequence[str], limit: int) -> list[int]:
        """Ids of rows not in a final state (for recovery), oldest first, at most `limit`."""
        marks = ", ".join("?" * len(final_states))
        rows = self.rows(
            f"SELECT id FROM {table} WHERE state NOT IN ({marks}) ORDER BY id LIMIT ?",
            [*final_states, limit],
        )
        return [row[0] for row in rows]

    def transition(
        self, table: str, row_id: int, from_states: Sequence[str], values: dict[str, Any]
    ) -> bool:
        """Compare-and-set: update the row only if its state is one of `from_states`, so that
        two threads resuming the same record cannot both move it on."""
        assignments = ", ".join(f"{column} = ?" for column in values)
        marks = ", ".join("?" * len(from_states))
        with self.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE {table} SET {assignments} WHERE id = ? AND state IN ({marks})",
                [*values.values(), row_id, *from_states],
            )
            return cursor.rowcount == 1


def _decode(kind: type[T], row: sqlite3.Row) -> T:
    # strict=False: SQLite has no boolean (0/1 -> bool); unknown columns are ignored.
    return msgspec.convert(dict(row), kind, strict=False)
