"""Family accounts: a member spends the payer's money up to a monthly limit that the ledger
enforces -- under concurrency, across the month's turn, after a revocation and a crash."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formicary.ledger import Engine, LedgerService, Transfer, open_store
from formicary.payments import (
    BillerCategory,
    CampaignKind,
    FakeBank,
    FamilyLimitExceeded,
    GrantRevoked,
    GrantState,
    IdentityLevel,
    IdentityLevelTooLow,
    InsufficientFunds,
    InvalidRequest,
    InvalidState,
    PaymentError,
    Payments,
    PaymentsStore,
    UnknownParty,
    cutoff_ns,
    family_grant_account_id,
    user_wallet_id,
)
from formicary.payments.family import month_of
from formicary.payments.parties import luhn_ok
from tests.payments.world import SECRET, T0_NS, ManualClock, World

# Midnight starting 1 December 2025 in Beijing: November's limit ends, December's begins.
DECEMBER_NS = cutoff_ns(date(2025, 11, 30))
HOUR_NS = 3600 * 10**9


def family(world: World, balance_fen: int = 100_000, limit_fen: int = 10_000):  # type: ignore[no-untyped-def]
    payer, payer_card = world.user(balance_fen)
    member, _ = world.user()
    grant = world.payments.family.grant(payer.id, member.id, limit_fen)
    return payer, payer_card, member, grant


def available(world: World, account_id: int) -> int:
    (a,) = world.ledger.lookup_accounts([account_id])
    return a.credits_posted - a.debits_posted - a.debits_pending


# ----------------------------------------------------------------- granting and paying


def test_a_grant_is_validated_and_idempotent(world: World) -> None:
    payer, _, member, grant = family(world)
    fam = world.payments.family
    assert (grant.payer_id, grant.member_id, grant.state) == (payer.id, member.id, "active")
    assert fam.grant(payer.id, member.id, 10_000) == grant
    with pytest.raises(InvalidState):
        fam.grant(payer.id, member.id, 20_000)  # revoke first to change the limit
    with pytest.raises(InvalidRequest):
        fam.grant(payer.id, payer.id, 1_000)
    with pytest.raises(InvalidRequest):
        fam.grant(payer.id, member.id, 0)
    with pytest.raises(UnknownParty):
        fam.grant(payer.id, 10_000, 1_000)
    basic, _ = world.user(level=IdentityLevel.BASIC)
    with pytest.raises(IdentityLevelTooLow):  # 1,000 yuan a transfer at level BASIC
        fam.grant(basic.id, member.id, 100_001)
    assert fam.grants_of_payer(payer.id) == [grant] == fam.grants_of_member(member.id)
    assert fam.remaining_fen(grant.id) == 10_000
    stranger, _ = world.user()
    with pytest.raises(UnknownParty):
        fam.funding(grant.id, stranger.id)  # only the member pays with it
    with pytest.raises(UnknownParty):
        fam.statement(stranger.id, grant.id)  # only the payer reads it
    with pytest.raises(UnknownParty):
        fam.revoke(member.id, grant.id)


def test_the_member_spends_the_payers_money_up_to_the_limit(world: World) -> None:
    payer, _, member, grant = family(world, 100_000, 10_000)
    shop = world.merchant("offline_qr")
    fam = world.payments.family
    paid = fam.pay(world.order(shop, 6_000).id, member.id, grant.id)
    assert paid.state == "succeeded" and paid.user_id == member.id
    # The month's limit was set aside from the payer's wallet at the first payment.
    assert world.posted(user_wallet_id(payer.id)) == 90_000
    assert world.posted(user_wallet_id(member.id)) == 0
    assert fam.remaining_fen(grant.id) == 4_000

    over = world.order(shop, 4_001)
    with pytest.raises(FamilyLimitExceeded):
        fam.pay(over.id, member.id, grant.id)
    assert fam.remaining_fen(grant.id) == 4_000  # nothing moved
    fam.pay(world.order(shop, 4_000).id, member.id, grant.id)
    assert fam.remaining_fen(grant.id) == 0
    with pytest.raises(FamilyLimitExceeded):
        fam.pay(world.order(shop, 1).id, member.id, grant.id)

    statement = fam.statement(payer.id, grant.id)
    assert (statement.month, statement.state) == ("2025-11", "open")
    assert [line.drawn_fen for line in statement.lines] == [6_000, 4_000]
    assert statement.spent_fen == statement.drawn_fen == 10_000
    assert statement.remaining_fen == 0 and statement.reconciled
    assert world.payments.parties.merchant_balance(shop.id) == 10_000 - 36 - 24  # 0.6% fees
    assert world.books_balance()


def test_the_payer_must_be_able_to_set_the_limit_aside(world: World) -> None:
    payer, payer_card, member, grant = family(world, 1_000, 5_000)
    shop = world.merchant()
    order = world.order(shop, 100)
    with pytest.raises(InsufficientFunds) as refused:
        world.payments.family.pay(order.id, member.id, grant.id)
    assert type(refused.value) is InsufficientFunds  # the payer's wallet, not the limit
    assert world.posted(user_wallet_id(payer.id)) == 1_000
    world.payments.parties.top_up(payer.id, payer_card.id, 4_000, request_id="more")
    assert world.payments.family.pay(order.id, member.id, grant.id).state == "succeeded"
    assert world.posted(user_wallet_id(payer.id)) == 0
    assert world.payments.family.remaining_fen(grant.id) == 4_900


def test_a_coupon_pays_its_part_and_the_grant_only_the_rest(world: World) -> None:
    payer, _, member, grant = family(world)
    shop = world.merchant()
    packet = world.payments.campaigns.create(
        "d11", CampaignKind.RED_PACKET, discount_fen=300, budget_fen=3_000
    )
    paid = world.payments.family.pay(
        world.order(shop, 1_000).id, member.id, grant.id, campaign_id=packet.id
    )
    assert (paid.coupon_fen, paid.payer_fen) == (300, 700)
    assert world.payments.family.remaining_fen(grant.id) == 9_300
    (line,) = world.payments.family.statement(payer.id, grant.id).lines
    assert (line.amount_fen, line.coupon_fen, line.drawn_fen) == (1_000, 300, 700)


def test_a_member_can_pay_a_bill_and_a_merchant_qr_from_the_grant(world: World) -> None:
    payer, _, member, grant = family(world, 200_000, 100_000)
    fam, bills = world.payments.family, world.payments.bills
    grid = bills.register_biller(
        "grid", BillerCategory.ELECTRICITY, settlement_bank_code="CMB",
        settlement_account_number="6214830000000001",
    )  # fmt: skip
    number = next(f"{n:09d}{d}" for n in range(1, 99) for d in range(10) if luhn_ok(f"{n:09d}{d}"))
    bill = bills.lookup(grid.id, number)[-1]
    paid = bills.pay(bill.id, member.id, request_id="b-1", funding=fam.funding(grant.id, member.id))
    assert paid.state == "succeeded"
    shop = world.merchant("offline_qr")
    qr = world.payments.offline.merchant_qr(shop.id)
    world.payments.offline.pay_merchant_qr(
        member.id, qr, 1_200, request_id="qr-1", funding=fam.funding(grant.id, member.id)
    )
    statement = fam.statement(payer.id, grant.id)
    assert [line.drawn_fen for line in statement.lines] == [bill.amount_fen, 1_200]
    assert statement.lines[0].description.startswith("electricity bill")
    assert fam.remaining_fen(grant.id) == 100_000 - bill.amount_fen - 1_200
    assert statement.reconciled


# ----------------------------------------------------------------- concurrency

THREADS = 8


def _race(world: World, member_id: int, grant_id: int, amounts: Sequence[int]) -> list[str]:
    """Pay `amounts` as the member from many threads at once; the outcome of each."""
    shop = world.merchant()
    orders = [world.order(shop, amount) for amount in amounts]
    start = threading.Barrier(min(THREADS, len(orders)))

    def pay(i: int) -> str:
        if i < THREADS:
            start.wait()  # the first payments start together, to race for the month's funding
        try:
            world.payments.family.pay(orders[i].id, member_id, grant_id)
            return "paid"
        except FamilyLimitExceeded:
            return "over"
        except InsufficientFunds:
            return "payer short"

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(pay, range(len(orders))))


def test_the_limit_holds_under_many_concurrent_payments(world: World) -> None:
    payer, _, member, grant = family(world, 100_000, 10_000)
    grant_account = family_grant_account_id(grant.id, month_of(world.clock()))
    stop, violations = threading.Event(), []

    def watch() -> None:
        # Sampled while the payments run: neither the grant nor the payer's wallet ever has
        # more debits (posted and pending) than credits.
        while not stop.is_set():
            for account in world.ledger.lookup_accounts([grant_account, user_wallet_id(payer.id)]):
                if account.debits_posted + account.debits_pending > account.credits_posted:
                    violations.append(account)

    watcher = threading.Thread(target=watch)
    watcher.start()
    outcomes = _race(world, member.id, grant.id, [300] * 80)  # 24,000 asked of 10,000
    stop.set()
    watcher.join()
    assert violations == []
    assert Counter(outcomes) == {"paid": 33, "over": 80 - 33}
    assert world.payments.family.remaining_fen(grant.id) == 100
    statement = world.payments.family.statement(payer.id, grant.id)
    assert statement.drawn_fen == 9_900 and statement.reconciled
    assert world.books_balance()


@settings(
    max_examples=40,
    deadline=None,
    # The world is shared on purpose: each example makes its own payer, member and grant.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    limit_fen=st.integers(1, 20_000),
    balance_fen=st.integers(0, 30_000),
    amounts=st.lists(st.integers(1, 6_000), min_size=1, max_size=24),
)
def test_family_limits_are_never_overspent_under_concurrency(
    world: World, limit_fen: int, balance_fen: int, amounts: list[int]
) -> None:
    payer, _, member, grant = family(world, balance_fen, limit_fen)
    outcomes = _race(world, member.id, grant.id, amounts)
    spent_fen = sum(a for a, o in zip(amounts, outcomes, strict=True) if o == "paid")
    assert spent_fen <= limit_fen
    if balance_fen < limit_fen:
        # The limit could not be set aside: nothing moved, nobody paid.
        assert set(outcomes) == {"payer short"}
        assert world.posted(user_wallet_id(payer.id)) == balance_fen
    else:
        assert "payer short" not in outcomes
        left_fen = limit_fen - spent_fen
        # The limit only shrinks, so every refusal asked for more than was left at the end.
        assert all(a > left_fen for a, o in zip(amounts, outcomes, strict=True) if o == "over")
        assert world.payments.family.remaining_fen(grant.id) == left_fen
        assert available(world, user_wallet_id(payer.id)) == balance_fen - limit_fen >= 0
    statement = world.payments.family.statement(payer.id, grant.id)
    assert statement.drawn_fen == spent_fen and statement.reconciled
    world.payments.family.revoke(payer.id, grant.id)
    assert world.posted(user_wallet_id(payer.id)) == balance_fen - spent_fen >= 0
    assert available(world, family_grant_account_id(grant.id, 202511)) == 0
    assert world.books_balance()


# ----------------------------------------------------------------- months


def test_a_new_month_starts_a_new_limit_and_returns_the_old_ones_rest(world: World) -> None:
    payer, _, member, grant = family(world, 100_000, 5_000)
    idle_payer, _, idle_member, idle_grant = family(world, 100_000, 2_000)
    shop = world.merchant()
    fam = world.payments.family
    fam.pay(world.order(shop, 4_000).id, member.id, grant.id)
    fam.pay(world.order(shop, 500).id, idle_member.id, idle_grant.id)
    november = fam.funding(grant.id, member.id)

    world.clock.now_ns = DECEMBER_NS - 1  # 23:59:59.999999999 on 30 November, Beijing time
    assert month_of(world.clock()) == 202511
    with pytest.raises(FamilyLimitExceeded):
        fam.pay(world.order(shop, 1_001).id, member.id, grant.id)
    world.clock.now_ns = DECEMBER_NS
    assert month_of(world.clock()) == 202512
    assert fam.remaining_fen(grant.id) == 5_000  # a new limit
    with pytest.raises(InvalidRequest):  # November's funding does not pay in December
        world.payments.cashier.pay(world.order(shop, 100).id, member.id, november)

    fam.pay(world.order(shop, 4_500).id, member.id, grant.id)
    # November closed when December opened: its unused 1,000 went back before 5,000 was set
    # aside for December.
    assert world.posted(user_wallet_id(payer.id)) == 100_000 - 4_000 - 5_000
    nov = fam.statement(payer.id, grant.id, "2025-11")
    dec = fam.statement(payer.id, grant.id, "2025-12")
    assert (nov.state, nov.drawn_fen, nov.returned_fen, nov.remaining_fen) == (
        "closed", 4_000, 1_000, 0
    )  # fmt: skip
    assert (dec.state, dec.drawn_fen, dec.remaining_fen) == ("open", 4_500, 500)
    assert nov.reconciled and dec.reconciled
    assert [m.month for m in fam.months(grant.id)] == [202511, 202512]
    assert fam.statement(payer.id, grant.id, "2026-01").state == "unused"
    with pytest.raises(InvalidRequest):
        fam.statement(payer.id, grant.id, "2025-13")

    # The idle member did not pay in December: recovery (or a monthly job) closes November.
    assert world.posted(user_wallet_id(idle_payer.id)) == 98_000
    assert world.payments.recover().finished == 1
    assert world.posted(user_wallet_id(idle_payer.id)) == 99_500
    assert fam.close_ended_months() == 0
    assert world.books_balance()


# ----------------------------------------------------------------- revocation and refunds


def test_revoking_returns_the_unused_money_and_stops_every_way_to_pay(world: World) -> None:
    payer, _, member, grant = family(world, 100_000, 10_000)
    shop = world.merchant()
    fam = world.payments.family
    paid = fam.pay(world.order(shop, 3_000).id, member.id, grant.id)
    early = fam.funding(grant.id, member.id)  # taken before the revocation

    revoked = fam.revoke(payer.id, grant.id)
    assert revoked.state == GrantState.REVOKED and revoked.revoked_ns == world.clock()
    assert world.posted(user_wallet_id(payer.id)) == 97_000
    assert fam.remaining_fen(grant.id) == 0
    assert available(world, family_grant_account_id(grant.id, 202511)) == 0
    with pytest.raises(GrantRevoked):
        fam.pay(world.order(shop, 100).id, member.id, grant.id)
    with pytest.raises(GrantRevoked):
        world.payments.cashier.pay(world.order(shop, 100).id, member.id, early)
    assert fam.pay(paid.order_id, member.id, grant.id) == paid  # a paid order stays paid

    assert fam.revoke(payer.id, grant.id) == revoked  # idempotent: nothing moves again
    assert world.posted(user_wallet_id(payer.id)) == 97_000
    statement = fam.statement(payer.id, grant.id)
    assert (statement.state, statement.drawn_fen, statement.returned_fen) == (
        "closed", 3_000, 7_000
    )  # fmt: skip
    assert statement.reconciled

    # A new grant starts afresh (its own accounts), in the same month.
    again = fam.grant(payer.id, member.id, 2_000)
    assert again.id != grant.id
    fam.pay(world.order(shop, 2_000).id, member.id, again.id)
    assert world.posted(user_wallet_id(payer.id)) == 95_000
    assert world.books_balance()


def test_refunds_restore_an_open_month_and_go_to_the_payer_once_closed(world: World) -> None:
    payer, _, member, grant = family(world, 100_000, 10_000)
    shop = world.merchant()
    fam = world.payments.family
    paid = fam.pay(world.order(shop, 4_000).id, member.id, grant.id)
    world.payments.refunds.refund(paid.id, 1_500, request_no="r-1")
    assert fam.remaining_fen(grant.id) == 7_500  # the member's limit grew back
    assert world.posted(user_wallet_id(member.id)) == 0  # the payer's money, not the member's
    statement = fam.statement(payer.id, grant.id)
    assert (statement.drawn_fen, statement.refunded_fen, statement.spent_fen) == (
        4_000, 1_500, 2_500
    )  # fmt: skip
    assert statement.reconciled

    fam.revoke(payer.id, grant.id)
    assert world.posted(user_wallet_id(payer.id)) == 100_000 - 2_500
    world.payments.refunds.refund(paid.id, 1_000, request_no="r-2")  # the month is closed
    assert world.posted(user_wallet_id(payer.id)) == 100_000 - 1_500
    assert available(world, family_grant_account_id(grant.id, 202511)) == 0
    statement = fam.statement(payer.id, grant.id)
    assert (statement.spent_fen, statement.returned_fen) == (1_500, 8_500)
    assert statement.reconciled
    assert world.books_balance()


# ----------------------------------------------------------------- crash safety


class Crash(Exception):
    """The process died (injected)."""


class CrashingLedger:
    """A LedgerService that dies around its `crash_at`-th transfer submission."""

    def __init__(self, inner: LedgerService) -> None:
        self.inner = inner
        self.crash_at = 0
        self.after_commit = False
        self.submissions = 0

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[str]:
        self.submissions += 1
        dies = self.submissions == self.crash_at
        if dies and not self.after_commit:
            raise Crash
        results = self.inner.create_transfers(transfers)
        if dies:
            raise Crash
        return results

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Process:
    """One payments process over files that outlive it."""

    def __init__(self, tmp: Path, clock: ManualClock, bank: FakeBank) -> None:
        tmp.mkdir(exist_ok=True)
        self.ledger = LedgerService(open_store(f"sqlite:///{tmp}/ledger.db"), clock_ns=clock)
        self.ledger.start()
        self.store = PaymentsStore(tmp / "payments.db")
        self.crashing = CrashingLedger(self.ledger)
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


def _setup(process: Process, bank: FakeBank, clock: ManualClock) -> dict[str, int]:
    p = process.payments
    p.setup()
    world = World(p, process.ledger, bank, clock)
    payer, _ = world.user(100_000)
    member, _ = world.user()
    shop = world.merchant()
    grant = p.family.grant(payer.id, member.id, 10_000)
    grid = p.bills.register_biller(
        "grid", BillerCategory.ELECTRICITY, settlement_bank_code="CMB",
        settlement_account_number="6214830000000001",
    )  # fmt: skip
    bill = p.bills.lookup(grid.id, "0000001008")[-1]
    ids = {"payer": payer.id, "member": member.id, "grant": grant.id, "bill": bill.id}
    for name, amount in (("a", 3_000), ("b", 2_000), ("c", 2_500)):
        ids[name] = world.order(shop, amount).id
    return ids


def _workload(ids: dict[str, int], clock: ManualClock) -> list[Callable[[Payments], object]]:
    """Retryable client calls (each idempotent by its key)."""

    def paid(p: Payments, order: str) -> int:
        return p.cashier.payments_of(ids[order])[-1].id

    def in_december(p: Payments) -> object:
        clock.now_ns = max(clock.now_ns, DECEMBER_NS + HOUR_NS)  # absolute: retry-safe
        return p.family.pay(ids["c"], ids["member"], ids["grant"])

    return [
        lambda p: p.family.pay(ids["a"], ids["member"], ids["grant"]),
        lambda p: p.family.pay(ids["b"], ids["member"], ids["grant"]),
        lambda p: p.bills.pay(
            ids["bill"],
            ids["member"],
            1_500,
            request_id="bf",
            funding=p.family.funding(ids["grant"], ids["member"]),
        ),
        lambda p: p.bills.pay(ids["bill"], ids["payer"], request_id="bw"),
        lambda p: p.refunds.refund(paid(p, "a"), 1_000, request_no="r-1"),
        in_december,
        lambda p: p.family.revoke(ids["payer"], ids["grant"]),
        lambda p: p.refunds.refund(paid(p, "c"), 500, request_no="r-2"),
    ]


def _state(process: Process, bank: FakeBank) -> dict[str, Any]:
    def ledger_state(engine: Engine) -> Any:
        accounts = {
            a.id: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in engine.accounts.values()
        }
        return accounts, {t.id: (t.amount, t.flags) for t in engine.transfers.values()}

    accounts, transfers = process.ledger.submit_query(ledger_state).result()
    queries = {
        "payments": "SELECT id, state FROM payments",
        "refunds": "SELECT id, state FROM refunds",
        "bill_payments": "SELECT id, state, payment_id FROM bill_payments",
        "family_grants": "SELECT id, state FROM family_grants",
        "family_months": "SELECT id, month, state, sweeps, swept_fen FROM family_months",
    }
    rows = {
        name: [tuple(r) for r in process.store.rows(f"{q} ORDER BY id")]
        for name, q in queries.items()
    }
    return {"accounts": accounts, "transfers": transfers, "rows": rows}


def _run(tmp: Path, crash_at: int, after: bool) -> tuple[dict[str, Any], int, bool, int]:
    clock, bank = ManualClock(T0_NS), FakeBank()
    process = Process(tmp, clock, bank)
    ids = _setup(process, bank, clock)
    process.crashing.crash_at, process.crashing.after_commit = crash_at, after
    process.crashing.submissions = 0  # count the workload's submissions only
    crashed = False
    for operation in _workload(ids, clock):
        try:
            operation(process.payments)
        except Crash:
            crashed = True
            process.stop()
            process = Process(tmp, clock, bank)  # restart: no more crashes
            process.payments.recover()
            operation(process.payments)  # the client retries with the same key
        except PaymentError as error:  # pragma: no cover - the workload never fails
            raise AssertionError(error) from error
    state = _state(process, bank)
    payer_fen = process.payments.parties.wallet_balance(ids["payer"])
    submissions = process.crashing.submissions
    process.stop()
    return state, submissions, crashed, payer_fen


def test_a_crash_at_any_ledger_submission_applies_each_movement_once(tmp_path: Path) -> None:
    reference, submissions, _, payer_fen = _run(tmp_path / "reference", 0, False)
    assert submissions >= 12
    bill_fen = 9_711  # the simulated 2025-10 bill of account 0000001008 at biller 1
    # November: 3,000 + 2,000 + 1,500 (bill) - 1,000 refunded; the payer paid the bill's rest;
    # December: 2,500 - 500 refunded after the revocation.
    assert payer_fen == 100_000 - 5_500 - (bill_fen - 1_500) - 2_000
    for crash_at in range(1, submissions + 1):
        for after in (False, True):
            state, _, crashed, _ = _run(tmp_path / f"crash-{crash_at}-{after}", crash_at, after)
            assert crashed
            assert state == reference, (crash_at, after)
