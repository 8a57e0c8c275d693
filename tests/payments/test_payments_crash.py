"""Crash safety: a payments process that dies at any point, restarted, applies each movement
exactly once.

`CrashingLedger` kills the process (raises `Crash`) around the k-th transfer submission, either
before the ledger sees it or after the ledger committed it but before payments recorded the
answer. The "restart" closes everything and reopens the ledger and the payments store from
their files; `recover()` and the client's retry (same idempotency keys) then finish the work.
For every k and both sides, the end state must equal that of a run without a crash: the same
transfers (each applied once), the same balances, the same records, the same bank movements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from formicary.ledger import Engine, LedgerService, Transfer, open_store
from formicary.payments import (
    CampaignKind,
    FakeBank,
    Funding,
    PaymentError,
    Payments,
    PaymentsStore,
)
from formicary.payments.chart import Op, PaymentLeg, transfer_id
from tests.payments.world import DAY_T, SECRET, T0_NS, ManualClock, World

DAY_NS = 24 * 3600 * 10**9


class Crash(Exception):
    """The process died (injected)."""


class CrashingLedger:
    """A LedgerService that dies around its `crash_at`-th transfer submission."""

    def __init__(self, inner: LedgerService, crash_at: int, after_commit: bool) -> None:
        self.inner = inner
        self.crash_at = crash_at
        self.after_commit = after_commit
        self.submissions = 0

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[str]:
        self.submissions += 1
        dies = self.submissions == self.crash_at
        if dies and not self.after_commit:
            raise Crash(f"before submission {self.submissions}")
        results = self.inner.create_transfers(transfers)
        if dies:
            raise Crash(f"after submission {self.submissions} committed")
        return results

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Process:
    """One payments process over files that outlive it."""

    def __init__(self, tmp: Path, clock: ManualClock, bank: FakeBank, crash_at: int, after: bool):
        tmp.mkdir(exist_ok=True)
        self.ledger = LedgerService(open_store(f"sqlite:///{tmp}/ledger.db"), clock_ns=clock)
        self.ledger.start()
        self.store = PaymentsStore(tmp / "payments.db")
        self.crashing = CrashingLedger(self.ledger, crash_at, after)
        self.payments = Payments(
            self.crashing,  # type: ignore[arg-type]
            self.store,
            bank,
            secret=SECRET,
            clock_ns=clock,
        )

    def stop(self) -> None:
        self.store.close()
        self.ledger.close()


def _operations(ids: dict[str, int], clock: ManualClock) -> list[Callable[[Payments], object]]:
    """The workload, as retryable client calls (each idempotent by its key)."""

    def paid(p: Payments, order: str) -> int:
        return p.cashier.payments_of(ids[order])[-1].id

    def settle(p: Payments) -> object:
        clock.now_ns = max(clock.now_ns, T0_NS + DAY_NS)  # T+1: absolute, so retry-safe
        return p.settlements.run(DAY_T)

    return [
        lambda p: p.parties.top_up(ids["bob"], ids["bob_card"], 20_000, request_id="t-1"),
        lambda p: p.cashier.pay(
            ids["order_a"], ids["ann"], Funding.card(ids["ann_card"]), campaign_id=ids["c"]
        ),
        lambda p: p.cashier.pay(ids["order_b"], ids["bob"], campaign_id=ids["c"]),
        lambda p: p.refunds.refund(paid(p, "order_a"), 4_000, request_no="r-1"),
        lambda p: p.refunds.refund(paid(p, "order_b"), 5_000, request_no="r-2"),
        lambda p: p.parties.withdraw(ids["bob"], ids["bob_card"], 3_000, request_id="w-1"),
        settle,
        lambda p: p.campaigns.close(ids["c"]),
    ]


def _setup(payments: Payments, ledger: LedgerService, bank: FakeBank, clock: ManualClock) -> dict:
    payments.setup()
    world = World(payments, ledger, bank, clock)
    ann, ann_card = world.user()
    bob, bob_card = world.user()
    merchant = world.merchant("offline_qr")
    campaign = payments.campaigns.create(
        "d11", CampaignKind.RED_PACKET, discount_fen=300, budget_fen=1_000
    )
    order_a = world.order(merchant, 10_000)
    order_b = world.order(merchant, 5_000)
    return {
        "ann": ann.id,
        "ann_card": ann_card.id,
        "bob": bob.id,
        "bob_card": bob_card.id,
        "c": campaign.id,
        "order_a": order_a.id,
        "order_b": order_b.id,
    }


def _state(process: Process, bank: FakeBank) -> dict[str, Any]:
    def ledger_state(engine: Engine) -> Any:
        accounts = {
            a.id: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in engine.accounts.values()
        }
        transfers = {t.id: (t.amount, t.flags) for t in engine.transfers.values()}
        return accounts, transfers

    accounts, transfers = process.ledger.submit_query(ledger_state).result()
    rows = {
        table: process.store.rows(f"SELECT id, state FROM {table} ORDER BY id")
        for table in ("card_transfers", "payments", "refunds", "settlements", "campaigns")
    }
    return {
        "accounts": accounts,
        "transfers": transfers,
        "rows": {table: [tuple(r) for r in found] for table, found in rows.items()},
        "bank": (dict(bank.collected_fen), dict(bank.captured_fen), dict(bank.paid_out_fen)),
    }


def _run(tmp: Path, crash_at: int, after: bool) -> tuple[dict[str, Any], int, bool]:
    clock, bank = ManualClock(T0_NS), FakeBank()
    process = Process(tmp, clock, bank, 0, after)
    ids = _setup(process.payments, process.ledger, bank, clock)
    process.crashing.crash_at = crash_at
    process.crashing.submissions = 0  # count the workload's submissions only
    crashed = False
    for operation in _operations(ids, clock):
        try:
            operation(process.payments)
        except Crash:
            crashed = True
            process.stop()
            process = Process(tmp, clock, bank, 0, after)  # restart: no more crashes
            process.payments.recover()
            operation(process.payments)  # the client retries with the same key
        except PaymentError as error:  # pragma: no cover - the workload never fails
            raise AssertionError(error) from error
    state = _state(process, bank)
    submissions = process.crashing.submissions
    process.stop()
    return state, submissions, crashed


def test_a_crash_at_any_ledger_submission_applies_everything_exactly_once(
    tmp_path: Path,
) -> None:
    reference, submissions, _ = _run(tmp_path / "reference", 0, False)
    assert submissions >= 10  # the workload touches the ledger at every step
    # Captured: 10,000 - 300 red packet. Paid out to ICBC: refund 4,000 - 120 coupon part, and
    # the 3,000 withdrawal. To CMB, the merchant's net: 15,000 - fees 90 - refunds
    # (4,000 - 24 fee back) - (5,000 - 30 fee back).
    assert reference["bank"] == ({"ICBC": 20_000}, {"ICBC": 9_700}, {"ICBC": 6_880, "CMB": 5_964})
    for crash_at in range(1, submissions + 1):
        for after in (False, True):
            state, _, crashed = _run(tmp_path / f"crash-{crash_at}-{after}", crash_at, after)
            assert crashed
            assert state == reference, (crash_at, after)


@pytest.mark.parametrize("after_commit", [False, True])
def test_a_crashed_payment_is_all_or_nothing_in_the_ledger(
    tmp_path: Path, after_commit: bool
) -> None:
    """Between the crash and the recovery, the ledger holds the payment's chain whole or not
    at all, never a part of it; recovery then applies it exactly once."""
    clock, bank = ManualClock(T0_NS), FakeBank()
    process = Process(tmp_path, clock, bank, 0, after_commit)
    ids = _setup(process.payments, process.ledger, bank, clock)
    process.payments.parties.top_up(ids["ann"], ids["ann_card"], 9_000, request_id="t")
    process.crashing.crash_at = process.crashing.submissions + 1
    with pytest.raises(Crash):
        process.payments.cashier.pay(ids["order_b"], ids["ann"], campaign_id=ids["c"])
    process.stop()

    process = Process(tmp_path, clock, bank, 0, after_commit)
    (payment,) = process.payments.cashier.payments_of(ids["order_b"])
    assert payment.state == "created"  # the row was durable before the ledger saw anything
    legs = [transfer_id(Op.PAYMENT, payment.id, leg) for leg in PaymentLeg]
    # payer 4,700 + red packet 300 + fee 30: all three legs, or none.
    assert len(process.ledger.lookup_transfers(legs)) == (3 if after_commit else 0)
    assert process.payments.recover().finished == 1
    assert process.payments.cashier.pay(ids["order_b"], ids["ann"]).id == payment.id
    assert len(process.ledger.lookup_transfers(legs)) == 3
    merchant_id = process.payments.cashier.order(ids["order_b"]).merchant_id
    assert process.payments.parties.merchant_balance(merchant_id) == 5_000 - 30
    assert process.payments.parties.wallet_balance(ids["ann"]) == 9_000 - 4_700
    process.stop()


def test_a_card_payment_resumed_after_its_reservation_expired_never_asks_the_bank(
    tmp_path: Path,
) -> None:
    clock, bank = ManualClock(T0_NS), FakeBank()
    process = Process(tmp_path, clock, bank, 0, True)
    ids = _setup(process.payments, process.ledger, bank, clock)
    process.crashing.crash_at = process.crashing.submissions + 1  # dies after the reservation
    with pytest.raises(Crash):
        process.payments.cashier.pay(ids["order_a"], ids["ann"], Funding.card(ids["ann_card"]))
    process.stop()
    clock.advance(280)  # back after 280 s: 20 s left of 300, less than the bank may take
    process = Process(tmp_path, clock, bank, 0, True)
    process.payments.recover()
    (payment,) = process.payments.cashier.payments_of(ids["order_a"])
    assert (payment.state, payment.failure_code) == ("failed", "payment_timed_out")
    assert bank.calls["authorize"] == 0
    (clearing,) = process.ledger.lookup_accounts(
        [process.payments.ctx.source("card").payer_account_id(ids["ann"], str(ids["ann_card"]))]
    )
    assert clearing.debits_pending == clearing.debits_posted == 0
    process.stop()
