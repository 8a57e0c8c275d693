"""Refunds, full and partial, that never add up to more than was paid.

A refund of R fen (of the order amount A) is split by a cumulative pro-rata rule. With R_cum the
refunds of the payment so far including this one, and C, F the payment's coupon and fee:

    coupon part = round_half_even(C * R_cum / A) - coupon parts already refunded
    fee part    = round_half_even(F * R_cum / A) - fee parts already refunded
    payer part  = R - coupon part

Because each refund takes the rounded share of the running total minus what earlier refunds
took, the parts always add up exactly: once R_cum == A, exactly C went back to the budget,
exactly F back to the merchant and exactly P = A - C back to the payer, whatever the sequence.
(The payer part never goes negative: the coupon share grows by at most R per refund.)

The refund moves in ONE linked chain (fee first, so the merchant's wallet is credited before
it is debited):

    platform fees   -> merchant wallet   fee part    (FEE_REVERSAL)
    merchant wallet -> payer account     payer part  (REFUND)
    merchant wallet -> campaign budget   coupon part (COUPON_REVERSAL)

Then the funding source returns the payer part outside the ledger (a card: bank payout). If the
bank declines it, the payer part is credited to the user's wallet instead (REFUND_TO_WALLET);
if the bank is busy, the refund waits in state `reversed` and `recover()` retries.
One refund per payment is in flight at a time, so the allocation above is never computed
against a refund that might still fail.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from formicary.ledger import Transfer
from formicary.payments.bank import Outcome
from formicary.payments.cashier import Cashier
from formicary.payments.chart import (
    FEE_INCOME_ID,
    Op,
    RefundLeg,
    TransferCode,
    campaign_budget_id,
    merchant_wallet_id,
    transfer_id,
    user_wallet_id,
)
from formicary.payments.context import STEPS_MAX, Context, check_amount, check_text
from formicary.payments.errors import (
    IdempotencyConflict,
    InvalidState,
    LedgerRejected,
    MerchantBalanceInsufficient,
    PaymentError,
    RefundExceedsPayment,
    RefundInProgress,
    UnknownParty,
    error_for,
)
from formicary.payments.funding import FundingRequest
from formicary.payments.ledger_client import leg
from formicary.payments.money import pro_rata
from formicary.payments.records import Payment, PaymentState, Refund, RefundState

__all__ = ["Refunds"]

S = RefundState


class Refunds:
    """Refund succeeded payments, in full or in parts."""

    def __init__(self, ctx: Context, cashier: Cashier) -> None:
        self._ctx = ctx
        self._cashier = cashier

    def refund(self, payment_id: int, amount_fen: int, *, request_no: str) -> Refund:
        """Refund `amount_fen` of a payment's order amount; idempotent by `request_no`.

        Returns the refund, `succeeded`, or `reversed` while a card payout waits for a busy
        bank; raises RefundExceedsPayment, MerchantBalanceInsufficient, ...
        """
        check_amount(amount_fen)
        check_text(request_no, "request_no")
        p = self._cashier.payment(payment_id)
        if p.state != PaymentState.SUCCEEDED:
            raise InvalidState(f"payment {payment_id} is {p.state}; only a succeeded one refunds")
        with self._ctx.store.transaction() as conn:
            row = conn.execute(
                "SELECT id, amount_fen FROM refunds WHERE payment_id = ? AND request_no = ?",
                (payment_id, request_no),
            ).fetchone()
            if row is not None:
                if row["amount_fen"] != amount_fen:
                    raise IdempotencyConflict(f"refund {request_no!r} has another amount")
                refund_id = row["id"]
            else:
                refund_id = self._create(conn, p, amount_fen, request_no)
        return self.resume(refund_id)

    def _create(
        self, conn: sqlite3.Connection, p: Payment, amount_fen: int, request_no: str
    ) -> int:
        in_flight = conn.execute(
            "SELECT count(*) FROM refunds WHERE payment_id = ? AND state = ?",
            (p.id, str(S.CREATED)),
        ).fetchone()[0]
        if in_flight:
            raise RefundInProgress(f"payment {p.id} has a refund in flight")
        done_amount, done_coupon, done_fee = conn.execute(
            "SELECT coalesce(sum(amount_fen), 0), coalesce(sum(coupon_fen), 0),"
            " coalesce(sum(fee_fen), 0) FROM refunds WHERE payment_id = ? AND state != ?",
            (p.id, str(S.FAILED)),
        ).fetchone()
        refunded_fen = done_amount + amount_fen
        if refunded_fen > p.amount_fen:
            raise RefundExceedsPayment(
                f"payment {p.id}: {p.amount_fen - done_amount} fen left to refund, not {amount_fen}"
            )
        coupon_fen = pro_rata(p.coupon_fen, refunded_fen, p.amount_fen) - done_coupon
        fee_fen = pro_rata(p.fee_fen, refunded_fen, p.amount_fen) - done_fee
        assert 0 <= coupon_fen <= amount_fen and fee_fen >= 0
        return self._ctx.store.insert(
            conn,
            "refunds",
            {
                "payment_id": p.id,
                "merchant_id": p.merchant_id,
                "request_no": request_no,
                "amount_fen": amount_fen,
                "payer_fen": amount_fen - coupon_fen,
                "coupon_fen": coupon_fen,
                "fee_fen": fee_fen,
                "state": str(S.CREATED),
                "created_ns": self._ctx.clock_ns(),
            },
        )

    def get(self, refund_id: int) -> Refund:
        found = self._ctx.store.get(Refund, "refunds", refund_id)
        if found is None:
            raise UnknownParty(f"no refund {refund_id}")
        return found

    def refunds_of(self, payment_id: int) -> list[Refund]:
        return self._ctx.store.all(
            Refund, "SELECT * FROM refunds WHERE payment_id = ? ORDER BY id", (payment_id,)
        )

    def refunded_fen(self, payment_id: int) -> int:
        """How much of the payment's order amount has been refunded (failed refunds excluded)."""
        return self._ctx.store.scalar(
            "SELECT coalesce(sum(amount_fen), 0) FROM refunds WHERE payment_id = ? AND state != ?",
            (payment_id, str(S.FAILED)),
        )

    def resume(self, refund_id: int) -> Refund:
        """Drive a refund on from wherever it stopped (crash-safe, idempotent)."""
        for _ in range(STEPS_MAX):
            r = self.get(refund_id)
            if r.state == S.SUCCEEDED:
                return r
            if r.state == S.FAILED:
                raise error_for(r.failure_code, r.failure_detail)
            p = self._cashier.payment(r.payment_id)
            if r.state == S.CREATED:
                self._reverse(r, p)
            elif not self._pay_out(r, p):
                return self.get(refund_id)  # payout waits for the source (bank busy)
        raise AssertionError(f"refund {refund_id} did not finish in {STEPS_MAX} steps")

    def _reverse(self, r: Refund, p: Payment) -> None:
        outcome = self._ctx.ledger.submit(self._chain(r, p))
        if outcome.applied:
            self._ctx.store.transition(
                "refunds",
                r.id,
                (S.CREATED,),
                {"state": S.REVERSED, "reversed_ns": self._ctx.clock_ns()},
            )
            return
        if outcome.failed_result == "exceeds_credits":
            error: PaymentError = MerchantBalanceInsufficient(
                f"merchant {p.merchant_id} cannot cover refund {r.id} of {r.amount_fen} fen"
            )
        else:
            error = LedgerRejected(f"refund {r.id}: the ledger said {outcome.failed_result}")
        raise self._ctx.fail("refunds", r.id, (S.CREATED,), error)

    def _chain(self, r: Refund, p: Payment) -> list[Transfer]:
        source = self._ctx.source(p.funding_kind)
        merchant = merchant_wallet_id(p.merchant_id)
        chain = []
        if r.fee_fen:
            chain.append(
                leg(
                    _id(r, RefundLeg.FEE),
                    FEE_INCOME_ID,
                    merchant,
                    r.fee_fen,
                    TransferCode.FEE_REVERSAL,
                )
            )
        if r.payer_fen:
            payer = source.payer_account_id(p.user_id, p.funding_ref)
            chain.append(
                leg(_id(r, RefundLeg.PAYER), merchant, payer, r.payer_fen, TransferCode.REFUND)
            )
        if r.coupon_fen:
            assert p.campaign_id is not None
            chain.append(
                leg(
                    _id(r, RefundLeg.COUPON),
                    merchant,
                    campaign_budget_id(p.campaign_id),
                    r.coupon_fen,
                    TransferCode.COUPON_REVERSAL,
                )
            )
        return chain

    def _pay_out(self, r: Refund, p: Payment) -> bool:
        """Return the payer part at the source; False if it must wait (bank busy)."""
        done: dict[str, Any] = {"state": S.SUCCEEDED, "completed_ns": self._ctx.clock_ns()}
        if not r.payer_fen:
            self._ctx.store.transition("refunds", r.id, (S.REVERSED,), done)
            return True
        source = self._ctx.source(p.funding_kind)
        request = FundingRequest(f"refund-{r.id}", p.user_id, p.funding_ref, r.payer_fen)
        reply = source.refund(request)
        if reply.outcome is Outcome.BUSY:
            return False
        if reply.outcome is Outcome.DECLINED:
            payer = source.payer_account_id(p.user_id, p.funding_ref)
            wallet = user_wallet_id(p.user_id)
            assert payer != wallet, "a wallet refund cannot be declined"
            redirect = leg(
                _id(r, RefundLeg.TO_WALLET),
                payer,
                wallet,
                r.payer_fen,
                TransferCode.REFUND_TO_WALLET,
            )
            outcome = self._ctx.ledger.submit([redirect])
            if not outcome.applied:
                raise LedgerRejected(f"refund {r.id}: the ledger said {outcome.failed_result}")
            done["to_wallet"] = 1
        self._ctx.store.transition("refunds", r.id, (S.REVERSED,), done)
        return True


def _id(r: Refund, number: RefundLeg) -> int:
    return transfer_id(Op.REFUND, r.id, number)
