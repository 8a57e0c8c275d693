"""Bill payments: simulated billers, lookup by account number, full and partial payment,
idempotent retries, and the biller's money settled like any merchant's."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from formicary.payments import (
    FEE_INCOME_ID,
    BillerCategory,
    BillOverpayment,
    BillPaymentState,
    BillSimulator,
    Funding,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidRequest,
    PaymentError,
    PaymentsStore,
    UnknownBill,
    bp_of,
    merchant_wallet_id,
    user_wallet_id,
)
from formicary.payments.bills import OPEN_PERIODS
from formicary.payments.parties import luhn_ok
from formicary.payments.store import _MIGRATIONS, SCHEMA_VERSION
from tests.payments.world import DAY_T, World

DAY_S = 24 * 3600


def luhn_accounts(digits: int = 10) -> list[str]:
    """Luhn-valid account numbers of `digits` digits (customers of the simulated utilities)."""
    found = []
    for n in range(1, 500):
        body = f"{n:0{digits - 1}d}"
        found.append(next(body + str(d) for d in range(10) if luhn_ok(body + str(d))))
    return found


def biller(world: World, category: BillerCategory = BillerCategory.ELECTRICITY, name: str = ""):
    return world.payments.bills.register_biller(
        name or f"{category} co",
        category,
        settlement_bank_code="CMB",
        settlement_account_number="6214830000000001",
    )


def account_with_bills(world: World, biller_id: int, count: int) -> str:
    """A customer account for which the utility reports at least `count` bills."""
    for number in luhn_accounts():
        if len(world.payments.bills.lookup(biller_id, number)) >= count:
            return number
    raise AssertionError("no such account")  # pragma: no cover


def test_a_biller_is_a_merchant_and_registering_twice_returns_it(world: World) -> None:
    grid = biller(world)
    assert (
        world.payments.bills.register_biller(
            grid.name,
            BillerCategory.ELECTRICITY,
            settlement_bank_code="CMB",
            settlement_account_number="6214830000000001",
        )
        == grid
    )
    merchant = world.payments.parties.merchant(grid.merchant_id)
    assert (merchant.name, merchant.category) == (grid.name, "4900")
    phone = biller(world, BillerCategory.PHONE)
    assert world.payments.parties.merchant(phone.merchant_id).category == "4814"
    assert world.payments.bills.billers(BillerCategory.PHONE) == [phone]
    with pytest.raises(IdempotencyConflict):
        biller(world, BillerCategory.GAS, name=grid.name)


def test_lookup_is_deterministic_and_follows_the_stated_rules(world: World) -> None:
    grid = biller(world)
    bills = world.payments.bills
    seen = Counter[int]()
    for number in luhn_accounts()[:40]:
        found = bills.lookup(grid.id, number)
        assert found == bills.lookup(grid.id, number)  # the same rows, the same amounts
        periods = [b.period for b in found]
        # Today is 2025-11-11 in Beijing: the utility reports 2025-08 .. 2025-10; the latest
        # is always there, the older ones only if not paid at the utility's counter.
        assert periods[-1] == "2025-10" and periods == sorted(periods)
        assert set(periods) <= {"2025-08", "2025-09", "2025-10"}
        for b in found:
            assert 3_000 <= b.amount_fen <= 60_000
            assert b.outstanding_fen == b.amount_fen and b.paid_fen == 0
            year, month = int(b.period[:4]), int(b.period[5:])
            assert b.due_date == (
                f"{year + month // 12}-{month % 12 + 1:02d}-20"
            )  # the 20th of the next month
        seen[len(found)] += 1
    assert set(seen) == {1, 2, 3}  # all three shapes occur
    # The simulator is pure: another instance says the same.
    assert BillSimulator().bills(grid.id, grid.category, "0000001008", 202511) == (
        BillSimulator().bills(grid.id, grid.category, "0000001008", 202511)
    )


def test_lookup_refuses_malformed_and_unknown_accounts(world: World) -> None:
    grid, phone = biller(world), biller(world, BillerCategory.PHONE)
    bills = world.payments.bills
    good = luhn_accounts()[0]
    bad_check_digit = good[:-1] + str((int(good[-1]) + 1) % 10)
    with pytest.raises(UnknownBill):
        bills.lookup(grid.id, bad_check_digit)
    for malformed in ("12345", "12345678901", "abcdefghij", ""):
        with pytest.raises(InvalidRequest):
            bills.lookup(grid.id, malformed)
    assert bills.lookup(phone.id, "13800138000")  # any mobile number is a customer
    with pytest.raises(InvalidRequest):
        bills.lookup(phone.id, "23800138000")
    with pytest.raises(UnknownBill):
        bills.lookup(10_000, good)
    with pytest.raises(UnknownBill):
        bills.bill(10_000)


def test_paying_a_bill_moves_its_amount_once_and_it_disappears(world: World) -> None:
    grid = biller(world)
    user, _ = world.user(200_000)
    number = account_with_bills(world, grid.id, 2)
    first, second = world.payments.bills.lookup(grid.id, number)[:2]

    paid = world.payments.bills.pay(first.id, user.id, request_id="app-1")
    assert (paid.state, paid.amount_fen) == (BillPaymentState.SUCCEEDED, first.amount_fen)
    # Free to the payer; the biller pays its plan's fee (online, 55 bp).
    fee_fen = bp_of(first.amount_fen, 55)
    assert world.posted(user_wallet_id(user.id)) == 200_000 - first.amount_fen
    assert world.posted(merchant_wallet_id(grid.merchant_id)) == first.amount_fen - fee_fen
    assert world.posted(FEE_INCOME_ID) == fee_fen
    payment = world.payments.cashier.payment(paid.payment_id)
    assert payment.order_id == paid.order_id and payment.amount_fen == first.amount_fen

    # Paid bills disappear; the other one stays.
    assert first.id not in [b.id for b in world.payments.bills.lookup(grid.id, number)]
    assert second in world.payments.bills.lookup(grid.id, number)
    assert world.payments.bills.bill(first.id).outstanding_fen == 0
    assert world.payments.bills.bill(first.id).paid_fen == first.amount_fen

    # The app retries: the same bill payment, nothing moves again.
    assert world.payments.bills.pay(first.id, user.id, request_id="app-1") == paid
    assert world.payments.bills.pay(first.id, user.id, first.amount_fen, request_id="app-1") == paid
    assert world.posted(user_wallet_id(user.id)) == 200_000 - first.amount_fen
    with pytest.raises(IdempotencyConflict):
        world.payments.bills.pay(second.id, user.id, request_id="app-1")
    with pytest.raises(IdempotencyConflict):
        world.payments.bills.pay(first.id, user.id, 100, request_id="app-1")
    # Paying it again under a new request id is an overpayment.
    with pytest.raises(BillOverpayment):
        world.payments.bills.pay(first.id, user.id, request_id="app-2")
    assert world.books_balance()


def test_partial_payments_never_add_up_to_more_than_the_bill(world: World) -> None:
    grid = biller(world)
    user, _ = world.user(200_000)
    (bill,) = world.payments.bills.lookup(grid.id, account_with_bills(world, grid.id, 1))[-1:]
    bills = world.payments.bills
    bills.pay(bill.id, user.id, 1_000, request_id="part-1")
    assert bills.bill(bill.id).outstanding_fen == bill.amount_fen - 1_000
    with pytest.raises(BillOverpayment):
        bills.pay(bill.id, user.id, bill.amount_fen - 999, request_id="part-2")
    rest = bills.pay(bill.id, user.id, request_id="part-3")  # default: what is outstanding
    assert rest.amount_fen == bill.amount_fen - 1_000
    assert bill.id not in [b.id for b in bills.lookup(grid.id, bill.account_number)]
    assert world.posted(user_wallet_id(user.id)) == 200_000 - bill.amount_fen
    assert [p.amount_fen for p in bills.payments_of(bill.id)] == [1_000, rest.amount_fen]
    for bad in (0, -5, 1.5, True):
        with pytest.raises(InvalidRequest):
            bills.pay(bill.id, user.id, bad, request_id="bad")  # type: ignore[arg-type]


def test_a_failed_bill_payment_releases_the_bill_and_is_final_for_its_request(
    world: World,
) -> None:
    grid = biller(world)
    user, card = world.user(100)
    (bill,) = world.payments.bills.lookup(grid.id, account_with_bills(world, grid.id, 1))[-1:]
    with pytest.raises(InsufficientFunds):
        world.payments.bills.pay(bill.id, user.id, request_id="try-1")
    (failed,) = world.payments.bills.payments_of(bill.id)
    assert (failed.state, failed.failure_code) == ("failed", "insufficient_funds")
    assert world.payments.bills.bill(bill.id).outstanding_fen == bill.amount_fen
    world.payments.parties.top_up(user.id, card.id, 100_000, request_id="more")
    with pytest.raises(InsufficientFunds):  # the same request stays failed
        world.payments.bills.pay(bill.id, user.id, request_id="try-1")
    assert world.payments.bills.pay(bill.id, user.id, request_id="try-2").state == "succeeded"
    with pytest.raises(InvalidRequest):
        world.payments.bills.pay(bill.id, user.id, request_id="x", funding=Funding("mmf"))


def test_concurrent_payments_of_one_bill_never_overpay_it(world: World) -> None:
    grid = biller(world)
    (bill,) = world.payments.bills.lookup(grid.id, account_with_bills(world, grid.id, 1))[-1:]
    part_fen = bill.amount_fen // 5 + 1  # five parts are more than the bill
    users = [world.user(100_000)[0] for _ in range(8)]
    start = threading.Barrier(len(users))

    def pay(i: int) -> str:
        start.wait()
        try:
            world.payments.bills.pay(bill.id, users[i].id, part_fen, request_id=f"p-{i}")
            return "paid"
        except BillOverpayment:
            return "refused"

    with ThreadPoolExecutor(len(users)) as pool:
        outcomes = Counter(pool.map(pay, range(len(users))))
    assert outcomes == {"paid": 4, "refused": 4}
    assert world.payments.bills.bill(bill.id).paid_fen == 4 * part_fen <= bill.amount_fen
    assert world.posted(merchant_wallet_id(grid.merchant_id)) == 4 * part_fen - 4 * bp_of(
        part_fen, 55
    )


def test_a_bill_leaves_the_window_after_three_months(world: World) -> None:
    grid = biller(world)
    user, _ = world.user(200_000)
    number = account_with_bills(world, grid.id, 1)
    (latest,) = world.payments.bills.lookup(grid.id, number)[-1:]
    world.clock.advance(OPEN_PERIODS * 31 * DAY_S)  # 2026-02: 2025-10 is no longer reported
    assert latest.id not in [b.id for b in world.payments.bills.lookup(grid.id, number)]
    with pytest.raises(UnknownBill):
        world.payments.bills.pay(latest.id, user.id, request_id="late")


def test_a_billers_money_settles_t_plus_1_and_reconciles(world: World) -> None:
    grid = biller(world)
    user, _ = world.user(200_000)
    (bill,) = world.payments.bills.lookup(grid.id, account_with_bills(world, grid.id, 1))[-1:]
    world.payments.bills.pay(bill.id, user.id, request_id="s-1")
    world.clock.advance(DAY_S)
    report = world.payments.settlements.run(DAY_T)
    (line,) = [line for line in report.lines if line.merchant_id == grid.merchant_id]
    assert report.reconciled
    assert line.settled_fen == bill.amount_fen - bp_of(bill.amount_fen, 55)
    assert world.bank.paid_out_fen["CMB"] == line.settled_fen


def test_an_unfinished_bill_payment_is_resumed_by_recover(world: World) -> None:
    """A row left `created` (the process died before the cashier ran) is finished once."""
    grid = biller(world)
    user, _ = world.user(200_000)
    (bill,) = world.payments.bills.lookup(grid.id, account_with_bills(world, grid.id, 1))[-1:]
    store = world.payments.ctx.store
    with store.transaction() as conn:
        row_id = store.insert(
            conn,
            "bill_payments",
            {
                "bill_id": bill.id,
                "user_id": user.id,
                "request_id": "crashed",
                "amount_fen": bill.amount_fen,
                "funding_kind": "wallet",
                "funding_ref": "",
                "state": "created",
                "created_ns": world.clock(),
            },
        )
    assert world.payments.bills.bill(bill.id).outstanding_fen == 0  # in flight counts as taken
    assert world.payments.recover().finished == 1
    assert world.payments.bills.payment(row_id).state == "succeeded"
    assert world.payments.recover().finished == 0
    assert world.payments.bills.pay(bill.id, user.id, request_id="crashed").id == row_id
    assert world.posted(user_wallet_id(user.id)) == 200_000 - bill.amount_fen
    with pytest.raises(PaymentError):
        world.payments.bills.payment(row_id + 1)


def test_a_version_1_store_gains_the_new_tables_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "payments.db"
    conn = sqlite3.connect(path)
    conn.executescript(_MIGRATIONS[0])
    conn.execute("INSERT INTO users (name, identity_level, created_ns) VALUES ('ada', 1, 0)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = PaymentsStore(path)
    assert store.scalar("PRAGMA user_version") == SCHEMA_VERSION
    assert store.scalar("SELECT name FROM users WHERE id = 1") == "ada"
    for table in ("billers", "bills", "bill_payments", "family_grants", "family_months"):
        assert store.scalar(f"SELECT count(*) FROM {table}") == 0
    store.close()
