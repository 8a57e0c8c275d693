"""Coupons and red packets: campaigns whose budgets are ledger accounts funded up front.

A campaign's budget account has `debits_must_not_exceed_credits`, and every discount is a leg
*from* that account inside the payment's linked chain. So the ledger itself refuses the
discount that would overspend the budget, atomically with the rest of the payment, however
many cashiers use the campaign at once: no counter to race on, no lock in this package.

Platform campaigns are funded from the platform's marketing expense account; merchant campaigns
from the merchant's wallet (so they show in its settlement). Closing a campaign stops new
discounts; `sweep` then returns what is left to the funder (a balancing transfer: the ledger
moves exactly what is available, even while refunds flow back into the budget).
"""

from __future__ import annotations

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
)
from formicary.payments.context import STEPS_MAX, Context, check_amount, check_text
from formicary.payments.errors import (
    CouponNotApplicable,
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

__all__ = ["Campaigns"]

S = CampaignState
_BUDGET = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


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
    ) -> Campaign:
        """Create a campaign and fund its budget; raises if the funder cannot pay for it.

        `funder_merchant_id` None means the platform pays; a merchant-funded campaign applies
        only at that merchant. `merchant_id` restricts a platform campaign to one merchant.
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
        with self._ctx.store.transaction() as conn:
            campaign_id = self._ctx.store.insert(
                conn,
                "campaigns",
                {
                    "name": name,
                    "kind": str(kind),
                    "funder_merchant_id": funder_merchant_id,
                    "merchant_id": merchant_id,
                    "discount_fen": discount_fen,
                    "min_order_fen": min_order_fen,
                    "budget_fen": budget_fen,
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
