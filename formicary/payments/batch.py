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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import msgspec

from formicary.ledger import BATCH_EVENTS_MAX, LedgerError, Transfer, TransferFlags
from formicary.payments.chart import (
    CNY,
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
        for item in items:
            if not 0 < item.amount_fen <= AMOUNT_FEN_MAX:
                raise InvalidRequest(f"amount must be 1 to {AMOUNT_FEN_MAX} fen")
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
        return self._run(batch_no, batch_key, list(items), replayed=row is not None)

    def recover(self) -> int:
        """Finish every batch a crash left submitted; returns how many."""
        with self._lock:
            open_rows = self._conn.execute(
                "SELECT batch_no, batch_key, items FROM payment_batches WHERE state = 'submitted'"
            ).fetchall()
        for batch_no, batch_key, items in open_rows:
            self._run(batch_no, batch_key, _ITEMS_DECODER.decode(items), replayed=True)
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
        self, batch_no: int, batch_key: str, items: list[BatchItem], *, replayed: bool
    ) -> BatchReport:
        results = ["ok"] * len(items)
        # A generator: each ledger batch is submitted as soon as its chains are built, so the
        # ledger applies and commits batch k while the chains of batch k+1 are being built.
        chains = self._chains(batch_no, items, results)
        ledger = self.payments.ctx.ledger.service
        Spans = list[tuple[int, int, list[Transfer]]]  # (item, first event offset, chain)
        pending: list[tuple[Spans, Future[list[str]]]] = []

        def settle(spans: Spans, future: Future[list[str]]) -> None:
            try:
                answers = future.result()
            except LedgerError as error:
                raise LedgerBusy(f"the ledger did not take the batch: {error}") from error
            for item, offset, legs in spans:
                results[item] = _item_result(answers[offset : offset + len(legs)], legs)

        events: list[Transfer] = []
        spans: Spans = []
        for item, chain in chains:
            if len(events) + len(chain) > BATCH_EVENTS_MAX:
                pending.append((spans, ledger.submit_transfers(events)))
                events, spans = [], []
                if len(pending) >= _IN_FLIGHT:
                    settle(*pending.pop(0))
            spans.append((item, len(events), chain))
            events.extend(chain)
        if events:
            pending.append((spans, ledger.submit_transfers(events)))
        for spans_, future in pending:
            settle(spans_, future)
        with self._lock:
            self._conn.execute(
                "UPDATE payment_batches SET state = 'done', results = ? WHERE batch_no = ?",
                (msgspec.msgpack.encode(results), batch_no),
            )
        return _report(batch_no, batch_key, results, replayed)

    def _chains(
        self, batch_no: int, items: list[BatchItem], results: list[str]
    ) -> Iterator[tuple[int, list[Transfer]]]:
        """Each payable item's chain, in order; items refused before the ledger get their
        code in `results` instead.

        The hot loop of batch payments (~100k items/s): lookups are cached per merchant and
        campaign, ids are plain ints OR-ed together, the fee's half-even rounding is inlined
        (`money.bp_of`), and each leg is built with its final flags.
        """
        # merchant id -> (wallet account, fee rate in bp), or None: unknown merchant.
        merchants: dict[int, tuple[int, int] | None] = {}
        # campaign id -> the campaign, or None: unknown.
        campaigns: dict[int, Campaign | None] = {}
        parties = self.payments.parties
        # transfer_id(Op.BATCH_PAYMENT, batch_no << 17 | index, leg), built per leg by OR-ing.
        assert 0 < batch_no < 2 ** (40 - _INDEX_BITS), batch_no
        base = (TRANSFER_SPACE << 56) | (int(Op.BATCH_PAYMENT) << 48) | (batch_no << 25)
        user_base = user_wallet_id(0)
        budget_base = campaign_budget_id(0)
        fee_rates = {name: plan.rate_bp for name, plan in FEE_PLANS.items()}
        unit = BP_PER_UNIT
        T = Transfer
        for index, item in enumerate(items):
            merchant_id = item.merchant_id
            if merchant_id in merchants:
                merchant = merchants[merchant_id]
            else:
                found = _or_none(parties.merchant, merchant_id)
                merchant = merchants[merchant_id] = (
                    None
                    if found is None
                    else (merchant_wallet_id(merchant_id), fee_rates[found.fee_plan])
                )
            if merchant is None:
                results[index] = "unknown_party"
                continue
            merchant_wallet, rate_bp = merchant
            amount = item.amount_fen
            coupon = 0
            fee_base = amount
            campaign_id = item.campaign_id
            if campaign_id:
                if campaign_id in campaigns:
                    campaign = campaigns[campaign_id]
                else:
                    campaign = campaigns[campaign_id] = _or_none(
                        self.payments.campaigns.get, campaign_id
                    )
                if campaign is None or not _applies(campaign, item):
                    results[index] = "coupon_not_applicable"
                    continue
                coupon = min(campaign.discount_fen, amount)
                if campaign.funder_merchant_id is not None:
                    fee_base = amount - coupon  # a merchant's own discount earns no fee
            payer = amount - coupon
            fee, remainder = divmod(fee_base * rate_bp, unit)
            twice = 2 * remainder
            if twice > unit or (twice == unit and fee & 1):
                fee += 1
            ids = base | (index << 8)
            # The chain's last leg carries no `linked` flag.
            legs = []
            if payer:
                flags = _LINKED if coupon or fee else 0
                legs.append(
                    T(
                        ids | _PAYER,
                        user_base | item.user_id,
                        merchant_wallet,
                        payer,
                        CNY,
                        _PAYMENT,
                        flags,
                    )
                )
            if coupon:
                flags = _LINKED if fee else 0
                legs.append(
                    T(
                        ids | _COUPON,
                        budget_base | campaign_id,
                        merchant_wallet,
                        coupon,
                        CNY,
                        _COUPON_CODE,
                        flags,
                    )
                )
            if fee:
                legs.append(T(ids | _FEE, merchant_wallet, FEE_INCOME_ID, fee, CNY, _FEE_CODE, 0))
            yield index, legs


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
