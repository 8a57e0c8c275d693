"""The batch interface: many wallet payments at once, each its own linked chain.

For Double-11 volumes a row per payment in the payments tables (and a ledger round trip each)
costs more than the money movement itself. A batch is recorded once, as one intent row holding
all its items (msgpack), durably *before* its transfers reach the ledger; its chains go to the
ledger in full ledger batches (2,730 three-leg payments = 8,190 events, never splitting a chain),
several in flight; the outcome of every item is then stored with the row. Each payment is

    user wallet     -> merchant wallet    P = A - C   (PAYMENT, leg 1)
    campaign budget -> merchant wallet    C           (COUPON,  leg 2)   if a coupon applies
    merchant wallet -> platform fees      F           (FEE,     leg 3)   if F > 0

exactly as `Cashier.pay` builds it for a wallet payment (same fee and coupon rules), with
transfer ids derived from (batch number, item index, leg): `recover()` resubmits a batch a crash
left open, and the ledger applies each chain at most once. Items fail alone (their chain does):
`insufficient_funds`, `coupon_exhausted`, `coupon_not_applicable`, `unknown_party`.

What batch payments do not have (yet): refunds and per-payment lookups through the cashier;
they are visible in the ledger (transfer code PAYMENT/COUPON/FEE) and in `report()`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple, TypeVar

import msgspec
import numpy as np

from formicary.ledger import BATCH_EVENTS_MAX, LedgerError, Transfer, TransferFlags
from formicary.payments.chart import (
    CNY,
    ENTITY_MAX,
    FEE_INCOME_ID,
    TRANSFER_SPACE,
    Op,
    PaymentLeg,
    TransferCode,
    campaign_budget_id,
    merchant_wallet_id,
    user_wallet_id,
)
from formicary.payments.errors import (
    IdempotencyConflict,
    InvalidRequest,
    LedgerBusy,
    PaymentError,
)
from formicary.payments.money import AMOUNT_FEN_MAX, BP_PER_UNIT, FEE_PLANS
from formicary.payments.records import Campaign, CampaignState
from formicary.payments.service import Payments

__all__ = ["BATCH_ITEMS_MAX", "BatchItem", "BatchReport", "PaymentBatches"]

T = TypeVar("T")

# Items per batch: one intent row (~40 bytes each) and ~35 ledger batches in flight over time.
BATCH_ITEMS_MAX = 100_000
# A batch payment's entity id is batch number << 17 | item index (BATCH_ITEMS_MAX < 2^17).
_INDEX_BITS = 17
_LINKED = int(TransferFlags.LINKED)
_PAYER, _COUPON, _FEE = int(PaymentLeg.PAYER), int(PaymentLeg.COUPON), int(PaymentLeg.FEE)
_PAYMENT = int(TransferCode.PAYMENT)
_COUPON_CODE = int(TransferCode.COUPON)
_FEE_CODE = int(TransferCode.FEE)
# Ledger batches in flight: the next is built while the ledger commits the previous ones.
_IN_FLIGHT = 3
# Items per ledger batch: at most three legs each, so a chunk's chains fill one ledger batch.
_CHUNK_ITEMS = BATCH_EVENTS_MAX // 3
# Per leg of a chain (payer, coupon, fee): its number in the transfer id and its code.
_LEG_NUMBERS = np.array([_PAYER, _COUPON, _FEE], np.uint64)
_LEG_CODES = np.array([_PAYMENT, _COUPON_CODE, _FEE_CODE], np.int64)
_USER_BASE = np.uint64(user_wallet_id(0))
_BUDGET_BASE = np.uint64(campaign_budget_id(0))


class BatchItem(msgspec.Struct, frozen=True, array_like=True):
    """One wallet payment: `amount_fen` from the user to the merchant, with an optional
    coupon campaign (0: none)."""

    user_id: int
    merchant_id: int
    amount_fen: int
    campaign_id: int = 0


class BatchReport(msgspec.Struct):
    """A batch's outcome: one code per item (`ok` or why it failed), and totals."""

    batch_no: int
    batch_key: str
    results: list[str]
    succeeded: int
    failed: dict[str, int]
    replayed: bool = False


_ITEMS = msgspec.msgpack.Encoder()
_ITEMS_DECODER = msgspec.msgpack.Decoder(list[BatchItem])
_RESULTS_DECODER = msgspec.msgpack.Decoder(list[str])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS payment_batches (
    batch_no INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_key TEXT NOT NULL UNIQUE,  -- the caller's idempotency key
    items BLOB NOT NULL,             -- msgpack list of BatchItem
    state TEXT NOT NULL CHECK (state IN ('submitted', 'done')),
    results BLOB                     -- msgpack list of result codes, once done
) STRICT
"""


class PaymentBatches:
    """Batch payments over a `Payments` core; its rows live in their own SQLite file."""

    def __init__(self, payments: Payments, path: str | Path) -> None:
        self.payments = payments
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # the intent must be durable first
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def pay(self, batch_key: str, items: Sequence[BatchItem]) -> BatchReport:
        """Pay every item; idempotent by `batch_key` (a retry answers the first outcome)."""
        if not isinstance(batch_key, str) or not 0 < len(batch_key) <= 128:
            raise InvalidRequest("batch key must be a string of 1 to 128 characters")
        if not 0 < len(items) <= BATCH_ITEMS_MAX:
            raise InvalidRequest(f"a batch holds 1 to {BATCH_ITEMS_MAX} payments")
        columns = _columns(items)
        user, merchant, amount, campaign = columns
        if not ((amount > 0) & (amount <= AMOUNT_FEN_MAX)).all():
            raise InvalidRequest(f"amount must be 1 to {AMOUNT_FEN_MAX} fen")
        if not (
            (user > 0)
            & (user <= ENTITY_MAX)
            & (merchant > 0)
            & (merchant <= ENTITY_MAX)
            & (campaign >= 0)
            & (campaign <= ENTITY_MAX)
        ).all():
            raise InvalidRequest(
                f"user and merchant ids must be 1 to {ENTITY_MAX}, campaign ids 0 to {ENTITY_MAX}"
            )
        with self._lock:
            encoded = _ITEMS.encode(list(items))
            row = self._conn.execute(
                "SELECT batch_no, state, results, items FROM payment_batches WHERE batch_key = ?",
                (batch_key,),
            ).fetchone()
            if row is not None and row[3] != encoded:
                raise IdempotencyConflict(
                    f"batch key {batch_key!r} was used for a different batch of payments"
                )
            if row is None:
                cursor = self._conn.execute(
                    "INSERT INTO payment_batches (batch_key, items, state) VALUES (?, ?, ?)",
                    (batch_key, encoded, "submitted"),
                )
                batch_no = int(cursor.lastrowid or 0)
            elif row[1] == "done":
                return _report(row[0], batch_key, _RESULTS_DECODER.decode(row[2]), True)
            else:
                batch_no = row[0]  # a crash left it open: resubmit, the ledger dedupes
        return self._run(batch_no, batch_key, columns, replayed=row is not None)

    def recover(self) -> int:
        """Finish every batch a crash left submitted; returns how many."""
        with self._lock:
            open_rows = self._conn.execute(
                "SELECT batch_no, batch_key, items FROM payment_batches WHERE state = 'submitted'"
            ).fetchall()
        for batch_no, batch_key, items in open_rows:
            decoded = _ITEMS_DECODER.decode(items)
            self._run(batch_no, batch_key, _columns(decoded), replayed=True)
        return len(open_rows)

    def report(self, batch_key: str) -> BatchReport | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT batch_no, results FROM payment_batches WHERE batch_key = ? AND"
                " state = 'done'",
                (batch_key,),
            ).fetchone()
        return None if row is None else _report(row[0], batch_key, _RESULTS_DECODER.decode(row[1]))

    # ----------------------------------------------------------------- the run

    def _run(
        self, batch_no: int, batch_key: str, columns: np.ndarray, *, replayed: bool
    ) -> BatchReport:
        n = columns.shape[1]
        results = ["ok"] * n
        ledger = self.payments.ctx.ledger.service
        builder = _ChainBuilder(self.payments, batch_no)
        pending: list[tuple[_Chains, Future[list[str]]]] = []

        def settle(chains: _Chains, future: Future[list[str]]) -> None:
            try:
                answers = future.result()
            except LedgerError as error:
                raise LedgerBusy(f"the ledger did not take the batch: {error}") from error
            if answers.count("ok") == len(answers):
                return  # every chain applied: their items stay "ok"
            starts = chains.starts
            for k, item in enumerate(chains.items):
                first, stop = starts[k], starts[k + 1]
                results[item] = _item_result(answers[first:stop], chains.events[first:stop])

        # Each chunk of items is one ledger batch, submitted as soon as it is built, so the
        # ledger applies and commits chunk k while chunk k+1 is being built.
        for start in range(0, n, _CHUNK_ITEMS):
            chains = builder.build(columns[:, start : start + _CHUNK_ITEMS], start, results)
            if chains.events:
                pending.append((chains, ledger.submit_transfers(chains.events)))
            if len(pending) >= _IN_FLIGHT:
                settle(*pending.pop(0))
        for chains, future in pending:
            settle(chains, future)
        with self._lock:
            self._conn.execute(
                "UPDATE payment_batches SET state = 'done', results = ? WHERE batch_no = ?",
                (msgspec.msgpack.encode(results), batch_no),
            )
        return _report(batch_no, batch_key, results, replayed)


class _Chains(NamedTuple):
    """One ledger batch of payment chains: `events` in chain order; the chain of item
    `items[k]` is events[starts[k]:starts[k + 1]]."""

    events: list[Transfer]
    items: list[int]
    starts: list[int]


class _ChainBuilder:
    """Builds the chains of one batch, a chunk of items at a time, with numpy.

    For Double-11 volumes this is the payments side's hot loop: the rules are those of
    `Cashier.pay` for a wallet payment, applied to whole columns (fees with half-even rounding
    as `money.bp_of`), and only the Transfers themselves are made one by one, by `map` in C.
    Merchants and campaigns are looked up once per batch.
    """

    def __init__(self, payments: Payments, batch_no: int) -> None:
        assert 0 < batch_no < 2 ** (40 - _INDEX_BITS), batch_no
        self._payments = payments
        # transfer_id(Op.BATCH_PAYMENT, batch_no << 17 | index, leg), built by OR-ing.
        self._base = (TRANSFER_SPACE << 56) | (int(Op.BATCH_PAYMENT) << 48) | (batch_no << 25)
        # merchant id -> (wallet account, fee rate in bp), or None: unknown merchant.
        self._merchants: dict[int, tuple[int, int] | None] = {}
        # campaign id -> the campaign, or None: unknown.
        self._campaigns: dict[int, Campaign | None] = {}

    def build(self, columns: np.ndarray, start: int, results: list[str]) -> _Chains:
        """The chains of the items whose `_columns` are given, the first being item `start`;
        items refused before the ledger get their code in `results` instead."""
        user, merchant, amount, campaign = columns

        known, wallet, rate = self._merchant_columns(merchant)
        has_coupon = campaign != 0
        c_known, discount, only_merchant, min_order, merchant_funded = self._campaign_columns(
            campaign
        )
        applies = (
            c_known & ((only_merchant == -1) | (only_merchant == merchant)) & (amount >= min_order)
        )
        refused_coupon = known & has_coupon & ~applies
        payable = known & ~refused_coupon
        for k in np.flatnonzero(~payable).tolist():
            results[start + k] = "coupon_not_applicable" if known[k] else "unknown_party"

        coupon = np.where(has_coupon, np.minimum(discount, amount), 0)
        fee_base = np.where(merchant_funded, amount - coupon, amount)  # no fee on own discount
        fee, remainder = np.divmod(fee_base * rate, BP_PER_UNIT)
        fee += (2 * remainder > BP_PER_UNIT) | ((2 * remainder == BP_PER_UNIT) & (fee % 2 == 1))

        rows = np.flatnonzero(payable)
        money = np.stack([amount - coupon, coupon, fee], axis=1)[rows]
        present = money > 0
        # Every leg but the chain's last carries `linked`.
        last = 2 - np.argmax(present[:, ::-1], axis=1)
        linked = np.arange(3) < last[:, None]
        ids = (
            np.uint64(self._base)
            | ((rows.astype(np.uint64) + np.uint64(start)) << np.uint64(8))[:, None]
            | _LEG_NUMBERS
        )
        account = wallet[rows]
        debit = np.stack(
            [
                _USER_BASE | user[rows].astype(np.uint64),
                _BUDGET_BASE | campaign[rows].astype(np.uint64),
                account,
            ],
            axis=1,
        )
        credit = np.stack([account, account, np.full_like(account, FEE_INCOME_ID)], axis=1)
        events = list(
            map(
                Transfer,
                ids[present].tolist(),
                debit[present].tolist(),
                credit[present].tolist(),
                money[present].tolist(),
                repeat(CNY),
                np.broadcast_to(_LEG_CODES, present.shape)[present].tolist(),
                np.where(linked, _LINKED, 0)[present].tolist(),
            )
        )
        starts = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).tolist()
        return _Chains(events, (rows + start).tolist(), starts)

    def _merchant_columns(self, merchant: np.ndarray) -> tuple[np.ndarray, ...]:
        """(known, wallet account, fee rate in bp) per item."""
        ids, inverse = np.unique(merchant, return_inverse=True)
        found = [self._merchant(m) for m in ids.tolist()]
        known = np.array([f is not None for f in found])[inverse]
        wallet = np.array([f[0] if f else 0 for f in found], np.uint64)[inverse]
        rate = np.array([f[1] if f else 0 for f in found], np.int64)[inverse]
        return known, wallet, rate

    def _merchant(self, merchant_id: int) -> tuple[int, int] | None:
        if merchant_id not in self._merchants:
            found = _or_none(self._payments.parties.merchant, merchant_id)
            self._merchants[merchant_id] = (
                None
                if found is None
                else (merchant_wallet_id(merchant_id), FEE_PLANS[found.fee_plan].rate_bp)
            )
        return self._merchants[merchant_id]

    def _campaign_columns(self, campaign: np.ndarray) -> tuple[np.ndarray, ...]:
        """(usable, discount, the only merchant or -1, minimum order, merchant-funded) per
        item; campaign 0 (none) is unusable with no discount."""
        ids, inverse = np.unique(campaign, return_inverse=True)
        found = [self._campaign(c) if c else None for c in ids.tolist()]
        usable = [c is not None and c.state == CampaignState.ACTIVE for c in found]
        return (
            np.array(usable)[inverse],
            np.array([c.discount_fen if c else 0 for c in found], np.int64)[inverse],
            np.array(
                [-1 if c is None or c.merchant_id is None else c.merchant_id for c in found],
                np.int64,
            )[inverse],
            np.array([c.min_order_fen if c else 0 for c in found], np.int64)[inverse],
            np.array([bool(c and c.funder_merchant_id is not None) for c in found])[inverse],
        )

    def _campaign(self, campaign_id: int) -> Campaign | None:
        if campaign_id not in self._campaigns:
            self._campaigns[campaign_id] = _or_none(self._payments.campaigns.get, campaign_id)
        return self._campaigns[campaign_id]


def _columns(items: Sequence[BatchItem]) -> np.ndarray:
    """The items as four int64 rows: user ids, merchant ids, amounts, campaign ids."""
    try:
        return np.stack(
            [np.fromiter(map(field, items), np.int64, len(items)) for field in _ITEM_FIELDS]
        )
    except (OverflowError, TypeError, ValueError) as error:
        raise InvalidRequest(f"a batch item's ids and amount must be integers: {error}") from None


_ITEM_FIELDS = tuple(map(attrgetter, ("user_id", "merchant_id", "amount_fen", "campaign_id")))


def _item_result(answers: list[str], legs: list[Transfer]) -> str:
    """One item's code from its chain's results."""
    if answers[0] == "exists" or all(a == "ok" for a in answers):
        return "ok"  # applied now, or by the run a crash interrupted
    for answer, leg in zip(answers, legs, strict=True):
        if answer == "linked_event_failed":
            continue
        role = leg.id & 0xFF
        if answer == "exceeds_credits":
            return "coupon_exhausted" if role == PaymentLeg.COUPON else "insufficient_funds"
        if answer in ("debit_account_not_found", "credit_account_not_found"):
            return "unknown_party"
        return f"ledger_{answer}"
    return "ledger_rejected"


def _applies(campaign: Campaign, item: BatchItem) -> bool:
    return (
        campaign.state == CampaignState.ACTIVE
        and campaign.merchant_id in (None, item.merchant_id)
        and item.amount_fen >= campaign.min_order_fen
    )


def _or_none(lookup: Callable[[int], T], key: int) -> T | None:
    try:
        return lookup(key)
    except PaymentError:  # UnknownParty and friends: the item fails, not the batch
        return None


def _report(batch_no: int, key: str, results: list[str], replayed: bool = False) -> BatchReport:
    failed = Counter(r for r in results if r != "ok")
    return BatchReport(
        batch_no=batch_no,
        batch_key=key,
        results=results,
        succeeded=len(results) - sum(failed.values()),
        failed=dict(failed),
        replayed=replayed,
    )
