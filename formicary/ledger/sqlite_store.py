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
  steps of up to 131,072 transfers: each step groups its transfers' timestamps per account and
  writes one `runs(account_id, timestamp_first, timestamp_last, timestamps)` row per account
  touched, the timestamps packed as int64. The grouping runs in C without the GIL
  (native.sqlite_writer's `group_postings`, ~0.4-0.7 us per transfer) on a connection to the
  index file with the log ATTACHed, so it never takes the log's write lock; a row per posting
  with an ORDER BY in SQL (the first layout) cost 1.3-2.9 us per transfer, as much CPU as the
  commit itself. A query reads the account's runs up to the indexer's watermark (read first,
  so that the log snapshot taken after it contains every indexed transfer), fetches those
  transfers by timestamp, and scans the log after the watermark.
- Pragmas: page_size 4096/8192/16384/65536, cache_size up to 200 MB, mmap and temp_store made
  no measurable difference to commit (all within run-to-run noise of +-20% on this VM), so the
  log keeps the defaults.

Measured, 1M transfers committed in batches of 8,190 (small ids / random 128-bit ids):
  commit alone, indexer off: 720k / 330k rows/s (10k accounts), 520k / 290k (1M accounts);
  commit alone, indexer running beside it: 160k-290k rows/s (it shares the core, see _storekit);
  engine + commit end to end: 363k/s (10k accounts), 253k/s (1M) with indexing deferred,
  215k/s and 188k/s with the index kept up to date all along (engine alone: 805k/s, 423k/s);
  indexing alone: 1.4-2.2M transfers/s (in rows per posting: ~560k); load_log: 600-740k
  rows/s; load_accounts: 800k-1M rows/s;
  account_transfers (limit 100): 0.03-0.4 ms indexed, ~30 ms when scanning a 524k-row tail.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
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
_INDEX_VERSION = 2

_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS index_state (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    timestamp INTEGER NOT NULL,  -- every transfer with timestamp <= this is indexed
    transfers INTEGER NOT NULL   -- how many transfers are indexed (aligns the steps)
) STRICT;
INSERT OR IGNORE INTO index_state VALUES (1, 0, 0);
-- One row per account and indexing step: the timestamps of the account's transfers in that
-- step, ascending, packed as int64 little-endian (`timestamps`), with the first and the last.
CREATE TABLE IF NOT EXISTS runs (
    account_id ANY NOT NULL,
    timestamp_first INTEGER NOT NULL,
    timestamp_last INTEGER NOT NULL,
    timestamps BLOB NOT NULL,
    PRIMARY KEY (account_id, timestamp_first)
) STRICT, WITHOUT ROWID;
"""
# The tables of every index layout so far: a layout change drops them all and rebuilds.
_INDEX_TABLES = ("postings", "buckets", "runs", "index_state")

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
# One indexing step: the transfers after the watermark up to ?1, each with its two accounts,
# grouped per account into `runs` (native.sqlite_writer.group_postings, or _group_postings).
_STEP_POSTINGS = """
SELECT timestamp, debit_account_id, credit_account_id FROM log.transfers
WHERE timestamp > (SELECT timestamp FROM main.index_state) AND timestamp <= ?1
ORDER BY timestamp
"""
_INSERT_RUN = (
    "INSERT INTO runs (account_id, timestamp_first, timestamp_last, timestamps) VALUES (?,?,?,?)"
)
# An account's runs that may hold timestamps in [?2, ?3]: runs never overlap, so the one that
# starts last at or before ?2 and every later one up to ?3.
_RUNS_QUERY = """
SELECT timestamps FROM idx.runs
WHERE account_id = ?1 AND timestamp_first <= ?3 AND timestamp_first >= coalesce(
    (SELECT max(timestamp_first) FROM idx.runs WHERE account_id = ?1 AND timestamp_first <= ?2),
    0)
ORDER BY timestamp_first {order}
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
            # A step inserts one row per account touched, anywhere in the runs B-tree: keep its
            # inner pages and recent leaves in memory.
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
                conn.execute("DELETE FROM runs")
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
        done = indexed % BUCKET_TRANSFERS
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
        index: Any = self._index_writer or conn
        index.execute("BEGIN IMMEDIATE")
        try:
            if self._index_writer is not None:
                count = self._index_writer.group_postings(_STEP_POSTINGS, (high,), _INSERT_RUN)
            else:
                count = _group_postings(conn, _STEP_POSTINGS, (high,), _INSERT_RUN)
            index.execute(
                "UPDATE index_state SET timestamp = ?, transfers = transfers + ?", (high, count)
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
        order = "DESC" if reverse else "ASC"

        def indexed(low: int, high: int, n: int) -> list[tuple]:
            rows: list[tuple] = []
            runs = conn.execute(_RUNS_QUERY.format(order=order), (account, low, high))
            for (packed,) in runs:
                stamps = np.frombuffer(packed, dtype="<i8")
                first, stop = np.searchsorted(stamps, low), np.searchsorted(stamps, high, "right")
                stamps = stamps[first:stop]
                if reverse:
                    stamps = stamps[::-1]
                wanted = stamps[: n - len(rows)].tolist()
                for start in range(0, len(wanted), _FETCH_BY_TIMESTAMP):
                    chunk = wanted[start : start + _FETCH_BY_TIMESTAMP]
                    rows += conn.execute(
                        f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE timestamp IN"
                        f" ({','.join('?' * len(chunk))}) ORDER BY timestamp {order}",
                        chunk,
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
    conn: sqlite3.Connection, select_sql: str, params: tuple[int, ...], insert_sql: str
) -> int:
    """native.sqlite_writer's `group_postings` in Python: each account's timestamps from the
    rows of `select_sql` (timestamp, accounts...) become one row of `insert_sql` (account,
    first, last, int64 little-endian timestamps), inserted in the key's order (INTEGERs,
    then BLOBs). Returns how many rows were read."""
    runs: dict[int | bytes, list[int]] = {}
    rows = 0
    for timestamp, *accounts in conn.execute(select_sql, params):
        rows += 1
        for account in accounts:
            stamps = runs.setdefault(account, [])
            if not stamps or stamps[-1] != timestamp:
                stamps.append(timestamp)
    conn.executemany(
        insert_sql,
        (
            (account, stamps[0], stamps[-1], np.array(stamps, dtype="<i8").tobytes())
            for account, stamps in sorted(
                runs.items(), key=lambda run: (run[0].__class__ is bytes, run[0])
            )
        ),
    )
    return rows


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
