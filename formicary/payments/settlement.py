"""Merchant settlement: the T+1 batch that pays each merchant's net of day T to its bank.

Items of a merchant's day T are the money movements of its wallet that finished before the end
of day T (China Standard Time) and are not settled yet:

    payments   + (amount - fee)                 finished (succeeded) before the cut-off
    refunds    - (amount - fee part)            reversed in the ledger before the cut-off
    campaigns  - budget                         merchant-funded, funded before the cut-off
    sweeps     + what came back from a closed merchant campaign

If their net is positive, one settlement takes them all (in one transaction) and moves the net
from the merchant wallet to the bank's clearing account as a pending transfer (no timeout: the
state machine ends it), asks the bank to pay the merchant's account, then posts it (or voids it
and releases the items, which then settle with a later day). A non-positive net is carried over.

The report reconciles to the ledger to the fen: each line's net is recomputed from the ledger's
own transfers of those items (looked up by their derived ids), and the settled amount is the
posted settlement transfer's amount.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import msgspec

from formicary.ledger import TransferFlags
from formicary.payments.bank import Outcome
from formicary.payments.chart import (
    CampaignLeg,
    Op,
    PaymentLeg,
    PayoutLeg,
    RefundLeg,
    TransferCode,
    bank_clearing_id,
    merchant_wallet_id,
    transfer_id,
)
from formicary.payments.context import STEPS_MAX, Context
from formicary.payments.errors import (
    BankDeclined,
    LedgerRejected,
    MerchantBalanceInsufficient,
    PaymentError,
    SettlementTooEarly,
    UnknownParty,
)
from formicary.payments.ledger_client import leg
from formicary.payments.parties import Parties
from formicary.payments.records import Settlement, SettlementState

__all__ = ["CST", "SettlementLine", "SettlementReport", "Settlements", "cutoff_ns"]

S = SettlementState
# China Standard Time: business days begin and end at midnight UTC+8 (no daylight saving).
CST = timezone(timedelta(hours=8))
# Merchants per page of a batch, and ids per ledger lookup (one ledger query each).
_MERCHANTS_PAGE = 500
_LOOKUP_IDS_MAX = 8_000
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)

# (table, merchant column, finished-at column, which rows count, merchant wallet delta)
_ITEMS = (
    ("payments", "merchant_id", "completed_ns", "state = 'succeeded'", "amount_fen - fee_fen"),
    (
        "refunds",
        "merchant_id",
        "reversed_ns",
        "state IN ('reversed', 'succeeded')",
        "fee_fen - amount_fen",
    ),
    (
        "campaigns",
        "funder_merchant_id",
        "funded_ns",
        "state IN ('active', 'closed')",
        "-budget_fen",
    ),
    ("campaign_sweeps", "merchant_id", "created_ns", "1", "amount_fen"),
)


def cutoff_ns(business_date: date) -> int:
    """The end of `business_date` in China Standard Time, in ns since the epoch."""
    end = datetime.combine(business_date + timedelta(days=1), datetime.min.time(), CST)
    return int(end.timestamp()) * 1_000_000_000


class SettlementLine(msgspec.Struct, frozen=True):
    """One merchant's settlement of one day, from the items and from the ledger."""

    merchant_id: int
    settlement_id: int  # 0 when the net was not positive and everything was carried over
    state: str  # a SettlementState, or "carried"
    payments: int
    gross_fen: int  # order amounts of the payments, coupons included
    fee_fen: int
    refunds: int
    refunded_fen: int
    fee_returned_fen: int
    campaign_fen: int  # merchant campaign budgets paid (-) and swept back (+)
    net_fen: int  # gross - fee - refunded + fee_returned + campaign
    ledger_net_fen: int  # the same items' movements of the merchant wallet, from the ledger
    settled_fen: int  # what the ledger's settlement transfer posted (0 until it has)

    @property
    def reconciled(self) -> bool:
        expected = self.net_fen if self.state == S.SUCCEEDED else 0
        return self.ledger_net_fen == self.net_fen and self.settled_fen == expected


class SettlementReport(msgspec.Struct, frozen=True):
    business_date: str
    cutoff_ns: int
    lines: list[SettlementLine]

    @property
    def settled_fen(self) -> int:
        return sum(line.settled_fen for line in self.lines)

    @property
    def reconciled(self) -> bool:
        return all(line.reconciled for line in self.lines)


class Settlements:
    """The T+1 settlement batch and its report."""

    def __init__(self, ctx: Context, parties: Parties) -> None:
        self._ctx = ctx
        self._parties = parties

    def run(self, business_date: date) -> SettlementReport:
        """Settle every merchant's day `business_date` (re-runnable: resumes what a crash or a
        busy bank left open) and return the report."""
        cutoff = cutoff_ns(business_date)
        if self._ctx.clock_ns() < cutoff:
            raise SettlementTooEarly(f"{business_date} has not ended yet in China Standard Time")
        day = business_date.isoformat()
        carried: list[SettlementLine] = []
        last = 0
        while True:
            merchants = self._merchants_to_settle(day, cutoff, last)
            if not merchants:
                break
            for merchant_id in merchants:
                settlement_id = self._open(merchant_id, day, cutoff)
                if settlement_id is None:
                    carried.append(self._line(merchant_id, None, cutoff))
                    continue
                self.resume(settlement_id)  # a failure is recorded; the report shows it
            last = merchants[-1]
        report = self.report(business_date)
        return SettlementReport(report.business_date, cutoff, report.lines + carried)

    def report(self, business_date: date) -> SettlementReport:
        """The report of a settled day, rebuilt from the rows and the ledger at any time."""
        cutoff = cutoff_ns(business_date)
        settlements = self._ctx.store.all(
            Settlement,
            "SELECT * FROM settlements WHERE business_date = ? ORDER BY merchant_id",
            (business_date.isoformat(),),
        )
        lines = [self._line(s.merchant_id, s, cutoff) for s in settlements]
        return SettlementReport(business_date.isoformat(), cutoff, lines)

    def get(self, settlement_id: int) -> Settlement:
        found = self._ctx.store.get(Settlement, "settlements", settlement_id)
        if found is None:
            raise UnknownParty(f"no settlement {settlement_id}")
        return found

    def unsettled_fen(self, merchant_id: int) -> int:
        """The net of every item of the merchant not in a succeeded settlement. When nothing is
        in flight it equals the merchant wallet's posted balance in the ledger."""
        total = 0
        for table, merchant_col, _, counts, delta in _ITEMS:
            total += self._ctx.store.scalar(
                f"SELECT coalesce(sum({delta}), 0) FROM {table} WHERE {merchant_col} = ?"
                f" AND {counts} AND (settlement_id IS NULL OR settlement_id NOT IN"
                " (SELECT id FROM settlements WHERE merchant_id = ? AND state = 'succeeded'))",
                (merchant_id, merchant_id),
            )
        return total

    # ----------------------------------------------------------------- the batch

    def _merchants_to_settle(self, day: str, cutoff: int, after: int) -> list[int]:
        parts = [
            f"SELECT {merchant_col} FROM {table} WHERE {merchant_col} > ? AND {time_col} < ?"
            f" AND {counts} AND settlement_id IS NULL"
            for table, merchant_col, time_col, counts, _ in _ITEMS
        ]
        parts.append(
            "SELECT merchant_id FROM settlements WHERE merchant_id > ? AND business_date = ?"
        )
        params: list[Any] = [after, cutoff] * len(_ITEMS) + [after, day]
        sql = " UNION ".join(parts) + " ORDER BY 1 LIMIT ?"
        rows = self._ctx.store.rows(sql, [*params, _MERCHANTS_PAGE])
        return [row[0] for row in rows if row[0] is not None]

    def _open(self, merchant_id: int, day: str, cutoff: int) -> int | None:
        """The settlement of (merchant, day): the existing one, or a new one taking every
        unsettled item before the cut-off; None if their net is not positive."""
        with self._ctx.store.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM settlements WHERE merchant_id = ? AND business_date = ?",
                (merchant_id, day),
            ).fetchone()
            if row is not None:
                return row[0]
            net = sum(
                conn.execute(
                    f"SELECT coalesce(sum({delta}), 0) FROM {table} WHERE {merchant_col} = ?"
                    f" AND {time_col} < ? AND {counts} AND settlement_id IS NULL",
                    (merchant_id, cutoff),
                ).fetchone()[0]
                for table, merchant_col, time_col, counts, delta in _ITEMS
            )
            if net <= 0:
                return None
            settlement_id = self._ctx.store.insert(
                conn,
                "settlements",
                {
                    "merchant_id": merchant_id,
                    "business_date": day,
                    "net_fen": net,
                    "state": str(S.CREATED),
                    "created_ns": self._ctx.clock_ns(),
                },
            )
            for table, merchant_col, time_col, counts, _ in _ITEMS:
                conn.execute(
                    f"UPDATE {table} SET settlement_id = ? WHERE {merchant_col} = ?"
                    f" AND {time_col} < ? AND {counts} AND settlement_id IS NULL",
                    (settlement_id, merchant_id, cutoff),
                )
        return settlement_id

    def resume(self, settlement_id: int) -> Settlement:
        """Drive a settlement on from wherever it stopped and return it: `succeeded`, `failed`
        (the reason recorded, its items released), or still `reserved` while the bank is busy."""
        for _ in range(STEPS_MAX):
            s = self.get(settlement_id)
            if s.state in (S.SUCCEEDED, S.FAILED):
                return s
            merchant = self._parties.merchant(s.merchant_id)
            wallet = merchant_wallet_id(s.merchant_id)
            clearing = bank_clearing_id(merchant.settlement_bank_code)
            reserve_id = transfer_id(Op.SETTLEMENT, s.id, PayoutLeg.RESERVE)
            code = TransferCode.SETTLEMENT
            if s.state == S.CREATED:
                reserve = leg(reserve_id, wallet, clearing, s.net_fen, code, flags=_PENDING)
                outcome = self._ctx.ledger.submit([reserve])
                if outcome.applied:
                    self._move(s, S.RESERVED)
                elif outcome.failed_result == "exceeds_credits":
                    # Refunds after the cut-off took the wallet below the day's net.
                    self._fail(
                        s,
                        MerchantBalanceInsufficient(
                            f"merchant {s.merchant_id} holds less than the net of {s.business_date}"
                        ),
                    )
                else:
                    raise LedgerRejected(
                        f"settlement {s.id}: the ledger said {outcome.failed_result}"
                    )
            elif s.state == S.RESERVED:
                reply = self._ctx.bank.payout(
                    f"settle-{s.id}", merchant.settlement_account, s.net_fen
                )
                if reply.ok:
                    self._move(s, S.CONFIRMED)
                    continue
                if reply.outcome is Outcome.BUSY:
                    return s  # nothing paid; the next run or recover() asks again
                void_id = transfer_id(Op.SETTLEMENT, s.id, PayoutLeg.VOID)
                self._ctx.ledger.release(
                    [
                        leg(
                            void_id,
                            wallet,
                            clearing,
                            s.net_fen,
                            code,
                            flags=_VOID,
                            pending_id=reserve_id,
                        )
                    ]
                )
                self._fail(s, BankDeclined(f"the bank declined the payout: {reply.reason}"))
            else:
                post_id = transfer_id(Op.SETTLEMENT, s.id, PayoutLeg.POST)
                post = leg(
                    post_id, wallet, clearing, s.net_fen, code, flags=_POST, pending_id=reserve_id
                )
                outcome = self._ctx.ledger.submit([post])
                if not outcome.applied:
                    raise LedgerRejected(
                        f"settlement {s.id}: the ledger said {outcome.failed_result}"
                    )
                self._move(s, S.SUCCEEDED, completed_ns=self._ctx.clock_ns())
        raise AssertionError(f"settlement {settlement_id} did not finish in {STEPS_MAX} steps")

    def _move(self, s: Settlement, to_state: SettlementState, **values: int) -> None:
        self._ctx.store.transition("settlements", s.id, (s.state,), {"state": to_state, **values})

    def _fail(self, s: Settlement, error: PaymentError) -> PaymentError:
        """Fail the settlement and release its items in one transaction (they settle later)."""
        with self._ctx.store.transaction() as conn:
            cursor = conn.execute(
                "UPDATE settlements SET state = ?, failure_code = ?, failure_detail = ?,"
                " completed_ns = ? WHERE id = ? AND state = ?",
                (S.FAILED, error.code, str(error), self._ctx.clock_ns(), s.id, s.state),
            )
            if cursor.rowcount == 1:
                for table, *_ in _ITEMS:
                    conn.execute(
                        f"UPDATE {table} SET settlement_id = NULL WHERE settlement_id = ?", (s.id,)
                    )
        return error

    # ----------------------------------------------------------------- the report

    def _line(self, merchant_id: int, s: Settlement | None, cutoff: int) -> SettlementLine:
        items = _item_filters(merchant_id, s, cutoff)
        store = self._ctx.store
        pay_sql, pay_args = items["payments"]
        ref_sql, ref_args = items["refunds"]
        camp_sql, camp_args = items["campaigns"]
        sweep_sql, sweep_args = items["campaign_sweeps"]
        sums = "SELECT count(*), coalesce(sum(amount_fen), 0), coalesce(sum(fee_fen), 0) "
        payments, gross, fee = store.rows(sums + pay_sql, pay_args)[0]
        refunds, refunded, fee_returned = store.rows(sums + ref_sql, ref_args)[0]
        funded = store.scalar(f"SELECT coalesce(sum(budget_fen), 0) {camp_sql}", camp_args)
        swept = store.scalar(f"SELECT coalesce(sum(amount_fen), 0) {sweep_sql}", sweep_args)
        campaign = swept - funded
        # The same items' legs, looked up in the ledger by their derived ids.
        ids: list[int] = []
        for (item_id,) in store.rows(f"SELECT id {pay_sql}", pay_args):
            ids += [transfer_id(Op.PAYMENT, item_id, n) for n in _PAYMENT_WALLET_LEGS]
        for (item_id,) in store.rows(f"SELECT id {ref_sql}", ref_args):
            ids += [transfer_id(Op.REFUND, item_id, n) for n in _REFUND_WALLET_LEGS]
        for (item_id,) in store.rows(f"SELECT id {camp_sql}", camp_args):
            ids.append(transfer_id(Op.CAMPAIGN, item_id, CampaignLeg.FUND))
        for campaign_id, number in store.rows(
            f"SELECT campaign_id, number {sweep_sql}", sweep_args
        ):
            ids.append(transfer_id(Op.CAMPAIGN, campaign_id, CampaignLeg.SWEEP_FIRST + number))
        settled = 0
        if s is not None:
            post_id = transfer_id(Op.SETTLEMENT, s.id, PayoutLeg.POST)
            found = self._ctx.ledger.lookup_transfers([post_id])
            settled = found[0].amount if found else 0
        return SettlementLine(
            merchant_id=merchant_id,
            settlement_id=s.id if s is not None else 0,
            state=str(s.state) if s is not None else "carried",
            payments=payments,
            gross_fen=gross,
            fee_fen=fee,
            refunds=refunds,
            refunded_fen=refunded,
            fee_returned_fen=fee_returned,
            campaign_fen=campaign,
            net_fen=gross - fee - refunded + fee_returned + campaign,
            ledger_net_fen=self._wallet_movements(merchant_id, ids),
            settled_fen=settled,
        )

    def _wallet_movements(self, merchant_id: int, ids: list[int]) -> int:
        """The net posted movement of the merchant wallet by the transfers with these ids."""
        wallet = merchant_wallet_id(merchant_id)
        net = 0
        for start in range(0, len(ids), _LOOKUP_IDS_MAX):
            for t in self._ctx.ledger.lookup_transfers(ids[start : start + _LOOKUP_IDS_MAX]):
                if t.flags & (_PENDING | _VOID):
                    continue  # reservations and their releases never touch posted balances
                if t.credit_account_id == wallet:
                    net += t.amount
                if t.debit_account_id == wallet:
                    net -= t.amount
        return net


# Every leg of a payment or a refund that may touch the merchant wallet (absent ids are fine:
# a leg of amount 0, or of the other phase kind, was never created).
_PAYMENT_WALLET_LEGS = (
    PaymentLeg.PAYER,
    PaymentLeg.COUPON,
    PaymentLeg.FEE,
    PaymentLeg.PAYER_POST,
    PaymentLeg.COUPON_POST,
)
_REFUND_WALLET_LEGS = (RefundLeg.FEE, RefundLeg.PAYER, RefundLeg.COUPON)


def _item_filters(
    merchant_id: int, s: Settlement | None, cutoff: int
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Per item table, the FROM ... WHERE clause (and its parameters) selecting the items of a
    settlement, or, without one, the unsettled items of the merchant before the cut-off."""
    filters: dict[str, tuple[str, tuple[int, ...]]] = {}
    for table, merchant_col, time_col, counts, _ in _ITEMS:
        if s is not None:
            filters[table] = (f"FROM {table} WHERE settlement_id = ?", (s.id,))
        else:
            filters[table] = (
                f"FROM {table} WHERE {merchant_col} = ? AND {counts} AND {time_col} < ?"
                " AND settlement_id IS NULL",
                (merchant_id, cutoff),
            )
    return filters
