"""The Store contract, run on every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formicary.ledger._storekit import load_migrations
from formicary.ledger.engine import BatchOutcome, Engine, Expiration
from formicary.ledger.store import Store, StoreError, open_store
from formicary.ledger.types import (
    Account,
    AccountBalance,
    AccountFlags,
    Transfer,
    TransferFlags,
)

U128_MAX = 2**128 - 1
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
T0 = 1_700_000_000_000_000_000  # a realistic nanosecond timestamp


def account(id: int, timestamp: int, **fields: Any) -> Account:
    return Account(id=id, ledger=1, code=1, timestamp=timestamp, **fields)


def transfer(id: int, dr: int, cr: int, timestamp: int, **fields: Any) -> Transfer:
    fields.setdefault("amount", 1)
    return Transfer(
        id=id,
        debit_account_id=dr,
        credit_account_id=cr,
        ledger=1,
        code=1,
        timestamp=timestamp,
        **fields,
    )


def outcome(**records: Any) -> BatchOutcome:
    return BatchOutcome(results=[], **records)


def index(store: Store) -> None:
    """Bring the per-account index up to date (both stores have it; not part of Store)."""
    store.index_now()  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- schema


def test_migrate_is_idempotent_and_versioned(database_url: str) -> None:
    latest = len(load_migrations("sqlite" if database_url.startswith("sqlite") else "postgres"))
    assert latest >= 1
    s = open_store(database_url)
    try:
        assert s.schema_version() == 0  # type: ignore[attr-defined]
        s.migrate()
        assert s.schema_version() == latest  # type: ignore[attr-defined]
        s.commit(outcome(accounts=[account(1, T0)]))
        s.migrate()  # again: nothing to apply, nothing lost
        assert s.schema_version() == latest  # type: ignore[attr-defined]
    finally:
        s.close()
    s = open_store(database_url)  # a restart migrates again
    try:
        s.migrate()
        assert s.schema_version() == latest  # type: ignore[attr-defined]
        assert [a.id for a in s.load_accounts()] == [1]
    finally:
        s.close()


def test_migrations_are_numbered_without_gaps() -> None:
    for backend in ("sqlite", "postgres"):
        versions = [m.version for m in load_migrations(backend)]
        assert versions == list(range(1, len(versions) + 1))


def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        open_store("mysql://nope")
    with pytest.raises(StoreError):
        open_store("sqlite:///:memory:")


# ----------------------------------------------------------------------------- round trip

EDGE_IDS = [1, 2, 255, 2**31, I64_MAX, 2**63, U64_MAX, 2**64, 2**127, U128_MAX - 1]


def test_every_field_round_trips_including_maximum_values(store: Store) -> None:
    accounts = [
        Account(
            id=id_,
            ledger=2**32 - 1,
            code=2**16 - 1,
            flags=int(AccountFlags.HISTORY),
            user_data_128=U128_MAX - i,
            user_data_64=U64_MAX - i,
            user_data_32=2**32 - 1,
            timestamp=T0 + i,
        )
        for i, id_ in enumerate(EDGE_IDS)
    ]
    transfers = [
        Transfer(
            id=id_,
            debit_account_id=EDGE_IDS[i - 1],
            credit_account_id=id_,
            amount=I64_MAX - i,
            ledger=2**32 - 1,
            code=2**16 - 1,
            flags=0xFF,
            pending_id=EDGE_IDS[-1 - i],
            timeout=2**32 - 1,
            user_data_128=U128_MAX,
            user_data_64=[U64_MAX, 2**63, 0, I64_MAX][i % 4],
            user_data_32=2**32 - 1,
            timestamp=T0 + 100 + i,
        )
        for i, id_ in enumerate(EDGE_IDS)
    ]
    expirations = [Expiration(timestamp=T0 + 200, pending_id=U128_MAX - 1)]
    balance = AccountBalance(
        timestamp=T0 + 100,
        debits_pending=I64_MAX,
        debits_posted=0,
        credits_pending=1,
        credits_posted=I64_MAX,
    )
    store.commit(outcome(accounts=accounts))
    store.commit(
        outcome(transfers=transfers, expirations=expirations, history=[(U128_MAX - 1, balance)])
    )
    assert store.load_accounts() == accounts
    assert list(store.load_log()) == [*transfers, *expirations]
    assert store.account_balances(U128_MAX - 1) == [balance]
    for indexed in (False, True):
        if indexed:
            index(store)
        for t in transfers:
            assert t in store.account_transfers(t.credit_account_id)
            assert t in store.account_transfers(t.debit_account_id)


def test_empty_store_loads_nothing(store: Store) -> None:
    store.commit(outcome())  # nothing to write is fine
    assert store.load_accounts() == []
    assert list(store.load_log()) == []
    assert store.account_transfers(1) == []
    assert store.account_balances(1) == []


def test_log_merges_transfers_and_expirations_by_timestamp(store: Store) -> None:
    store.commit(outcome(accounts=[account(1, T0), account(2, T0 + 1)]))
    # More transfers than one fetch chunk (8,192), with expirations before, inside, between
    # chunks and after: both the whole-chunk and the interleaving paths of the merge.
    ts = [T0 + 10 + 2 * i for i in range(20_000)]
    transfers = [transfer(i + 1, 1, 2, t) for i, t in enumerate(ts)]
    expiry_ts = [T0 + 5, ts[0] + 1, ts[8191] + 1, ts[8192] - 1 + 2, ts[15_000] + 1, ts[-1] + 7]
    expirations = [Expiration(timestamp=t, pending_id=i + 1) for i, t in enumerate(expiry_ts)]
    half = 10_000
    store.commit(outcome(transfers=transfers[:8190], expirations=expirations[:2]))
    store.commit(outcome(transfers=transfers[8190:half], expirations=expirations[2:4]))
    store.commit(outcome(transfers=transfers[half:], expirations=expirations[4:]))
    log = list(store.load_log())
    assert sorted(log, key=lambda r: r.timestamp) == log
    assert len(log) == len(transfers) + len(expirations)
    assert [r for r in log if isinstance(r, Expiration)] == expirations
    assert [r for r in log if isinstance(r, Transfer)] == transfers


# ----------------------------------------------------------------------------- queries


def _reference(
    log: list[Transfer], account_id: int, lo: int, hi: int, limit: int, reverse: bool
) -> list[Transfer]:
    rows = [
        t
        for t in log
        if account_id in (t.debit_account_id, t.credit_account_id) and lo <= t.timestamp <= hi
    ]
    return (rows[::-1] if reverse else rows)[:limit]


def test_account_transfers_windows_limits_and_order(store: Store) -> None:
    ids = [7, 2**64 + 3, 2**127 + 9, 11]
    store.commit(outcome(accounts=[account(a, T0 + i) for i, a in enumerate(ids)]))
    rng = random.Random(1)
    log: list[Transfer] = []
    ts = T0 + 100
    for batch in range(6):
        rows = []
        for _ in range(40):
            dr, cr = rng.sample(ids, 2)
            ts += rng.randint(1, 3)
            rows.append(transfer(len(log) + len(rows) + 1, dr, cr, ts, amount=batch + 1))
        store.commit(outcome(transfers=rows))
        log += rows
        if batch == 2:
            index(store)  # the first half indexed, the rest in the unindexed tail
    cases = [
        (0, I64_MAX),
        (log[10].timestamp, log[150].timestamp),
        (log[120].timestamp,) * 2,
        (log[-1].timestamp + 1, I64_MAX),
        (log[50].timestamp, log[40].timestamp),
    ]
    for indexed in (False, True):
        if indexed:
            index(store)
        for account_id in [*ids, 12345]:
            for lo, hi in cases:
                for limit in (1, 7, 100, 1000):
                    for reverse in (False, True):
                        got = store.account_transfers(
                            account_id,
                            timestamp_min=lo,
                            timestamp_max=hi,
                            limit=limit,
                            reverse=reverse,
                        )
                        assert got == _reference(log, account_id, lo, hi, limit, reverse)
    # Both sides are found: account 11 is debited and credited somewhere.
    sides = store.account_transfers(11, limit=1000)
    assert {t.debit_account_id == 11 for t in sides} == {True, False}
    assert store.account_transfers(11, limit=0) == []


def test_account_balances_windows_limits_and_order(store: Store) -> None:
    rows = [
        (
            5,
            AccountBalance(
                timestamp=T0 + i,
                debits_pending=i,
                debits_posted=2 * i,
                credits_pending=3 * i,
                credits_posted=4 * i,
            ),
        )
        for i in range(1, 21)
    ]
    other = (
        6,
        AccountBalance(
            timestamp=T0 + 3, debits_pending=0, debits_posted=0, credits_pending=0, credits_posted=9
        ),
    )
    store.commit(outcome(history=[*rows[:10], other]))
    store.commit(outcome(history=rows[10:]))
    balances = [b for _, b in rows]
    assert store.account_balances(5) == balances
    assert store.account_balances(5, limit=3) == balances[:3]
    assert store.account_balances(5, reverse=True, limit=2) == balances[::-1][:2]
    assert store.account_balances(5, timestamp_min=T0 + 4, timestamp_max=T0 + 6) == balances[3:6]
    assert store.account_balances(6) == [other[1]]
    assert store.account_balances(7) == []


def test_queries_run_from_other_threads_while_committing(store: Store) -> None:
    store.commit(outcome(accounts=[account(1, T0), account(2, T0 + 1)]))
    batches = 30
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for b in range(batches):
                rows = [transfer(b * 500 + i + 1, 1, 2, T0 + 10 + b * 500 + i) for i in range(500)]
                store.commit(outcome(transfers=rows))
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                got = store.account_transfers(2, limit=10_000)
                # A committed prefix of the log, in order, never a torn batch.
                assert len(got) % 500 == 0
                assert [t.id for t in got] == list(range(1, len(got) + 1))
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=writer),
        *(threading.Thread(target=reader) for _ in range(2)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.account_transfers(1, limit=100_000)) == batches * 500


# ----------------------------------------------------------------------------- failures


def test_failed_commit_leaves_nothing_behind(store: Store) -> None:
    store.commit(outcome(accounts=[account(1, T0), account(2, T0 + 1)]))
    first = [transfer(1, 1, 2, T0 + 10), transfer(2, 2, 1, T0 + 11)]
    store.commit(outcome(transfers=first))
    # New accounts, expirations and history first, then a transfer reusing a timestamp.
    bad = outcome(
        accounts=[account(3, T0 + 20)],
        transfers=[transfer(3, 1, 3, T0 + 21), transfer(4, 1, 2, T0 + 10)],
        expirations=[Expiration(timestamp=T0 + 22, pending_id=9)],
        history=[(1, AccountBalance(T0 + 21, 0, 1, 0, 0))],
    )
    with pytest.raises(StoreError):
        store.commit(bad)
    with pytest.raises(StoreError):  # a value no column can hold fails as cleanly
        store.commit(
            outcome(
                accounts=[account(4, T0 + 30)], transfers=[transfer(5, 1, 2, T0 + 31, amount=2**64)]
            )
        )
    assert [a.id for a in store.load_accounts()] == [1, 2]
    assert list(store.load_log()) == first
    assert store.account_balances(1) == []
    # ...and the store goes on working.
    good = [transfer(3, 1, 2, T0 + 40)]
    store.commit(outcome(accounts=[account(3, T0 + 39)], transfers=good))
    assert list(store.load_log()) == [*first, *good]
    index(store)
    assert store.account_transfers(1) == [*first, *good]


def test_closed_store_refuses_work(database_url: str) -> None:
    s = open_store(database_url)
    s.migrate()
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError):
        s.commit(outcome(accounts=[account(1, T0)]))
    with pytest.raises(StoreError):
        s.account_transfers(1)


def test_sqlite_index_is_rebuilt_when_deleted(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    s = open_store(url)
    s.migrate()
    s.commit(outcome(accounts=[account(1, T0), account(2, T0 + 1)]))
    rows = [transfer(i + 1, 1, 2, T0 + 10 + i) for i in range(100)]
    s.commit(outcome(transfers=rows))
    index(s)
    s.close()
    (tmp_path / "ledger.db-index").write_bytes(b"not a database" * 100)
    s = open_store(url)
    s.migrate()
    try:
        assert s.account_transfers(2, limit=1000) == rows
        index(s)
        assert s.account_transfers(2, limit=1000, reverse=True) == rows[::-1]
    finally:
        s.close()


# ----------------------------------------------------------------------------- engine replay


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = T0

    def __call__(self) -> int:
        return self.now_ns


_transfer_spec = st.tuples(
    st.sampled_from(["plain", "pending", "post", "void", "balancing"]),
    st.integers(0, 5),  # debit account index
    st.integers(0, 5),  # credit account index
    st.integers(1, 50),  # amount
    st.integers(0, 3),  # timeout, seconds
    st.booleans(),  # linked
    st.integers(0, 30),  # which earlier transfer a post/void refers to
)
_batches = st.lists(
    st.tuples(st.lists(_transfer_spec, min_size=1, max_size=25), st.integers(0, 3)),
    min_size=1,
    max_size=8,
)


def _drive(
    engine: Engine, store: Store, clock: FakeClock, batches: list[Any], rng: random.Random
) -> None:
    flags = [
        0,
        int(AccountFlags.HISTORY),
        int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
        0,
        int(AccountFlags.HISTORY),
    ]
    ids = [rng.choice([rng.randrange(1, 1000), rng.randrange(2**64, U128_MAX)]) for _ in flags]
    ids = list(dict.fromkeys(ids))
    store.commit(
        engine.create_accounts(
            [Account(id=a, ledger=1, code=1, flags=f) for a, f in zip(ids, flags, strict=False)]
        )
    )
    made: list[int] = []
    next_id = rng.randrange(1, 2**100)
    for specs, advance_s in batches:
        batch = []
        for kind, dr, cr, amount, timeout, linked, ref in specs:
            next_id += 1
            f = int(TransferFlags.LINKED) if linked else 0
            dr_id, cr_id = ids[dr % len(ids)], ids[cr % len(ids)]
            if kind in ("post", "void") and made:
                f |= int(
                    TransferFlags.POST_PENDING_TRANSFER
                    if kind == "post"
                    else TransferFlags.VOID_PENDING_TRANSFER
                )
                t = Transfer(
                    id=next_id,
                    debit_account_id=0,
                    credit_account_id=0,
                    amount=0 if kind == "void" else amount,
                    ledger=0,
                    code=0,
                    flags=f,
                    pending_id=made[ref % len(made)],
                )
            else:
                if kind == "pending":
                    f |= int(TransferFlags.PENDING)
                elif kind == "balancing":
                    f |= int(TransferFlags.BALANCING_DEBIT)
                t = Transfer(
                    id=next_id,
                    debit_account_id=dr_id,
                    credit_account_id=cr_id,
                    amount=amount,
                    ledger=1,
                    code=1,
                    flags=f,
                    timeout=timeout if kind == "pending" else 0,
                )
            batch.append(t)
            made.append(next_id)
        store.commit(engine.create_transfers(batch))
        clock.now_ns += advance_s * 1_000_000_000  # lets pending transfers expire
    # One more batch so that expirations due by now are applied and committed.
    clock.now_ns += 5_000_000_000
    store.commit(
        engine.create_transfers(
            [
                Transfer(
                    id=next_id + 1,
                    debit_account_id=ids[0],
                    credit_account_id=ids[1],
                    amount=1,
                    ledger=1,
                    code=1,
                )
            ]
        )
    )


def _assert_replay_matches(engine: Engine, store: Store, clock: FakeClock) -> None:
    fresh = Engine(clock)
    fresh.replay(store.load_accounts(), store.load_log())
    assert fresh.accounts == engine.accounts
    assert fresh.transfers == engine.transfers
    assert fresh.pending_status == engine.pending_status
    log = sorted(engine.transfers.values(), key=lambda t: t.timestamp)
    index(store)
    for account_id in engine.accounts:
        expected = [t for t in log if account_id in (t.debit_account_id, t.credit_account_id)]
        assert store.account_transfers(account_id, limit=10_000) == expected


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=_batches, seed=st.integers(0, 2**32))
def test_replay_of_committed_log_rebuilds_the_engine(
    store_factory: Callable[[], Store], batches: list[Any], seed: int
) -> None:
    store = store_factory()
    clock = FakeClock()
    engine = Engine(clock)
    _drive(engine, store, clock, batches, random.Random(seed))
    _assert_replay_matches(engine, store, clock)


def test_replay_of_large_random_workload(store: Store) -> None:
    rng = random.Random(42)
    clock = FakeClock()
    engine = Engine(clock)
    batches = [
        (
            [
                (
                    rng.choice(["plain", "plain", "pending", "post", "void", "balancing"]),
                    rng.randrange(6),
                    rng.randrange(6),
                    rng.randint(1, 100),
                    rng.randint(0, 2),
                    rng.random() < 0.1,
                    rng.randrange(5000),
                )
                for _ in range(rng.randint(1, 3000))
            ],
            rng.randint(0, 2),
        )
        for _ in range(12)
    ]
    _drive(engine, store, clock, batches, rng)
    assert any(isinstance(r, Expiration) for r in store.load_log())
    _assert_replay_matches(engine, store, clock)
