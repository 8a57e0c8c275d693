"""Durable idempotency of registrations: a user's or merchant's `request_id` is a column of its
row (schema version 4), so a retried registration, even after a restart or from many threads at
once, answers the one party it created; other terms under the same id are a conflict."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from formicary.ledger import LedgerService
from formicary.payments import (
    FakeBank,
    IdempotencyConflict,
    IdentityLevel,
    InvalidRequest,
    Payments,
    PaymentsStore,
    merchant_wallet_id,
    user_wallet_id,
)
from formicary.payments.store import _MIGRATIONS, SCHEMA_VERSION
from tests.payments.world import SECRET, ManualClock, World

SHOP: dict[str, Any] = {
    "category": "5411",
    "fee_plan": "offline_qr",
    "settlement_bank_code": "CMB",
    "settlement_account_number": "6214830012345678",
}
THREADS = 8


def count(payments: Payments, table: str) -> int:
    found: int = payments.ctx.store.scalar(f"SELECT count(*) FROM {table}")
    return found


# ----------------------------------------------------------------------------- users


def test_a_retried_user_registration_answers_the_same_user(world: World) -> None:
    parties = world.payments.parties
    ada = parties.register_user("Ada", IdentityLevel.VERIFIED, request_id="signup-1")
    assert parties.register_user("Ada", IdentityLevel.VERIFIED, request_id="signup-1") == ada
    assert count(world.payments, "users") == 1
    assert world.ledger.lookup_accounts([user_wallet_id(ada.id)])
    # Without a key every registration is a new user; another key is another user.
    assert parties.register_user("Ada", IdentityLevel.VERIFIED).id != ada.id
    assert parties.register_user("Ada", IdentityLevel.VERIFIED, request_id="signup-2") != ada
    assert count(world.payments, "users") == 3
    # The default level is part of the terms like an explicit one.
    bo = parties.register_user("Bo", request_id="signup-bo")
    assert parties.register_user("Bo", IdentityLevel.BASIC, request_id="signup-bo") == bo


def test_other_terms_under_a_users_request_id_are_a_conflict(world: World) -> None:
    parties = world.payments.parties
    ada = parties.register_user("Ada", IdentityLevel.BASIC, request_id="signup-1")
    with pytest.raises(IdempotencyConflict, match="signup-1"):
        parties.register_user("Ada Lovelace", IdentityLevel.BASIC, request_id="signup-1")
    with pytest.raises(IdempotencyConflict):
        parties.register_user("Ada", IdentityLevel.FULL, request_id="signup-1")
    assert count(world.payments, "users") == 1
    # The terms are those of the registration: a later change of level is no conflict.
    raised = parties.set_identity_level(ada.id, IdentityLevel.FULL)
    assert parties.register_user("Ada", IdentityLevel.BASIC, request_id="signup-1") == raised


@pytest.mark.parametrize("request_id", ["", "k" * 129])
def test_a_malformed_request_id_is_refused_before_anything_is_written(
    world: World, request_id: str
) -> None:
    with pytest.raises(InvalidRequest, match="request_id"):
        world.payments.parties.register_user("Ada", request_id=request_id)
    with pytest.raises(InvalidRequest, match="request_id"):
        world.payments.parties.register_merchant("Shop", **SHOP, request_id=request_id)
    assert count(world.payments, "users") == count(world.payments, "merchants") == 0


# ----------------------------------------------------------------------------- merchants


def test_a_retried_merchant_registration_answers_the_same_merchant(world: World) -> None:
    parties = world.payments.parties
    shop = parties.register_merchant("Shop", **SHOP, request_id="onboard-1")
    assert parties.register_merchant("Shop", **SHOP, request_id="onboard-1") == shop
    assert count(world.payments, "merchants") == 1
    assert world.ledger.lookup_accounts([merchant_wallet_id(shop.id)])
    # Keys are unique per kind of party: the same key may name a user too.
    ada = parties.register_user("Ada", request_id="onboard-1")
    assert (count(world.payments, "users"), ada.id) == (1, 1)
    assert parties.register_merchant("Shop", **SHOP).id == shop.id + 1


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Shop 2"},
        {"category": "5812"},
        {"fee_plan": "online"},
        {"settlement_bank_code": "ICBC"},
        # The same last 4 digits (all that the row keeps): the keyed digest still tells them apart.
        {"settlement_account_number": "6214830099995678"},
    ],
)
def test_other_terms_under_a_merchants_request_id_are_a_conflict(
    world: World, change: dict[str, str]
) -> None:
    parties = world.payments.parties
    parties.register_merchant("Shop", **SHOP, request_id="onboard-1")
    terms = {"name": "Shop", **SHOP, **change}
    with pytest.raises(IdempotencyConflict, match="onboard-1"):
        parties.register_merchant(**terms, request_id="onboard-1")
    assert count(world.payments, "merchants") == 1


# ----------------------------------------------------------------------------- concurrency


def _all_at_once(calls: int, call: Callable[[int], Any]) -> list[Any]:
    """Run `call(i)` for every i on its own thread, released together; results or errors."""
    start = threading.Barrier(calls)

    def run(i: int) -> Any:
        start.wait()
        try:
            return call(i)
        except IdempotencyConflict as error:
            return error

    with ThreadPoolExecutor(calls) as pool:
        return list(pool.map(run, range(calls)))


def test_concurrent_retries_register_exactly_one_user(world: World) -> None:
    parties = world.payments.parties
    users = _all_at_once(THREADS, lambda _: parties.register_user("Ada", request_id="tap-tap"))
    assert len({u.id for u in users}) == 1
    assert count(world.payments, "users") == 1


def test_concurrent_retries_register_exactly_one_merchant(world: World) -> None:
    parties = world.payments.parties
    shops = _all_at_once(
        THREADS, lambda _: parties.register_merchant("Shop", **SHOP, request_id="tap-tap")
    )
    assert len({m.id for m in shops}) == 1
    assert count(world.payments, "merchants") == 1


def test_concurrent_registrations_on_other_terms_create_one_and_conflict(world: World) -> None:
    # Two sets of terms race for one key: the first to commit wins, every other term conflicts.
    parties = world.payments.parties
    answers = _all_at_once(
        THREADS, lambda i: parties.register_user(f"name-{i % 2}", request_id="contested")
    )
    users = [a for a in answers if not isinstance(a, IdempotencyConflict)]
    conflicts = [a for a in answers if isinstance(a, IdempotencyConflict)]
    assert len({u.id for u in users}) == 1 and len(users) + len(conflicts) == THREADS
    assert len(users) == THREADS // 2
    assert all(u.name == users[0].name for u in users)
    assert count(world.payments, "users") == 1


# ----------------------------------------------------------------------------- restarts


@pytest.fixture
def reopen(
    ledger: LedgerService, clock: ManualClock, tmp_path: Path
) -> Iterator[Callable[..., Payments]]:
    """Open the payments core on one file, as a restarted process would (closing the last)."""
    opened: list[PaymentsStore] = []

    def open_payments(secret: bytes = SECRET) -> Payments:
        if opened:
            opened[-1].close()
        store = PaymentsStore(tmp_path / "payments.db")
        opened.append(store)
        payments = Payments(ledger, store, FakeBank(), secret=secret, clock_ns=clock)
        payments.recover()
        return payments

    yield open_payments
    opened[-1].close()


def test_a_registration_retried_after_a_restart_answers_the_same_party(
    reopen: Callable[..., Payments],
) -> None:
    first = reopen()
    ada = first.parties.register_user("Ada", IdentityLevel.FULL, request_id="signup-1")
    shop = first.parties.register_merchant("Shop", **SHOP, request_id="onboard-1")
    again = reopen()
    assert again.parties.register_user("Ada", IdentityLevel.FULL, request_id="signup-1") == ada
    assert again.parties.register_merchant("Shop", **SHOP, request_id="onboard-1") == shop
    with pytest.raises(IdempotencyConflict):
        again.parties.register_user("Bo", IdentityLevel.FULL, request_id="signup-1")
    assert (count(again, "users"), count(again, "merchants")) == (1, 1)


def test_under_another_secret_a_retry_conflicts_rather_than_duplicates(
    reopen: Callable[..., Payments],
) -> None:
    # The terms are kept as a keyed digest: a store reopened under another secret cannot match
    # them, so a retry is refused (409) instead of registering a second party.
    reopen().parties.register_merchant("Shop", **SHOP, request_id="onboard-1")
    other = reopen(b"another-secret-of-at-least-32-bytes!")
    with pytest.raises(IdempotencyConflict):
        other.parties.register_merchant("Shop", **SHOP, request_id="onboard-1")
    assert count(other, "merchants") == 1


# ----------------------------------------------------------------------------- migration


def test_a_version_3_store_is_migrated_in_place_and_keeps_its_parties(tmp_path: Path) -> None:
    path = tmp_path / "payments.db"
    conn = sqlite3.connect(path)
    for script in _MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("INSERT INTO users (name, identity_level, created_ns) VALUES ('old', 1, 0)")
    conn.execute(
        "INSERT INTO merchants (name, category, fee_plan, settlement_bank_code,"
        " settlement_account_masked, created_ns) VALUES ('old', '5411', 'online', 'CMB',"
        " '************5678', 0)"
    )
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()

    store = PaymentsStore(path)
    assert store.scalar("PRAGMA user_version") == SCHEMA_VERSION == 4
    for table in ("users", "merchants"):
        assert store.scalar(f"SELECT name FROM {table} WHERE request_id IS NULL") == "old"
        assert store.scalar(f"SELECT count(*) FROM {table} WHERE request_digest IS NULL") == 1
        indexes = {row[1] for row in store.rows(f"PRAGMA index_list({table})")}
        assert f"{table}_by_request" in indexes
    # The new unique index holds: two rows cannot share a request id.
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as tx:
        for _ in range(2):
            tx.execute(
                "INSERT INTO users (name, identity_level, created_ns, request_id)"
                " VALUES ('x', 1, 0, 'same')"
            )
    store.close()

    again = PaymentsStore(path)  # reopening changes nothing
    assert again.scalar("PRAGMA user_version") == SCHEMA_VERSION
    assert again.scalar("SELECT count(*) FROM users") == 1
    assert again.scalar("SELECT count(*) FROM merchants") == 1
    again.close()


def test_a_migrated_store_takes_registrations_with_request_ids(
    tmp_path: Path, ledger: LedgerService, clock: ManualClock
) -> None:
    path = tmp_path / "payments.db"
    conn = sqlite3.connect(path)
    for script in _MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("INSERT INTO users (name, identity_level, created_ns) VALUES ('old', 1, 0)")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    store = PaymentsStore(path)
    try:
        payments = Payments(ledger, store, FakeBank(), secret=SECRET, clock_ns=clock)
        payments.recover()  # creates the old user's missing wallet
        ada = payments.parties.register_user("Ada", request_id="signup-1")
        assert ada.id == 2
        assert payments.parties.register_user("Ada", request_id="signup-1") == ada
        assert payments.parties.user(1).name == "old"
        assert count(payments, "users") == 2
    finally:
        store.close()
