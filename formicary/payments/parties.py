"""Parties and wallets: users, merchants, bound cards, top-ups and withdrawals.

Each user and merchant has one wallet account in the ledger that can never go negative
(`debits_must_not_exceed_credits`); each bank has one clearing account. A top-up pulls money
from a card (the bank collects first, then the ledger credits the wallet: the ledger never
shows money the bank has not given); a withdrawal reserves the wallet first (pending), then
the bank pays out, then the reservation is posted, or voided if the bank refused.

A bank that answers busy did nothing, so a top-up or withdrawal it refused that way fails with
`BankBusy` and may be retried with the same request id: the row is reopened and the bank asked
again under the same bank request id. A withdrawal's retry reserves the wallet afresh, under
transfer ids of its own (attempt n), since the voided reservation's ids are spent.

A registration may carry a `request_id` (the client's idempotency key, unique per table): it is
a column of the party's row, next to a keyed digest of the terms, so the same request re-sent,
even after a restart, returns the same party, and other terms under the id are a conflict.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from formicary.ledger import AccountFlags, TransferFlags
from formicary.payments.chart import (
    AccountCode,
    Op,
    PayoutLeg,
    TransferCode,
    bank_clearing_id,
    merchant_wallet_id,
    transfer_id,
    user_wallet_id,
)
from formicary.payments.context import (
    STEPS_MAX,
    Context,
    check_amount,
    check_level,
    check_text,
)
from formicary.payments.errors import (
    BankBusy,
    BankDeclined,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidCard,
    InvalidRequest,
    InvalidState,
    LedgerRejected,
    PaymentError,
    UnknownParty,
    error_for,
)
from formicary.payments.ledger_client import leg
from formicary.payments.records import (
    Card,
    CardTransfer,
    CardTransferKind,
    CardTransferState,
    IdentityLevel,
    Merchant,
    User,
)

__all__ = ["Parties"]

_WALLET = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
_CARD_NUMBER = re.compile(r"[0-9]{12,19}")
_ACCOUNT_NUMBER = re.compile(r"[0-9]{8,32}")
_CATEGORY = re.compile(r"[0-9]{4}")  # ISO 18245 merchant category code
S = CardTransferState


def luhn_ok(number: str) -> bool:
    """The Luhn checksum every card number carries (catches typos before the bank does)."""
    total = 0
    for i, char in enumerate(reversed(number)):
        digit = int(char)
        if i % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def mask(number: str, head: int) -> str:
    """Keep the first `head` and last 4 digits (PCI DSS allows at most 6 + 4)."""
    return number[:head] + "*" * (len(number) - head - 4) + number[-4:]


class Parties:
    """Users, merchants, cards and wallets."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        # Card numbers are never stored; a keyed hash recognises the same card bound twice.
        self._fingerprint_key = hmac.new(ctx.secret, b"card-fingerprint", hashlib.sha256).digest()
        # Nor is a merchant's full settlement account: a registration's terms are kept as a
        # keyed digest, enough to tell a retry from another request under the same id.
        self._terms_key = hmac.new(ctx.secret, b"registration-terms", hashlib.sha256).digest()
        # One thread at a time drives a given card transfer (see `resume_card_transfer`).
        self._row_locks = _RowLocks()

    # ----------------------------------------------------------------- users

    def register_user(
        self,
        name: str,
        identity_level: IdentityLevel = IdentityLevel.BASIC,
        *,
        request_id: str | None = None,
    ) -> User:
        """A new user with an empty wallet.

        With a `request_id` (unique among users) the registration is idempotent, durably: the
        same name and level under the same id, even after a restart, return the same user; other
        terms under it raise `IdempotencyConflict`."""
        check_text(name, "name")
        level = IdentityLevel(identity_level)
        if request_id is not None:
            check_text(request_id, "request_id")
        values: dict[str, Any] = {"name": name, "identity_level": int(level)}
        with self._ctx.store.transaction() as conn:
            user_id = self._registered(conn, "users", request_id, values)
            if user_id is None:
                user_id = self._ctx.store.insert(
                    conn, "users", {**values, **self._request(request_id, "users", values)}
                )
        # After the row: a crash in between leaves a user without a wallet, which `recover()`
        # (ensure_accounts) repairs; the other order could leave an orphan ledger account.
        self._ctx.ledger.ensure_accounts(
            [(user_wallet_id(user_id), AccountCode.USER_WALLET, _WALLET)]
        )
        return self.user(user_id)

    def user(self, user_id: int) -> User:
        found = self._ctx.store.get(User, "users", user_id)
        if found is None:
            raise UnknownParty(f"no user {user_id}")
        return found

    def set_identity_level(self, user_id: int, identity_level: IdentityLevel) -> User:
        level = IdentityLevel(identity_level)
        self.user(user_id)
        with self._ctx.store.transaction() as conn:
            conn.execute("UPDATE users SET identity_level = ? WHERE id = ?", (int(level), user_id))
        return self.user(user_id)

    def wallet_balance(self, user_id: int) -> int:
        """Available fen in the user's wallet, read from the ledger (never stored here)."""
        self.user(user_id)
        return self._ctx.ledger.available_fen(user_wallet_id(user_id))

    # ----------------------------------------------------------------- merchants

    def register_merchant(
        self,
        name: str,
        *,
        category: str,
        fee_plan: str,
        settlement_bank_code: str,
        settlement_account_number: str,
        request_id: str | None = None,
    ) -> Merchant:
        """A new merchant with an empty wallet, settled T+1 to the given bank account.

        With a `request_id` (unique among merchants) the registration is idempotent, durably:
        the same terms (settlement account included) under the same id, even after a restart,
        return the same merchant; other terms under it raise `IdempotencyConflict`."""
        check_text(name, "name")
        if not _CATEGORY.fullmatch(category):
            raise InvalidRequest(f"category must be a 4-digit merchant category code: {category!r}")
        if fee_plan not in self._ctx.config.fee_plans:
            raise InvalidRequest(f"unknown fee plan {fee_plan!r}")
        clearing = _clearing_id(settlement_bank_code)
        if not _ACCOUNT_NUMBER.fullmatch(settlement_account_number):
            raise InvalidRequest("a settlement account number is 8-32 digits")
        if request_id is not None:
            check_text(request_id, "request_id")
        values: dict[str, Any] = {
            "name": name,
            "category": category,
            "fee_plan": fee_plan,
            "settlement_bank_code": settlement_bank_code,
            "settlement_account_masked": mask(settlement_account_number, 0),
        }
        # The digest covers the full account number (only its last 4 digits are stored).
        terms = {**values, "settlement_account_number": settlement_account_number}
        with self._ctx.store.transaction() as conn:
            merchant_id = self._registered(conn, "merchants", request_id, terms)
            if merchant_id is None:
                merchant_id = self._ctx.store.insert(
                    conn, "merchants", {**values, **self._request(request_id, "merchants", terms)}
                )
        self._ctx.ledger.ensure_accounts(
            [
                (merchant_wallet_id(merchant_id), AccountCode.MERCHANT_WALLET, _WALLET),
                (clearing, AccountCode.BANK_CLEARING, AccountFlags.NONE),
            ]
        )
        return self.merchant(merchant_id)

    def merchant(self, merchant_id: int) -> Merchant:
        found = self._ctx.store.get(Merchant, "merchants", merchant_id)
        if found is None:
            raise UnknownParty(f"no merchant {merchant_id}")
        return found

    def merchant_balance(self, merchant_id: int) -> int:
        """Available fen in the merchant's wallet (not yet settled to its bank)."""
        self.merchant(merchant_id)
        return self._ctx.ledger.available_fen(merchant_wallet_id(merchant_id))

    # ----------------------------------------------------------------- registration keys

    def _digest(self, table: str, terms: dict[str, Any]) -> str:
        text = msgspec.json.encode([table, sorted(terms.items())])
        return hmac.new(self._terms_key, text, hashlib.sha256).hexdigest()[:32]

    def _request(self, request_id: str | None, table: str, terms: dict[str, Any]) -> dict[str, Any]:
        """The columns of a new party's row: its creation time and request key, if any."""
        values: dict[str, Any] = {"created_ns": self._ctx.clock_ns()}
        if request_id is not None:
            values["request_id"] = request_id
            values["request_digest"] = self._digest(table, terms)
        return values

    def _registered(
        self, conn: sqlite3.Connection, table: str, request_id: str | None, terms: dict[str, Any]
    ) -> int | None:
        """The id of the party `request_id` already registered (inside the registration's
        write transaction, so concurrent retries see one row); raises on other terms."""
        if request_id is None:
            return None
        row = conn.execute(
            f"SELECT id, request_digest FROM {table} WHERE request_id = ?", (request_id,)
        ).fetchone()
        if row is None:
            return None
        if not hmac.compare_digest(row["request_digest"] or "", self._digest(table, terms)):
            raise IdempotencyConflict(
                f"request id {request_id!r} registered {table[:-1]} {row['id']} on other terms"
            )
        found: int = row["id"]
        return found

    # ----------------------------------------------------------------- cards

    def bind_card(self, user_id: int, bank_code: str, card_number: str) -> Card:
        """Bind a card to a user; binding the same card again returns the existing binding."""
        self.user(user_id)
        clearing = _clearing_id(bank_code)
        if not _CARD_NUMBER.fullmatch(card_number) or not luhn_ok(card_number):
            raise InvalidCard("a card number is 12-19 digits with a valid Luhn check digit")
        fingerprint = hmac.new(
            self._fingerprint_key, card_number.encode(), hashlib.sha256
        ).hexdigest()[:32]
        with self._ctx.store.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM cards WHERE user_id = ? AND bank_code = ? AND fingerprint = ?",
                (user_id, bank_code, fingerprint),
            ).fetchone()
            card_id = (
                row[0]
                if row
                else self._ctx.store.insert(
                    conn,
                    "cards",
                    {
                        "user_id": user_id,
                        "bank_code": bank_code,
                        "masked_number": mask(card_number, 6),
                        "fingerprint": fingerprint,
                        "created_ns": self._ctx.clock_ns(),
                    },
                )
            )
        self._ctx.ledger.ensure_accounts([(clearing, AccountCode.BANK_CLEARING, AccountFlags.NONE)])
        return self.card(card_id)

    def card(self, card_id: int) -> Card:
        found = self._ctx.store.get(Card, "cards", card_id)
        if found is None:
            raise UnknownParty(f"no card {card_id}")
        return found

    def cards(self, user_id: int) -> list[Card]:
        return self._ctx.store.all(
            Card, "SELECT * FROM cards WHERE user_id = ? ORDER BY id", (user_id,)
        )

    # ----------------------------------------------------------------- top-up, withdrawal

    def top_up(
        self, user_id: int, card_id: int, amount_fen: int, *, request_id: str
    ) -> CardTransfer:
        """Move money from a bound card into the wallet (idempotent by `request_id`).

        If the bank answers busy, `BankBusy` is raised and nothing happened: no money was
        collected, the wallet was not credited, nothing is reserved or left for `recover()`
        (the row is failed with `bank_busy`). Retrying with the same `request_id` asks the
        bank again and, once it collects, credits the wallet exactly once. A declined top-up
        stays declined (a new attempt needs a new request id)."""
        return self._card_transfer(
            CardTransferKind.TOP_UP, user_id, card_id, amount_fen, request_id
        )

    def withdraw(
        self, user_id: int, card_id: int, amount_fen: int, *, request_id: str
    ) -> CardTransfer:
        """Move money from the wallet to a bound card (idempotent by `request_id`).

        The wallet amount is reserved (pending) in the ledger, then the bank pays out, then the
        reservation is posted. If the bank answers busy, `BankBusy` is raised and nothing
        happened: the reservation was voided (the wallet's available balance is back), nothing
        was paid out or is left for `recover()` (the row is failed with `bank_busy`). Retrying
        with the same `request_id` reserves again and asks the bank again; once it pays out,
        the wallet is debited exactly once. A declined withdrawal stays declined (a new attempt
        needs a new request id), and so does one the bank was busy for on all
        `WITHDRAWAL_ATTEMPTS_MAX` attempts (`InvalidState`)."""
        return self._card_transfer(
            CardTransferKind.WITHDRAWAL, user_id, card_id, amount_fen, request_id
        )

    def card_transfer(self, transfer_id_: int) -> CardTransfer:
        found = self._ctx.store.get(CardTransfer, "card_transfers", transfer_id_)
        if found is None:
            raise UnknownParty(f"no card transfer {transfer_id_}")
        return found

    def _card_transfer(
        self, kind: CardTransferKind, user_id: int, card_id: int, amount_fen: int, request_id: str
    ) -> CardTransfer:
        check_amount(amount_fen)
        check_text(request_id, "request_id")
        user = self.user(user_id)
        card = self.card(card_id)
        if card.user_id != user_id:
            raise UnknownParty(f"card {card_id} is not bound to user {user_id}")
        with self._ctx.store.transaction() as conn:
            row = conn.execute(
                "SELECT id, card_id, amount_fen, state, failure_code FROM card_transfers"
                " WHERE user_id = ? AND kind = ? AND request_id = ?",
                (user_id, str(kind), request_id),
            ).fetchone()
            if row is not None:
                if (row["card_id"], row["amount_fen"]) != (card_id, amount_fen):
                    raise IdempotencyConflict(
                        f"request id {request_id!r} was used for another {kind}"
                    )
                row_id = row["id"]
                if row["state"] == S.FAILED and row["failure_code"] == BankBusy.code:
                    # The bank was busy: nothing was collected or paid out, nothing credited,
                    # nothing left reserved (a withdrawal's reservation was voided before its
                    # row failed). The retry asks it again under the same bank request id
                    # (`topup-<id>`, `withdraw-<id>`), so the transfer still lands at most once;
                    # a withdrawal reserves again under its next attempt's transfer ids.
                    conn.execute(
                        "UPDATE card_transfers SET state = ?, failure_code = '',"
                        " failure_detail = '', completed_ns = 0 WHERE id = ?",
                        (str(S.CREATED), row_id),
                    )
            else:
                check_level(user, amount_fen)
                row_id = self._ctx.store.insert(
                    conn,
                    "card_transfers",
                    {
                        "kind": str(kind),
                        "user_id": user_id,
                        "card_id": card_id,
                        "amount_fen": amount_fen,
                        "request_id": request_id,
                        "state": str(S.CREATED),
                        "created_ns": self._ctx.clock_ns(),
                    },
                )
        return self.resume_card_transfer(row_id)

    def resume_card_transfer(self, row_id: int) -> CardTransfer:
        """Drive a top-up or withdrawal to its end from wherever it stopped (crash-safe).

        One thread at a time per row (concurrent retries and `recover()` wait for each other):
        a withdrawal's next attempt is chosen from what the ledger holds, which must not change
        under it."""
        with self._row_locks.hold(row_id):
            attempt: int | None = None  # the withdrawal attempt in the ledger, once known
            for _ in range(STEPS_MAX):
                t = self.card_transfer(row_id)
                if t.state == S.SUCCEEDED:
                    return t
                if t.state == S.FAILED:
                    raise error_for(t.failure_code, t.failure_detail)
                if t.kind == CardTransferKind.TOP_UP:
                    self._top_up_step(t)
                else:
                    attempt = self._withdrawal_step(t, attempt)
        raise AssertionError(f"card transfer {row_id} did not finish in {STEPS_MAX} steps")

    def _top_up_step(self, t: CardTransfer) -> None:
        ctx = self._ctx
        card = self.card(t.card_id)
        if t.state == S.CREATED:
            reply = ctx.bank.collect(f"topup-{t.id}", card.ref, t.amount_fen)
            if reply.ok:
                ctx.store.transition("card_transfers", t.id, (S.CREATED,), {"state": S.CONFIRMED})
            elif reply.outcome == "busy":
                error = BankBusy(
                    f"the bank is busy, nothing was moved: {reply.reason}; retry the top-up"
                    f" with the same request id {t.request_id!r}"
                )
                raise self._failed(t, error)
            else:
                raise self._failed(t, _bank_error(reply.outcome, reply.reason))
        elif t.state == S.CONFIRMED:
            chain = [
                leg(
                    transfer_id(Op.TOP_UP, t.id, PayoutLeg.TOP_UP),
                    bank_clearing_id(card.bank_code),
                    user_wallet_id(t.user_id),
                    t.amount_fen,
                    TransferCode.TOP_UP,
                )
            ]
            outcome = ctx.ledger.submit(chain)
            if not outcome.applied:
                # Cannot happen with a credit to a wallet; never pretend it succeeded.
                raise LedgerRejected(f"top-up {t.id}: the ledger said {outcome.failed_result}")
            self._succeeded(t, S.CONFIRMED)

    def _withdrawal_step(self, t: CardTransfer, attempt: int | None) -> int:
        """One step of a withdrawal; returns the attempt whose reservation it works on."""
        ctx = self._ctx
        card = self.card(t.card_id)
        wallet, clearing = user_wallet_id(t.user_id), bank_clearing_id(card.bank_code)
        code = TransferCode.WITHDRAWAL
        if t.state == S.CREATED:
            # A new row reserves as attempt 0. A row reopened after a busy bank finds its last
            # attempt voided and reserves as the next one; a crash after the reservation but
            # before the row said so left it live: that attempt is resubmitted (`exists`).
            last, voided = self._last_withdrawal_attempt(t.id)
            attempt = last + 1 if last < 0 or voided else last
            if attempt >= WITHDRAWAL_ATTEMPTS_MAX:
                raise self._failed(
                    t,
                    InvalidState(
                        f"withdrawal {t.id}: the bank was busy on all {WITHDRAWAL_ATTEMPTS_MAX}"
                        f" attempts under request id {t.request_id!r}; use a new request id"
                    ),
                )
            reserve_id = _withdrawal_ids(t.id, attempt)[0]
            # No timeout: a payout the bank may still make must not be released by the clock;
            # this state machine always ends the reservation itself (post or void).
            reserve = leg(reserve_id, wallet, clearing, t.amount_fen, code, flags=_PENDING)
            outcome = ctx.ledger.submit([reserve])
            if outcome.applied:
                ctx.store.transition("card_transfers", t.id, (S.CREATED,), {"state": S.RESERVED})
                return attempt
            if outcome.failed_result == "exceeds_credits":
                raise self._failed(
                    t, InsufficientFunds(f"wallet of user {t.user_id} holds too little")
                )
            raise LedgerRejected(f"withdrawal {t.id}: the ledger said {outcome.failed_result}")
        voided = False
        if attempt is None:  # resumed in a later state: the live reservation is the last one
            attempt, voided = self._last_withdrawal_attempt(t.id)
            if attempt < 0:
                raise LedgerRejected(f"withdrawal {t.id} is {t.state}, with no reservation")
        reserve_id, post_id, void_id = _withdrawal_ids(t.id, attempt)
        if t.state == S.RESERVED:
            if t.failure_code:
                # The bank refused this attempt before a crash: never ask it again (its
                # reservation may be voided already), finish releasing it.
                error = error_for(t.failure_code, t.failure_detail)
            elif voided:
                # Left by an earlier version, which voided before recording the refusal: the
                # bank refused (busy or declined). Busy lets a retry ask again, from a new
                # reservation; a declined payout is declined again from the bank's memory.
                error = BankBusy(
                    f"the bank refused withdrawal {t.id} before a restart, nothing was paid"
                    " out; retry the withdrawal with the same request id"
                    f" {t.request_id!r}"
                )
            else:
                reply = ctx.bank.payout(f"withdraw-{t.id}", card.ref, t.amount_fen)
                if reply.ok:
                    ctx.store.transition(
                        "card_transfers", t.id, (S.RESERVED,), {"state": S.CONFIRMED}
                    )
                    return attempt
                if reply.outcome == "busy":
                    error = BankBusy(
                        f"the bank is busy, nothing was moved: {reply.reason}; the wallet"
                        " amount is released, retry the withdrawal with the same request id"
                        f" {t.request_id!r}"
                    )
                else:
                    error = _bank_error(reply.outcome, reply.reason)
                # The answer is recorded before the void, so that a resume after a crash
                # between the two voids again instead of asking the bank (which, no longer
                # busy, would pay out against a voided reservation).
                if not ctx.store.transition(
                    "card_transfers",
                    t.id,
                    (S.RESERVED,),
                    {"failure_code": error.code, "failure_detail": str(error)},
                ):
                    return attempt  # moved on meanwhile: read it again
            void = leg(
                void_id, wallet, clearing, t.amount_fen, code, flags=_VOID, pending_id=reserve_id
            )
            ctx.ledger.release([void])
            raise self._failed(t, error)
        if t.state == S.CONFIRMED:
            post = leg(
                post_id, wallet, clearing, t.amount_fen, code, flags=_POST, pending_id=reserve_id
            )
            outcome = ctx.ledger.submit([post])
            if not outcome.applied:
                raise LedgerRejected(f"withdrawal {t.id}: the ledger said {outcome.failed_result}")
            self._succeeded(t, S.CONFIRMED)
        return attempt

    def _last_withdrawal_attempt(self, row_id: int) -> tuple[int, bool]:
        """The last attempt of a withdrawal whose reservation is in the ledger (-1: none) and
        whether it was voided. Attempts are made one after another (under the row's lock),
        each after the previous one's void, so the ledger holds attempts 0..last."""
        last, voided = -1, False
        for first in range(0, WITHDRAWAL_ATTEMPTS_MAX, _ATTEMPTS_PAGE):
            attempts = range(first, min(first + _ATTEMPTS_PAGE, WITHDRAWAL_ATTEMPTS_MAX))
            ids = [_withdrawal_ids(row_id, n) for n in attempts]
            found = {
                t.id
                for t in self._ctx.ledger.lookup_transfers(
                    [i for reserve, _, void in ids for i in (reserve, void)]
                )
            }
            for n, (reserve, _, void) in zip(attempts, ids, strict=True):
                if reserve not in found:
                    return last, voided
                last, voided = n, void in found
        return last, voided

    def _succeeded(self, t: CardTransfer, from_state: CardTransferState) -> None:
        self._ctx.store.transition(
            "card_transfers",
            t.id,
            (from_state,),
            {"state": S.SUCCEEDED, "completed_ns": self._ctx.clock_ns()},
        )

    def _failed(self, t: CardTransfer, error: PaymentError) -> PaymentError:
        return self._ctx.fail("card_transfers", t.id, (str(t.state),), error)

    # ----------------------------------------------------------------- recovery

    def ensure_accounts(self) -> int:
        """Create any wallet or clearing account a crash left missing; returns how many.
        Pages of ids are looked up first (a read), so a recovery with nothing missing writes
        nothing to the ledger."""
        store = self._ctx.store
        created = 0
        for table, code, wallet in (
            ("users", AccountCode.USER_WALLET, user_wallet_id),
            ("merchants", AccountCode.MERCHANT_WALLET, merchant_wallet_id),
        ):
            last = 0
            while ids := [
                row[0]
                for row in store.rows(
                    f"SELECT id FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (last, _PAGE)
                )
            ]:
                created += self._create_missing([(wallet(i), code, _WALLET) for i in ids])
                last = ids[-1]
        banks = store.rows(
            "SELECT bank_code FROM cards UNION SELECT settlement_bank_code FROM merchants"
        )
        for start in range(0, len(banks), _PAGE):
            created += self._create_missing(
                [
                    (bank_clearing_id(row[0]), AccountCode.BANK_CLEARING, AccountFlags.NONE)
                    for row in banks[start : start + _PAGE]
                ]
            )
        return created

    def _create_missing(self, specs: list[tuple[int, AccountCode, AccountFlags]]) -> int:
        found = {a.id for a in self._ctx.ledger.lookup_accounts([s[0] for s in specs])}
        missing = [spec for spec in specs if spec[0] not in found]
        if missing:
            self._ctx.ledger.ensure_accounts(missing)
        return len(missing)


# Account batches during recovery: one ledger request each, well under a batch's limit.
_PAGE = 1_000
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
# A withdrawal's attempt 0 uses the legs RESERVE, POST and VOID; attempt n >= 1 (a retry after
# a busy bank) the legs _RETRY_LEG_FIRST + 3 (n - 1) + 0, 1, 2: 80 retries fit in a leg byte.
_RETRY_LEG_FIRST = 16
WITHDRAWAL_ATTEMPTS_MAX = 1 + (255 - _RETRY_LEG_FIRST + 1) // 3
# Attempts whose transfers one ledger lookup asks for (the first page is almost always all).
_ATTEMPTS_PAGE = 8


def _withdrawal_ids(row_id: int, attempt: int) -> tuple[int, int, int]:
    """The (reserve, post, void) transfer ids of attempt `attempt` of withdrawal `row_id`."""
    assert 0 <= attempt < WITHDRAWAL_ATTEMPTS_MAX, attempt
    if attempt == 0:
        legs = (PayoutLeg.RESERVE, PayoutLeg.POST, PayoutLeg.VOID)
    else:
        first = _RETRY_LEG_FIRST + 3 * (attempt - 1)
        legs = (first, first + 1, first + 2)
    reserve, post, void = (transfer_id(Op.WITHDRAWAL, row_id, n) for n in legs)
    return reserve, post, void


class _RowLocks:
    """A lock per row id, held only while some thread wants it (memory stays bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, row_id: int) -> Iterator[None]:
        with self._lock:
            entry = self._held.setdefault(row_id, (threading.Lock(), [0]))
            entry[1][0] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1][0] -= 1
                if entry[1][0] == 0:
                    del self._held[row_id]


def _clearing_id(bank_code: str) -> int:
    try:
        return bank_clearing_id(bank_code)
    except ValueError as e:
        raise InvalidRequest(str(e)) from None


def _bank_error(outcome: str, reason: str) -> PaymentError:
    if outcome == "busy":
        return BankBusy(f"the bank is busy, nothing was moved: {reason}")
    return BankDeclined(f"the bank declined: {reason}")
