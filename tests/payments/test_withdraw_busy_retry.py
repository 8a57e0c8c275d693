"""A withdrawal the bank answers busy is safe to retry with the same request id.

Busy means the bank did nothing: the withdrawal fails with `BankBusy`, its ledger reservation
is voided at once (the wallet's available balance is back, and the ledger shows the reserve and
its void), and nothing is left for `recover()`. A retry with the same request id reserves again
(new transfer ids, the same bank request id `withdraw-<id>`) and asks the bank again; once the
bank pays out, the wallet is debited exactly once. A declined withdrawal stays declined, and the
request id with other terms is an idempotency conflict. The bank is made busy by the fake's own
switches (`busy_banks`, scripted answers) and by a real channel's flow control.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from formicary.api import create_app
from formicary.channels import (
    NS_PER_S,
    BankProfile,
    Channel,
    FlowRule,
    Router,
    SimulatedBank,
)
from formicary.channels import ManualClock as ChannelClock
from formicary.ledger import LedgerService, Transfer, TransferFlags, open_store
from formicary.payments import (
    BankBusy,
    BankDeclined,
    CardTransferState,
    FakeBank,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidState,
    Outcome,
    Payments,
    PaymentsStore,
    Reply,
    bank_clearing_id,
    user_wallet_id,
)
from formicary.payments.chart import ENTITY_MAX, TRANSFER_SPACE, Op
from formicary.payments.parties import WITHDRAWAL_ATTEMPTS_MAX
from formicary.sim import ChannelGateway
from tests.payments.world import SECRET, T0_NS, ManualClock, World, card_number

ICBC = bank_clearing_id("ICBC")
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)


def _wallet(world: World, user_id: int) -> tuple[int, int, int]:
    """(credits_posted, debits_posted, debits_pending) of a user's wallet, from the ledger."""
    (a,) = world.ledger.lookup_accounts([user_wallet_id(user_id)])
    return a.credits_posted, a.debits_posted, a.debits_pending


def _withdrawal_legs(world: World, user_id: int, row_id: int) -> list[Transfer]:
    """The ledger transfers of withdrawal `row_id` on the user's wallet, oldest first."""

    def of_row(t: Transfer) -> bool:
        return (
            t.id >> 56 == TRANSFER_SPACE
            and (t.id >> 48) & 0xFF == Op.WITHDRAWAL
            and (t.id >> 8) & ENTITY_MAX == row_id
        )

    transfers = world.ledger.account_transfers(user_wallet_id(user_id), limit=1_000)
    return [t for t in transfers if of_row(t)]


def _kinds(legs: Sequence[Transfer]) -> list[str]:
    names = {_PENDING: "reserve", _POST: "post", _VOID: "void"}
    return [names[t.flags & (_PENDING | _POST | _VOID)] for t in legs]


def _row(world: World, row_id: int) -> dict[str, Any]:
    (row,) = world.payments.ctx.store.rows("SELECT * FROM card_transfers WHERE id = ?", (row_id,))
    return dict(row)


# ------------------------------------------------------------------ busy, then retried


def test_a_busy_withdrawal_is_released_and_its_retry_pays_out_exactly_once(world: World) -> None:
    user, card = world.user(10_000)
    parties = world.payments.parties
    world.bank.script("payout", Reply(Outcome.BUSY, "throttled"))
    with pytest.raises(BankBusy, match="retry the withdrawal with the same request id 'w-1'"):
        parties.withdraw(user.id, card.id, 2_500, request_id="w-1")
    # Nothing moved, nothing stays reserved: the reservation was voided, in the ledger.
    assert _wallet(world, user.id) == (10_000, 0, 0)
    assert parties.wallet_balance(user.id) == 10_000
    assert world.bank.paid_out_fen["ICBC"] == 0
    (row,) = world.payments.ctx.store.rows("SELECT * FROM card_transfers WHERE kind = 'withdrawal'")
    assert (row["state"], row["failure_code"]) == ("failed", "bank_busy")
    legs = _withdrawal_legs(world, user.id, row["id"])
    assert _kinds(legs) == ["reserve", "void"] and legs[1].pending_id == legs[0].id
    report = world.payments.recover()
    assert (report.finished, report.waiting) == (0, 0)

    done = parties.withdraw(user.id, card.id, 2_500, request_id="w-1")
    assert done.id == row["id"] and done.state == CardTransferState.SUCCEEDED
    assert parties.withdraw(user.id, card.id, 2_500, request_id="w-1") == done
    # Exactly once, to the fen: the wallet, the bank's clearing account and the bank itself.
    assert _wallet(world, user.id) == (10_000, 2_500, 0)
    assert parties.wallet_balance(user.id) == 7_500
    assert world.posted(ICBC) == -10_000 + 2_500
    assert world.bank.paid_out_fen["ICBC"] == 2_500
    assert world.bank.calls["payout"] == 2  # the busy call and the one that paid
    legs = _withdrawal_legs(world, user.id, row["id"])
    assert _kinds(legs) == ["reserve", "void", "reserve", "post"]
    assert len({t.id for t in legs}) == 4 and legs[3].pending_id == legs[2].id
    assert world.books_balance()
    assert world.payments.recover().waiting == 0
    assert _wallet(world, user.id) == (10_000, 2_500, 0)


def test_busy_twice_then_the_bank_pays_once(world: World) -> None:
    user, card = world.user(10_000)
    parties = world.payments.parties
    world.bank.busy_banks.add("ICBC")
    for _ in range(2):
        with pytest.raises(BankBusy, match="ICBC busy"):
            parties.withdraw(user.id, card.id, 3_333, request_id="w-1")
        assert _wallet(world, user.id) == (10_000, 0, 0)
    world.bank.busy_banks.clear()
    done = parties.withdraw(user.id, card.id, 3_333, request_id="w-1")
    assert done.state == CardTransferState.SUCCEEDED
    assert parties.withdraw(user.id, card.id, 3_333, request_id="w-1") == done
    assert _wallet(world, user.id) == (10_000, 3_333, 0)
    assert parties.wallet_balance(user.id) == 6_667
    assert world.posted(ICBC) == -10_000 + 3_333
    assert (world.bank.paid_out_fen["ICBC"], world.bank.calls["payout"]) == (3_333, 3)
    legs = _withdrawal_legs(world, user.id, done.id)
    assert _kinds(legs) == ["reserve", "void", "reserve", "void", "reserve", "post"]
    assert len({t.id for t in legs}) == 6
    assert world.books_balance()


def test_a_declined_withdrawal_stays_declined(world: World) -> None:
    user, card = world.user(10_000)
    parties = world.payments.parties
    world.bank.script("payout", Reply(Outcome.DECLINED, "account frozen"))
    for _ in range(3):
        with pytest.raises(BankDeclined, match="account frozen"):
            parties.withdraw(user.id, card.id, 4_000, request_id="w-1")
    assert world.bank.calls["payout"] == 1  # never asked again
    assert _wallet(world, user.id) == (10_000, 0, 0)
    assert world.bank.paid_out_fen["ICBC"] == 0
    # A new request id is a new withdrawal.
    assert parties.withdraw(user.id, card.id, 4_000, request_id="w-2").state == "succeeded"
    assert parties.wallet_balance(user.id) == 6_000
    assert world.books_balance()


def test_a_retry_with_other_terms_is_refused_and_changes_nothing(world: World) -> None:
    user, card = world.user(10_000)
    other_card = world.payments.parties.bind_card(user.id, "CMB", card_number(99))
    parties = world.payments.parties
    world.bank.busy_banks.add("ICBC")
    with pytest.raises(BankBusy):
        parties.withdraw(user.id, card.id, 1_000, request_id="w-1")
    world.bank.busy_banks.clear()
    with pytest.raises(IdempotencyConflict):
        parties.withdraw(user.id, card.id, 1_001, request_id="w-1")
    with pytest.raises(IdempotencyConflict):
        parties.withdraw(user.id, other_card.id, 1_000, request_id="w-1")
    (row,) = world.payments.ctx.store.rows("SELECT * FROM card_transfers WHERE kind = 'withdrawal'")
    assert (row["state"], row["failure_code"]) == ("failed", "bank_busy")
    assert _wallet(world, user.id) == (10_000, 0, 0)
    assert world.bank.calls["payout"] == 1
    # The original terms still go through, once.
    assert parties.withdraw(user.id, card.id, 1_000, request_id="w-1").state == "succeeded"
    assert sum(world.bank.paid_out_fen.values()) == 1_000
    assert parties.wallet_balance(user.id) == 9_000


def test_a_retry_the_wallet_no_longer_covers_fails_as_insufficient_funds(world: World) -> None:
    user, card = world.user(5_000)
    parties = world.payments.parties
    world.bank.script("payout", Reply(Outcome.BUSY, "throttled"))
    with pytest.raises(BankBusy):
        parties.withdraw(user.id, card.id, 4_000, request_id="w-1")
    parties.withdraw(user.id, card.id, 3_000, request_id="w-2")  # spent in between
    for _ in range(2):
        with pytest.raises(InsufficientFunds):
            parties.withdraw(user.id, card.id, 4_000, request_id="w-1")
    assert _wallet(world, user.id) == (5_000, 3_000, 0)
    assert world.bank.paid_out_fen["ICBC"] == 3_000
    assert world.books_balance()


def test_a_request_id_busy_on_every_attempt_is_used_up_and_says_so(world: World) -> None:
    """Each attempt spends three transfer ids of the withdrawal's leg byte: after
    WITHDRAWAL_ATTEMPTS_MAX busy answers the request id fails for good (409 over HTTP), with
    nothing reserved, and a new request id starts afresh."""
    user, card = world.user(10_000)
    parties = world.payments.parties
    world.bank.busy_banks.add("ICBC")
    for _ in range(WITHDRAWAL_ATTEMPTS_MAX):
        with pytest.raises(BankBusy):
            parties.withdraw(user.id, card.id, 100, request_id="w-1")
    world.bank.busy_banks.clear()
    for _ in range(2):
        with pytest.raises(InvalidState, match="use a new request id"):
            parties.withdraw(user.id, card.id, 100, request_id="w-1")
    assert world.bank.calls["payout"] == WITHDRAWAL_ATTEMPTS_MAX
    assert _wallet(world, user.id) == (10_000, 0, 0)
    (row,) = world.payments.ctx.store.rows("SELECT * FROM card_transfers WHERE kind = 'withdrawal'")
    legs = _withdrawal_legs(world, user.id, row["id"])
    assert _kinds(legs) == ["reserve", "void"] * WITHDRAWAL_ATTEMPTS_MAX
    assert len({t.id for t in legs}) == 2 * WITHDRAWAL_ATTEMPTS_MAX
    assert parties.withdraw(user.id, card.id, 100, request_id="w-2").state == "succeeded"
    assert world.bank.paid_out_fen["ICBC"] == 100
    assert world.books_balance()


def test_concurrent_retries_of_a_busy_withdrawal_pay_out_once(world: World) -> None:
    user, card = world.user(10_000)
    parties = world.payments.parties
    world.bank.busy_banks.add("ICBC")
    with pytest.raises(BankBusy):
        parties.withdraw(user.id, card.id, 700, request_id="w-1")
    world.bank.busy_banks.clear()
    barrier = threading.Barrier(8)
    results: list[int] = []
    errors: list[BaseException] = []

    def retry() -> None:
        barrier.wait()
        try:
            results.append(parties.withdraw(user.id, card.id, 700, request_id="w-1").id)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 8 and len(set(results)) == 1
    assert _wallet(world, user.id) == (10_000, 700, 0)
    assert world.bank.paid_out_fen["ICBC"] == 700
    assert _kinds(_withdrawal_legs(world, user.id, results[0])) == [
        "reserve",
        "void",
        "reserve",
        "post",
    ]
    assert world.books_balance()


# ------------------------------------------------------------------ crashes around a busy answer


class Crash(Exception):
    """The process died (injected)."""


class DyingLedger:
    """A LedgerService that dies once around the first submission `dies_on` matches: before
    the ledger sees it, or after the ledger committed it."""

    def __init__(
        self, inner: LedgerService, dies_on: Callable[[Transfer], bool], after_commit: bool
    ) -> None:
        self.inner = inner
        self.dies_on = dies_on
        self.after_commit = after_commit
        self.armed = True
        self.on_lookup: Callable[[], None] | None = None

    def lookup_transfers(self, ids: Sequence[int]) -> list[Transfer]:
        if self.on_lookup is not None:
            self.on_lookup()
        return self.inner.lookup_transfers(ids)

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[str]:
        dies = self.armed and any(self.dies_on(t) for t in transfers)
        if dies:
            self.armed = False
            if not self.after_commit:
                raise Crash("before the submission")
        results = self.inner.create_transfers(transfers)
        if dies:
            raise Crash("after the submission committed")
        return results

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def restartable(ledger: LedgerService, bank: FakeBank, clock: ManualClock) -> Iterator[Any]:
    """make(dies_on, after_commit) -> a World whose ledger dies once; restart() -> a World with
    a new `Payments` over the same store, ledger and bank (the process came back)."""
    store = PaymentsStore(None)

    def make(dies_on: Callable[[Transfer], bool], after_commit: bool) -> World:
        dying = DyingLedger(ledger, dies_on, after_commit)
        payments = Payments(dying, store, bank, secret=SECRET, clock_ns=clock)  # type: ignore[arg-type]
        payments.setup()
        return World(payments, ledger, bank, clock)

    def restart() -> World:
        return World(
            Payments(ledger, store, bank, secret=SECRET, clock_ns=clock), ledger, bank, clock
        )

    yield make, restart
    store.close()


def test_a_retry_racing_another_cannot_leave_a_reservation_behind(restartable: Any) -> None:
    """Retry A reopens the busy row and looks up its attempts; retry B arrives then. B must wait
    for A (one thread per row): had B read the row while it was open and chosen its attempt
    after A's busy void, it would reserve a third time for a row already failed, a pending
    debit without a timeout that nothing would ever release."""
    make, _ = restartable
    world = make(lambda t: False, False)
    dying: DyingLedger = world.payments.ctx.ledger.service  # type: ignore[assignment]
    user, card = world.user(10_000)
    parties = world.payments.parties
    world.bank.busy_banks.add("ICBC")
    with pytest.raises(BankBusy):
        parties.withdraw(user.id, card.id, 700, request_id="w-1")
    a_done = threading.Event()
    b_answers: list[BaseException] = []

    def retry_b() -> None:
        try:
            parties.withdraw(user.id, card.id, 700, request_id="w-1")
        except BankBusy as e:
            b_answers.append(e)

    b = threading.Thread(target=retry_b)

    def on_lookup() -> None:
        if threading.current_thread() is b:
            a_done.wait(5)  # B chooses its attempt only after A is through
        elif not b.is_alive():
            b.start()
            time.sleep(0.2)  # B reads the row now, while A holds it open

    dying.on_lookup = on_lookup
    with pytest.raises(BankBusy):  # A: the bank is still busy
        parties.withdraw(user.id, card.id, 700, request_id="w-1")
    a_done.set()
    b.join()
    assert len(b_answers) == 1
    assert _wallet(world, user.id) == (10_000, 0, 0)
    (row,) = world.payments.ctx.store.rows("SELECT * FROM card_transfers WHERE kind = 'withdrawal'")
    assert (row["state"], row["failure_code"]) == ("failed", "bank_busy")
    assert _kinds(_withdrawal_legs(world, user.id, row["id"])) == ["reserve", "void"] * 2
    dying.on_lookup = None
    world.bank.busy_banks.clear()
    assert parties.withdraw(user.id, card.id, 700, request_id="w-1").state == "succeeded"
    assert _wallet(world, user.id) == (10_000, 700, 0)
    assert world.bank.paid_out_fen["ICBC"] == 700


def _is_void(t: Transfer) -> bool:
    return bool(t.flags & _VOID)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before", "after"])
def test_a_crash_around_the_busy_void_is_finished_by_recover_without_paying(
    restartable: Any, after_commit: bool
) -> None:
    """The bank said busy, then the process died around the void. Recovery must not ask the
    bank again (it would pay out a withdrawal whose reservation may be voided already): it
    finishes the void and fails the row as busy, and the client's retry then pays once."""
    make, restart = restartable
    world = make(_is_void, after_commit)
    user, card = world.user(10_000)
    world.bank.script("payout", Reply(Outcome.BUSY, "throttled"))
    with pytest.raises(Crash):
        world.payments.parties.withdraw(user.id, card.id, 2_500, request_id="w-1")

    world = restart()  # the bank answers again now
    report = world.payments.recover()
    assert (report.finished, report.waiting) == (1, 0)
    assert world.bank.calls["payout"] == 1 and world.bank.paid_out_fen["ICBC"] == 0
    assert _wallet(world, user.id) == (10_000, 0, 0)
    withdrawal = world.payments.parties.withdraw(user.id, card.id, 2_500, request_id="w-1")
    assert withdrawal.state == CardTransferState.SUCCEEDED
    assert world.bank.paid_out_fen["ICBC"] == 2_500
    assert _wallet(world, user.id) == (10_000, 2_500, 0)
    assert world.books_balance()


@pytest.mark.parametrize("answer", [Outcome.BUSY, Outcome.DECLINED])
def test_a_row_an_earlier_version_left_reserved_after_its_void_is_not_paid_out(
    restartable: Any, answer: Outcome
) -> None:
    """Before the bank's refusal was recorded ahead of the void, a crash between the void and
    the failed row left a reserved row with a voided reservation (and no failure code). Its
    recovery must not ask the bank (no longer busy, it would pay out against a voided
    reservation): it fails as busy, and the retry asks the bank again from a new reservation,
    which a declined payout's bank declines again from memory."""
    make, restart = restartable
    world = make(_is_void, True)
    user, card = world.user(10_000)
    world.bank.script("payout", Reply(answer, "refused"))
    with pytest.raises(Crash):
        world.payments.parties.withdraw(user.id, card.id, 2_500, request_id="w-1")
    store = world.payments.ctx.store
    with store.transaction() as conn:  # what the earlier version had written by then
        conn.execute("UPDATE card_transfers SET failure_code = '', failure_detail = ''")

    world = restart()
    assert world.payments.recover().waiting == 0
    assert (world.bank.calls["payout"], world.bank.paid_out_fen["ICBC"]) == (1, 0)
    assert _wallet(world, user.id) == (10_000, 0, 0)
    if answer is Outcome.DECLINED:
        with pytest.raises(BankDeclined):
            world.payments.parties.withdraw(user.id, card.id, 2_500, request_id="w-1")
        assert _wallet(world, user.id) == (10_000, 0, 0)
    else:
        world.payments.parties.withdraw(user.id, card.id, 2_500, request_id="w-1")
        assert _wallet(world, user.id) == (10_000, 2_500, 0)
    assert world.bank.paid_out_fen["ICBC"] == (2_500 if answer is Outcome.BUSY else 0)
    assert world.books_balance()


@pytest.mark.parametrize("after_commit", [False, True], ids=["before", "after"])
def test_a_crash_around_the_retrys_reservation_is_finished_by_recover_once(
    restartable: Any, after_commit: bool
) -> None:
    """The retry's new reservation dies around its submission; recovery (or the next retry)
    finishes the withdrawal exactly once."""
    attempts: list[int] = []

    def second_reserve(t: Transfer) -> bool:
        if t.flags & _PENDING and t.debit_account_id == user_wallet_id(1):
            attempts.append(t.id)
        return len(attempts) == 2

    make, restart = restartable
    world = make(second_reserve, after_commit)
    user, card = world.user(10_000)
    assert user.id == 1
    world.bank.busy_banks.add("ICBC")
    with pytest.raises(BankBusy):
        world.payments.parties.withdraw(user.id, card.id, 2_500, request_id="w-1")
    world.bank.busy_banks.clear()
    with pytest.raises(Crash):
        world.payments.parties.withdraw(user.id, card.id, 2_500, request_id="w-1")

    world = restart()
    world.payments.recover()
    done = world.payments.parties.withdraw(user.id, card.id, 2_500, request_id="w-1")
    assert done.state == CardTransferState.SUCCEEDED
    assert world.payments.recover().waiting == 0
    assert (world.bank.paid_out_fen["ICBC"], world.bank.calls["payout"]) == (2_500, 2)
    assert _wallet(world, user.id) == (10_000, 2_500, 0)
    assert world.books_balance()


# ------------------------------------------------------------------ through a real channel


def test_a_throttled_withdrawal_is_retried_with_the_same_id_once_the_bucket_refills(
    ledger: LedgerService, clock: ManualClock
) -> None:
    """One bank "ICBC" at 10 calls/s, one call per bucket: the top-up takes the token, the
    withdrawal right behind it is throttled by flow control (busy), and its retry a second
    later goes through under the same bank request id."""
    bank_clock = ChannelClock(1_731_254_400 * NS_PER_S)
    bank = SimulatedBank(
        BankProfile(name="ICBC", capacity_tps=1_000, latency_p50_ms=30.0, latency_p99_ms=30.0)
    )
    channel = Channel(bank, FlowRule(qps=10, burst=1), clock=bank_clock)
    store = PaymentsStore(None)
    payments = Payments(
        ledger,
        store,
        ChannelGateway(Router([channel], clock=bank_clock)),
        secret=SECRET,
        clock_ns=clock,
    )
    payments.setup()
    parties = payments.parties
    user = parties.register_user("ada")
    card = parties.bind_card(user.id, "ICBC", card_number(1))
    parties.top_up(user.id, card.id, 10_000, request_id="t-0")  # takes the only token
    with pytest.raises(BankBusy, match="flow_limit"):
        parties.withdraw(user.id, card.id, 4_000, request_id="w-1")
    assert parties.wallet_balance(user.id) == 10_000
    bank_clock.advance(NS_PER_S)
    done = parties.withdraw(user.id, card.id, 4_000, request_id="w-1")
    assert done.state == CardTransferState.SUCCEEDED
    bank_clock.advance(NS_PER_S)
    assert parties.withdraw(user.id, card.id, 4_000, request_id="w-1") == done
    assert parties.wallet_balance(user.id) == 6_000
    payouts = [r for r in channel.bank._records if r.startswith("payout:")]
    assert payouts == [f"payout:withdraw-{done.id}"]
    dp, dpo, cp, cpo = ledger.trial_balance(156)
    assert (dp, dpo) == (cp, cpo) and dp == 0
    store.close()


# ------------------------------------------------------------------ over HTTP


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    service = LedgerService(
        open_store(f"sqlite:///{tmp_path}/ledger.db"), clock_ns=ManualClock(T0_NS)
    )
    service.start()
    try:
        app = create_app(service=service, payments_dir=tmp_path / "payments")
        with TestClient(app) as test_client:
            yield test_client
    finally:
        service.close()


def test_a_busy_withdrawal_over_http_is_503_with_retry_after_like_a_top_up(
    client: TestClient,
) -> None:
    def post(path: str, body: Any) -> Any:
        return client.post(f"/v1/payments{path}", json=body)

    assert post("/users", {"name": "Ada", "identity_level": "full"}).status_code == 200
    card = post("/users/1/cards", {"bank_code": "ICBC", "card_number": card_number(1)}).json()
    seed = {"card_id": card["id"], "amount_fen": 10_000, "request_id": "seed"}
    assert post("/users/1/top-ups", seed).status_code == 200
    bank: FakeBank = client.app.state.payments.bank
    books = client.get("/v1/ledgers/156/trial-balance").json()

    bank.busy_banks.add("ICBC")
    top_up = post("/users/1/top-ups", {**seed, "request_id": "t-busy"})
    body = {"card_id": card["id"], "amount_fen": 2_500, "request_id": "w-1"}
    busy = post("/users/1/withdrawals", body)
    assert (busy.status_code, busy.json()["code"]) == (503, "bank_busy")
    assert busy.status_code == top_up.status_code
    assert busy.headers["retry-after"] == top_up.headers["retry-after"] == "1"
    assert busy.headers["content-type"].startswith("application/problem+json")
    assert "same request id 'w-1'" in busy.json()["detail"]
    assert client.get("/v1/payments/users/1/wallet").json()["available_fen"] == 10_000
    after = client.get("/v1/ledgers/156/trial-balance").json()
    assert after["balanced"] and after["debits_pending"] == books["debits_pending"] == 0

    bank.busy_banks.clear()
    other = post("/users/1/withdrawals", {**body, "amount_fen": 2_501})
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")
    done = post("/users/1/withdrawals", body)
    assert done.status_code == 200 and done.json()["state"] == "succeeded"
    assert post("/users/1/withdrawals", body).json() == done.json()
    assert client.get("/v1/payments/users/1/wallet").json()["available_fen"] == 7_500
    assert bank.paid_out_fen["ICBC"] == 2_500
    assert client.get("/v1/ledgers/156/trial-balance").json()["balanced"]


# ------------------------------------------------------------------ property


_ANSWERS = st.sampled_from(["ok", "busy", "busy", "declined"])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amounts=st.lists(st.integers(1, 6_000), min_size=1, max_size=3),
    calls=st.lists(st.tuples(st.integers(0, 2), _ANSWERS, st.booleans()), max_size=14),
)
def test_busy_and_ok_answers_in_any_order_never_pay_out_twice(
    world: World,
    amounts: list[int],
    calls: list[tuple[int, str, bool]],
) -> None:
    """Withdrawals retried with their request ids under any sequence of bank answers (and
    recoveries in between) pay out each at most once, exactly when one succeeded, and leave
    nothing reserved; the wallet, the bank and the books agree to the fen (a model says
    which call must reach the bank and what it must answer)."""
    balance = 10_000
    user, card = world.user(balance)
    parties, bank = world.payments.parties, world.bank
    tag = f"u{user.id}"
    state = ["new"] * len(amounts)
    paid_before, calls_before = bank.paid_out_fen["ICBC"], bank.calls["payout"]
    available, bank_calls = balance, 0
    for index, answer, recover in calls:
        i = index % len(amounts)
        amount = amounts[i]
        if answer == "busy":
            bank.busy_banks.add("ICBC")
        elif answer == "declined":
            bank.declined_cards.add(card.masked_number)
        try:
            result: str = parties.withdraw(user.id, card.id, amount, request_id=f"{tag}-{i}").state
        except BankBusy:
            result = "busy"
        except BankDeclined:
            result = "declined"
        except InsufficientFunds:
            result = "insufficient"
        finally:
            bank.busy_banks.clear()
            bank.declined_cards.clear()
        if state[i] in ("new", "busy"):  # the model: asks again, from a fresh reservation
            if amount > available:
                state[i] = "insufficient"
            else:
                bank_calls += 1
                state[i] = {"ok": "succeeded"}.get(answer, answer)
                available -= amount if answer == "ok" else 0
        assert result == state[i], (i, answer, state)
        assert _wallet(world, user.id) == (balance, balance - available, 0)
        if recover:
            assert world.payments.recover().waiting == 0
    paid = sum(a for a, s in zip(amounts, state, strict=True) if s == "succeeded")
    assert paid == balance - available
    assert bank.paid_out_fen["ICBC"] - paid_before == paid
    assert bank.calls["payout"] - calls_before == bank_calls
    assert world.posted(user_wallet_id(user.id)) == balance - paid
    for i in range(len(amounts)):
        rows = world.payments.ctx.store.rows(
            "SELECT id FROM card_transfers WHERE request_id = ?", (f"{tag}-{i}",)
        )
        for (row_id,) in rows:
            legs = _kinds(_withdrawal_legs(world, user.id, row_id))
            assert legs.count("post") == (state[i] == "succeeded")
            assert legs.count("reserve") == legs.count("void") + legs.count("post")
    assert world.books_balance()
