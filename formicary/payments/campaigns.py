"""Coupons and red packets: campaigns whose budgets are ledger accounts funded up front.

A campaign's budget account has `debits_must_not_exceed_credits`, and every discount is a leg
*from* that account inside the payment's linked chain. So the ledger itself refuses the
discount that would overspend the budget, atomically with the rest of the payment, however
many cashiers use the campaign at once: no counter to race on, no lock in this package.

Platform campaigns are funded from the platform's marketing expense account; merchant campaigns
from the merchant's wallet (so they show in its settlement). Closing a campaign stops new
discounts; `sweep` then returns what is left to the funder (a balancing transfer: the ledger
moves exactly what is available, even while refunds flow back into the budget).

Idempotency is durable, in the payments store, like every other key: a creation with a
`request_id` (per funder) and a red-packet claim (per user and `request_id`) write their row
before anything moves, and the ledger transfer's id derives from the row id. So a request
re-sent after a restart finds its row and lands at most once, and the ledger's budget flag
still refuses the claim that would overspend.
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum
from typing import Any

import msgspec

from formicary.ledger import AccountFlags, TransferFlags
from formicary.payments.chart import (
    MARKETING_ID,
    SWEEPS_MAX,
    AccountCode,
    CampaignLeg,
    Op,
    TransferCode,
    campaign_budget_id,
    merchant_wallet_id,
    transfer_id,
    user_wallet_id,
)
from formicary.payments.context import STEPS_MAX, Context, check_amount, check_text
from formicary.payments.errors import (
    CouponExhausted,
    CouponNotApplicable,
    IdempotencyConflict,
    InvalidRequest,
    InvalidState,
    LedgerRejected,
    MerchantBalanceInsufficient,
    UnknownParty,
    error_for,
)
from formicary.payments.ledger_client import leg
from formicary.payments.money import AMOUNT_FEN_MAX
from formicary.payments.parties import Parties
from formicary.payments.records import Campaign, CampaignKind, CampaignState, Order

__all__ = ["CampaignClaim", "Campaigns", "ClaimState"]

S = CampaignState
_BUDGET = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
# The terms a repeated creation must match, in the campaigns table's column names.
_TERMS = (
    "name",
    "kind",
    "funder_merchant_id",
    "merchant_id",
    "discount_fen",
    "min_order_fen",
    "budget_fen",
)


class ClaimState(StrEnum):
    CREATED = "created"  # the row is durable; the ledger transfer may or may not have landed
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CampaignClaim(msgspec.Struct, frozen=True):
    """A user's claim of a red packet: its amount moved from the budget to the user's wallet."""

    id: int
    campaign_id: int
    user_id: int
    request_id: str  # the client's idempotency key, unique per user
    amount_fen: int
    state: ClaimState
    failure_code: str
    failure_detail: str
    created_ns: int
    completed_ns: int


class Campaigns:
    """Create, fund, apply, close and sweep coupon and red-packet campaigns."""

    def __init__(self, ctx: Context, parties: Parties) -> None:
        self._ctx = ctx
        self._parties = parties

    def create(
        self,
        name: str,
        kind: CampaignKind,
        *,
        discount_fen: int,
        budget_fen: int,
        funder_merchant_id: int | None = None,
        merchant_id: int | None = None,
        min_order_fen: int = 0,
        request_id: str | None = None,
    ) -> Campaign:
        """Create a campaign and fund its budget; raises if the funder cannot pay for it.

        `funder_merchant_id` None means the platform pays; a merchant-funded campaign applies
        only at that merchant. `merchant_id` restricts a platform campaign to one merchant.
        With a `request_id` the creation is idempotent per funder (the platform, or the funder
        merchant), durably: the same request again, even after a restart, returns the same
        campaign, funded once; other terms under the same id are `IdempotencyConflict`.
        """
        check_text(name, "name")
        kind = CampaignKind(kind)
        check_amount(discount_fen, "discount_fen")
        check_amount(budget_fen, "budget_fen")
        if budget_fen < discount_fen:
            raise InvalidRequest("the budget must cover at least one discount")
        if type(min_order_fen) is not int or not 0 <= min_order_fen <= AMOUNT_FEN_MAX:
            raise InvalidRequest(f"min_order_fen must be an int of 0..{AMOUNT_FEN_MAX}")
        if kind == CampaignKind.RED_PACKET and min_order_fen:
            raise InvalidRequest("a red packet has no minimum order")
        if funder_merchant_id is not None:
            self._parties.merchant(funder_merchant_id)
            if merchant_id not in (None, funder_merchant_id):
                raise InvalidRequest("a merchant-funded campaign applies at its funder only")
            merchant_id = funder_merchant_id
        elif merchant_id is not None:
            self._parties.merchant(merchant_id)
        if request_id is not None:
            check_text(request_id, "request_id")
        terms: dict[str, Any] = {
            "name": name,
            "kind": str(kind),
            "funder_merchant_id": funder_merchant_id,
            "merchant_id": merchant_id,
            "discount_fen": discount_fen,
            "min_order_fen": min_order_fen,
            "budget_fen": budget_fen,
        }
        with self._ctx.store.transaction() as conn:
            found = _campaign_by_request(conn, funder_merchant_id, request_id)
            if found is not None:
                if any(found[column] != terms[column] for column in _TERMS):
                    raise IdempotencyConflict(
                        f"request id {request_id!r} created campaign {found['id']} on other terms"
                    )
                campaign_id = found["id"]
            else:
                campaign_id = self._ctx.store.insert(
                    conn,
                    "campaigns",
                    {
                        **terms,
                        "request_id": request_id,
                        "state": str(S.FUNDING),
                        "created_ns": self._ctx.clock_ns(),
                    },
                )
        return self.resume(campaign_id)

    def get(self, campaign_id: int) -> Campaign:
        found = self._ctx.store.get(Campaign, "campaigns", campaign_id)
        if found is None:
            raise UnknownParty(f"no campaign {campaign_id}")
        return found

    def remaining_fen(self, campaign_id: int) -> int:
        """What the budget can still pay, from the ledger (reserved discounts excluded)."""
        self.get(campaign_id)
        return self._ctx.ledger.available_fen(campaign_budget_id(campaign_id))

    def discount_fen(self, campaign: Campaign, order: Order) -> int:
        """The discount `campaign` gives on `order`; raises CouponNotApplicable if none.
        Whether the budget still covers it is the ledger's decision, at payment time."""
        if campaign.state != S.ACTIVE:
            raise CouponNotApplicable(f"campaign {campaign.id} is {campaign.state}")
        if campaign.merchant_id not in (None, order.merchant_id):
            raise CouponNotApplicable(f"campaign {campaign.id} is for another merchant")
        if order.amount_fen < campaign.min_order_fen:
            raise CouponNotApplicable(
                f"campaign {campaign.id} needs an order of at least {campaign.min_order_fen} fen"
            )
        # A discount never exceeds the order: the excess of a red packet is not paid out.
        return min(campaign.discount_fen, order.amount_fen)

    def funder_account_id(self, campaign: Campaign) -> int:
        if campaign.funder_merchant_id is None:
            return MARKETING_ID
        return merchant_wallet_id(campaign.funder_merchant_id)

    def resume(self, campaign_id: int) -> Campaign:
        """Finish funding a campaign (crash-safe: the funding transfer id is derived)."""
        for _ in range(STEPS_MAX):
            c = self.get(campaign_id)
            if c.state != S.FUNDING:
                if c.state == S.FAILED:
                    raise error_for(c.failure_code, f"campaign {c.id} could not be funded")
                return c
            budget = campaign_budget_id(c.id)
            self._ctx.ledger.ensure_accounts([(budget, AccountCode.CAMPAIGN_BUDGET, _BUDGET)])
            fund = leg(
                transfer_id(Op.CAMPAIGN, c.id, CampaignLeg.FUND),
                self.funder_account_id(c),
                budget,
                c.budget_fen,
                TransferCode.CAMPAIGN_FUNDING,
            )
            outcome = self._ctx.ledger.submit([fund])
            if outcome.applied:
                self._ctx.store.transition(
                    "campaigns",
                    c.id,
                    (S.FUNDING,),
                    {"state": S.ACTIVE, "funded_ns": self._ctx.clock_ns()},
                )
            elif outcome.failed_result == "exceeds_credits":
                error = MerchantBalanceInsufficient(
                    f"merchant {c.funder_merchant_id} cannot fund a budget of {c.budget_fen} fen"
                )
                self._ctx.store.transition(
                    "campaigns", c.id, (S.FUNDING,), {"state": S.FAILED, "failure_code": error.code}
                )
                raise error
            else:
                raise LedgerRejected(f"campaign {c.id}: the ledger said {outcome.failed_result}")
        raise AssertionError(f"campaign {campaign_id} did not finish in {STEPS_MAX} steps")

    def close(self, campaign_id: int) -> int:
        """Stop new discounts and sweep what is left to the funder; returns the fen swept.
        Discounts already reserved by in-flight card payments still post or are released."""
        c = self.get(campaign_id)
        if c.state not in (S.ACTIVE, S.CLOSED):
            raise InvalidState(f"campaign {campaign_id} is {c.state}")
        self._ctx.store.transition("campaigns", c.id, (S.ACTIVE,), {"state": S.CLOSED})
        return self.sweep(campaign_id)

    def sweep(self, campaign_id: int) -> int:
        """Return what is available in a closed campaign's budget to its funder (again after
        refunds flowed back); returns the fen moved, 0 if nothing was left."""
        c = self.get(campaign_id)
        if c.state != S.CLOSED:
            raise InvalidState(f"campaign {campaign_id} is {c.state}; close it first")
        number = c.sweeps
        if number >= SWEEPS_MAX:
            raise InvalidState(f"campaign {campaign_id} was swept {SWEEPS_MAX} times already")
        sweep_id = transfer_id(Op.CAMPAIGN, c.id, CampaignLeg.SWEEP_FIRST + number)
        # The budget never holds more than it was funded with (refunds return at most what
        # discounts took), so the funded amount is a safe upper bound for the balancing leg.
        sweep = leg(
            sweep_id,
            campaign_budget_id(c.id),
            self.funder_account_id(c),
            c.budget_fen,
            TransferCode.CAMPAIGN_SWEEP,
            flags=int(TransferFlags.BALANCING_DEBIT),
        )
        outcome = self._ctx.ledger.submit([sweep])
        if not outcome.applied:
            if outcome.failed_result == "exceeds_credits":
                return 0  # nothing available; the id stays unused for the next sweep
            raise LedgerRejected(
                f"sweep of campaign {c.id}: the ledger said {outcome.failed_result}"
            )
        (moved,) = self._ctx.ledger.lookup_transfers([sweep_id])
        with self._ctx.store.transaction() as conn:
            # Compare-and-set on the sweep counter: a concurrent sweep of the same number
            # submitted the same transfer id, so exactly one of them records it.
            cursor = conn.execute(
                "UPDATE campaigns SET sweeps = ? WHERE id = ? AND sweeps = ?",
                (number + 1, c.id, number),
            )
            if cursor.rowcount == 1:
                self._ctx.store.insert(
                    conn,
                    "campaign_sweeps",
                    {
                        "campaign_id": c.id,
                        "number": number,
                        "merchant_id": c.funder_merchant_id,
                        "amount_fen": moved.amount,
                        "created_ns": self._ctx.clock_ns(),
                    },
                )
        return moved.amount

    # ----------------------------------------------------------------- red-packet claims

    def claim(self, campaign_id: int, user_id: int, *, request_id: str) -> CampaignClaim:
        """A user claims one red packet of a platform red-packet campaign: `discount_fen`
        moves from the budget into the user's wallet. One claim per user and campaign;
        idempotent by (user, `request_id`), durably (a re-sent claim after a restart returns
        the same claim and moves nothing again). The ledger refuses the claim that would
        overspend the budget (`CouponExhausted`)."""
        check_text(request_id, "request_id")
        self._parties.user(user_id)
        self.get(campaign_id)
        with self._ctx.store.transaction() as conn:
            row = conn.execute(
                "SELECT id, campaign_id FROM campaign_claims WHERE user_id = ? AND request_id = ?",
                (user_id, request_id),
            ).fetchone()
            if row is not None:
                if row["campaign_id"] != campaign_id:
                    raise IdempotencyConflict(
                        f"request id {request_id!r} claimed campaign {row['campaign_id']}"
                    )
                claim_id = row["id"]
            else:
                # Checked under the write lock: a concurrent close or claim is seen.
                c = self.get(campaign_id)
                _check_claimable(c)
                held = conn.execute(
                    "SELECT id FROM campaign_claims"
                    " WHERE campaign_id = ? AND user_id = ? AND state != ?",
                    (campaign_id, user_id, str(ClaimState.FAILED)),
                ).fetchone()
                if held is not None:
                    raise InvalidState(
                        f"user {user_id} claimed campaign {campaign_id} already"
                        f" (claim {held['id']})"
                    )
                claim_id = self._ctx.store.insert(
                    conn,
                    "campaign_claims",
                    {
                        "campaign_id": campaign_id,
                        "user_id": user_id,
                        "request_id": request_id,
                        "amount_fen": c.discount_fen,
                        "state": str(ClaimState.CREATED),
                        "created_ns": self._ctx.clock_ns(),
                    },
                )
        return self.resume_claim(claim_id)

    def get_claim(self, claim_id: int) -> CampaignClaim:
        found = self._ctx.store.get(CampaignClaim, "campaign_claims", claim_id)
        if found is None:
            raise UnknownParty(f"no claim {claim_id}")
        return found

    def claims(
        self, campaign_id: int, *, after_id: int = 0, limit: int = -1
    ) -> list[CampaignClaim]:
        """A campaign's claims with ids above `after_id`, oldest first (failed ones included),
        at most `limit` of them (-1: all)."""
        return self._ctx.store.all(
            CampaignClaim,
            "SELECT * FROM campaign_claims WHERE campaign_id = ? AND id > ? ORDER BY id LIMIT ?",
            (campaign_id, after_id, limit),
        )

    def resume_claim(self, claim_id: int) -> CampaignClaim:
        """Finish a claim from wherever it stopped (crash-safe: its transfer id derives from
        the claim id, so the ledger applies it at most once)."""
        cl = self.get_claim(claim_id)
        if cl.state == ClaimState.FAILED:
            raise error_for(cl.failure_code, cl.failure_detail)
        if cl.state == ClaimState.SUCCEEDED:
            return cl
        move = leg(
            transfer_id(Op.CAMPAIGN, cl.id, CampaignLeg.CLAIM),
            campaign_budget_id(cl.campaign_id),
            user_wallet_id(cl.user_id),
            cl.amount_fen,
            TransferCode.RED_PACKET_CLAIM,
        )
        outcome = self._ctx.ledger.submit([move])
        if outcome.applied:
            self._ctx.store.transition(
                "campaign_claims",
                cl.id,
                (ClaimState.CREATED,),
                {"state": ClaimState.SUCCEEDED, "completed_ns": self._ctx.clock_ns()},
            )
            return self.get_claim(cl.id)
        if outcome.failed_result == "exceeds_credits":
            error = CouponExhausted(f"campaign {cl.campaign_id}: the budget is spent")
            raise self._ctx.fail("campaign_claims", cl.id, (ClaimState.CREATED,), error)
        raise LedgerRejected(f"claim {cl.id}: the ledger said {outcome.failed_result}")


def _check_claimable(c: Campaign) -> None:
    if c.kind != CampaignKind.RED_PACKET:
        raise CouponNotApplicable(f"campaign {c.id} is a coupon: it applies at checkout")
    if c.funder_merchant_id is not None or c.merchant_id is not None:
        raise CouponNotApplicable(f"campaign {c.id} is valid at one merchant only")
    if c.state != S.ACTIVE:
        raise CouponNotApplicable(f"campaign {c.id} is {c.state}")


def _campaign_by_request(
    conn: sqlite3.Connection, funder_merchant_id: int | None, request_id: str | None
) -> sqlite3.Row | None:
    if request_id is None:
        return None
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM campaigns WHERE coalesce(funder_merchant_id, 0) = ? AND request_id = ?",
        (funder_merchant_id or 0, request_id),
    ).fetchone()
    return row
