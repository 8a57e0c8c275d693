"""The GIL-free SQLite commit connection (native.sqlite_writer) against Python's sqlite3: the
same statements leave the same rows, errors are sqlite3's own and roll everything back."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formicary.ledger import native
from formicary.ledger.engine import BatchOutcome
from formicary.ledger.sqlite_store import (
    _INSERT_TRANSFERS,
    _TRANSFER_FIELDS,
    SQLiteStore,
    _chunk_timestamps,
    _group_postings,
    _python_transfer_rows,
    _PythonTransactions,
)
from formicary.ledger.sqlite_store import _u128 as _stored
from formicary.ledger.store import StoreError
from formicary.ledger.types import AMOUNT_MAX, ID_MAX, Account, Transfer

pytestmark = pytest.mark.skipif(
    native.sqlite_writer is None, reason="the compiled SQLite writer is not built or switched off"
)

_TABLE = "CREATE TABLE t (k INTEGER PRIMARY KEY, v ANY, s TEXT) STRICT"


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(_TABLE)
    return conn


def test_a_transaction_writes_every_batch_and_values_keep_their_types(tmp_path: Path) -> None:
    _open(tmp_path / "a.db").close()
    writer = native.sqlite_writer(str(tmp_path / "a.db"))
    rows = [(1, 7, "x"), (2, b"\x00\xff", None), (3, 2.5, "ü"), (4, None, "")]
    writer.transaction(
        [("INSERT INTO t VALUES (?,?,?)", rows), ("DELETE FROM t WHERE k=?", [(4,)])]
    )
    assert not writer.in_transaction
    writer.close()
    check = sqlite3.connect(tmp_path / "a.db")
    assert check.execute("SELECT * FROM t ORDER BY k").fetchall() == rows[:3]


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        ([(1, 1, "a"), (1, 2, "b")], sqlite3.IntegrityError),  # duplicate key, second row
        ([(1, 2**63, "a")], OverflowError),
        ([(1, object(), "a")], TypeError),
        ([(1, 1)], ValueError),  # wrong number of values
    ],
)
def test_a_failed_transaction_writes_nothing(
    tmp_path: Path, rows: list[tuple], error: type[Exception]
) -> None:
    _open(tmp_path / "a.db").close()
    writer = native.sqlite_writer(str(tmp_path / "a.db"))
    good = ("INSERT INTO t VALUES (?,?,?)", [(10, 1, "kept only if all succeed")])
    with pytest.raises(error):
        writer.transaction([good, ("INSERT INTO t VALUES (?,?,?)", rows)])
    assert not writer.in_transaction
    assert sqlite3.connect(tmp_path / "a.db").execute("SELECT count(*) FROM t").fetchone() == (0,)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        writer.transaction([("INSERT INTO nowhere VALUES (?)", [(1,)])])
    writer.close()
    with pytest.raises(sqlite3.OperationalError, match="closed"):
        writer.transaction([good])


def test_the_gil_is_free_while_a_transaction_runs(tmp_path: Path) -> None:
    """Another Python thread keeps running while a large transaction is written."""
    _open(tmp_path / "a.db").close()
    writer = native.sqlite_writer(str(tmp_path / "a.db"))
    rows = [(k, k, "x" * 50) for k in range(300_000)]
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    writer.transaction([("INSERT INTO t VALUES (?,?,?)", rows)])
    done.set()
    counter.join()
    writer.close()
    # With the GIL held throughout, the counter would get only its switch-interval slices.
    assert ticks > 100_000


_u128 = st.one_of(st.integers(0, 2**63 - 1), st.integers(2**63 - 2, ID_MAX))
_transfers = st.lists(
    st.builds(
        Transfer,
        id=_u128,
        debit_account_id=_u128,
        credit_account_id=_u128,
        amount=st.integers(1, AMOUNT_MAX),
        ledger=st.integers(1, 2**32 - 1),
        code=st.integers(1, 2**16 - 1),
        flags=st.integers(0, 255),
        pending_id=_u128,
        timeout=st.integers(0, 2**32 - 1),
        user_data_128=_u128,
        user_data_64=st.integers(0, 2**64 - 1),
        user_data_32=st.integers(0, 2**32 - 1),
    ),
    max_size=20,
)


@settings(max_examples=60)
@given(batch=_transfers)
def test_transfers_read_from_their_fields_are_stored_as_the_python_rows(
    batch: list[Transfer],
) -> None:
    # Copies with unique timestamps, as the engine gives (a list may hold one object twice).
    batch = [msgspec.structs.replace(t, timestamp=n) for n, t in enumerate(batch, 1)]
    contents = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("native", "python"):
            path = Path(tmp) / f"{name}.db"
            store = SQLiteStore(f"sqlite:///{path}", index_in_background=False)
            store.migrate()
            store.close()
            if name == "native":
                writer = native.sqlite_writer(str(path))
                writer.transaction([(_INSERT_TRANSFERS, batch, _TRANSFER_FIELDS)])
                writer.close()
            else:
                with sqlite3.connect(path) as conn:
                    conn.executemany(_INSERT_TRANSFERS, _python_transfer_rows(batch))
            with sqlite3.connect(path) as conn:
                rows = conn.execute("SELECT * FROM transfers ORDER BY timestamp").fetchall()
            contents.append(rows)
    assert contents[0] == contents[1]
    assert len(contents[0]) == len(batch)


def test_field_batches_refuse_other_objects_and_ids_beyond_128_bits(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/l.db", index_in_background=False)
    store.migrate()
    store.close()
    writer = native.sqlite_writer(str(tmp_path / "l.db"))
    with pytest.raises(TypeError, match="expected a"):
        writer.transaction([(_INSERT_TRANSFERS, [object()], _TRANSFER_FIELDS)])
    with pytest.raises(OverflowError):
        writer.transaction(
            [(_INSERT_TRANSFERS, [Transfer(ID_MAX + 1, 1, 2, 1, 1, 1)], _TRANSFER_FIELDS)]
        )
    with pytest.raises(TypeError, match="not an int"):
        writer.transaction([(_INSERT_TRANSFERS, [Transfer(1, 1, 2, "7", 1, 1)], _TRANSFER_FIELDS)])
    with pytest.raises(ValueError, match="fields for"):
        writer.transaction([(_INSERT_TRANSFERS, [], _TRANSFER_FIELDS[:3])])
    writer.close()


def _outcome() -> BatchOutcome:
    ids = (1, 2, 2**64 + 3)
    accounts = [Account(id=i, ledger=1, code=1, timestamp=n) for n, i in enumerate(ids, 1)]
    transfers = [
        Transfer(
            id=tid,
            debit_account_id=1,
            credit_account_id=2**64 + 3,
            amount=7,
            ledger=1,
            code=1,
            user_data_128=ID_MAX - 1,
            timestamp=100 + n,
        )
        for n, tid in enumerate((5, 2**70, 2**63))
    ]
    return BatchOutcome(results=["ok"] * 3, accounts=accounts, transfers=transfers)


def test_the_store_writes_the_same_rows_with_either_connection(tmp_path: Path) -> None:
    dumps = []
    for name in ("native", "python"):
        store = SQLiteStore(f"sqlite:///{tmp_path}/{name}.db", index_in_background=False)
        store.migrate()
        if name == "python":
            store._committer = _PythonTransactions(store._writer)
        store.commit(_outcome())
        dumps.append(list(store.load_log()))
        dumps.append(store.load_accounts())
        store.close()
    assert dumps[0] == dumps[2] and dumps[1] == dumps[3]
    assert len(dumps[0]) == 3


def test_a_failed_commit_is_a_store_error_and_leaves_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/l.db", index_in_background=False)
    store.migrate()
    store.commit(_outcome())
    with pytest.raises(StoreError, match="nothing was written"):
        store.commit(_outcome())  # the same timestamps again: primary keys collide
    assert len(list(store.load_log())) == 3
    store.close()


_RUNS = "CREATE TABLE runs (first BLOB NOT NULL, postings BLOB NOT NULL)"
_POSTINGS = "SELECT ts, a, b FROM log WHERE ts > ?1 AND ts <= ?2 ORDER BY ts"
_INSERT_RUN = "INSERT INTO runs VALUES (?1, ?2)"
_ACCOUNT_IDS = st.one_of(st.integers(0, 50), st.integers(0, 2**63 - 1), st.integers(2**63, ID_MAX))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(_ACCOUNT_IDS, _ACCOUNT_IDS), max_size=300),
    window=st.tuples(st.integers(0, 320), st.integers(0, 320)),
    chunk=st.tuples(st.integers(1, 6), st.integers(1, 12)),
)
def test_postings_are_grouped_as_the_python_reference_groups_them(
    rows: list[tuple[int, int]], window: tuple[int, int], chunk: tuple[int, int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dumps = []
        for name in ("native", "python"):
            conn = sqlite3.connect(f"{tmp}/{name}.db", isolation_level=None)
            conn.execute("CREATE TABLE log (ts INTEGER PRIMARY KEY, a ANY, b ANY) STRICT")
            conn.execute(_RUNS)
            conn.executemany(
                "INSERT INTO log VALUES (?, ?, ?)",
                [(ts, _stored(a), _stored(b)) for ts, (a, b) in enumerate(rows, 1)],
            )
            if name == "native":
                writer = native.sqlite_writer(f"{tmp}/{name}.db")
                read = writer.group_postings(_POSTINGS, window, _INSERT_RUN, *chunk)
                writer.close()
            else:
                read = _group_postings(conn, _POSTINGS, window, _INSERT_RUN, *chunk)
            dumps.append((read, conn.execute("SELECT * FROM runs ORDER BY rowid").fetchall()))
            conn.close()
        assert dumps[0] == dumps[1]
        read, chunks = dumps[0]
        low, high = window
        assert read == len(rows[low:high])
        # Every side of every row in the window is in its account's run, once, in order.
        expected: dict[int, list[int]] = {}
        for ts, (a, b) in enumerate(rows[low:high], low + 1):
            for account in dict.fromkeys((a, b)):
                expected.setdefault(account, []).append(ts)
        accounts_per_row, postings_per_row = chunk
        got: dict[int, list[int]] = {}
        for first, packed in chunks:
            n = int.from_bytes(packed[:4], "little")
            ids = np.frombuffer(packed, "<u8", 2 * n, 4).reshape(n, 2).tolist()
            accounts = [hi << 64 | lo for hi, lo in ids]
            assert accounts[0] == int.from_bytes(first, "big")
            assert 1 <= n <= accounts_per_row
            for account in accounts:
                got[account] = _chunk_timestamps(packed, account).tolist()
            assert n == 1 or sum(len(got[a]) for a in accounts) <= postings_per_row
        assert got == expected
        assert list(got) == sorted(expected)  # chunks in ascending account order
        assert _chunk_timestamps(chunks[0][1], 2**70).size == 0 if chunks else True


def test_group_postings_refuses_an_account_that_is_not_an_id(tmp_path: Path) -> None:
    writer = native.sqlite_writer(str(tmp_path / "x.db"))
    writer.execute("CREATE TABLE log (ts INTEGER PRIMARY KEY, a ANY, b ANY) STRICT")
    writer.execute(_RUNS)
    writer.execute("INSERT INTO log VALUES (1, 'text', 2)")
    with pytest.raises(sqlite3.OperationalError, match="neither a non-negative INTEGER"):
        writer.group_postings(_POSTINGS, (0, 9), _INSERT_RUN, 128, 4096)
    writer.close()
