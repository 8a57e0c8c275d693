"""Family accounts (亲情账户): a payer grants a family member a monthly limit; the member's
payments draw the payer's money, never more than the limit in a month, however many race.

The limit is a ledger account, not a counter. Per grant and month (a calendar month in Beijing
time, UTC+8; `yyyymm`) there is one *grant account*, `family_grant_account_id(grant, month)`,
with `debits_must_not_exceed_credits`. At the member's first payment of the month the payer's
limit L is set aside into it:

    payer wallet   -> grant account    L   (FAMILY_FUNDING; one derived id per grant and month)

and every member payment is the cashier's ordinary linked chain with the grant account as the
payer account (the `family` funding source):

    grant account   -> merchant wallet  P = A - C   (PAYMENT)
    campaign budget -> merchant wallet  C           (COUPON)
    merchant wallet -> platform fees    F           (FEE)

Why the ledger alone keeps the rules (no lock, no counter in this package):

(a) the month's account is credited with L exactly once (the funding id is derived from grant
    and month) and can never go below zero, so the ledger refuses the payer leg -- and with it
    the whole chain -- of any payment beyond what is left, atomically, under any concurrency;
(b) the family debits the payer's wallet only by that funding transfer, which the wallet's own
    flag refuses if it cannot cover L (the member's payment then fails with `InsufficientFunds`, and
    the next one tries to set the limit aside again);
(c) `revoke` marks the grant revoked (new payments are refused with `GrantRevoked`), then closes
    its months: a balancing transfer sweeps exactly what is left back to the payer's wallet, so
    the account is empty and a payment still in flight finds nothing to draw;
(d) a new month has a new account and a new funding; the month before is closed (its unused
    part swept back) when the new one opens, or by `close_ended_months` (which `recover` runs).

A refund of a member's payment goes back into its month's grant account (the cashier's rule:
refunds go to the payer account), so it restores that much of the member's limit; if the month
is closed already the refund is swept on to the payer's wallet straight away. The limit is on
what the member spends net of refunds.

The price of (a): from the member's first payment of a month until that month is closed, L of
the payer's wallet is set aside and not spendable by the payer (it is still the payer's: the
unused part always comes back).

Crash safety: a month is a row `funding` -> `open` -> `closing` -> `closed`. Its account is
created before the row, the row is written before the funding transfer, and `closing` before
any sweep; sweeps are numbered (legs 16 + n) and recorded with a compare-and-set on the count,
and a close ends only when the ledger says nothing is left. So whatever a crash interrupts is
finished by the next payment of the month, `revoke`, or `close_ended_months` (`recover`), and
each transfer lands once (its id is derived).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

import msgspec

from formicary.ledger import AccountFlags, Transfer, TransferFlags
from formicary.payments.bank import OK, Reply
from formicary.payments.cashier import Cashier
from formicary.payments.chart import (
    FAMILY_SWEEPS_MAX,
    AccountCode,
    FamilyLeg,
    Op,
    TransferCode,
    family_entity_id,
    family_grant_account_id,
    transfer_id,
    user_wallet_id,
)
from formicary.payments.context import Context, check_amount, check_level
from formicary.payments.errors import (
    FamilyLimitExceeded,
    GrantRevoked,
    InsufficientFunds,
    InvalidRequest,
    InvalidState,
    LedgerRejected,
    PaymentError,
    UnknownParty,
)
from formicary.payments.funding import FundingRequest
from formicary.payments.ledger_client import leg
from formicary.payments.parties import Parties
from formicary.payments.records import Funding, Payment, PaymentState
from formicary.payments.settlement import CST

__all__ = [
    "Family",
    "FamilyFunding",
    "FamilyGrant",
    "FamilyMonth",
    "FamilyStatement",
    "FamilyStatementLine",
    "GrantState",
    "MonthState",
    "month_of",
]

NS_PER_S = 1_000_000_000
# Months per close_ended_months() pass (a bounded pass: call again while it finds work).
CLOSE_ROWS_MAX = 10_000
# A sweep moves everything available at once; a few rounds cover sweepers racing each other.
SWEEP_ROUNDS_MAX = 8
_GRANT_ACCOUNT = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
_BALANCING_DEBIT = int(TransferFlags.BALANCING_DEBIT)
_REF = re.compile(r"([0-9]{1,19}):([0-9]{6})")
_MONTH_TEXT = re.compile(r"([0-9]{4})-([0-9]{2})")


class GrantState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class FamilyGrant(msgspec.Struct, frozen=True):
    """A payer's grant to a family member: the member may spend up to the limit each month
    from the payer's money. One active grant per (payer, member)."""

    id: int
    payer_id: int
    member_id: int
    monthly_limit_fen: int
    state: GrantState
    created_ns: int
    revoked_ns: int


class MonthState(StrEnum):
    FUNDING = "funding"  # the row exists; the limit is not (known to be) set aside yet
    OPEN = "open"  # the limit is in the month's grant account; the member may pay
    CLOSING = "closing"  # ended or revoked: no more payments; what is left is being swept back
    CLOSED = "closed"  # what was left went back to the payer's wallet


# A month in these states takes no more payments.
_ENDED = (MonthState.CLOSING, MonthState.CLOSED)


class FamilyMonth(msgspec.Struct, frozen=True):
    """One grant's month: its limit, and what was swept back to the payer when it closed."""

    id: int
    grant_id: int
    month: int  # yyyymm, a calendar month in Beijing time
    limit_fen: int
    state: MonthState
    sweeps: int
    swept_fen: int
    created_ns: int
    opened_ns: int
    closed_ns: int


class FamilyStatementLine(msgspec.Struct, frozen=True):
    """One payment the member made with the grant."""

    payment_id: int
    order_id: int
    merchant_id: int
    description: str
    amount_fen: int  # the order amount
    coupon_fen: int  # paid by a campaign, not by the payer
    drawn_fen: int  # what the grant paid: the payer's money (amount - coupon)
    refunded_fen: int  # what refunds put back into the grant
    completed_ns: int


class FamilyStatement(msgspec.Struct, frozen=True):
    """The payer's view of one month of a grant, from the records and from the ledger."""

    grant: FamilyGrant
    month: str  # YYYY-MM, Beijing time
    state: str  # the month's MonthState, or "unused" if the member has not paid that month
    limit_fen: int
    lines: list[FamilyStatementLine]
    drawn_fen: int  # sum of the lines' drawn_fen
    refunded_fen: int  # sum of the lines' refunded_fen
    remaining_fen: int  # what the member may still spend this month
    returned_fen: int  # unused limit swept back to the payer's wallet
    ledger_spent_fen: int  # set aside - left - returned, from the ledger's own accounts

    @property
    def spent_fen(self) -> int:
        """What the member spent of the payer's money this month, net of refunds."""
        return self.drawn_fen - self.refunded_fen

    @property
    def reconciled(self) -> bool:
        """The records and the ledger agree to the fen (when nothing is in flight)."""
        return self.spent_fen == self.ledger_spent_fen


def month_of(now_ns: int) -> int:
    """The calendar month (yyyymm) in Beijing time of an instant in ns since the epoch."""
    moment = datetime.fromtimestamp(now_ns // NS_PER_S, CST)
    return moment.year * 100 + moment.month


def month_text(month: int) -> str:
    return f"{month // 100:04d}-{month % 100:02d}"


def parse_month(text: str) -> int:
    match = _MONTH_TEXT.fullmatch(text) if isinstance(text, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1000:
        raise InvalidRequest(f"a month is YYYY-MM, got {text!r}")
    return int(match.group(1)) * 100 + int(match.group(2))


def _parse_ref(ref: str) -> tuple[int, int]:
    """A family funding reference is `<grant id>:<yyyymm>`: the month is part of it so that a
    payment resumed after the month turned still names the account its chain was built with."""
    match = _REF.fullmatch(ref) if isinstance(ref, str) else None
    if match is None or not 1 <= int(match.group(2)) % 100 <= 12 or int(match.group(1)) == 0:
        raise InvalidRequest(f"a family funding reference is <grant>:<yyyymm>, got {ref!r}")
    return int(match.group(1)), int(match.group(2))


class Family:
    """Family grants: grant, pay as the member, statement, revoke, close ended months."""

    def __init__(self, ctx: Context, parties: Parties, cashier: Cashier) -> None:
        self._ctx = ctx
        self._parties = parties
        self._cashier = cashier
        self.source = FamilyFunding(self)

    # ----------------------------------------------------------------- grants

    def grant(self, payer_id: int, member_id: int, monthly_limit_fen: int) -> FamilyGrant:
        """Let `member_id` spend up to `monthly_limit_fen` a month of `payer_id`'s money.

        Idempotent: granting the same limit again returns the active grant; to change the
        limit, revoke the grant and grant anew.
        """
        check_amount(monthly_limit_fen, "monthly_limit_fen")
        payer = self._parties.user(payer_id)
        self._parties.user(member_id)
        if payer_id == member_id:
            raise InvalidRequest("a payer cannot grant a family limit to themselves")
        # The limit is set aside from the payer's wallet in one transfer each month.
        check_level(payer, monthly_limit_fen)
        with self._ctx.store.transaction() as conn:
            row = conn.execute(
                "SELECT id, monthly_limit_fen FROM family_grants"
                " WHERE payer_id = ? AND member_id = ? AND state = ?",
                (payer_id, member_id, str(GrantState.ACTIVE)),
            ).fetchone()
            if row is not None:
                if row["monthly_limit_fen"] != monthly_limit_fen:
                    raise InvalidState(
                        f"user {payer_id} already grants user {member_id} a limit of"
                        f" {row['monthly_limit_fen']} fen; revoke it to grant another"
                    )
                grant_id = row["id"]
            else:
                grant_id = self._ctx.store.insert(
                    conn,
                    "family_grants",
                    {
                        "payer_id": payer_id,
                        "member_id": member_id,
                        "monthly_limit_fen": monthly_limit_fen,
                        "state": str(GrantState.ACTIVE),
                        "created_ns": self._ctx.clock_ns(),
                    },
                )
        return self.get(grant_id)

    def get(self, grant_id: int) -> FamilyGrant:
        found = self._ctx.store.get(FamilyGrant, "family_grants", grant_id)
        if found is None:
            raise UnknownParty(f"no family grant {grant_id}")
        return found

    def grants_of_payer(self, payer_id: int) -> list[FamilyGrant]:
        return self._ctx.store.all(
            FamilyGrant, "SELECT * FROM family_grants WHERE payer_id = ? ORDER BY id", (payer_id,)
        )

    def grants_of_member(self, member_id: int) -> list[FamilyGrant]:
        return self._ctx.store.all(
            FamilyGrant,
            "SELECT * FROM family_grants WHERE member_id = ? ORDER BY id",
            (member_id,),
        )

    def months(self, grant_id: int) -> list[FamilyMonth]:
        """The months the member used the grant in, oldest first."""
        return self._ctx.store.all(
            FamilyMonth,
            "SELECT * FROM family_months WHERE grant_id = ? ORDER BY month",
            (grant_id,),
        )

    # ----------------------------------------------------------------- paying as the member

    def funding(self, grant_id: int, member_id: int) -> Funding:
        """The funding source for a payment by the member from the grant, this month. Pass it to
        `cashier.pay`, `offline.pay_merchant_qr` or `bills.pay` (or use `pay`)."""
        g = self._granted(grant_id, member_id)
        return Funding(FamilyFunding.kind, f"{g.id}:{month_of(self._ctx.clock_ns())}")

    def pay(
        self, order_id: int, member_id: int, grant_id: int, *, campaign_id: int | None = None
    ) -> Payment:
        """Pay an order as the member, from the grant; idempotent per order like `cashier.pay`.

        Raises `FamilyLimitExceeded` beyond what is left of this month's limit, `GrantRevoked`
        once the payer revoked it, `InsufficientFunds` if the payer's wallet cannot set aside
        the month's limit.
        """
        started = [
            p
            for p in self._cashier.payments_of(order_id)
            if p.state != PaymentState.FAILED
            and p.funding_kind == FamilyFunding.kind
            and p.funding_ref.startswith(f"{grant_id}:")
            and p.user_id == member_id
        ]
        # A retry of a payment that succeeded (or is in flight) gets that payment, even once the
        # grant is revoked or the month has turned: its terms were fixed when it started.
        funding = started[0].funding if started else self.funding(grant_id, member_id)
        try:
            return self._cashier.pay(order_id, member_id, funding, campaign_id=campaign_id)
        except InsufficientFunds as error:
            raise self.explain(funding, error) from None

    def explain(self, funding: Funding, error: PaymentError) -> PaymentError:
        """The family error behind a payment's plain `InsufficientFunds`: the cashier sees only
        that the payer account (the grant's month) could not pay."""
        if funding.kind != FamilyFunding.kind or type(error) is not InsufficientFunds:
            return error
        grant_id, month = _parse_ref(funding.ref)
        g = self.get(grant_id)
        if g.state == GrantState.REVOKED:
            return GrantRevoked(f"family grant {g.id} was revoked by its payer")
        row = self._month(grant_id, month)
        if row is None or row.state == MonthState.FUNDING:
            return error  # the payer's wallet could not set the month's limit aside
        if row.state in _ENDED:
            return FamilyLimitExceeded(f"family grant {g.id}: {month_text(month)} has ended")
        return FamilyLimitExceeded(
            f"family grant {g.id}: the payment is more than is left of the {month_text(month)}"
            f" limit of {row.limit_fen} fen"
        )

    def remaining_fen(self, grant_id: int) -> int:
        """What the member may still spend this month (from the ledger once the month opened)."""
        g = self.get(grant_id)
        return self._remaining_fen(g, month_of(self._ctx.clock_ns()))

    def _remaining_fen(self, g: FamilyGrant, month: int) -> int:
        row = self._month(g.id, month)
        current = month == month_of(self._ctx.clock_ns())
        if row is None or row.state == MonthState.FUNDING:
            return g.monthly_limit_fen if current and g.state == GrantState.ACTIVE else 0
        if row.state in _ENDED:
            return 0
        return self._ctx.ledger.available_fen(family_grant_account_id(g.id, month))

    # ----------------------------------------------------------------- the payer's side

    def statement(self, payer_id: int, grant_id: int, month: str | None = None) -> FamilyStatement:
        """The member's payments with the grant in `month` (YYYY-MM, Beijing time; default this
        month), with totals, what is left, what went back, and the ledger's figure to check."""
        g = self._of_payer(payer_id, grant_id)
        m = month_of(self._ctx.clock_ns()) if month is None else parse_month(month)
        rows = self._ctx.store.rows(
            "SELECT p.id, p.order_id, p.merchant_id, o.description, p.amount_fen, p.coupon_fen,"
            " p.payer_fen, p.completed_ns, coalesce(r.refunded_fen, 0) AS refunded_fen"
            " FROM payments p JOIN orders o ON o.id = p.order_id"
            " LEFT JOIN (SELECT payment_id, sum(payer_fen) AS refunded_fen FROM refunds"
            "   WHERE state IN ('reversed', 'succeeded') GROUP BY payment_id) r"
            "   ON r.payment_id = p.id"
            " WHERE p.funding_kind = ? AND p.funding_ref = ? AND p.state = 'succeeded'"
            " ORDER BY p.id",
            (FamilyFunding.kind, f"{g.id}:{m}"),
        )
        lines = [
            FamilyStatementLine(
                payment_id=r["id"],
                order_id=r["order_id"],
                merchant_id=r["merchant_id"],
                description=r["description"],
                amount_fen=r["amount_fen"],
                coupon_fen=r["coupon_fen"],
                drawn_fen=r["payer_fen"],
                refunded_fen=r["refunded_fen"],
                completed_ns=r["completed_ns"],
            )
            for r in rows
        ]
        row = self._month(g.id, m)
        return FamilyStatement(
            grant=g,
            month=month_text(m),
            state="unused" if row is None else str(row.state),
            limit_fen=g.monthly_limit_fen if row is None else row.limit_fen,
            lines=lines,
            drawn_fen=sum(line.drawn_fen for line in lines),
            refunded_fen=sum(line.refunded_fen for line in lines),
            remaining_fen=self._remaining_fen(g, m),
            returned_fen=0 if row is None else row.swept_fen,
            ledger_spent_fen=0 if row is None else self._ledger_spent_fen(row),
        )

    def _ledger_spent_fen(self, row: FamilyMonth) -> int:
        """Set aside - left in the account - swept back, each read from the ledger."""
        entity = family_entity_id(row.grant_id, row.month)
        ids = [transfer_id(Op.FAMILY, entity, FamilyLeg.FUND)] + [
            transfer_id(Op.FAMILY, entity, FamilyLeg.SWEEP_FIRST + n) for n in range(row.sweeps)
        ]
        found = {t.id: t.amount for t in self._ctx.ledger.lookup_transfers(ids)}
        funded = found.get(ids[0], 0)
        swept = sum(found.get(i, 0) for i in ids[1:])
        accounts = self._ctx.ledger.lookup_accounts(
            [family_grant_account_id(row.grant_id, row.month)]
        )
        left = accounts[0].credits_posted - accounts[0].debits_posted if accounts else 0
        return funded - left - swept

    def revoke(self, payer_id: int, grant_id: int) -> FamilyGrant:
        """Stop the grant now and return its unused money to the payer; idempotent (a repeated
        call finishes whatever a crash left undone)."""
        g = self._of_payer(payer_id, grant_id)
        self._ctx.store.transition(
            "family_grants",
            g.id,
            (GrantState.ACTIVE,),
            {"state": GrantState.REVOKED, "revoked_ns": self._ctx.clock_ns()},
        )
        for row in self._unclosed(g.id):
            self._close(row.id)
        return self.get(grant_id)

    def close_ended_months(self, rows_max: int = CLOSE_ROWS_MAX) -> int:
        """Close every month that has ended, or whose grant was revoked, sweeping its unused
        limit back to the payer (this also finishes a close or a sweep a crash interrupted);
        returns how many months it closed. Run it after midnight on the 1st (Beijing time), and
        on restart (`recover` does). A bounded pass: call again while it returns rows_max."""
        rows = self._ctx.store.rows(
            "SELECT m.id FROM family_months m JOIN family_grants g ON g.id = m.grant_id"
            " WHERE m.state != ? AND (m.month < ? OR g.state = ?) ORDER BY m.id LIMIT ?",
            (
                str(MonthState.CLOSED),
                month_of(self._ctx.clock_ns()),
                str(GrantState.REVOKED),
                rows_max,
            ),
        )
        for r in rows:
            # A month still `funding` may hold its limit (a crash after the funding transfer):
            # closing sweeps whatever is there.
            self._close(r["id"])
        return len(rows)

    # ----------------------------------------------------------------- the funding source

    def check_funding(self, member_id: int, ref: str) -> None:
        """Before a payment from the grant: the grant is the member's and active, the month is
        the current one, and its limit is set aside (done here, at the month's first payment)."""
        grant_id, month = _parse_ref(ref)
        g = self._granted(grant_id, member_id)
        current = month_of(self._ctx.clock_ns())
        if month != current:
            raise InvalidRequest(
                f"this family funding is for {month_text(month)}; it is {month_text(current)}"
            )
        self._open(g, month)

    def after_refund(self, ref: str) -> None:
        """A refund credited the month's grant account: if the month is closed, the money goes
        on to the payer's wallet now (an open month keeps it: the member's limit grows back)."""
        grant_id, month = _parse_ref(ref)
        row = self._month(grant_id, month)
        if row is not None and row.state in _ENDED:
            self._close(row.id)

    # ----------------------------------------------------------------- months

    def _open(self, g: FamilyGrant, month: int) -> None:
        """Set the month's limit aside from the payer's wallet, once (crash-safe: the funding
        transfer's id is derived from the grant and the month)."""
        row = self._month(g.id, month)
        if row is not None and row.state == MonthState.OPEN:
            return
        if row is not None and row.state in _ENDED:
            raise self._closed_error(g, month)
        # Earlier months first: their unused limit goes back to the payer, who may need it to
        # fund this one.
        for old in self._unclosed(g.id, before=month):
            self._close(old.id)
        account = family_grant_account_id(g.id, month)
        if row is None:
            # The account before the row: once the row exists, its account does too (a crash in
            # between leaves an empty account whose id the retry reuses).
            self._ctx.ledger.ensure_accounts([(account, AccountCode.FAMILY_GRANT, _GRANT_ACCOUNT)])
            with self._ctx.store.transaction() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO family_months (grant_id, month, limit_fen, state,"
                    " created_ns) VALUES (?, ?, ?, ?, ?)",
                    (
                        g.id,
                        month,
                        g.monthly_limit_fen,
                        str(MonthState.FUNDING),
                        self._ctx.clock_ns(),
                    ),
                )
            row = self._month(g.id, month)
            assert row is not None
        fund = leg(
            transfer_id(Op.FAMILY, family_entity_id(g.id, month), FamilyLeg.FUND),
            user_wallet_id(g.payer_id),
            account,
            row.limit_fen,
            TransferCode.FAMILY_FUNDING,
        )
        outcome = self._ctx.ledger.submit([fund])
        if not outcome.applied:
            if outcome.failed_result == "exceeds_credits":
                raise InsufficientFunds(
                    f"the payer's wallet cannot set aside the {month_text(month)} family limit of"
                    f" {row.limit_fen} fen"
                )
            raise LedgerRejected(
                f"family grant {g.id}, {month_text(month)}: the ledger said {outcome.failed_result}"
            )
        opened = self._opened(row.id)
        if not opened or self.get(g.id).state == GrantState.REVOKED:
            # Revoked while the limit was being set aside: it goes straight back.
            self._close(row.id)
            raise self._closed_error(self.get(g.id), month)

    def _opened(self, row_id: int) -> bool:
        """Record that the month's limit is set aside; False if the month was closed meanwhile."""
        self._ctx.store.transition(
            "family_months",
            row_id,
            (MonthState.FUNDING,),
            {"state": MonthState.OPEN, "opened_ns": self._ctx.clock_ns()},
        )
        return self._month_by_id(row_id).state == MonthState.OPEN

    def _close(self, row_id: int) -> int:
        """Close a month (no more payments draw on it) and sweep what is left to the payer;
        returns the fen moved. `closing` until the sweep is recorded, so that a crash in
        between is finished by `close_ended_months`; a closed month is reopened for sweeping
        when a refund brings money back into it."""
        row = self._month_by_id(row_id)
        self._ctx.store.transition(
            "family_months",
            row_id,
            (MonthState.FUNDING, MonthState.OPEN, MonthState.CLOSED),
            {"state": MonthState.CLOSING, "closed_ns": row.closed_ns or self._ctx.clock_ns()},
        )
        moved_fen = self._sweep(row_id)
        self._ctx.store.transition(
            "family_months", row_id, (MonthState.CLOSING,), {"state": MonthState.CLOSED}
        )
        return moved_fen

    def _sweep(self, row_id: int) -> int:
        """Move what is available in a closed month's account back to the payer's wallet;
        returns the fen moved. Each sweep is its own derived id (sweep number n); the loop ends
        when the ledger says nothing is left, so money a refund or a racing sweeper brought in
        is never stranded."""
        moved_fen = 0
        for _ in range(SWEEP_ROUNDS_MAX):
            row = self._month_by_id(row_id)
            assert row.state in _ENDED, row
            number = row.sweeps
            if number >= FAMILY_SWEEPS_MAX:
                raise InvalidState(f"family month {row_id} was swept {number} times already")
            sweep_id = transfer_id(
                Op.FAMILY,
                family_entity_id(row.grant_id, row.month),
                FamilyLeg.SWEEP_FIRST + number,
            )
            g = self.get(row.grant_id)
            # The account never holds more than the limit (refunds return at most what was
            # spent), so the limit bounds the balancing leg.
            sweep = leg(
                sweep_id,
                family_grant_account_id(row.grant_id, row.month),
                user_wallet_id(g.payer_id),
                row.limit_fen,
                TransferCode.FAMILY_SWEEP,
                flags=_BALANCING_DEBIT,
            )
            outcome = self._ctx.ledger.submit([sweep])
            if not outcome.applied:
                if outcome.failed_result == "exceeds_credits":
                    return moved_fen  # nothing left; the id stays unused for the next sweep
                raise LedgerRejected(
                    f"sweep of family month {row_id}: the ledger said {outcome.failed_result}"
                )
            (moved,) = self._ctx.ledger.lookup_transfers([sweep_id])
            with self._ctx.store.transaction() as conn:
                # Compare-and-set on the counter: a concurrent sweeper of the same number sent
                # the same transfer, so exactly one of them records it.
                cursor = conn.execute(
                    "UPDATE family_months SET sweeps = ?, swept_fen = swept_fen + ?"
                    " WHERE id = ? AND sweeps = ?",
                    (number + 1, moved.amount, row_id, number),
                )
                if cursor.rowcount == 1:
                    moved_fen += moved.amount
        raise AssertionError(f"family month {row_id}: sweeps did not settle")

    def _closed_error(self, g: FamilyGrant, month: int) -> PaymentError:
        if g.state == GrantState.REVOKED:
            return GrantRevoked(f"family grant {g.id} was revoked by its payer")
        return FamilyLimitExceeded(f"family grant {g.id}: {month_text(month)} has ended")

    # ----------------------------------------------------------------- reading

    def _granted(self, grant_id: int, member_id: int) -> FamilyGrant:
        g = self.get(grant_id)
        if g.member_id != member_id:
            raise UnknownParty(f"family grant {grant_id} is not for user {member_id}")
        if g.state == GrantState.REVOKED:
            raise GrantRevoked(f"family grant {grant_id} was revoked by its payer")
        return g

    def _of_payer(self, payer_id: int, grant_id: int) -> FamilyGrant:
        g = self.get(grant_id)
        if g.payer_id != payer_id:
            raise UnknownParty(f"family grant {grant_id} is not user {payer_id}'s")
        return g

    def _month(self, grant_id: int, month: int) -> FamilyMonth | None:
        return self._ctx.store.one(
            FamilyMonth,
            "SELECT * FROM family_months WHERE grant_id = ? AND month = ?",
            (grant_id, month),
        )

    def _month_by_id(self, row_id: int) -> FamilyMonth:
        found = self._ctx.store.get(FamilyMonth, "family_months", row_id)
        assert found is not None, row_id
        return found

    def _unclosed(self, grant_id: int, *, before: int = 10**6) -> list[FamilyMonth]:
        return self._ctx.store.all(
            FamilyMonth,
            "SELECT * FROM family_months WHERE grant_id = ? AND month < ? AND state != ?"
            " ORDER BY month",
            (grant_id, before, str(MonthState.CLOSED)),
        )


class FamilyFunding:
    """The `family` funding source: the member pays from the month's grant account, a ledger
    account only (one-phase). Its reference is `<grant id>:<yyyymm>` (`Family.funding`)."""

    kind = "family"
    two_phase = False

    def __init__(self, family: Family) -> None:
        self._family = family

    def check(self, user_id: int, ref: str) -> None:
        self._family.check_funding(user_id, ref)

    def payer_account_id(self, user_id: int, ref: str) -> int:
        grant_id, month = _parse_ref(ref)
        return family_grant_account_id(grant_id, month)

    def extra_legs(self, request: FundingRequest, transfer_id: int) -> list[Transfer]:
        return []

    def confirm(self, request: FundingRequest) -> Reply:
        return OK

    def cancel(self, request: FundingRequest) -> Reply:
        return OK

    def refund(self, request: FundingRequest) -> Reply:
        self._family.after_refund(request.ref)
        return OK
