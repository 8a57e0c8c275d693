"""Bill payments: billers (electricity, water, gas, phone), bill lookup by customer account
number, and payment.

The billers are SIMULATED utilities: no real utility is called. Each biller is a merchant of
the platform (its wallet is the biller's settlement account, settled T+1 to its bank like any
merchant's), and `BillSimulator` plays the utility's billing system: from the biller, the
customer account number and the month it deterministically produces that customer's bills.

Rules of the simulated utilities (stated so tests can observe them):

- account numbers: electricity and gas 10 digits, water 8-12 digits, each ending in a Luhn check
  digit (a number failing it is no customer: `UnknownBill`); phone: a mainland mobile number
  `1[3-9]` + 9 digits (every well-formed one is a customer); anything else is `InvalidRequest`;
- one bill per calendar month (Beijing time), issued on the 1st of the next month, due on its
  20th; the utility reports the last 3 billed months here (older ones it collects itself). The
  latest month's bill is always reported; each older one is reported or not by a hash of
  (biller, account, month) -- "already paid at the utility's counter" -- as is its amount, in
  a range per category;
- a bill may be paid in parts: each payment is 1 fen .. what is outstanding; more is refused
  (`BillOverpayment`). In-flight payments count as taken, so concurrent payments of one bill
  never add up to more than the bill. A bill with nothing outstanding disappears from lookups.

Paying a bill is an ordinary cashier payment of an order at the biller's merchant (order number
`bill-<bill payment id>`), so it is ONE linked chain (see `cashier`):

    payer account  -> biller's wallet  A   (PAYMENT)
    biller's wallet -> platform fees   F   (FEE, the biller's fee plan; the payer pays A only)

The payer account is the user's wallet by default, or a family grant (`Family.funding`): the
member pays the bill with the payer's money within the monthly limit. Bill payments are
idempotent by (user, `request_id`) and crash-safe: a bill payment row is written first, then
the cashier's own idempotent order and payment run, then the outcome is recorded;
`recover()` resumes open rows.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from datetime import date
from enum import StrEnum

import msgspec

from formicary.payments.cashier import Cashier
from formicary.payments.context import STEPS_MAX, Context, check_amount, check_text
from formicary.payments.errors import (
    BillOverpayment,
    IdempotencyConflict,
    InvalidRequest,
    LedgerBusy,
    PaymentError,
    UnknownBill,
    error_for,
)
from formicary.payments.family import Family, FamilyFunding, month_of
from formicary.payments.parties import Parties, luhn_ok
from formicary.payments.records import Funding, PaymentState

__all__ = [
    "Bill",
    "BillPayment",
    "BillPaymentState",
    "BillSimulator",
    "Biller",
    "BillerCategory",
    "Bills",
    "SimulatedBill",
]

# How many billed months a simulated utility reports, newest first.
OPEN_PERIODS = 3
# Bills are due on this day of the month after the billed one.
DUE_DAY = 20


class BillerCategory(StrEnum):
    ELECTRICITY = "electricity"
    WATER = "water"
    GAS = "gas"
    PHONE = "phone"


class _Rule(msgspec.Struct, frozen=True):
    mcc: str  # ISO 18245 merchant category code of the biller's merchant
    account_pattern: str
    check_digit: bool  # the account number ends in a Luhn check digit
    amount_min_fen: int
    amount_max_fen: int


_RULES: dict[BillerCategory, _Rule] = {
    # 4900: utilities (electric, gas, water, sanitary); 4814: telecommunication services.
    BillerCategory.ELECTRICITY: _Rule("4900", r"[0-9]{10}", True, 3_000, 60_000),
    BillerCategory.WATER: _Rule("4900", r"[0-9]{8,12}", True, 1_000, 15_000),
    BillerCategory.GAS: _Rule("4900", r"[0-9]{10}", True, 2_000, 30_000),
    BillerCategory.PHONE: _Rule("4814", r"1[3-9][0-9]{9}", False, 1_800, 29_900),
}


class Biller(msgspec.Struct, frozen=True):
    """A (simulated) utility: its money lands in its merchant's wallet."""

    id: int
    name: str
    category: BillerCategory
    merchant_id: int
    created_ns: int


class Bill(msgspec.Struct, frozen=True):
    """One month's bill of one customer account."""

    id: int
    biller_id: int
    account_number: str
    period: str  # the billed month, YYYY-MM (Beijing time)
    amount_fen: int
    due_date: str  # ISO date
    paid_fen: int  # by succeeded bill payments
    outstanding_fen: int  # amount - paid - in flight: what a new payment may still pay


class BillPaymentState(StrEnum):
    CREATED = "created"  # the row is durable; the cashier's order and payment run next
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BillPayment(msgspec.Struct, frozen=True):
    id: int
    bill_id: int
    user_id: int
    request_id: str  # the user app's idempotency key, unique per user
    amount_fen: int
    funding_kind: str
    funding_ref: str
    order_id: int | None
    payment_id: int | None  # the cashier payment, once succeeded
    state: BillPaymentState
    failure_code: str
    failure_detail: str
    created_ns: int
    completed_ns: int


class SimulatedBill(msgspec.Struct, frozen=True):
    period: str
    amount_fen: int
    due_date: str


class BillSimulator:
    """A utility's billing system, simulated: pure and deterministic (no state, no clock)."""

    def check_account(self, category: BillerCategory, account_number: str) -> None:
        """Raise InvalidRequest for a malformed number, UnknownBill for no such customer."""
        rule = _RULES[category]
        if not isinstance(account_number, str) or not re.fullmatch(
            rule.account_pattern, account_number
        ):
            raise InvalidRequest(
                f"a {category} account number matches {rule.account_pattern}: {account_number!r}"
            )
        if rule.check_digit and not luhn_ok(account_number):
            raise UnknownBill(f"the {category} utility has no customer {account_number}")

    def bills(
        self, biller_id: int, category: BillerCategory, account_number: str, month: int
    ) -> list[SimulatedBill]:
        """The bills the utility reports in `month` (yyyymm, Beijing time), oldest first."""
        rule = _RULES[category]
        found = []
        for age, period in enumerate(_periods(month)):
            digest = hashlib.sha256(f"{biller_id}:{account_number}:{period}".encode()).digest()
            h = int.from_bytes(digest[:8], "big")
            if age > 0 and h & 1:
                continue  # paid at the utility's own counter
            span = rule.amount_max_fen - rule.amount_min_fen + 1
            amount_fen = rule.amount_min_fen + (h >> 1) % span
            found.append(SimulatedBill(period, amount_fen, _due_date(period)))
        return found[::-1]


def _periods(month: int) -> list[str]:
    """The OPEN_PERIODS billed months before `month`, newest first, as YYYY-MM."""
    year, mon = divmod(month, 100)
    out = []
    for _ in range(OPEN_PERIODS):
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
        out.append(f"{year:04d}-{mon:02d}")
    return out


def _due_date(period: str) -> str:
    year, mon = int(period[:4]), int(period[5:])
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return date(year, mon, DUE_DAY).isoformat()


_BILL_SELECT = (
    "SELECT b.*,"
    " coalesce(sum(CASE WHEN p.state = 'succeeded' THEN p.amount_fen END), 0) AS paid_fen,"
    " b.amount_fen - coalesce(sum(CASE WHEN p.state != 'failed' THEN p.amount_fen END), 0)"
    " AS outstanding_fen"
    " FROM bills b LEFT JOIN bill_payments p ON p.bill_id = b.id"
)


class Bills:
    """Billers, bill lookup and bill payment."""

    def __init__(
        self,
        ctx: Context,
        parties: Parties,
        cashier: Cashier,
        family: Family,
        simulator: BillSimulator | None = None,
    ) -> None:
        self._ctx = ctx
        self._parties = parties
        self._cashier = cashier
        self._family = family
        self.simulator = simulator or BillSimulator()

    # ----------------------------------------------------------------- billers

    def register_biller(
        self,
        name: str,
        category: BillerCategory,
        *,
        settlement_bank_code: str,
        settlement_account_number: str,
        fee_plan: str = "online",
    ) -> Biller:
        """Register a (simulated) utility as a merchant; idempotent by name. The biller pays
        the fee of `fee_plan` on each bill payment; the payer pays the bill amount only."""
        check_text(name, "name")
        category = _category(category)
        existing = self._by_name(name)
        if existing is not None:
            if existing.category != category:
                raise IdempotencyConflict(f"biller {name!r} exists with another category")
            return existing
        merchant = self._parties.register_merchant(
            name,
            category=_RULES[category].mcc,
            fee_plan=fee_plan,
            settlement_bank_code=settlement_bank_code,
            settlement_account_number=settlement_account_number,
        )
        try:
            with self._ctx.store.transaction() as conn:
                biller_id = self._ctx.store.insert(
                    conn,
                    "billers",
                    {
                        "name": name,
                        "category": str(category),
                        "merchant_id": merchant.id,
                        "created_ns": self._ctx.clock_ns(),
                    },
                )
        except sqlite3.IntegrityError:
            # A concurrent registration of the same name won: its merchant is the biller's
            # (this one's stays an unused merchant with an empty wallet).
            winner = self._by_name(name)
            if winner is None:
                raise
            if winner.category != category:
                raise IdempotencyConflict(f"biller {name!r} exists with another category") from None
            return winner
        return self.biller(biller_id)

    def biller(self, biller_id: int) -> Biller:
        found = self._ctx.store.get(Biller, "billers", biller_id)
        if found is None:
            raise UnknownBill(f"no biller {biller_id}")
        return found

    def billers(self, category: BillerCategory | None = None) -> list[Biller]:
        if category is None:
            return self._ctx.store.all(Biller, "SELECT * FROM billers ORDER BY id")
        return self._ctx.store.all(
            Biller,
            "SELECT * FROM billers WHERE category = ? ORDER BY id",
            (str(_category(category)),),
        )

    def _by_name(self, name: str) -> Biller | None:
        return self._ctx.store.one(Biller, "SELECT * FROM billers WHERE name = ?", (name,))

    # ----------------------------------------------------------------- bills

    def lookup(self, biller_id: int, account_number: str) -> list[Bill]:
        """The customer's open bills (something outstanding), oldest first; [] when all paid."""
        biller = self.biller(biller_id)
        self.simulator.check_account(biller.category, account_number)
        month = month_of(self._ctx.clock_ns())
        reported = self.simulator.bills(biller.id, biller.category, account_number, month)
        if reported:
            # Materialised so that payments can refer to them; the amounts are deterministic, so
            # a bill looked up twice is the same row.
            with self._ctx.store.transaction() as conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO bills (biller_id, account_number, period, amount_fen,"
                    " due_date, created_ns) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            biller.id,
                            account_number,
                            b.period,
                            b.amount_fen,
                            b.due_date,
                            self._ctx.clock_ns(),
                        )
                        for b in reported
                    ],
                )
        periods = [b.period for b in reported]
        marks = ", ".join("?" * len(periods)) or "NULL"
        return self._ctx.store.all(
            Bill,
            f"{_BILL_SELECT} WHERE b.biller_id = ? AND b.account_number = ?"
            f" AND b.period IN ({marks}) GROUP BY b.id HAVING outstanding_fen > 0"
            " ORDER BY b.period",
            (biller.id, account_number, *periods),
        )

    def bill(self, bill_id: int) -> Bill:
        found = self._ctx.store.one(
            Bill, f"{_BILL_SELECT} WHERE b.id = ? GROUP BY b.id", (bill_id,)
        )
        if found is None:
            raise UnknownBill(f"no bill {bill_id}")
        return found

    # ----------------------------------------------------------------- payments

    def pay(
        self,
        bill_id: int,
        user_id: int,
        amount_fen: int | None = None,
        *,
        request_id: str,
        funding: Funding | None = None,
    ) -> BillPayment:
        """Pay `amount_fen` of a bill (default: all that is outstanding) from the user's wallet,
        or from `funding` (e.g. `payments.family.funding(grant, user)`); idempotent by
        (user, `request_id`). Returns the succeeded bill payment or raises why not."""
        check_text(request_id, "request_id")
        if amount_fen is not None:
            check_amount(amount_fen)
        funding = funding or Funding.wallet()
        self._parties.user(user_id)
        self._ctx.source(funding.kind)
        with self._ctx.store.transaction() as conn:
            row = conn.execute(
                "SELECT id, bill_id, amount_fen, funding_kind, funding_ref FROM bill_payments"
                " WHERE user_id = ? AND request_id = ?",
                (user_id, request_id),
            ).fetchone()
            if row is not None:
                if (
                    row["bill_id"] != bill_id
                    or amount_fen not in (None, row["amount_fen"])
                    or not _same_funding(Funding(row["funding_kind"], row["funding_ref"]), funding)
                ):
                    raise IdempotencyConflict(
                        f"request id {request_id!r} was used for another bill payment"
                    )
                payment_id = row["id"]
            else:
                payment_id = self._create(conn, bill_id, user_id, amount_fen, request_id, funding)
        return self.resume(payment_id)

    def _create(
        self,
        conn: sqlite3.Connection,
        bill_id: int,
        user_id: int,
        amount_fen: int | None,
        request_id: str,
        funding: Funding,
    ) -> int:
        """Write the bill payment row; under the store's write lock, so the outstanding amount
        cannot be taken twice by racing payments."""
        bill = conn.execute("SELECT * FROM bills WHERE id = ?", (bill_id,)).fetchone()
        if bill is None:
            raise UnknownBill(f"no bill {bill_id}")
        if bill["period"] not in _periods(month_of(self._ctx.clock_ns())):
            raise UnknownBill(f"bill {bill_id} ({bill['period']}) is no longer open here")
        taken_fen = conn.execute(
            "SELECT coalesce(sum(amount_fen), 0) FROM bill_payments"
            " WHERE bill_id = ? AND state != ?",
            (bill_id, str(BillPaymentState.FAILED)),
        ).fetchone()[0]
        outstanding_fen = bill["amount_fen"] - taken_fen
        amount_fen = outstanding_fen if amount_fen is None else amount_fen
        if outstanding_fen <= 0 or amount_fen > outstanding_fen:
            raise BillOverpayment(
                f"bill {bill_id} has {max(outstanding_fen, 0)} fen outstanding, not {amount_fen}"
            )
        return self._ctx.store.insert(
            conn,
            "bill_payments",
            {
                "bill_id": bill_id,
                "user_id": user_id,
                "request_id": request_id,
                "amount_fen": amount_fen,
                "funding_kind": funding.kind,
                "funding_ref": funding.ref,
                "state": str(BillPaymentState.CREATED),
                "created_ns": self._ctx.clock_ns(),
            },
        )

    def payment(self, bill_payment_id: int) -> BillPayment:
        found = self._ctx.store.get(BillPayment, "bill_payments", bill_payment_id)
        if found is None:
            raise UnknownBill(f"no bill payment {bill_payment_id}")
        return found

    def payment_by_request(self, user_id: int, request_id: str) -> BillPayment | None:
        """The user's bill payment made under `request_id`, if any (a retry's first attempt)."""
        return self._ctx.store.one(
            BillPayment,
            "SELECT * FROM bill_payments WHERE user_id = ? AND request_id = ?",
            (user_id, request_id),
        )

    def payments_of(self, bill_id: int) -> list[BillPayment]:
        return self._ctx.store.all(
            BillPayment, "SELECT * FROM bill_payments WHERE bill_id = ? ORDER BY id", (bill_id,)
        )

    def resume(self, bill_payment_id: int) -> BillPayment:
        """Drive a bill payment to its end from wherever it stopped (crash-safe, idempotent):
        the order is idempotent by its number, and the cashier resumes its payment."""
        for _ in range(STEPS_MAX):
            bp = self.payment(bill_payment_id)
            if bp.state == BillPaymentState.SUCCEEDED:
                return bp
            if bp.state == BillPaymentState.FAILED:
                raise error_for(bp.failure_code, bp.failure_detail)
            self._step(bp)
        raise AssertionError(f"bill payment {bill_payment_id} did not finish in {STEPS_MAX} steps")

    def _step(self, bp: BillPayment) -> None:
        bill = self.bill(bp.bill_id)
        biller = self.biller(bill.biller_id)
        order = self._cashier.create_order(
            biller.merchant_id,
            bp.amount_fen,
            merchant_order_no=f"bill-{bp.id}",
            description=f"{biller.category} bill {bill.period} of {bill.account_number}",
        )
        funding = Funding(bp.funding_kind, bp.funding_ref)
        attempts = self._cashier.payments_of(order.id)
        if attempts and all(p.state == PaymentState.FAILED for p in attempts):
            # The payment failed before a crash let us record it: the bill payment failed
            # with it (never a second attempt the user did not ask for).
            last = attempts[-1]
            error = error_for(last.failure_code, last.failure_detail)
            raise self._fail(bp, self._family.explain(funding, error))
        try:
            payment = self._cashier.pay(order.id, bp.user_id, funding)
        except PaymentError as error:
            attempts = self._cashier.payments_of(order.id)
            if isinstance(error, LedgerBusy) or (
                attempts and attempts[-1].state != PaymentState.FAILED
            ):
                raise  # nothing final yet (the ledger or a bank is busy): resumed later
            raise self._fail(bp, self._family.explain(funding, error)) from None
        self._ctx.store.transition(
            "bill_payments",
            bp.id,
            (BillPaymentState.CREATED,),
            {
                "state": BillPaymentState.SUCCEEDED,
                "order_id": order.id,
                "payment_id": payment.id,
                "completed_ns": self._ctx.clock_ns(),
            },
        )

    def _fail(self, bp: BillPayment, error: PaymentError) -> PaymentError:
        return self._ctx.fail("bill_payments", bp.id, (BillPaymentState.CREATED,), error)


def _category(value: str) -> BillerCategory:
    try:
        return BillerCategory(value)
    except ValueError:
        raise InvalidRequest(
            f"a biller category is one of {[str(c) for c in BillerCategory]}"
        ) from None


def _same_funding(stored: Funding, asked: Funding) -> bool:
    """A retry names the same source; a family funding may name a later month (the retry came
    after midnight on the 1st): the grant is what must match."""
    if stored.kind != asked.kind:
        return False
    if stored.kind == FamilyFunding.kind:
        return stored.ref.split(":")[0] == asked.ref.split(":")[0]
    return stored.ref == asked.ref
