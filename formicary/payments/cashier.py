"""The cashier: orders, quotes and payments.

A payment of order amount A with a coupon C and a merchant fee F settles in ONE linked chain:

    payer account  -> merchant wallet   P = A - C   (PAYMENT)
    campaign budget -> merchant wallet  C           (COUPON)
    merchant wallet -> platform fees    F           (FEE)

so user (or bank), merchant, campaign and platform move together or not at all. A one-phase
source (the wallet) posts that chain directly. A two-phase source (a card) first reserves P and
C as pending transfers (timeout `card_reserve_timeout_s`), asks the bank to authorize and
capture, then posts both reservations and the fee in one chain, or voids them if the bank
refused. Every transfer id derives from the payment id, so resuming a payment after a crash
resubmits identical transfers and the ledger applies each at most once.

Fee rule: F = round_half_even(base * rate_bp / 10,000), where base = A, or A - C when the
merchant funds the coupon (its own discount is a lower price, not revenue).
"""

from __future__ import annotations

import msgspec

from formicary.ledger import Transfer, TransferFlags
from formicary.payments.bank import OK, Outcome, Reply
from formicary.payments.campaigns import Campaigns
from formicary.payments.chart import (
    FEE_INCOME_ID,
    Op,
    PaymentLeg,
    TransferCode,
    campaign_budget_id,
    merchant_wallet_id,
    transfer_id,
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
    CouponExhausted,
    IdempotencyConflict,
    InsufficientFunds,
    LedgerRejected,
    OrderAlreadyPaid,
    PaymentError,
    PaymentTimedOut,
    UnknownParty,
    error_for,
)
from formicary.payments.funding import FundingRequest, FundingSource
from formicary.payments.ledger_client import ChainOutcome, leg
from formicary.payments.money import bp_of
from formicary.payments.parties import Parties
from formicary.payments.records import Funding, Order, Payment, PaymentState

__all__ = ["Cashier", "Quote"]

S = PaymentState
_OPEN = (S.CREATED, S.RESERVED, S.CONFIRMED, S.CANCELLING)
# Ask the bank to confirm only if the reservation outlives the bank's answer by this much.
CONFIRM_MARGIN_S = 30
NS_PER_S = 1_000_000_000
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)


class Quote(msgspec.Struct, frozen=True):
    """What paying an order would move, before anything moves."""

    amount_fen: int
    coupon_fen: int
    payer_fen: int
    fee_fen: int
    fee_rate_bp: int


class Cashier:
    """Orders and their payments."""

    def __init__(self, ctx: Context, parties: Parties, campaigns: Campaigns) -> None:
        self._ctx = ctx
        self._parties = parties
        self._campaigns = campaigns

    # ----------------------------------------------------------------- orders

    def create_order(
        self, merchant_id: int, amount_fen: int, *, merchant_order_no: str, description: str = ""
    ) -> Order:
        """An order to pay; idempotent by (merchant, merchant_order_no)."""
        check_amount(amount_fen)
        check_text(merchant_order_no, "merchant_order_no")
        check_text(description, "description", empty=True)
        self._parties.merchant(merchant_id)
        with self._ctx.store.transaction() as conn:
            row = conn.execute(
                "SELECT id, amount_fen FROM orders WHERE merchant_id = ? AND merchant_order_no = ?",
                (merchant_id, merchant_order_no),
            ).fetchone()
            if row is not None:
                if row["amount_fen"] != amount_fen:
                    raise IdempotencyConflict(
                        f"order {merchant_order_no!r} of merchant {merchant_id} has another amount"
                    )
                order_id = row["id"]
            else:
                order_id = self._ctx.store.insert(
                    conn,
                    "orders",
                    {
                        "merchant_id": merchant_id,
                        "merchant_order_no": merchant_order_no,
                        "amount_fen": amount_fen,
                        "description": description,
                        "created_ns": self._ctx.clock_ns(),
                    },
                )
        return self.order(order_id)

    def order(self, order_id: int) -> Order:
        found = self._ctx.store.get(Order, "orders", order_id)
        if found is None:
            raise UnknownParty(f"no order {order_id}")
        return found

    def quote(self, order_id: int, campaign_id: int | None = None) -> Quote:
        """The split of a payment of this order: coupon, payer's part and merchant fee."""
        order = self.order(order_id)
        merchant = self._parties.merchant(order.merchant_id)
        rate_bp = self._ctx.config.fee_plans[merchant.fee_plan].rate_bp
        coupon_fen = 0
        base_fen = order.amount_fen
        if campaign_id is not None:
            campaign = self._campaigns.get(campaign_id)
            coupon_fen = self._campaigns.discount_fen(campaign, order)
            if campaign.funder_merchant_id is not None:
                base_fen -= coupon_fen
        return Quote(
            amount_fen=order.amount_fen,
            coupon_fen=coupon_fen,
            payer_fen=order.amount_fen - coupon_fen,
            fee_fen=bp_of(base_fen, rate_bp),
            fee_rate_bp=rate_bp,
        )

    # ----------------------------------------------------------------- payments

    def payment(self, payment_id: int) -> Payment:
        found = self._ctx.store.get(Payment, "payments", payment_id)
        if found is None:
            raise UnknownParty(f"no payment {payment_id}")
        return found

    def payments_of(self, order_id: int) -> list[Payment]:
        """Every attempt to pay the order, oldest first (at most one succeeded)."""
        return self._ctx.store.all(
            Payment, "SELECT * FROM payments WHERE order_id = ? ORDER BY id", (order_id,)
        )

    def pay(
        self,
        order_id: int,
        user_id: int,
        funding: Funding | None = None,
        *,
        campaign_id: int | None = None,
    ) -> Payment:
        """Pay an order (wallet by default); returns the succeeded payment or raises why not.

        Idempotent per order: if the order is paid by this user, that payment is returned; if an
        attempt is in flight (e.g. after a crash), it is resumed instead of starting another.
        """
        funding = funding or Funding.wallet()
        order = self.order(order_id)
        user = self._parties.user(user_id)
        source = self._ctx.source(funding.kind)
        # An attempt that did not fail is the answer: the order's payment, or one in flight to
        # resume (its terms were fixed when it started, whatever this call asks).
        rows = self._ctx.store.rows(
            "SELECT id, user_id FROM payments WHERE order_id = ? AND state != ?",
            (order_id, str(S.FAILED)),
        )
        if rows:
            if rows[0]["user_id"] != user_id:
                raise OrderAlreadyPaid(f"order {order_id} is paid (or being paid) by another user")
            return self.resume(rows[0]["id"])
        check_level(user, order.amount_fen)
        source.check(user_id, funding.ref)
        quote = self.quote(order_id, campaign_id)
        with self._ctx.store.transaction() as conn:
            # Checked again under the write lock: two concurrent first attempts must not both
            # start (the loser resumes the winner's attempt).
            row = conn.execute(
                "SELECT id, user_id FROM payments WHERE order_id = ? AND state != ?",
                (order_id, str(S.FAILED)),
            ).fetchone()
            if row is None:
                payment_id = self._ctx.store.insert(
                    conn,
                    "payments",
                    {
                        "order_id": order_id,
                        "user_id": user_id,
                        "merchant_id": order.merchant_id,
                        "funding_kind": funding.kind,
                        "funding_ref": funding.ref,
                        "campaign_id": campaign_id,
                        "amount_fen": quote.amount_fen,
                        "coupon_fen": quote.coupon_fen,
                        "payer_fen": quote.payer_fen,
                        "fee_fen": quote.fee_fen,
                        "fee_rate_bp": quote.fee_rate_bp,
                        "state": str(S.CREATED),
                        "created_ns": self._ctx.clock_ns(),
                    },
                )
            elif row["user_id"] != user_id:
                raise OrderAlreadyPaid(f"order {order_id} is being paid by another user")
            else:
                payment_id = row["id"]
        return self.resume(payment_id)

    def resume(self, payment_id: int) -> Payment:
        """Drive a payment to its end from wherever it stopped; raises the error of a failed
        payment. Safe to call any number of times, from any thread."""
        for _ in range(STEPS_MAX):
            p = self.payment(payment_id)
            if p.state == S.SUCCEEDED:
                return p
            if p.state == S.FAILED:
                raise error_for(p.failure_code, p.failure_detail)
            _Step(self._ctx, p).run()
        raise AssertionError(f"payment {payment_id} did not finish in {STEPS_MAX} steps")


class _Step:
    """One step of one payment's state machine."""

    def __init__(self, ctx: Context, p: Payment) -> None:
        self.ctx = ctx
        self.p = p
        self.source: FundingSource = ctx.source(p.funding_kind)
        self.payer_account = self.source.payer_account_id(p.user_id, p.funding_ref)
        self.merchant = merchant_wallet_id(p.merchant_id)
        self.two_phase = self.source.two_phase and p.payer_fen > 0
        self.request = FundingRequest(
            request_id=f"pay-{p.id}", user_id=p.user_id, ref=p.funding_ref, amount_fen=p.payer_fen
        )

    def run(self) -> None:
        state = self.p.state
        if state == S.CREATED:
            self._created()
        elif state == S.RESERVED:
            self._reserved()
        elif state == S.CONFIRMED:
            self._confirmed()
        else:
            assert state == S.CANCELLING, state
            self._cancelling()

    # -- transitions

    def _created(self) -> None:
        p = self.p
        if self.two_phase:
            outcome = self.ctx.ledger.submit(self._reserve_chain())
            if not outcome.applied:
                raise self._fail(self._error(outcome))
            self._move(S.CREATED, S.RESERVED)
            return
        # One-phase: the source confirms (a no-op for the wallet), then one chain posts it all.
        reply = self.source.confirm(self.request) if p.payer_fen else OK
        if not reply.ok:
            raise self._fail(_reply_error(reply))
        outcome = self.ctx.ledger.submit(self._one_phase_chain())
        if outcome.applied:
            self._succeed(S.CREATED)
            return
        if p.payer_fen:
            self.source.cancel(self.request)
        raise self._fail(self._error(outcome))

    def _reserved(self) -> None:
        if self._reservation_left_ns() < CONFIRM_MARGIN_S * NS_PER_S:
            # Resumed too late (e.g. after a long outage): the ledger could not post what the
            # bank would take, so do not ask the bank at all.
            self.ctx.ledger.release(self._voids())
            raise self._fail(PaymentTimedOut(f"payment {self.p.id}: the reservation expired"))
        reply = self.source.confirm(self.request)
        if reply.ok:
            self._move(S.RESERVED, S.CONFIRMED)
            return
        self.ctx.ledger.release(self._voids())
        raise self._fail(_reply_error(reply))

    def _confirmed(self) -> None:
        outcome = self.ctx.ledger.submit(self._settle_chain())
        if outcome.applied:
            self._succeed(S.CONFIRMED)
            return
        # The source took the money but the ledger cannot post (the reservation expired): give
        # it back at the source before failing. The error is kept for when that is done.
        error = self._error(outcome)
        self._move(
            S.CONFIRMED,
            S.CANCELLING,
            failure_code=error.code,
            failure_detail=str(error),
        )

    def _cancelling(self) -> None:
        reply = self.source.cancel(self.request)
        if not reply.ok:
            # Stay in CANCELLING: recover() retries the reversal later.
            raise BankBusy(f"payment {self.p.id}: reversal at the source pending ({reply.reason})")
        self.ctx.ledger.release(self._voids())
        raise self._fail(error_for(self.p.failure_code, self.p.failure_detail))

    def _reservation_left_ns(self) -> int:
        """Time left before the payer's reservation expires, by its ledger timestamp (the
        ledger and payments share one clock source)."""
        found = self.ctx.ledger.lookup_transfers([self._leg(PaymentLeg.PAYER_RESERVE)])
        if not found:
            return 0
        (reserve,) = found
        return reserve.timestamp + reserve.timeout * NS_PER_S - self.ctx.clock_ns()

    # -- chains

    def _leg(self, number: PaymentLeg) -> int:
        return transfer_id(Op.PAYMENT, self.p.id, number)

    def _one_phase_chain(self) -> list[Transfer]:
        p = self.p
        chain: list[Transfer] = []
        if p.payer_fen:
            chain += self.source.extra_legs(self.request, self._leg(PaymentLeg.SOURCE))
            chain.append(
                leg(
                    self._leg(PaymentLeg.PAYER),
                    self.payer_account,
                    self.merchant,
                    p.payer_fen,
                    TransferCode.PAYMENT,
                )
            )
        if p.coupon_fen:
            chain.append(
                leg(
                    self._leg(PaymentLeg.COUPON),
                    self._budget(),
                    self.merchant,
                    p.coupon_fen,
                    TransferCode.COUPON,
                )
            )
        chain += self._fee_leg()
        return chain

    def _reserve_chain(self) -> list[Transfer]:
        p = self.p
        timeout_s = self.ctx.config.card_reserve_timeout_s
        chain = [
            leg(
                self._leg(PaymentLeg.PAYER_RESERVE),
                self.payer_account,
                self.merchant,
                p.payer_fen,
                TransferCode.PAYMENT,
                flags=_PENDING,
                timeout_s=timeout_s,
            )
        ]
        if p.coupon_fen:
            chain.append(
                leg(
                    self._leg(PaymentLeg.COUPON_RESERVE),
                    self._budget(),
                    self.merchant,
                    p.coupon_fen,
                    TransferCode.COUPON,
                    flags=_PENDING,
                    timeout_s=timeout_s,
                )
            )
        return chain

    def _settle_chain(self) -> list[Transfer]:
        p = self.p
        chain = [
            leg(
                self._leg(PaymentLeg.PAYER_POST),
                self.payer_account,
                self.merchant,
                p.payer_fen,
                TransferCode.PAYMENT,
                flags=_POST,
                pending_id=self._leg(PaymentLeg.PAYER_RESERVE),
            )
        ]
        if p.coupon_fen:
            chain.append(
                leg(
                    self._leg(PaymentLeg.COUPON_POST),
                    self._budget(),
                    self.merchant,
                    p.coupon_fen,
                    TransferCode.COUPON,
                    flags=_POST,
                    pending_id=self._leg(PaymentLeg.COUPON_RESERVE),
                )
            )
        chain += self._fee_leg()
        return chain

    def _voids(self) -> list[Transfer]:
        p = self.p
        voids = [
            leg(
                self._leg(PaymentLeg.PAYER_VOID),
                self.payer_account,
                self.merchant,
                p.payer_fen,
                TransferCode.PAYMENT,
                flags=_VOID,
                pending_id=self._leg(PaymentLeg.PAYER_RESERVE),
            )
        ]
        if p.coupon_fen:
            voids.append(
                leg(
                    self._leg(PaymentLeg.COUPON_VOID),
                    self._budget(),
                    self.merchant,
                    p.coupon_fen,
                    TransferCode.COUPON,
                    flags=_VOID,
                    pending_id=self._leg(PaymentLeg.COUPON_RESERVE),
                )
            )
        return voids

    def _fee_leg(self) -> list[Transfer]:
        p = self.p
        if not p.fee_fen:
            return []
        # Last in the chain: by then the merchant wallet holds the payment, so the fee can
        # never make it go negative.
        return [
            leg(
                self._leg(PaymentLeg.FEE), self.merchant, FEE_INCOME_ID, p.fee_fen, TransferCode.FEE
            )
        ]

    def _budget(self) -> int:
        assert self.p.campaign_id is not None
        return campaign_budget_id(self.p.campaign_id)

    # -- bookkeeping

    def _error(self, outcome: ChainOutcome) -> PaymentError:
        """Map the ledger's refusal to the payments error, by the role of the failing leg."""
        assert not outcome.applied
        result = outcome.failed_result
        role = PaymentLeg(outcome.failed_id & 0xFF)
        payer_roles = (PaymentLeg.PAYER, PaymentLeg.PAYER_RESERVE, PaymentLeg.SOURCE)
        if result == "exceeds_credits" and role in payer_roles:
            return InsufficientFunds(f"payment {self.p.id}: the payer's balance is too low")
        if result == "exceeds_credits" and role in (PaymentLeg.COUPON, PaymentLeg.COUPON_RESERVE):
            return CouponExhausted(f"campaign {self.p.campaign_id}: the budget is spent")
        if result == "pending_transfer_expired":
            return PaymentTimedOut(f"payment {self.p.id}: the reservation expired")
        return LedgerRejected(f"payment {self.p.id}, leg {role.name}: the ledger said {result}")

    def _move(self, from_state: PaymentState, to_state: PaymentState, **values: str) -> None:
        self.ctx.store.transition(
            "payments", self.p.id, (from_state,), {"state": to_state, **values}
        )

    def _succeed(self, from_state: PaymentState) -> None:
        self.ctx.store.transition(
            "payments",
            self.p.id,
            (from_state,),
            {"state": S.SUCCEEDED, "completed_ns": self.ctx.clock_ns()},
        )

    def _fail(self, error: PaymentError) -> PaymentError:
        return self.ctx.fail("payments", self.p.id, _OPEN, error)


def _reply_error(reply: Reply) -> PaymentError:
    if reply.outcome is Outcome.BUSY:
        return BankBusy(f"the funding source is busy, nothing was moved: {reply.reason}")
    return BankDeclined(f"the funding source declined: {reply.reason}")
