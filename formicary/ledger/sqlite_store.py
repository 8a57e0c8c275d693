"""The SQLite store: the ledger log in one WAL file, plus a derived per-account index beside it.

Design (figures measured on this 2-core box, 1M transfers in batches of 8,190):

- The log file (`path`) holds accounts, transfers, expirations and history balances, each table
  keyed by timestamp (`INTEGER PRIMARY KEY`, strictly increasing), so a commit only appends at
  the right edge of each B-tree: one `executemany` of plain tuples per table, in one
  transaction, `synchronous=FULL` (one fsync of the WAL per commit).
- 128-bit fields are `ANY` columns of STRICT tables: INTEGER below 2^63 (small ids stay 1-8
  bytes), else a 16-byte big-endian BLOB; user_data_64 the same way. Account ids are stored as
  such in transfers: mapping them to small per-account keys made rows smaller but the id -> key
  dict lookup cost ~1.3 us per transfer with 1M accounts, more than it saved.
- No index on transfers at all in the log. Indexes on (debit, timestamp) and (credit, timestamp)
  maintained by commit took the commit from ~450k to 86k rows/s at 1M transfers and 10k
  accounts (every batch dirties pages all over both indexes, ~30 MB of WAL per batch), and it
  gets worse as the log grows. Instead the *index file* (`path` + "-index", derived data,
  rebuilt if missing, stale, foreign or of an older layout) is filled by a background thread in
  steps within buckets of 131,072 consecutive transfers: each step groups its transfers'
  timestamps per account and writes the accounts, in id order, in chunks of up to 128: one
  `runs(bucket, step, first_account, postings)` row per chunk, the chunk holding its accounts'
  ids, offsets and packed timestamps. The grouping runs in C without the GIL
  (native.sqlite_writer's `group_postings`: ~0.35 us per transfer with 10k accounts, ~1.1 us
  with 1M) on a connection to the index file with the log ATTACHed, in a deferred transaction,
  so it never takes the log's write lock. A row per posting with an ORDER BY in SQL (the first
  layout) cost 1.3-2.9 us per transfer, as much CPU as the commit itself; a row per account
  keyed by account landed all over the B-tree with 1M accounts (SQLite durable fell from 370k
  to 200k transfers/s): bucket first keeps a step's inserts in a small cached region. A
  bucket indexed in several small steps is regrouped in one once it has four or is whole. A
  query probes, per bucket and step of its window, the one chunk that may hold the account,
  up to the indexer's watermark (read first, so that the log snapshot taken after it contains
  every indexed transfer), fetches those transfers by timestamp, and scans the log after the
  watermark.
- Pragmas: page_size 4096/8192/16384/65536, cache_size up to 200 MB, mmap and temp_store made
  no measurable difference to commit (all within run-to-run noise of +-20% on this VM), so the
  log keeps the defaults.

Measured, 1M transfers committed in batches of 8,190 (small ids / random 128-bit ids):
  commit alone, indexer off: 720k / 330k rows/s (10k accounts), 520k / 290k (1M accounts);
  commit alone, indexer running beside it: 160k-290k rows/s (it shares the core, see _storekit);
  engine + commit end to end: 363k/s (10k accounts), 253k/s (1M) with indexing deferred,
  215k/s and 188k/s with the index kept up to date all along (engine alone: 805k/s, 423k/s);
  indexing alone: ~3M transfers/s with 10k accounts, ~0.9M/s with 1M (in rows per posting:
  0.4-0.6M/s); load_log: 600-740k rows/s; load_accounts: 800k-1M rows/s;
  account_transfers (limit 100): 0.03-0.4 ms indexed, ~30 ms when scanning a 524k-row tail.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import numpy as np

from formicary.ledger import native
from formicary.ledger._storekit import (
    BUCKET_TRANSFERS,
    BackgroundIndexer,
    load_migrations,
    merge_log,
    split_query,
)
from formicary.ledger.bulk import BulkRecord
from formicary.ledger.engine import BatchOutcome, Expiration
from formicary.ledger.store import StoreError
from formicary.ledger.types import Account, AccountBalance, Transfer

__all__ = ["SQLiteStore"]

_U63 = 2**63
_U128_FIELDS = {
    "id",
    "debit_account_id",
    "credit_account_id",
    "pending_id",
    "user_data_128",
    "user_data_64",
}
_TIMESTAMP_MAX = 2**63 - 1
_FETCH_ROWS = 8192
# Bumped whenever the index file's layout changes: a mismatch rebuilds it from the log.
_INDEX_VERSION = 4

_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS index_state (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    timestamp INTEGER NOT NULL,  -- every transfer with timestamp <= this is indexed
    transfers INTEGER NOT NULL   -- how many transfers are indexed (aligns the steps)
) STRICT;
INSERT OR IGNORE INTO index_state VALUES (1, 0, 0);
-- Bucket n: the transfers n * 131,072 to (n + 1) * 131,072 - 1, in this range of timestamps.
CREATE TABLE IF NOT EXISTS buckets (
    bucket INTEGER PRIMARY KEY,
    timestamp_min INTEGER NOT NULL,
    timestamp_max INTEGER NOT NULL
) STRICT;
-- A bucket is indexed in steps 0, 1, ... (a whole bucket in one step, see _index_step). A
-- step's accounts, in ascending id order, are cut into chunks of at most 128 accounts and 4,096
-- timestamps (one account may have more): one row per chunk, keyed by its first account (16
-- bytes big-endian), holding `postings` (native.sqlite_writer's group_postings has the layout).
-- Keyed by bucket first, so that a step's rows land in the current bucket's region of the
-- B-tree; a chunk per 128 accounts keeps a step with a million accounts at ~8,000 rows.
CREATE TABLE IF NOT EXISTS steps (
    bucket INTEGER NOT NULL,
    step INTEGER NOT NULL,
    PRIMARY KEY (bucket, step)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    bucket INTEGER NOT NULL,
    step INTEGER NOT NULL,
    first_account BLOB NOT NULL,
    postings BLOB NOT NULL,
    PRIMARY KEY (bucket, step, first_account)
) STRICT, WITHOUT ROWID;
"""
# The tables of every index layout so far: a layout change drops them all and rebuilds.
_INDEX_TABLES = ("postings", "buckets", "steps", "runs", "index_state")

_TRANSFER_COLUMNS = (
    "id, debit_account_id, credit_account_id, amount, ledger, code, flags, pending_id, timeout,"
    " user_data_128, user_data_64, user_data_32, timestamp"
)
_TRANSFER_COLUMNS_T = ", ".join("t." + c.strip() for c in _TRANSFER_COLUMNS.split(","))
# Timestamp first: the clustered key, so the insert appends at the B-tree's right edge.
_INSERT_TRANSFER_COLUMNS = (
    "timestamp",
    *(c.strip() for c in _TRANSFER_COLUMNS.split(",") if c.strip() != "timestamp"),
)
_INSERT_TRANSFERS = (
    f"INSERT INTO transfers ({', '.join(_INSERT_TRANSFER_COLUMNS)})"
    f" VALUES ({','.join('?' * len(_INSERT_TRANSFER_COLUMNS))})"
)
_INSERT_ACCOUNTS = (
    "INSERT INTO accounts (timestamp, id, ledger, code, flags, user_data_128, user_data_64,"
    " user_data_32) VALUES (?,?,?,?,?,?,?,?)"
)
_INSERT_EXPIRATIONS = "INSERT INTO expirations (timestamp, pending_id) VALUES (?,?)"
_BULK_COLUMNS = (
    "id, account_id, debit_common, ledger, code, user_data_128, user_data_64, user_data_32,"
    " timestamp, leg_accounts, leg_amounts"
)
_INSERT_BULK = (
    f"INSERT INTO bulk_transfers ({_BULK_COLUMNS}, legs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_BALANCES = (
    "INSERT INTO account_balances (account_id, timestamp, debits_pending, debits_posted,"
    " credits_pending, credits_posted) VALUES (?,?,?,?,?,?)"
)
# One indexing step: the transfers in (?1, ?2], each with its two accounts, grouped per account
# into `runs` (native.sqlite_writer.group_postings, or _group_postings in Python).
_STEP_POSTINGS = """
SELECT timestamp, debit_account_id, credit_account_id FROM log.transfers
WHERE timestamp > ?1 AND timestamp <= ?2 ORDER BY timestamp
"""
# Bound as group_postings binds it (?1 the chunk's first account, ?2 the chunk); the bucket and
# the step are written in (ints).
_INSERT_RUN = "INSERT INTO runs VALUES ({bucket:d}, {step:d}, ?1, ?2)"
_CHUNK_ACCOUNTS = 128
_CHUNK_POSTINGS = 4096
# A bucket indexed in this many partial steps is indexed afresh in one step at the next one
# (and always once it is whole), so a query probes few steps per bucket.
_STEPS_PER_BUCKET_MAX = 4
# Per bucket in the window [?2, ?3] and step, the chunk that may hold account ?1 (16 bytes
# big-endian): the one with the greatest first account not above it. CROSS JOIN pins the loop
# order, so chunks come out in time order.
_RUNS_QUERY = """
SELECT (SELECT r.postings FROM idx.runs AS r
        WHERE r.bucket = s.bucket AND r.step = s.step AND r.first_account <= ?1
        ORDER BY r.first_account DESC LIMIT 1)
FROM idx.buckets AS b CROSS JOIN idx.steps AS s
WHERE b.timestamp_max >= ?2 AND b.timestamp_min <= ?3 AND s.bucket = b.bucket
ORDER BY b.bucket {order}, s.step {order}
"""
# Transfers are fetched by timestamp this many at a time (SQLite's bound-parameter limit).
_FETCH_BY_TIMESTAMP = 500
_TAIL_QUERY = f"""
SELECT {_TRANSFER_COLUMNS} FROM transfers
WHERE timestamp BETWEEN ?2 AND ?3 AND (debit_account_id = ?1 OR credit_account_id = ?1)
ORDER BY timestamp {{order}} LIMIT ?4
"""


def _u128(value: int) -> int | bytes:
    """Encode an unsigned field: INTEGER when it fits int64, else 16 bytes big-endian."""
    return value if value < _U63 else value.to_bytes(16, "big")


# The columns of _INSERT_TRANSFERS as (field, unsigned 128-bit?): the native writer reads them
# straight from the Transfer Structs; `_python_transfer_rows` is the same in Python.
_TRANSFER_FIELDS = tuple(
    (Transfer.__dict__[name], name in _U128_FIELDS) for name in _INSERT_TRANSFER_COLUMNS
)


def _python_transfer_rows(transfers: list[Transfer]) -> list[tuple]:
    """Transfers -> rows of _INSERT_TRANSFERS (`_TRANSFER_FIELDS` in Python).

    Conditionals are inlined: a helper call per field costs ~60 ns, a quarter of the row's time.
    """
    B = _U63
    return [
        (
            t.timestamp,
            i if (i := t.id) < B else i.to_bytes(16, "big"),
            d if (d := t.debit_account_id) < B else d.to_bytes(16, "big"),
            c if (c := t.credit_account_id) < B else c.to_bytes(16, "big"),
            t.amount,
            t.ledger,
            t.code,
            t.flags,
            p if (p := t.pending_id) < B else p.to_bytes(16, "big"),
            t.timeout,
            u if (u := t.user_data_128) < B else u.to_bytes(16, "big"),
            v if (v := t.user_data_64) < B else v.to_bytes(16, "big"),
            t.user_data_32,
        )
        for t in transfers
    ]


def _int(value: int | bytes) -> int:
    return value if value.__class__ is int else int.from_bytes(value, "big")  # type: ignore[arg-type]


def _decode_transfers(rows: list[tuple]) -> list[Transfer]:
    """Rows in _TRANSFER_COLUMNS order -> Transfers; the conditionals are inlined for speed."""
    fb = int.from_bytes
    T = Transfer
    return [
        T(
            i if i.__class__ is int else fb(i, "big"),
            d if d.__class__ is int else fb(d, "big"),
            c if c.__class__ is int else fb(c, "big"),
            amount,
            ledger,
            code,
            flags,
            p if p.__class__ is int else fb(p, "big"),
            timeout,
            u if u.__class__ is int else fb(u, "big"),
            v if v.__class__ is int else fb(v, "big"),
            w,
            ts,
        )
        for i, d, c, amount, ledger, code, flags, p, timeout, u, v, w, ts in rows
    ]


def _path_from_url(url: str) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix:
        raise StoreError(f"bad SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db")
    path = url[len(prefix) :]
    if path == ":memory:" or path.startswith("file:"):
        raise StoreError(f"unsupported SQLite URL {url!r}: the ledger needs a file")
    return path


class _Transactions(Protocol):
    def transaction(self, batches: list[tuple[Any, ...]]) -> None: ...

    def close(self) -> None: ...


class _PythonTransactions:
    """native.sqlite_writer's `transaction` on a sqlite3 connection (where it is not built)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def transaction(self, batches: list[tuple[Any, ...]]) -> None:
        """BEGIN IMMEDIATE, each batch in order, COMMIT; rolled back on error. A batch is
        (sql, rows) or (sql, transfers, _TRANSFER_FIELDS), as for the native writer."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows, *fields in batches:
                if fields:
                    assert fields == [_TRANSFER_FIELDS], "only transfers are given as objects"
                    rows = _python_transfer_rows(rows)
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()


class SQLiteStore:
    """The ledger log in a SQLite WAL file (see the module docstring for the design)."""

    def __init__(self, url: str, *, index_in_background: bool = True) -> None:
        self.path = _path_from_url(url)
        self.index_path = self.path + "-index"
        if sqlite3.sqlite_version_info < (3, 37, 0):
            raise StoreError(
                f"SQLite >= 3.37 is needed (STRICT tables), have {sqlite3.sqlite_version}"
            )
        self._closed = False
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._index_in_background = index_in_background
        try:
            self._writer = self._connect(self.path)
            mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: cannot use WAL mode (got {mode})")
            # FULL: the WAL is fsynced at every commit, so a returned commit survives power loss.
            self._writer.execute("PRAGMA synchronous=FULL")
            # Commits go through the GIL-free connection where it is built (native.py): the
            # same SQL on the same file, so the commit overlaps the engine's next batch.
            self._committer: _Transactions = _PythonTransactions(self._writer)
            if native.sqlite_writer is not None:
                self._committer = native.sqlite_writer(self.path)
                self._committer.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open {self.path}: {e}") from e
        self._index_conn: sqlite3.Connection | None = None
        self._index_writer: Any = None  # native.sqlite_writer on the index file, if built
        self._indexer = BackgroundIndexer(self._index_step, f"sqlite-indexer:{self.path}")

    @staticmethod
    def _connect(path: str) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN/COMMIT), never implicit.
        # check_same_thread=False: close() may run on another thread than the one that opened.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    # ----------------------------------------------------------------- schema

    def migrate(self) -> None:
        self._check_open()
        w = self._writer
        try:
            w.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT"
            )
            for migration in load_migrations("sqlite"):
                # IMMEDIATE takes the write lock first, so two processes migrating at once
                # apply each version exactly once.
                w.execute("BEGIN IMMEDIATE")
                try:
                    applied = w.execute(
                        "SELECT 1 FROM schema_version WHERE version = ?", (migration.version,)
                    ).fetchone()
                    if applied is None:
                        for statement in _statements(migration.sql):
                            w.execute(statement)
                        w.execute(
                            "INSERT INTO schema_version VALUES (?, ?, ?)",
                            (migration.version, migration.name, datetime.now(UTC).isoformat()),
                        )
                    w.execute("COMMIT")
                except BaseException:
                    w.execute("ROLLBACK")
                    raise
            self._open_index()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: migration failed: {e}") from e
        if self._index_in_background:
            self._indexer.start()

    def schema_version(self) -> int:
        """The highest applied migration (0 before the first migrate)."""
        self._check_open()
        try:
            row = self._writer.execute("SELECT max(version) FROM schema_version").fetchone()
        except sqlite3.OperationalError:
            return 0
        return row[0] or 0

    def _open_index(self) -> None:
        """Open (or create, or rebuild) the derived index file and attach the log to it."""
        if self._index_conn is not None:
            return
        try:
            conn = self._prepare_index()
        except sqlite3.DatabaseError:
            # A corrupt or foreign file: it is derived data, so start it afresh.
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.index_path + suffix)
            conn = self._prepare_index()
        self._index_conn = conn
        if native.sqlite_writer is not None:
            # The step's grouping runs on this connection, in C without the GIL.
            writer = native.sqlite_writer(self.index_path)
            writer.execute("PRAGMA synchronous=NORMAL")
            writer.execute("PRAGMA cache_size=-65536")
            writer.execute("ATTACH DATABASE ? AS log", (self.path,))
            self._index_writer = writer

    def _prepare_index(self) -> sqlite3.Connection:
        conn = self._connect(self.index_path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL: the index is rebuilt from the log, so it needs consistency, not durability.
            conn.execute("PRAGMA synchronous=NORMAL")
            # Queries and regrouped buckets read recent chunks again: keep them in memory.
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("ATTACH DATABASE ? AS log", (self.path,))
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != _INDEX_VERSION:
                for table in _INDEX_TABLES:
                    conn.execute(f"DROP TABLE IF EXISTS main.{table}")
            for statement in _statements(_INDEX_SCHEMA):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={_INDEX_VERSION}")
            # An index ahead of the log belongs to another (or restored) log: rebuild it.
            watermark = conn.execute("SELECT timestamp FROM index_state").fetchone()[0]
            if (
                watermark
                and not conn.execute(
                    "SELECT 1 FROM log.transfers WHERE timestamp = ?", (watermark,)
                ).fetchone()
            ):
                for table in ("runs", "steps", "buckets"):
                    conn.execute(f"DELETE FROM {table}")
                conn.execute("UPDATE index_state SET timestamp = 0, transfers = 0")
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def index_now(self) -> None:
        """Index every committed transfer before returning (tests, benchmarks, tools)."""
        self._check_open()
        self._open_index()
        self._indexer.run_now()

    def _index_step(self, whole_buckets_only: bool) -> bool:
        """Index the transfers after the watermark up to the end of the current bucket (or
        fewer, unless `whole_buckets_only`); False if there was nothing to do."""
        conn = self._index_conn
        assert conn is not None
        # Only this thread (under the indexer's lock) writes the index, so the bounds read here
        # still hold when the step's own transaction starts.
        watermark, indexed = conn.execute("SELECT timestamp, transfers FROM index_state").fetchone()
        bucket, done = divmod(indexed, BUCKET_TRANSFERS)
        row = conn.execute(
            "SELECT timestamp FROM log.transfers WHERE timestamp > ? ORDER BY timestamp"
            " LIMIT 1 OFFSET ?",
            (watermark, BUCKET_TRANSFERS - done - 1),
        ).fetchone()
        if row is not None:
            high = row[0]
        elif not whole_buckets_only:
            high = conn.execute("SELECT max(timestamp) FROM log.transfers").fetchone()[0]
        else:
            high = None
        if high is None or high <= watermark:
            return False
        steps = conn.execute("SELECT count(*) FROM steps WHERE bucket = ?", (bucket,)).fetchone()[0]
        low = watermark
        if steps and (steps >= _STEPS_PER_BUCKET_MAX or row is not None):
            # Index the bucket afresh, in one step, from its first transfer.
            low = conn.execute(
                "SELECT timestamp_min - 1 FROM buckets WHERE bucket = ?", (bucket,)
            ).fetchone()[0]
            indexed -= done
            steps = 0
        insert = _INSERT_RUN.format(bucket=bucket, step=steps)
        index: Any = self._index_writer or conn
        index.execute("BEGIN")  # deferred: IMMEDIATE would also take the log's write lock
        try:
            if steps == 0:
                index.execute("DELETE FROM runs WHERE bucket = ?", (bucket,))
                index.execute("DELETE FROM steps WHERE bucket = ?", (bucket,))
            group = (
                self._index_writer.group_postings
                if self._index_writer
                else partial(_group_postings, conn)
            )
            count = group(_STEP_POSTINGS, (low, high), insert, _CHUNK_ACCOUNTS, _CHUNK_POSTINGS)
            index.execute("INSERT INTO steps VALUES (?, ?)", (bucket, steps))
            index.execute(
                "INSERT INTO buckets VALUES (?, ?, ?) ON CONFLICT (bucket)"
                " DO UPDATE SET timestamp_max = excluded.timestamp_max",
                (bucket, low + 1, high),
            )
            index.execute(
                "UPDATE index_state SET timestamp = ?, transfers = ?", (high, indexed + count)
            )
            index.execute("COMMIT")
        except BaseException:
            if index.in_transaction:
                index.execute("ROLLBACK")
            raise
        return True

    # ----------------------------------------------------------------- write path

    def commit(self, outcome: BatchOutcome) -> None:
        self._check_open()
        accounts = outcome.accounts
        transfers = outcome.transfers
        expirations = outcome.expirations
        history = outcome.history
        bulks = outcome.bulks
        if not (accounts or transfers or expirations or history or bulks):
            return  # nothing durable to add: skip the fsync
        batches: list[tuple[Any, ...]] = []
        if accounts:
            batches.append(
                (
                    _INSERT_ACCOUNTS,
                    [
                        (
                            a.timestamp,
                            _u128(a.id),
                            a.ledger,
                            a.code,
                            a.flags,
                            _u128(a.user_data_128),
                            _u128(a.user_data_64),
                            a.user_data_32,
                        )
                        for a in accounts
                    ],
                )
            )
        if transfers:
            batches.append((_INSERT_TRANSFERS, transfers, _TRANSFER_FIELDS))
        if expirations:
            batches.append(
                (_INSERT_EXPIRATIONS, [(e.timestamp, _u128(e.pending_id)) for e in expirations])
            )
        if bulks:
            batches.append(
                (
                    _INSERT_BULK,
                    [
                        (
                            _u128(b.id),
                            _u128(b.account_id),
                            int(b.debit_common),
                            b.ledger,
                            b.code,
                            _u128(b.user_data_128),
                            _u128(b.user_data_64),
                            b.user_data_32,
                            b.timestamp,
                            b.leg_accounts,
                            b.leg_amounts,
                            b.legs,
                        )
                        for b in bulks
                    ],
                )
            )
        if history:
            batches.append(
                (
                    _INSERT_BALANCES,
                    [
                        (
                            _u128(account_id),
                            b.timestamp,
                            b.debits_pending,
                            b.debits_posted,
                            b.credits_pending,
                            b.credits_posted,
                        )
                        for account_id, b in history
                    ],
                )
            )
        try:
            self._committer.transaction(batches)
        except (sqlite3.Error, OverflowError, TypeError, ValueError) as e:
            raise StoreError(f"{self.path}: commit failed, nothing was written: {e}") from e
        self._indexer.committed(len(transfers))

    # ----------------------------------------------------------------- recovery

    def load_accounts(self) -> list[Account]:
        conn = self._reader()
        try:
            rows = conn.execute(
                "SELECT id, ledger, code, flags, user_data_128, user_data_64, user_data_32,"
                " timestamp FROM accounts ORDER BY timestamp"
            ).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot load accounts: {e}") from e
        return [
            Account(
                id=_int(i),
                ledger=ledger,
                code=code,
                flags=flags,
                user_data_128=_int(u),
                user_data_64=_int(v),
                user_data_32=w,
                timestamp=ts,
            )
            for i, ledger, code, flags, u, v, w, ts in rows
        ]

    def load_log(self) -> Iterator[Transfer | Expiration | BulkRecord]:
        self._check_open()
        # A private connection: the read transaction (one snapshot) lasts as long as the
        # iteration, and must not collide with queries made meanwhile on this thread.
        conn = self._connect(self.path)
        try:
            conn.execute("BEGIN")
            expirations = [
                Expiration(timestamp=ts, pending_id=_int(p))
                for ts, p in conn.execute(
                    "SELECT timestamp, pending_id FROM expirations ORDER BY timestamp"
                )
            ]
            cursor = conn.execute(f"SELECT {_TRANSFER_COLUMNS} FROM transfers ORDER BY timestamp")
            bulks = conn.execute(f"SELECT {_BULK_COLUMNS} FROM bulk_transfers ORDER BY timestamp")
            chunks = iter(lambda: _decode_transfers(cursor.fetchmany(_FETCH_ROWS)), [])
            yield from merge_log(chunks, expirations, map(_decode_bulk, bulks))
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot load the log: {e}") from e
        finally:
            conn.close()

    # ----------------------------------------------------------------- queries

    def account_transfers(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = _TIMESTAMP_MAX,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[Transfer]:
        assert limit >= 0
        if limit == 0 or timestamp_min > timestamp_max:
            return []
        conn = self._reader()
        account = _u128(account_id)
        key = account_id.to_bytes(16, "big")
        order = "DESC" if reverse else "ASC"

        def indexed(low: int, high: int, n: int) -> list[tuple]:
            rows: list[tuple] = []
            chunks = conn.execute(_RUNS_QUERY.format(order=order), (key, low, high))
            for (chunk,) in chunks:
                stamps = _chunk_timestamps(chunk, account_id) if chunk else _NO_STAMPS
                first, stop = np.searchsorted(stamps, low), np.searchsorted(stamps, high, "right")
                stamps = stamps[first:stop]
                if reverse:
                    stamps = stamps[::-1]
                wanted = stamps[: n - len(rows)].tolist()
                for start in range(0, len(wanted), _FETCH_BY_TIMESTAMP):
                    part = wanted[start : start + _FETCH_BY_TIMESTAMP]
                    rows += conn.execute(
                        f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE timestamp IN"
                        f" ({','.join('?' * len(part))}) ORDER BY timestamp {order}",
                        part,
                    ).fetchall()
                if len(rows) >= n:
                    break
            return rows

        def tail(low: int, high: int, n: int) -> list[tuple]:
            sql = _TAIL_QUERY.format(order=order)
            return conn.execute(sql, (account, low, high, n)).fetchall()

        try:
            conn.execute("BEGIN")
            try:
                # Read the watermark first: the log snapshot starts with the next statement,
                # so it contains every transfer the index snapshot has postings for.
                watermark = conn.execute("SELECT timestamp FROM idx.index_state").fetchone()[0]
                rows = split_query(
                    indexed, tail, watermark, timestamp_min, timestamp_max, limit, reverse
                )
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: account_transfers failed: {e}") from e
        return _decode_transfers(rows)

    def account_balances(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = _TIMESTAMP_MAX,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[AccountBalance]:
        assert limit >= 0
        conn = self._reader()
        order = "DESC" if reverse else "ASC"
        try:
            rows = conn.execute(
                "SELECT timestamp, debits_pending, debits_posted, credits_pending,"
                " credits_posted FROM account_balances"
                " WHERE account_id = ? AND timestamp BETWEEN ? AND ?"
                f" ORDER BY timestamp {order} LIMIT ?",
                (_u128(account_id), timestamp_min, timestamp_max, limit),
            ).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: account_balances failed: {e}") from e
        return [AccountBalance(*row) for row in rows]

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._indexer.stop()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in [*readers, self._index_conn, self._index_writer, self._writer, self._committer]:
            if conn is not None:
                conn.close()
        self._index_conn = None
        self._index_writer = None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection: the log, with the index attached as `idx`."""
        self._check_open()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect(self.path)
                # Readers never write: make a bug that tries fail loudly instead.
                conn.execute("PRAGMA query_only=ON")
                conn.execute("ATTACH DATABASE ? AS idx", (self.index_path,))
            except sqlite3.Error as e:
                raise StoreError(f"cannot open {self.path}: {e}") from e
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        return conn


def _statements(script: str) -> Iterator[str]:
    """Split a SQL script into complete statements (sqlite3's executescript would COMMIT)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    assert not pending.strip() or pending.strip().startswith("--"), "unterminated statement"


def _group_postings(
    conn: sqlite3.Connection,
    select_sql: str,
    params: tuple[int, ...],
    insert_sql: str,
    accounts_per_row: int,
    postings_per_row: int,
) -> int:
    """native.sqlite_writer's `group_postings` in Python (the same rows, chunk for chunk);
    returns how many rows were read."""
    runs: dict[int, list[int]] = {}
    rows = 0
    for timestamp, *accounts in conn.execute(select_sql, params):
        rows += 1
        for account in accounts:
            stamps = runs.setdefault(_int(account), [])
            if not stamps or stamps[-1] != timestamp:
                stamps.append(timestamp)
    ids = sorted(runs)
    first = 0
    while first < len(ids):
        stop, postings = first + 1, len(runs[ids[first]])
        while (
            stop < len(ids)
            and stop - first < accounts_per_row
            and postings + len(runs[ids[stop]]) <= postings_per_row
        ):
            postings += len(runs[ids[stop]])
            stop += 1
        chunk = ids[first:stop]
        counts = [len(runs[i]) for i in chunk]
        packed = b"".join(
            [
                len(chunk).to_bytes(4, "little"),
                np.array([(i >> 64, i & _U64_MASK) for i in chunk], "<u8").tobytes(),
                np.concatenate([[0], np.cumsum(counts)]).astype("<u4").tobytes(),
                np.array([t for i in chunk for t in runs[i]], "<i8").tobytes(),
            ]
        )
        conn.execute(insert_sql, (chunk[0].to_bytes(16, "big"), packed))
        first = stop
    return rows


_U64_MASK = 2**64 - 1
_NO_STAMPS = np.zeros(0, "<i8")


def _chunk_timestamps(chunk: bytes, account_id: int) -> np.ndarray:
    """The timestamps of `account_id` in a chunk of `runs` (none if it is not there)."""
    n = int.from_bytes(chunk[:4], "little")
    ids = np.frombuffer(chunk, "<u8", 2 * n, 4).reshape(n, 2)
    high, low = np.uint64(account_id >> 64), np.uint64(account_id & _U64_MASK)
    found = np.flatnonzero((ids[:, 0] == high) & (ids[:, 1] == low))
    if not len(found):
        return _NO_STAMPS
    offsets = np.frombuffer(chunk, "<u4", n + 1, 4 + 16 * n)
    k = int(found[0])
    return np.frombuffer(
        chunk, "<i8", int(offsets[k + 1] - offsets[k]), 4 + 20 * n + 4 + 8 * int(offsets[k])
    )


def _decode_bulk(row: tuple) -> BulkRecord:
    i, account, debit_common, ledger, code, u, v, w, ts, leg_accounts, leg_amounts = row
    return BulkRecord(
        id=_int(i),
        account_id=_int(account),
        debit_common=bool(debit_common),
        ledger=ledger,
        code=code,
        user_data_128=_int(u),
        user_data_64=_int(v),
        user_data_32=w,
        timestamp=ts,
        leg_accounts=leg_accounts,
        leg_amounts=leg_amounts,
    )
