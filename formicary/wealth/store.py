"""The marketplace's own durable state: issuers, products, purchases, reservations, notices.

Money is never stored here: it lives in the ledger. This file keeps what the ledger cannot: who
bought what with which request id (written *ahead* of the ledger call, so that a close always
finds every purchase that may have reached the ledger), each product's decision at close, the
reservations and their fills, and the notification outbox. One SQLite file in WAL mode with
`synchronous=FULL`, written by the marketplace (one process). 128-bit ids (wallets, ledger
legs) are stored as decimal text: SQLite integers stop at 2^63.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import msgspec

from formicary.wealth.funding import Payout
from formicary.wealth.issuers import Issuer
from formicary.wealth.records import (
    Notification,
    Product,
    ProductStatus,
    Purchase,
    PurchaseStatus,
    Reservation,
    ReservationStatus,
)
from formicary.wealth.terms import ProductTerms

__all__ = ["NewNotice", "WealthStore", "WealthStoreError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS issuers (
    issuer_no INTEGER PRIMARY KEY,      -- dense from 1: names the issuer's ledger account
    issuer_id TEXT NOT NULL UNIQUE,
    record BLOB NOT NULL                -- the Issuer as JSON (its latest figures)
) STRICT;
CREATE TABLE IF NOT EXISTS whitelist (
    issuer_id TEXT PRIMARY KEY,
    note TEXT NOT NULL,
    added_ns INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS products (
    product_no INTEGER PRIMARY KEY,     -- dense from 1: names the product's ledger accounts
    product_id TEXT NOT NULL UNIQUE,
    issuer_id TEXT NOT NULL,
    terms BLOB NOT NULL,                -- ProductTerms as JSON
    status TEXT NOT NULL,
    matched INTEGER NOT NULL DEFAULT 0,
    purchases INTEGER NOT NULL DEFAULT 0,  -- rows in purchases, against the per-product cap
    raised_fen INTEGER,
    due_fen INTEGER,
    listed_ns INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS products_status ON products (status);
CREATE TABLE IF NOT EXISTS purchases (
    purchase_no INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    source_kind TEXT NOT NULL,
    source_ref TEXT NOT NULL,
    source_legs TEXT NOT NULL,          -- the source's pending leg ids, decimal, space-separated
    payout_wallet TEXT NOT NULL,
    into_fund INTEGER NOT NULL,
    reservation_no INTEGER,
    status TEXT NOT NULL,
    interest_fen INTEGER,
    created_ns INTEGER NOT NULL,
    UNIQUE (product_id, user_id, request_id)
) STRICT;
CREATE INDEX IF NOT EXISTS purchases_product_status ON purchases (product_id, status, purchase_no);
CREATE INDEX IF NOT EXISTS purchases_user ON purchases (user_id);
CREATE INDEX IF NOT EXISTS purchases_status ON purchases (status);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_no INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    term_min_days INTEGER NOT NULL,
    term_max_days INTEGER NOT NULL,
    min_yield_bp INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL,
    filled_fen INTEGER NOT NULL DEFAULT 0,
    source_kind TEXT NOT NULL,
    source_ref TEXT NOT NULL,
    payout_wallet TEXT NOT NULL,
    into_fund INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    expires_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    UNIQUE (user_id, request_id)
) STRICT;
CREATE INDEX IF NOT EXISTS reservations_open ON reservations (status, created_ns, reservation_no);
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe TEXT NOT NULL UNIQUE,        -- a resumed run notifies once
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    product_id TEXT,
    reservation_no INTEGER,
    amount_fen INTEGER NOT NULL,
    message TEXT NOT NULL,
    created_ns INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS notifications_user ON notifications (user_id, seq);
"""

_PURCHASE_COLUMNS = (
    "purchase_no, product_id, user_id, request_id, amount_fen, source_kind, source_ref,"
    " source_legs, payout_wallet, into_fund, reservation_no, status, interest_fen, created_ns"
)
_RESERVATION_COLUMNS = (
    "reservation_no, user_id, request_id, term_min_days, term_max_days, min_yield_bp,"
    " amount_fen, filled_fen, source_kind, source_ref, payout_wallet, into_fund, created_ns,"
    " expires_ns, status"
)
_PRODUCT_COLUMNS = "product_no, terms, status, matched, raised_fen, due_fen, listed_ns"
# Rows read per page by the runs: bounds memory whatever a product's purchase count.
PAGE_ROWS_MAX = 10_000


class WealthStoreError(Exception):
    """The marketplace's state file cannot be opened or written."""


class NewNotice(msgspec.Struct, frozen=True):
    """A notification to add; `dedupe` makes adding it again (a resumed run) a no-op."""

    dedupe: str
    user_id: str
    kind: str
    product_id: str | None
    reservation_no: int | None
    amount_fen: int
    message: str


class WealthStore:
    """The marketplace's SQLite file (see the module docstring). Thread-safe: one lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            with self._write() as conn:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        except sqlite3.Error as e:
            raise WealthStoreError(
                f"cannot open the marketplace state file {self.path}: {e}"
            ) from e

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE ... COMMIT under the lock (ROLLBACK on error)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # ----------------------------------------------------------------- issuers

    def upsert_issuer(self, issuer: Issuer) -> int:
        """Record the issuer's latest figures; its number (dense from 1) never changes."""
        record = msgspec.json.encode(issuer)
        with self._write() as conn:
            row = conn.execute(
                "SELECT issuer_no FROM issuers WHERE issuer_id = ?", (issuer.issuer_id,)
            ).fetchone()
            if row is not None:
                conn.execute("UPDATE issuers SET record = ? WHERE issuer_no = ?", (record, row[0]))
                return int(row[0])
            (number,) = conn.execute(
                "SELECT coalesce(max(issuer_no), 0) + 1 FROM issuers"
            ).fetchone()
            conn.execute("INSERT INTO issuers VALUES (?, ?, ?)", (number, issuer.issuer_id, record))
            return int(number)

    def issuer(self, issuer_id: str) -> tuple[int, Issuer] | None:
        rows = self._read("SELECT issuer_no, record FROM issuers WHERE issuer_id = ?", (issuer_id,))
        if not rows:
            return None
        return int(rows[0][0]), msgspec.json.decode(rows[0][1], type=Issuer)

    def issuers(self) -> list[tuple[int, Issuer]]:
        rows = self._read("SELECT issuer_no, record FROM issuers ORDER BY issuer_no")
        return [(int(n), msgspec.json.decode(r, type=Issuer)) for n, r in rows]

    def set_whitelisted(self, issuer_id: str, whitelisted: bool, note: str, now_ns: int) -> None:
        with self._write() as conn:
            if whitelisted:
                conn.execute(
                    "INSERT INTO whitelist VALUES (?, ?, ?) ON CONFLICT (issuer_id) DO UPDATE"
                    " SET note = excluded.note",
                    (issuer_id, note, now_ns),
                )
            else:
                conn.execute("DELETE FROM whitelist WHERE issuer_id = ?", (issuer_id,))

    def is_whitelisted(self, issuer_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM whitelist WHERE issuer_id = ?", (issuer_id,)))

    # ----------------------------------------------------------------- products

    def insert_product(self, terms: ProductTerms, now_ns: int) -> tuple[Product, bool]:
        """The product, and True if it was listed just now (False: it existed already)."""
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE product_id = ?",
                (terms.product_id,),
            ).fetchone()
            if row is not None:
                return _product(row), False
            (number,) = conn.execute(
                "SELECT coalesce(max(product_no), 0) + 1 FROM products"
            ).fetchone()
            conn.execute(
                "INSERT INTO products (product_no, product_id, issuer_id, terms, status,"
                " listed_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    number,
                    terms.product_id,
                    terms.issuer_id,
                    msgspec.json.encode(terms),
                    ProductStatus.LISTED,
                    now_ns,
                ),
            )
            row = conn.execute(
                f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE product_no = ?", (number,)
            ).fetchone()
            return _product(row), True

    def product(self, product_id: str) -> Product | None:
        rows = self._read(
            f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE product_id = ?", (product_id,)
        )
        return _product(rows[0]) if rows else None

    def products(self, statuses: Iterable[str] | None = None) -> list[Product]:
        if statuses is None:
            rows = self._read(f"SELECT {_PRODUCT_COLUMNS} FROM products ORDER BY product_no")
        else:
            wanted = list(statuses)
            marks = ",".join("?" * len(wanted))
            rows = self._read(
                f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE status IN ({marks})"
                " ORDER BY product_no",
                wanted,
            )
        return [_product(row) for row in rows]

    def update_product(
        self,
        product_id: str,
        expected_status: Sequence[str],
        *,
        status: str | None = None,
        matched: bool | None = None,
        raised_fen: int | None = None,
        due_fen: int | None = None,
        notices: Sequence[NewNotice] = (),
        now_ns: int = 0,
    ) -> bool:
        """Change a product if its status is one of `expected_status` (False otherwise)."""
        sets: list[str] = []
        args: list[object] = []
        for name, value in (
            ("status", status),
            ("matched", None if matched is None else int(matched)),
            ("raised_fen", raised_fen),
            ("due_fen", due_fen),
        ):
            if value is not None:
                sets.append(f"{name} = ?")
                args.append(value)
        assert sets
        marks = ",".join("?" * len(expected_status))
        with self._write() as conn:
            changed = conn.execute(
                f"UPDATE products SET {', '.join(sets)} WHERE product_id = ?"
                f" AND status IN ({marks})",
                [*args, product_id, *expected_status],
            ).rowcount
            if changed:
                _notify(conn, notices, now_ns)
            return bool(changed)

    # ----------------------------------------------------------------- purchases

    def insert_purchase(
        self,
        *,
        product_id: str,
        user_id: str,
        request_id: str,
        amount_fen: int,
        source_kind: str,
        source_ref: str,
        source_legs: Sequence[int],
        payout: Payout,
        reservation_no: int | None,
        now_ns: int,
        purchases_max: int,
    ) -> int | None:
        """Write a purchase ahead of its ledger call (status submitted); its number, or None
        if the (product, user, request id) exists already or the product's cap is reached."""
        with self._write() as conn:
            capped = conn.execute(
                "UPDATE products SET purchases = purchases + 1 WHERE product_id = ?"
                " AND purchases < ?",
                (product_id, purchases_max),
            ).rowcount
            if not capped:
                return None
            try:
                cursor = conn.execute(
                    f"INSERT INTO purchases ({_PURCHASE_COLUMNS}) VALUES"
                    " (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                    (
                        product_id,
                        user_id,
                        request_id,
                        amount_fen,
                        source_kind,
                        source_ref,
                        " ".join(str(i) for i in source_legs),
                        str(payout.wallet_account_id),
                        int(payout.into_fund),
                        reservation_no,
                        PurchaseStatus.SUBMITTED,
                        now_ns,
                    ),
                )
            except sqlite3.IntegrityError:
                conn.execute(
                    "UPDATE products SET purchases = purchases - 1 WHERE product_id = ?",
                    (product_id,),
                )
                return None
            assert cursor.lastrowid is not None
            return int(cursor.lastrowid)

    def product_purchase_count(self, product_id: str) -> int:
        rows = self._read("SELECT purchases FROM products WHERE product_id = ?", (product_id,))
        return int(rows[0][0]) if rows else 0

    def purchase_by_key(self, product_id: str, user_id: str, request_id: str) -> Purchase | None:
        rows = self._read(
            f"SELECT {_PURCHASE_COLUMNS} FROM purchases WHERE product_id = ? AND user_id = ?"
            " AND request_id = ?",
            (product_id, user_id, request_id),
        )
        return _purchase(rows[0]) if rows else None

    def mark_reserved(
        self, purchase_no: int, notices: Sequence[NewNotice] = (), now_ns: int = 0
    ) -> bool:
        """submitted -> reserved (its legs are in the ledger); counts it in its reservation."""
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE purchases SET status = ? WHERE purchase_no = ? AND status = ?",
                (PurchaseStatus.RESERVED, purchase_no, PurchaseStatus.SUBMITTED),
            ).rowcount
            if changed:
                row = conn.execute(
                    "SELECT reservation_no, amount_fen FROM purchases WHERE purchase_no = ?",
                    (purchase_no,),
                ).fetchone()
                if row[0] is not None:
                    _fill(conn, row[0], row[1])
                _notify(conn, notices, now_ns)
            return bool(changed)

    def delete_submitted(self, purchase_no: int) -> bool:
        """Forget a purchase the ledger refused (or never received), so its request id may be
        retried; a no-op unless it is still `submitted`."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT product_id FROM purchases WHERE purchase_no = ? AND status = ?",
                (purchase_no, PurchaseStatus.SUBMITTED),
            ).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM purchases WHERE purchase_no = ?", (purchase_no,))
            conn.execute(
                "UPDATE products SET purchases = purchases - 1 WHERE product_id = ?", (row[0],)
            )
            return True

    def purchases(
        self,
        *,
        product_id: str | None = None,
        user_id: str | None = None,
        statuses: Sequence[str] | None = None,
        after_no: int = 0,
        limit: int = PAGE_ROWS_MAX,
    ) -> list[Purchase]:
        """Purchases by number, filtered; at most `limit` (<= PAGE_ROWS_MAX) after `after_no`."""
        assert 0 < limit <= PAGE_ROWS_MAX
        where = ["purchase_no > ?"]
        args: list[object] = [after_no]
        if product_id is not None:
            where.append("product_id = ?")
            args.append(product_id)
        if user_id is not None:
            where.append("user_id = ?")
            args.append(user_id)
        if statuses is not None:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        rows = self._read(
            f"SELECT {_PURCHASE_COLUMNS} FROM purchases WHERE {' AND '.join(where)}"
            " ORDER BY purchase_no LIMIT ?",
            [*args, limit],
        )
        return [_purchase(row) for row in rows]

    def sum_purchases(self, product_id: str, statuses: Sequence[str]) -> tuple[int, int]:
        """(count, total fen) of a product's purchases in these statuses."""
        marks = ",".join("?" * len(statuses))
        ((count, total),) = self._read(
            f"SELECT count(*), coalesce(sum(amount_fen), 0) FROM purchases WHERE product_id = ?"
            f" AND status IN ({marks})",
            [product_id, *statuses],
        )
        return int(count), int(total)

    def advance_purchases(
        self,
        changes: Sequence[tuple[int, str, str, int | None]],
        notices: Sequence[NewNotice],
        now_ns: int,
    ) -> int:
        """Apply (purchase number, from status, to status, interest) in one transaction with
        their notices; a purchase that left `from` already is skipped. Voided purchases give
        their amount back to their reservation. Returns how many changed."""
        changed = 0
        with self._write() as conn:
            for number, old, new, interest in changes:
                done = conn.execute(
                    "UPDATE purchases SET status = ?, interest_fen = coalesce(?, interest_fen)"
                    " WHERE purchase_no = ? AND status = ?",
                    (new, interest, number, old),
                ).rowcount
                changed += done
                if done and new == PurchaseStatus.VOIDED:
                    row = conn.execute(
                        "SELECT reservation_no, amount_fen FROM purchases WHERE purchase_no = ?",
                        (number,),
                    ).fetchone()
                    if row[0] is not None:
                        _fill(conn, row[0], -row[1])
            _notify(conn, notices, now_ns)
        return changed

    # ----------------------------------------------------------------- reservations

    def insert_reservation(
        self,
        *,
        user_id: str,
        request_id: str,
        term_min_days: int,
        term_max_days: int,
        min_yield_bp: int,
        amount_fen: int,
        source_kind: str,
        source_ref: str,
        payout: Payout,
        now_ns: int,
        expires_ns: int,
        per_user_max: int,
    ) -> tuple[Reservation | None, bool]:
        """(the reservation, True if new). (None, False) when the user has `per_user_max`
        open reservations already."""
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE user_id = ?"
                " AND request_id = ?",
                (user_id, request_id),
            ).fetchone()
            if row is not None:
                return _reservation(row), False
            (open_count,) = conn.execute(
                "SELECT count(*) FROM reservations WHERE user_id = ? AND status IN (?, ?)",
                (user_id, ReservationStatus.OPEN, ReservationStatus.FILLED),
            ).fetchone()
            if open_count >= per_user_max:
                return None, False
            cursor = conn.execute(
                f"INSERT INTO reservations ({_RESERVATION_COLUMNS}) VALUES"
                " (NULL, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    request_id,
                    term_min_days,
                    term_max_days,
                    min_yield_bp,
                    amount_fen,
                    source_kind,
                    source_ref,
                    str(payout.wallet_account_id),
                    int(payout.into_fund),
                    now_ns,
                    expires_ns,
                    ReservationStatus.OPEN,
                ),
            )
            row = conn.execute(
                f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE reservation_no = ?",
                (cursor.lastrowid,),
            ).fetchone()
            return _reservation(row), True

    def reservation(self, reservation_no: int) -> Reservation | None:
        rows = self._read(
            f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE reservation_no = ?",
            (reservation_no,),
        )
        return _reservation(rows[0]) if rows else None

    def reservations(
        self, *, user_id: str | None = None, limit: int = PAGE_ROWS_MAX
    ) -> list[Reservation]:
        assert 0 < limit <= PAGE_ROWS_MAX
        if user_id is None:
            rows = self._read(
                f"SELECT {_RESERVATION_COLUMNS} FROM reservations ORDER BY reservation_no LIMIT ?",
                (limit,),
            )
        else:
            rows = self._read(
                f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE user_id = ?"
                " ORDER BY reservation_no LIMIT ?",
                (user_id, limit),
            )
        return [_reservation(row) for row in rows]

    def matching_reservations(
        self, term_days: int, yield_bp: int, now_ns: int, limit: int
    ) -> list[Reservation]:
        """Open, unexpired reservations that accept this term and yield, first come first
        served (reservation time, then number)."""
        rows = self._read(
            f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE status = ?"
            " AND term_min_days <= ? AND term_max_days >= ? AND min_yield_bp <= ?"
            " AND created_ns <= ? AND expires_ns > ? AND filled_fen < amount_fen"
            " ORDER BY created_ns, reservation_no LIMIT ?",
            (ReservationStatus.OPEN, term_days, term_days, yield_bp, now_ns, now_ns, limit),
        )
        return [_reservation(row) for row in rows]

    def end_reservation(
        self, reservation_no: int, status: str, notices: Sequence[NewNotice], now_ns: int
    ) -> bool:
        """open/filled -> cancelled or expired (final)."""
        assert status in (ReservationStatus.CANCELLED, ReservationStatus.EXPIRED)
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE reservations SET status = ? WHERE reservation_no = ? AND status IN (?, ?)",
                (status, reservation_no, ReservationStatus.OPEN, ReservationStatus.FILLED),
            ).rowcount
            if changed:
                _notify(conn, notices, now_ns)
            return bool(changed)

    def due_to_expire(self, now_ns: int, limit: int) -> list[Reservation]:
        rows = self._read(
            f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE status IN (?, ?)"
            " AND expires_ns <= ? ORDER BY reservation_no LIMIT ?",
            (ReservationStatus.OPEN, ReservationStatus.FILLED, now_ns, limit),
        )
        return [_reservation(row) for row in rows]

    # ----------------------------------------------------------------- notifications

    def notify(self, notices: Sequence[NewNotice], now_ns: int) -> None:
        with self._write() as conn:
            _notify(conn, notices, now_ns)

    def notifications(
        self, *, user_id: str | None = None, after_seq: int = 0, limit: int = 100
    ) -> list[Notification]:
        assert 0 < limit <= PAGE_ROWS_MAX
        columns = "seq, user_id, kind, product_id, reservation_no, amount_fen, message, created_ns"
        if user_id is None:
            rows = self._read(
                f"SELECT {columns} FROM notifications WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
        else:
            rows = self._read(
                f"SELECT {columns} FROM notifications WHERE user_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (user_id, after_seq, limit),
            )
        return [Notification(*row) for row in rows]


def _notify(conn: sqlite3.Connection, notices: Sequence[NewNotice], now_ns: int) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO notifications (dedupe, user_id, kind, product_id,"
        " reservation_no, amount_fen, message, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                n.dedupe,
                n.user_id,
                n.kind,
                n.product_id,
                n.reservation_no,
                n.amount_fen,
                n.message,
                now_ns,
            )
            for n in notices
        ],
    )


def _fill(conn: sqlite3.Connection, reservation_no: int, delta_fen: int) -> None:
    """Count `delta_fen` more (or, negative, less) as bought by a reservation; it is filled
    exactly when nothing is left open, and reopens if a failed launch gives some back."""
    conn.execute(
        "UPDATE reservations SET filled_fen = filled_fen + ?,"
        " status = CASE WHEN status IN (?, ?) THEN"
        "   CASE WHEN filled_fen + ? >= amount_fen THEN ? ELSE ? END"
        " ELSE status END"
        " WHERE reservation_no = ?",
        (
            delta_fen,
            ReservationStatus.OPEN,
            ReservationStatus.FILLED,
            delta_fen,
            ReservationStatus.FILLED,
            ReservationStatus.OPEN,
            reservation_no,
        ),
    )


def _product(row: tuple) -> Product:
    number, terms, status, matched, raised, due, listed = row
    return Product(
        product_no=int(number),
        terms=msgspec.json.decode(terms, type=ProductTerms),
        status=status,
        matched=bool(matched),
        raised_fen=raised,
        due_fen=due,
        listed_ns=listed,
    )


def _purchase(row: tuple) -> Purchase:
    (
        number,
        product_id,
        user_id,
        request_id,
        amount,
        source_kind,
        source_ref,
        legs,
        wallet,
        into_fund,
        reservation_no,
        status,
        interest,
        created,
    ) = row
    return Purchase(
        purchase_no=int(number),
        product_id=product_id,
        user_id=user_id,
        request_id=request_id,
        amount_fen=amount,
        source_kind=source_kind,
        source_ref=source_ref,
        source_legs=tuple(int(i) for i in legs.split()),
        payout=Payout(int(wallet), bool(into_fund)),
        reservation_no=reservation_no,
        status=status,
        interest_fen=interest,
        created_ns=created,
    )


def _reservation(row: tuple) -> Reservation:
    (
        number,
        user_id,
        request_id,
        term_min,
        term_max,
        min_yield,
        amount,
        filled,
        source_kind,
        source_ref,
        wallet,
        into_fund,
        created,
        expires,
        status,
    ) = row
    return Reservation(
        reservation_no=int(number),
        user_id=user_id,
        request_id=request_id,
        term_min_days=term_min,
        term_max_days=term_max,
        min_yield_bp=min_yield,
        amount_fen=amount,
        filled_fen=filled,
        source_kind=source_kind,
        source_ref=source_ref,
        payout=Payout(int(wallet), bool(into_fund)),
        created_ns=created,
        expires_ns=expires,
        status=status,
    )
