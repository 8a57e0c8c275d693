"""The conservation check at the end of a run: the books balance, nothing is negative that must
not be, and the ledger holds exactly the legs of the payments the service says succeeded.

Every figure on the ledger side is read from the ledger's accounts; every figure on the other
side is summed from the payments store's rows. They are independent records of the same money,
so agreement to the fen is a real check, not a tautology.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from formicary.ledger import Account
from formicary.payments import (
    CNY,
    FEE_INCOME_ID,
    MARKETING_ID,
    bank_clearing_id,
    campaign_budget_id,
    merchant_wallet_id,
    user_wallet_id,
)
from formicary.sim.world import World

__all__ = ["Check", "conservation_checks"]

LOOKUP_CHUNK = 8_000  # accounts per ledger lookup: one engine batch's worth


class Check(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    detail: str


def _accounts(world: World, ids: Sequence[int]) -> dict[int, Account]:
    found: dict[int, Account] = {}
    for start in range(0, len(ids), LOOKUP_CHUNK):
        for account in world.ledger.lookup_accounts(ids[start : start + LOOKUP_CHUNK]):
            found[account.id] = account
    return found


def _balance(a: Account | None) -> int:
    """Credit-normal balance, posted only."""
    return 0 if a is None else a.credits_posted - a.debits_posted


def _available(a: Account | None) -> int:
    """What a credit-normal account can still pay: posted credits minus all debits."""
    return 0 if a is None else a.credits_posted - a.debits_posted - a.debits_pending


def _ids(rows: Iterable[object]) -> list[int]:
    return [row[0] for row in rows]  # type: ignore[index]


def conservation_checks(world: World) -> list[Check]:
    store = world.store
    checks: list[Check] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, bool(ok), detail))

    # 1. The books balance: debits equal credits, posted and pending, over the whole ledger.
    dp, dpo, cp, cpo = world.ledger.trial_balance(CNY)
    check(
        "trial balance",
        dpo == cpo and dp == cp,
        f"posted debits {dpo:,} = credits {cpo:,}; pending debits {dp:,} = credits {cp:,}",
    )
    check("nothing left pending", dp == 0 and cp == 0, f"pending {dp:,} fen after the run")

    # Rows of the payments store (the service's own record of what happened).
    user_ids = _ids(store.rows("SELECT id FROM users"))
    merchant_ids = _ids(store.rows("SELECT id FROM merchants"))
    campaigns = store.rows(
        "SELECT id, budget_fen, funder_merchant_id, state FROM campaigns ORDER BY id"
    )
    bank_codes = sorted(
        {row[0] for row in store.rows("SELECT DISTINCT bank_code FROM cards")}
        | {row[0] for row in store.rows("SELECT DISTINCT settlement_bank_code FROM merchants")}
    )
    sums = {
        row["funding_kind"]: row
        for row in store.rows(
            "SELECT funding_kind, COUNT(*) AS n, SUM(amount_fen) AS amount,"
            " SUM(coupon_fen) AS coupon, SUM(payer_fen) AS payer, SUM(fee_fen) AS fee"
            " FROM payments WHERE state = 'succeeded' GROUP BY funding_kind"
        )
    }

    def total(column: str, kind: str | None = None) -> int:
        rows = list(sums.values()) if kind is None else [sums[kind]] if kind in sums else []
        return sum(int(r[column] or 0) for r in rows)

    top_ups = int(
        store.scalar(
            "SELECT COALESCE(SUM(amount_fen), 0) FROM card_transfers"
            " WHERE kind = 'top_up' AND state = 'succeeded'"
        )
    )
    coupon_by_campaign = {
        row[0]: int(row[1])
        for row in store.rows(
            "SELECT campaign_id, SUM(coupon_fen) FROM payments"
            " WHERE state = 'succeeded' AND campaign_id IS NOT NULL GROUP BY campaign_id"
        )
    }
    funded = [c for c in campaigns if c["state"] in ("active", "closed")]
    merchant_budgets = sum(c["budget_fen"] for c in funded if c["funder_merchant_id"] is not None)
    platform_budgets = sum(c["budget_fen"] for c in funded if c["funder_merchant_id"] is None)

    # The ledger's side.
    users = _accounts(world, [user_wallet_id(i) for i in user_ids])
    merchants = _accounts(world, [merchant_wallet_id(i) for i in merchant_ids])
    budgets = _accounts(world, [campaign_budget_id(c["id"]) for c in campaigns])
    banks = _accounts(world, [bank_clearing_id(code) for code in bank_codes])
    platform = _accounts(world, [FEE_INCOME_ID, MARKETING_ID])

    # 2. No wallet (user or merchant) and no coupon budget below zero.
    worst_user = min((_available(a) for a in users.values()), default=0)
    worst_merchant = min((_available(a) for a in merchants.values()), default=0)
    check(
        "wallets never negative",
        worst_user >= 0 and worst_merchant >= 0,
        f"{len(users):,} user wallets (lowest {worst_user:,} fen),"
        f" {len(merchants):,} merchant wallets (lowest {worst_merchant:,} fen)",
    )
    budget_lines = []
    budgets_ok = True
    for c in campaigns:
        a = budgets.get(campaign_budget_id(c["id"]))
        spent_store = coupon_by_campaign.get(c["id"], 0)
        spent_ledger = 0 if a is None else a.debits_posted
        left = _available(a)
        ok = left >= 0 and spent_ledger == spent_store and spent_ledger <= c["budget_fen"]
        budgets_ok &= ok
        budget_lines.append(f"#{c['id']} spent {spent_ledger:,}/{c['budget_fen']:,}")
    check(
        "coupon budgets never negative, spend = coupon legs",
        budgets_ok,
        "; ".join(budget_lines) or "no campaigns",
    )

    # 3. Every succeeded payment's legs add up, and the ledger holds exactly those legs.
    broken = int(
        store.scalar(
            "SELECT COUNT(*) FROM payments WHERE state = 'succeeded'"
            " AND payer_fen + coupon_fen != amount_fen"
        )
    )
    check(
        "payer + coupon = amount, per payment",
        broken == 0,
        f"{total('n'):,} succeeded payments, {broken} with legs that do not add up",
    )
    fee_income = _balance(platform.get(FEE_INCOME_ID))
    check(
        "fee income = sum of fee legs",
        fee_income == total("fee"),
        f"ledger {fee_income:,} fen, payments {total('fee'):,} fen",
    )
    marketing = platform.get(MARKETING_ID)
    marketing_spent = 0 if marketing is None else marketing.debits_posted
    check(
        "marketing expense = platform budgets",
        marketing_spent == platform_budgets,
        f"ledger {marketing_spent:,} fen, campaigns {platform_budgets:,} fen",
    )
    user_total = sum(_balance(a) for a in users.values())
    user_expected = top_ups - total("payer", "wallet")
    check(
        "user wallets = top-ups - wallet payments",
        user_total == user_expected,
        f"ledger {user_total:,} fen, payments {user_expected:,} fen",
    )
    merchant_total = sum(_balance(a) for a in merchants.values())
    merchant_expected = total("amount") - total("fee") - merchant_budgets
    check(
        "merchant wallets = sales - fees - own coupon budgets",
        merchant_total == merchant_expected,
        f"ledger {merchant_total:,} fen, payments {merchant_expected:,} fen",
    )
    clearing = sum(a.debits_posted - a.credits_posted for a in banks.values())
    clearing_expected = top_ups + total("payer", "card")
    check(
        "bank clearing = top-ups + card payments",
        clearing == clearing_expected,
        f"ledger {clearing:,} fen over {len(banks)} banks, payments {clearing_expected:,} fen",
    )

    # 4. Every payment attempt ended: succeeded, or failed with a reason.
    open_rows = int(
        store.scalar("SELECT COUNT(*) FROM payments WHERE state NOT IN ('succeeded', 'failed')")
    )
    no_reason = int(
        store.scalar("SELECT COUNT(*) FROM payments WHERE state = 'failed' AND failure_code = ''")
    )
    attempts = int(store.scalar("SELECT COUNT(*) FROM payments"))
    check(
        "every attempt ended with a reason",
        open_rows == 0 and no_reason == 0,
        f"{attempts:,} attempts: {open_rows} still open, {no_reason} failed without a reason",
    )
    checks.extend(bank_checks(world))
    return checks


def bank_checks(world: World) -> list[Check]:
    """The simulated banks' own records agree with the ledger: a succeeded card payment was
    captured at its bank for exactly the payer's part, a failed one was not captured (or was
    reversed); a succeeded top-up was collected, a failed one was not. This is what "a
    throttled or timed-out call loses nothing and moves nothing twice" means end to end.

    Relies on payments' request ids (`pay-<id>`, `topup-<id>`, docs/payments.md) and on the
    gateway's ids at the bank (`authorize:<request id>`, `collect:<request id>`)."""
    store = world.store
    cards = store.rows(
        "SELECT p.id, p.state, p.payer_fen, c.bank_code FROM payments p"
        " JOIN cards c ON c.id = CAST(p.funding_ref AS INTEGER)"
        " WHERE p.funding_kind = 'card' AND p.payer_fen > 0"
    )
    captured_ok = captured_wrong = 0
    for row in cards:
        hold = world.router.channel(row["bank_code"]).bank.hold(f"authorize:pay-{row['id']}")
        captured = hold is not None and hold.state == "captured"
        if row["state"] == "succeeded":
            if captured and hold is not None and hold.captured_fen == row["payer_fen"]:
                captured_ok += 1
            else:
                captured_wrong += 1
        elif captured:
            captured_wrong += 1
    top_ups = store.rows(
        "SELECT t.id, t.state, c.bank_code FROM card_transfers t JOIN cards c ON c.id = t.card_id"
        " WHERE t.kind = 'top_up'"
    )
    collected_wrong = 0
    for row in top_ups:
        reply = world.router.channel(row["bank_code"]).bank.lookup(f"collect:topup-{row['id']}")
        approved = reply is not None and reply.outcome == "approved"
        collected_wrong += approved != (row["state"] == "succeeded")
    return [
        Check(
            "banks captured exactly the succeeded card payments",
            captured_wrong == 0,
            f"{len(cards):,} card attempts: {captured_ok:,} captured as the ledger says,"
            f" {captured_wrong} that disagree",
        ),
        Check(
            "banks collected exactly the succeeded top-ups",
            collected_wrong == 0,
            f"{len(top_ups):,} top-ups, {collected_wrong} that disagree",
        ),
    ]
