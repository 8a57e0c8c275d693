"""Model-based tests of the ledger engine.

`Model` is a deliberately naive reference ledger written from the semantics (DESIGN.md §2,
TigerBeetle's documented behaviour), not from the engine: plain dataclasses, every check spelled out
in TigerBeetle order, and linked chains made all-or-nothing by copying the whole state when a chain
starts and putting the copy back when it fails. A hypothesis state machine drives the engine and the
model with the same random batches (few accounts, reused ids, all flags, a clock that jumps past
timeouts, restarts by replay) and asserts that both agree on every result code, record and balance,
and that the engine's invariants hold.

Where the engine deliberately deviates from TigerBeetle the model follows the engine; each such
place is marked "Formicary:" below:
- amounts are int64 (AMOUNT_MAX = 2^63 - 1) and must be > 0 for new transfers (no zero-amount
  transfers; a balancing transfer's amount is its upper bound, not "0 = no bound");
- amount 0 on a post or void means "the whole pending amount";
- a balancing transfer that can move nothing fails with exceeds_credits / exceeds_debits;
- re-sending an account whose closed flag was set by a closing transfer is still `exists`;
- a re-sent account is compared with the stored one only after it passed validation (TigerBeetle
  0.15 order), whereas a re-sent transfer id is looked up right after the id checks;
- the idempotency comparison of transfers checks fields in the order of the result enum;
- a post/void stores the user data it was sent with (no inheritance from the pending transfer);
- `exists` inside a linked chain fails the chain (as in TigerBeetle).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from formicary.ledger.engine import BatchOutcome, Engine, Expiration, PendingStatus
from formicary.ledger.types import (
    Account,
    AccountBalance,
    AccountFlags,
    AccountResult,
    Transfer,
    TransferFlags,
    TransferResult,
)

A = AccountResult
R = TransferResult

INT64_MAX = 2**63 - 1  # the largest amount, balance and timestamp (ns)
U128_MAX = 2**128 - 1  # ids are u128; 0 and 2^128 - 1 are reserved
NS = 1_000_000_000

DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
HISTORY = int(AccountFlags.HISTORY)
CLOSED = int(AccountFlags.CLOSED)
ACCOUNT_FLAGS = DMNEC | CMNED | HISTORY | CLOSED

LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING_TRANSFER)
VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
BAL_DR = int(TransferFlags.BALANCING_DEBIT)
BAL_CR = int(TransferFlags.BALANCING_CREDIT)
CLOSE_DR = int(TransferFlags.CLOSING_DEBIT)
CLOSE_CR = int(TransferFlags.CLOSING_CREDIT)
TRANSFER_FLAGS = LINKED | PENDING | POST | VOID | BAL_DR | BAL_CR | CLOSE_DR | CLOSE_CR

STATUS_NAMES = {
    PendingStatus.PENDING: "pending",
    PendingStatus.POSTED: "posted",
    PendingStatus.VOIDED: "voided",
    PendingStatus.EXPIRED: "expired",
}

T0_NS = 1_700_000_000 * NS


# ============================================================================ reference model


@dataclass
class MAccount:
    record: Account  # as created (creation flags, zero balances, its timestamp)
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    closed: bool = False

    def has(self, flag: int) -> bool:
        return bool(self.record.flags & flag)

    def flags(self) -> int:
        """Flags as a reader sees them: the closed bit tells whether it is closed now."""
        return (self.record.flags & ~CLOSED) | (CLOSED if self.closed else 0)

    def balances(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


class Model:
    """A slow, obviously correct ledger."""

    def __init__(self) -> None:
        self.accounts: dict[int, MAccount] = {}
        self.transfers: dict[int, Transfer] = {}
        self.status: dict[int, str] = {}  # pending transfer id -> pending/posted/voided/expired
        self.last_timestamp = 0
        # What the current batch produced (part of the state, so a failed chain takes it back).
        self.new_accounts: list[Account] = []
        self.new_transfers: list[Transfer] = []
        self.history: list[tuple[int, AccountBalance]] = []

    # ------------------------------------------------------------------ time

    def take_timestamp(self, now: int) -> int:
        """Timestamps are unique and strictly increasing, and follow the clock when it is ahead."""
        self.last_timestamp = max(self.last_timestamp + 1, now)
        return self.last_timestamp

    def expire(self, now: int) -> list[Expiration]:
        """Before a batch, release every pending transfer whose deadline is not after `now`."""
        start = max(self.last_timestamp + 1, now)
        due = []
        for pid, p in self.transfers.items():
            if p.flags & PENDING and p.timeout > 0 and self.status[pid] == "pending":
                deadline = p.timestamp + p.timeout * NS
                if deadline <= start:
                    due.append((deadline, pid))
        expirations = []
        for _, pid in sorted(due):
            p = self.transfers[pid]
            timestamp = self.take_timestamp(now)
            dr = self.accounts[p.debit_account_id]
            cr = self.accounts[p.credit_account_id]
            dr.debits_pending -= p.amount
            cr.credits_pending -= p.amount
            # An expired closing transfer reopens the account it closed.
            if p.flags & CLOSE_DR:
                dr.closed = False
            if p.flags & CLOSE_CR:
                cr.closed = False
            self.status[pid] = "expired"
            self.record_history(timestamp, dr, cr)
            expirations.append(Expiration(timestamp=timestamp, pending_id=pid))
        return expirations

    def record_history(self, timestamp: int, dr: MAccount, cr: MAccount) -> None:
        for a in (dr, cr):
            if a.has(HISTORY):
                self.history.append((a.record.id, AccountBalance(timestamp, *a.balances())))

    # ------------------------------------------------------------------ accounts

    def create_accounts(self, batch: list[Account], now: int) -> tuple[list[str], list]:
        self.new_accounts, self.new_transfers, self.history = [], [], []
        expirations = self.expire(now)
        results = [self.create_account(a, self.take_timestamp(now)) for a in batch]
        return results, expirations

    def create_account(self, a: Account, timestamp: int) -> str:
        if a.timestamp != 0:
            return A.TIMESTAMP_MUST_BE_ZERO
        if a.flags & ~ACCOUNT_FLAGS:
            return A.RESERVED_FLAG
        if a.id == 0:
            return A.ID_MUST_NOT_BE_ZERO
        if a.id >= U128_MAX:
            return A.ID_MUST_NOT_BE_INT_MAX
        if a.flags & DMNEC and a.flags & CMNED:
            return A.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if a.debits_pending != 0:
            return A.DEBITS_PENDING_MUST_BE_ZERO
        if a.debits_posted != 0:
            return A.DEBITS_POSTED_MUST_BE_ZERO
        if a.credits_pending != 0:
            return A.CREDITS_PENDING_MUST_BE_ZERO
        if a.credits_posted != 0:
            return A.CREDITS_POSTED_MUST_BE_ZERO
        if a.ledger == 0:
            return A.LEDGER_MUST_NOT_BE_ZERO
        if a.code == 0:
            return A.CODE_MUST_NOT_BE_ZERO
        existing = self.accounts.get(a.id)
        if existing is not None:
            e = existing.record
            # Formicary: while an account is closed, the closed bit of a re-sent creation is not
            # compared (a closing transfer may have set it after the creation).
            ignore = CLOSED if existing.closed else 0
            if a.flags & ~ignore != existing.flags() & ~ignore:
                return A.EXISTS_WITH_DIFFERENT_FLAGS
            if a.user_data_128 != e.user_data_128:
                return A.EXISTS_WITH_DIFFERENT_USER_DATA_128
            if a.user_data_64 != e.user_data_64:
                return A.EXISTS_WITH_DIFFERENT_USER_DATA_64
            if a.user_data_32 != e.user_data_32:
                return A.EXISTS_WITH_DIFFERENT_USER_DATA_32
            if a.ledger != e.ledger:
                return A.EXISTS_WITH_DIFFERENT_LEDGER
            if a.code != e.code:
                return A.EXISTS_WITH_DIFFERENT_CODE
            return A.EXISTS
        record = msgspec.structs.replace(a, timestamp=timestamp)
        self.accounts[a.id] = MAccount(record=record, closed=bool(a.flags & CLOSED))
        self.new_accounts.append(record)
        return A.OK

    # ------------------------------------------------------------------ transfers

    def create_transfers(
        self, batch: list[Transfer], now: int, request_ends: frozenset[int] = frozenset()
    ) -> tuple[list[str], list]:
        self.new_accounts, self.new_transfers, self.history = [], [], []
        expirations = self.expire(now)
        first = self.take_timestamp(now)
        self.last_timestamp = first + len(batch) - 1  # every event takes a timestamp

        # Cut the batch into chains: a chain ends at an event without `linked`, at the end of a
        # client request, or at the end of the batch (then it is open, and fails).
        chains: list[list[int]] = []
        chain: list[int] = []
        for index, t in enumerate(batch):
            chain.append(index)
            if not t.flags & LINKED or index in request_ends or index == len(batch) - 1:
                chains.append(chain)
                chain = []

        results: list[str] = [""] * len(batch)
        for chain in chains:
            saved = self.save()
            for index in chain:
                t = batch[index]
                if index == chain[-1] and t.flags & LINKED:
                    result = R.LINKED_EVENT_CHAIN_OPEN
                else:
                    result = self.create_transfer(t, first + index)
                if result == R.OK:
                    results[index] = R.OK
                    continue
                # All or nothing: undo the chain, fail its other events.
                self.restore(saved)
                for other in chain:
                    results[other] = R.LINKED_EVENT_FAILED
                results[index] = result
                break
        return results, expirations

    def save(self) -> tuple:
        return copy.deepcopy(
            (
                self.accounts,
                self.transfers,
                self.status,
                self.new_transfers,
                self.history,
            )
        )

    def restore(self, saved: tuple) -> None:
        (
            self.accounts,
            self.transfers,
            self.status,
            self.new_transfers,
            self.history,
        ) = saved

    def create_transfer(self, t: Transfer, timestamp: int) -> str:
        if t.timestamp != 0:
            return R.TIMESTAMP_MUST_BE_ZERO
        if t.flags & ~TRANSFER_FLAGS:
            return R.RESERVED_FLAG
        if t.id == 0:
            return R.ID_MUST_NOT_BE_ZERO
        if t.id >= U128_MAX:
            return R.ID_MUST_NOT_BE_INT_MAX
        if t.id in self.transfers:
            return self.compare_existing(t, self.transfers[t.id])
        if t.flags & (POST | VOID):
            return self.post_or_void(t, timestamp)

        if t.debit_account_id == 0:
            return R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if t.debit_account_id >= U128_MAX:
            return R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if t.credit_account_id == 0:
            return R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if t.credit_account_id >= U128_MAX:
            return R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if t.debit_account_id == t.credit_account_id:
            return R.ACCOUNTS_MUST_BE_DIFFERENT
        if t.pending_id != 0:
            return R.PENDING_ID_MUST_BE_ZERO
        is_pending = bool(t.flags & PENDING)
        if not is_pending and t.timeout != 0:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if not is_pending and t.flags & (CLOSE_DR | CLOSE_CR):
            return R.CLOSING_TRANSFER_MUST_BE_PENDING
        if t.amount <= 0:  # Formicary: no zero-amount transfers
            return R.AMOUNT_MUST_NOT_BE_ZERO
        if t.ledger == 0:
            return R.LEDGER_MUST_NOT_BE_ZERO
        if t.code == 0:
            return R.CODE_MUST_NOT_BE_ZERO
        dr = self.accounts.get(t.debit_account_id)
        if dr is None:
            return R.DEBIT_ACCOUNT_NOT_FOUND
        cr = self.accounts.get(t.credit_account_id)
        if cr is None:
            return R.CREDIT_ACCOUNT_NOT_FOUND
        if dr.record.ledger != cr.record.ledger:
            return R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if t.ledger != dr.record.ledger:
            return R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
        if dr.closed:
            return R.DEBIT_ACCOUNT_ALREADY_CLOSED
        if cr.closed:
            return R.CREDIT_ACCOUNT_ALREADY_CLOSED

        amount = t.amount
        if t.flags & BAL_DR:
            room = dr.credits_posted - dr.debits_posted - dr.debits_pending
            if room <= 0:  # Formicary: nothing to move is a failure
                return R.EXCEEDS_CREDITS
            amount = min(amount, room)
        if t.flags & BAL_CR:
            room = cr.debits_posted - cr.credits_posted - cr.credits_pending
            if room <= 0:
                return R.EXCEEDS_DEBITS
            amount = min(amount, room)

        if is_pending and dr.debits_pending + amount > INT64_MAX:
            return R.OVERFLOWS_DEBITS_PENDING
        if is_pending and cr.credits_pending + amount > INT64_MAX:
            return R.OVERFLOWS_CREDITS_PENDING
        if dr.debits_posted + amount > INT64_MAX:
            return R.OVERFLOWS_DEBITS_POSTED
        if cr.credits_posted + amount > INT64_MAX:
            return R.OVERFLOWS_CREDITS_POSTED
        if dr.debits_pending + dr.debits_posted + amount > INT64_MAX:
            return R.OVERFLOWS_DEBITS
        if cr.credits_pending + cr.credits_posted + amount > INT64_MAX:
            return R.OVERFLOWS_CREDITS
        if timestamp + t.timeout * NS > INT64_MAX:
            return R.OVERFLOWS_TIMEOUT
        if dr.has(DMNEC) and dr.debits_pending + dr.debits_posted + amount > dr.credits_posted:
            return R.EXCEEDS_CREDITS
        if cr.has(CMNED) and cr.credits_pending + cr.credits_posted + amount > cr.debits_posted:
            return R.EXCEEDS_DEBITS

        if is_pending:
            dr.debits_pending += amount
            cr.credits_pending += amount
            self.status[t.id] = "pending"
            if t.flags & CLOSE_DR:
                dr.closed = True
            if t.flags & CLOSE_CR:
                cr.closed = True
        else:
            dr.debits_posted += amount
            cr.credits_posted += amount
        stored = msgspec.structs.replace(t, amount=amount, timestamp=timestamp)
        self.transfers[t.id] = stored
        self.new_transfers.append(stored)
        self.record_history(timestamp, dr, cr)
        return R.OK

    def post_or_void(self, t: Transfer, timestamp: int) -> str:
        posting = bool(t.flags & POST)
        if t.flags & PENDING or (t.flags & POST and t.flags & VOID):
            return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if t.flags & (BAL_DR | BAL_CR | CLOSE_DR | CLOSE_CR):
            return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if t.pending_id == 0:
            return R.PENDING_ID_MUST_NOT_BE_ZERO
        if t.pending_id >= U128_MAX:
            return R.PENDING_ID_MUST_NOT_BE_INT_MAX
        if t.pending_id == t.id:
            return R.PENDING_ID_MUST_BE_DIFFERENT
        if t.timeout != 0:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        p = self.transfers.get(t.pending_id)
        if p is None:
            return R.PENDING_TRANSFER_NOT_FOUND
        if not p.flags & PENDING:
            return R.PENDING_TRANSFER_NOT_PENDING
        # Zero means "as in the pending transfer".
        if t.debit_account_id not in (0, p.debit_account_id):
            return R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        if t.credit_account_id not in (0, p.credit_account_id):
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        if t.ledger not in (0, p.ledger):
            return R.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
        if t.code not in (0, p.code):
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CODE
        amount = p.amount if t.amount == 0 else t.amount  # Formicary: 0 = the whole amount
        if amount < 0:
            return R.AMOUNT_MUST_NOT_BE_ZERO
        if amount > p.amount:
            return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
        if not posting and amount != p.amount:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
        status = self.status[p.id]
        if status == "posted":
            return R.PENDING_TRANSFER_ALREADY_POSTED
        if status == "voided":
            return R.PENDING_TRANSFER_ALREADY_VOIDED
        if status == "expired":
            return R.PENDING_TRANSFER_EXPIRED
        if p.timeout > 0 and timestamp >= p.timestamp + p.timeout * NS:
            return R.PENDING_TRANSFER_EXPIRED
        dr = self.accounts[p.debit_account_id]
        cr = self.accounts[p.credit_account_id]
        # A closed account takes nothing but voids.
        if posting and dr.closed:
            return R.DEBIT_ACCOUNT_ALREADY_CLOSED
        if posting and cr.closed:
            return R.CREDIT_ACCOUNT_ALREADY_CLOSED

        dr.debits_pending -= p.amount
        cr.credits_pending -= p.amount
        if posting:
            dr.debits_posted += amount
            cr.credits_posted += amount
            self.status[p.id] = "posted"
        else:
            if p.flags & CLOSE_DR:
                dr.closed = False
            if p.flags & CLOSE_CR:
                cr.closed = False
            self.status[p.id] = "voided"
        stored = Transfer(
            id=t.id,
            debit_account_id=p.debit_account_id,
            credit_account_id=p.credit_account_id,
            amount=amount,
            ledger=p.ledger,
            code=p.code,
            flags=t.flags,
            pending_id=p.id,
            timeout=0,
            user_data_128=t.user_data_128,
            user_data_64=t.user_data_64,
            user_data_32=t.user_data_32,
            timestamp=timestamp,
        )
        self.transfers[t.id] = stored
        self.new_transfers.append(stored)
        self.record_history(timestamp, dr, cr)
        return R.OK

    def compare_existing(self, t: Transfer, e: Transfer) -> str:
        """Idempotency: what the client sent against what was stored under the same id."""
        if t.flags != e.flags:
            return R.EXISTS_WITH_DIFFERENT_FLAGS
        post_or_void = bool(t.flags & (POST | VOID))

        def differs(sent: int, stored: int) -> bool:
            # A post/void may leave accounts, ledger and code zero: they come from the pending.
            return sent != stored and not (post_or_void and sent == 0)

        if differs(t.debit_account_id, e.debit_account_id):
            return R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
        if differs(t.credit_account_id, e.credit_account_id):
            return R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
        asked = t.amount
        if post_or_void and asked == 0:
            asked = self.transfers[e.pending_id].amount
        if t.flags & (BAL_DR | BAL_CR):
            # A balancing amount is an upper bound: any bound that allows what moved is the same.
            if asked < e.amount:
                return R.EXISTS_WITH_DIFFERENT_AMOUNT
        elif asked != e.amount:
            return R.EXISTS_WITH_DIFFERENT_AMOUNT
        if t.pending_id != e.pending_id:
            return R.EXISTS_WITH_DIFFERENT_PENDING_ID
        if t.user_data_128 != e.user_data_128:
            return R.EXISTS_WITH_DIFFERENT_USER_DATA_128
        if t.user_data_64 != e.user_data_64:
            return R.EXISTS_WITH_DIFFERENT_USER_DATA_64
        if t.user_data_32 != e.user_data_32:
            return R.EXISTS_WITH_DIFFERENT_USER_DATA_32
        if t.timeout != e.timeout:
            return R.EXISTS_WITH_DIFFERENT_TIMEOUT
        if differs(t.ledger, e.ledger):
            return R.EXISTS_WITH_DIFFERENT_LEDGER
        if differs(t.code, e.code):
            return R.EXISTS_WITH_DIFFERENT_CODE
        return R.EXISTS


# ============================================================================ invariants


def check_invariants(engine: Engine) -> None:
    """What must hold for any sequence of batches, whatever the results were."""
    ledgers = {a.ledger for a in engine.accounts.values()}
    for ledger in ledgers:
        dp, dpo, cp, cpo = engine.trial_balance(ledger)
        assert dp == cp, f"ledger {ledger}: pending debits {dp} != pending credits {cp}"
        assert dpo == cpo, f"ledger {ledger}: posted debits {dpo} != posted credits {cpo}"
    for a in engine.accounts.values():
        balances = (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
        assert all(0 <= b <= INT64_MAX for b in balances), a
        assert a.debits_pending + a.debits_posted <= INT64_MAX, a
        assert a.credits_pending + a.credits_posted <= INT64_MAX, a
        if a.flags & DMNEC:
            assert a.debits_pending + a.debits_posted <= a.credits_posted, a
        if a.flags & CMNED:
            assert a.credits_pending + a.credits_posted <= a.debits_posted, a
    # Every pending reservation still held is exactly the sum of the live pending transfers.
    held: dict[int, list[int]] = {i: [0, 0] for i in engine.accounts}
    for pid, status in engine.pending_status.items():
        if status == PendingStatus.PENDING:
            p = engine.transfers[pid]
            held[p.debit_account_id][0] += p.amount
            held[p.credit_account_id][1] += p.amount
    for i, a in engine.accounts.items():
        assert [a.debits_pending, a.credits_pending] == held[i], a


class Log:
    """The committed records, as a store would keep them; checks ids and timestamps on the way."""

    def __init__(self) -> None:
        self.accounts: list[Account] = []
        self.records: list[Transfer | Expiration] = []
        self.transfer_ids: set[int] = set()
        self.last_timestamp = 0

    def commit(self, outcome: BatchOutcome) -> None:
        stamps = [e.timestamp for e in outcome.expirations]
        stamps += [a.timestamp for a in outcome.accounts]
        stamps += [t.timestamp for t in outcome.transfers]
        # Unique and strictly increasing, within the batch and after every earlier batch.
        assert stamps == sorted(set(stamps)), stamps
        assert not stamps or stamps[0] > self.last_timestamp
        for t in outcome.transfers:
            assert t.id not in self.transfer_ids, f"transfer {t.id} applied twice"
            self.transfer_ids.add(t.id)
        self.accounts += outcome.accounts
        self.records += outcome.expirations
        self.records += outcome.transfers
        if stamps:
            self.last_timestamp = stamps[-1]

    def replay(self, clock) -> Engine:
        engine = Engine(clock)
        engine.replay(self.accounts, sorted(self.records, key=lambda r: r.timestamp))
        return engine


def same_state(a: Engine, b: Engine) -> None:
    assert {i: msgspec.structs.astuple(x) for i, x in a.accounts.items()} == {
        i: msgspec.structs.astuple(x) for i, x in b.accounts.items()
    }
    assert a.transfers == b.transfers
    assert a.pending_status == b.pending_status


# ============================================================================ strategies
#
# Events are built valid-looking first (existing accounts, matching ledger, sane amounts), then
# at most one field is corrupted now and then, so that most events reach the interesting checks
# (limits, closing, pending state, idempotency) while every validation error still shows up.

ACCOUNT_IDS = [1, 2, 3, 4, 5, 6, 7]  # 6 and 7 start absent; collisions are the point
TRANSFER_IDS = st.integers(1, 60)
HUGE = [INT64_MAX, INT64_MAX // 2, INT64_MAX // 2 + 1, INT64_MAX // 3, INT64_MAX + 1]


def chance(draw, percent: int) -> bool:
    """True about `percent` % of the time; shrinks to False."""
    return draw(st.integers(0, 99)) >= 100 - percent


def amount(draw) -> int:
    if chance(draw, 6):
        return draw(st.sampled_from(HUGE))
    return draw(st.integers(1, 60))


ACCOUNT_CORRUPTIONS = {
    "timestamp": {"timestamp": 1},
    "reserved_flag": {"flags": 1 << 9},
    "reserved_flag_0": {"flags": 1},
    "id_zero": {"id": 0},
    "id_max": {"id": U128_MAX},
    "limits": {"flags": DMNEC | CMNED},
    "debits_pending": {"debits_pending": 1},
    "debits_posted": {"debits_posted": 1},
    "credits_pending": {"credits_pending": 1},
    "credits_posted": {"credits_posted": 1},
    "ledger_zero": {"ledger": 0},
    "code_zero": {"code": 0},
    "other_flags": {"flags": HISTORY},
    "closed": {"flags": CLOSED},
    "user_data_128": {"user_data_128": 9},
    "user_data_64": {"user_data_64": 9},
    "user_data_32": {"user_data_32": 9},
    "other_ledger": {"ledger": 3},
    "other_code": {"code": 3},
}


@st.composite
def account_event(draw, model: Model) -> Account:
    account_id = draw(st.sampled_from(ACCOUNT_IDS))
    existing = model.accounts.get(account_id)
    if existing is not None and chance(draw, 50):
        # The client re-sends a creation (a retry): as it was, or changed.
        a = msgspec.structs.replace(existing.record, timestamp=0)
        if existing.closed and chance(draw, 50):
            a = msgspec.structs.replace(a, flags=a.flags | CLOSED)
    else:
        a = Account(
            id=account_id,
            ledger=draw(st.sampled_from([1, 1, 1, 2])),
            code=1,
            flags=draw(st.sampled_from([0, DMNEC, CMNED, HISTORY, DMNEC | HISTORY])),
        )
    if chance(draw, 40):
        corruption = draw(st.sampled_from(sorted(ACCOUNT_CORRUPTIONS)))
        a = msgspec.structs.replace(a, **ACCOUNT_CORRUPTIONS[corruption])
    return a


def transfer_flags(draw) -> int:
    flags = 0
    if chance(draw, 20):
        flags |= LINKED
    if chance(draw, 40):
        flags |= PENDING
        if chance(draw, 8):
            flags |= draw(st.sampled_from([CLOSE_DR, CLOSE_CR]))
    elif chance(draw, 2):
        flags |= CLOSE_CR  # not pending: rejected
    if chance(draw, 10):
        flags |= BAL_DR
    if chance(draw, 10):
        flags |= BAL_CR
    return flags


def transfer_corruption(draw, t: Transfer) -> Transfer:
    """Break one thing about a transfer."""
    corruption = draw(
        st.sampled_from(
            [
                ("timestamp", 1),
                ("flags", t.flags | 1 << 8),
                ("flags", t.flags | 1 << 12),
                ("flags", t.flags | CLOSE_DR),  # closing, maybe without pending
                ("flags", t.flags | POST),  # a post/void with nonsense fields
                ("flags", t.flags | VOID | POST),
                ("id", 0),
                ("id", U128_MAX),
                ("debit_account_id", 0),
                ("debit_account_id", U128_MAX),
                ("credit_account_id", 0),
                ("credit_account_id", U128_MAX),
                ("credit_account_id", t.debit_account_id),
                ("credit_account_id", 99),
                ("debit_account_id", 99),
                ("pending_id", 1),
                ("pending_id", U128_MAX),
                ("timeout", 1),
                ("timeout", 2**40),  # a deadline beyond int64
                ("timeout", INT64_MAX),
                ("amount", 0),
                ("amount", -1),
                ("ledger", 0),
                ("ledger", 2 if t.ledger == 1 else 1),
                ("code", 0),
            ]
        )
    )
    field, value = corruption
    return msgspec.structs.replace(t, **{field: value})


@st.composite
def new_transfer(draw, model: Model) -> Transfer:
    # Mostly accounts that exist, on the same ledger, so that transfers get to the limits.
    existing = sorted(model.accounts)
    dr = draw(st.sampled_from(existing if existing and chance(draw, 90) else ACCOUNT_IDS))
    known = model.accounts.get(dr)
    ledger = known.record.ledger if known else 1
    same_ledger = [i for i in existing if i != dr and model.accounts[i].record.ledger == ledger]
    cr = draw(st.sampled_from(same_ledger if same_ledger and chance(draw, 90) else ACCOUNT_IDS))
    flags = transfer_flags(draw)
    timeout = 0
    if flags & PENDING:
        timeout = draw(st.sampled_from([0, 1, 1, 2, 3, 5, 3600]))
        if chance(draw, 3):
            timeout = draw(st.sampled_from([2**40, 2**32 - 1]))  # past int64 / just inside
    t = Transfer(
        id=draw(TRANSFER_IDS),
        debit_account_id=dr,
        credit_account_id=cr,
        amount=amount(draw),
        ledger=ledger,
        code=1,
        flags=flags,
        timeout=timeout,
        user_data_128=draw(st.sampled_from([0, 1])),
        user_data_64=draw(st.sampled_from([0, 1])),
        user_data_32=draw(st.sampled_from([0, 1])),
    )
    if chance(draw, 20):
        t = transfer_corruption(draw, t)
    return t


@st.composite
def post_or_void_transfer(draw, model: Model) -> Transfer:
    live = sorted(i for i, s in model.status.items() if s == "pending")
    done = sorted(i for i, s in model.status.items() if s != "pending")
    if live and chance(draw, 75):
        pending_id = draw(st.sampled_from(live))
    elif done and chance(draw, 70):
        pending_id = draw(st.sampled_from(done))
    else:  # an id that is not a pending transfer (or nothing at all)
        pending_id = draw(TRANSFER_IDS)
    p = model.transfers.get(pending_id)
    p_amount = p.amount if p is not None else 10
    flags = POST if chance(draw, 60) else VOID
    if chance(draw, 25):
        flags |= LINKED
    choice = draw(st.integers(0, 9))
    if choice < 4:
        post_amount = 0
    elif choice < 6:
        post_amount = p_amount
    elif choice < 9:
        post_amount = draw(st.integers(1, max(1, p_amount)))
    else:
        post_amount = draw(st.sampled_from([p_amount + 1, p_amount - 1, -1, INT64_MAX]))

    def zero_or_pending(field: str) -> int:
        # Zero ("as in the pending transfer") or the pending's own value: both are fine.
        return getattr(p, field) if p is not None and chance(draw, 20) else 0

    t = Transfer(
        id=draw(TRANSFER_IDS),
        debit_account_id=zero_or_pending("debit_account_id"),
        credit_account_id=zero_or_pending("credit_account_id"),
        amount=post_amount,
        ledger=zero_or_pending("ledger"),
        code=zero_or_pending("code"),
        flags=flags,
        pending_id=pending_id,
        user_data_128=draw(st.sampled_from([0, 4])),
        user_data_32=draw(st.sampled_from([0, 4])),
    )
    if chance(draw, 20):
        field, value = draw(
            st.sampled_from(
                [
                    ("debit_account_id", 7),
                    ("credit_account_id", 7),
                    ("ledger", 2),
                    ("code", 2),
                    ("timeout", 1),
                    ("pending_id", 0),
                    ("pending_id", U128_MAX),
                    ("id", pending_id),
                    ("flags", flags | PENDING),
                    ("flags", flags | POST | VOID),
                    ("flags", flags | BAL_DR),
                    ("flags", flags | CLOSE_CR),
                ]
            )
        )
        t = msgspec.structs.replace(t, **{field: value})
    return t


@st.composite
def resent_transfer(draw, sent: list[Transfer], accepted: list[Transfer]) -> Transfer:
    """A transfer sent before, again: as it was, or with one field changed."""
    t = draw(st.sampled_from(accepted if accepted and chance(draw, 80) else sent))
    if chance(draw, 40):
        return t
    field = draw(
        st.sampled_from(
            [
                "flags",
                "debit_account_id",
                "credit_account_id",
                "amount",
                "pending_id",
                "user_data_128",
                "user_data_64",
                "user_data_32",
                "timeout",
                "ledger",
                "code",
            ]
        )
    )
    if field == "flags":
        value = t.flags ^ draw(st.sampled_from([LINKED, PENDING, BAL_DR]))
    elif field == "amount":
        value = draw(st.sampled_from([0, t.amount - 1, t.amount + 1]))
    else:
        value = draw(st.sampled_from([0, getattr(t, field) + 1]))
    return msgspec.structs.replace(t, **{field: value})


@st.composite
def transfer_batch(draw, model: Model, sent: list[Transfer], accepted: list[Transfer]):
    batch = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.integers(0, 9))
        if kind < 5 or not sent:
            batch.append(draw(new_transfer(model)))
        elif kind < 8 and (model.status or chance(draw, 10)):
            batch.append(draw(post_or_void_transfer(model)))
        else:
            batch.append(draw(resent_transfer(sent, accepted)))
    return batch


# ============================================================================ state machine


class FakeClock:
    def __init__(self) -> None:
        self.ns = T0_NS

    def __call__(self) -> int:
        return self.ns


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.engine = Engine(self.clock)
        self.model = Model()
        self.log = Log()
        self.sent: list[Transfer] = []  # recent events, as the client sent them
        self.accepted: list[Transfer] = []  # recent events that were applied

    # ------------------------------------------------------------------ helpers

    def check_outcome(self, outcome: BatchOutcome, results: list[str], expirations: list) -> None:
        assert outcome.results == results
        assert outcome.expirations == expirations
        assert outcome.accounts == self.model.new_accounts
        assert outcome.transfers == self.model.new_transfers
        assert outcome.history == self.model.history
        self.log.commit(outcome)
        self.compare_state()

    def compare_state(self) -> None:
        engine, model = self.engine, self.model
        assert engine.accounts.keys() == model.accounts.keys()
        for i, a in engine.accounts.items():
            m = model.accounts[i]
            assert a.flags == m.flags(), i
            balances = (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            assert balances == m.balances(), i
        assert engine.transfers == model.transfers
        assert {i: STATUS_NAMES[s] for i, s in engine.pending_status.items()} == model.status

    # ------------------------------------------------------------------ rules

    @initialize(
        flags=st.lists(
            st.sampled_from([0, 0, DMNEC, CMNED, HISTORY, DMNEC | HISTORY]), min_size=5, max_size=5
        ),
        ledgers=st.lists(st.sampled_from([1, 1, 1, 2]), min_size=5, max_size=5),
    )
    def open_accounts(self, flags: list[int], ledgers: list[int]) -> None:
        batch = [
            Account(id=i + 1, ledger=ledger, code=1, flags=f)
            for i, (f, ledger) in enumerate(zip(flags, ledgers, strict=True))
        ]
        self.create_accounts_batch(batch)

    @rule(data=st.data())
    def create_accounts(self, data: st.DataObject) -> None:
        size = data.draw(st.integers(1, 4), label="size")
        batch = [data.draw(account_event(self.model), label="account") for _ in range(size)]
        self.create_accounts_batch(batch)

    def create_accounts_batch(self, batch: list[Account]) -> None:
        now = self.clock.ns
        results, expirations = self.model.create_accounts(batch, now)
        self.check_outcome(self.engine.create_accounts(batch), results, expirations)

    @rule(data=st.data())
    def create_transfers(self, data: st.DataObject) -> None:
        batch = data.draw(transfer_batch(self.model, self.sent, self.accepted), label="batch")
        request_ends: frozenset[int] = frozenset()
        if len(batch) > 1 and data.draw(st.integers(0, 4), label="split") == 0:
            request_ends = frozenset(
                data.draw(st.sets(st.integers(0, len(batch) - 2), min_size=1), label="ends")
            )
        self.run_transfers(batch, request_ends)

    @rule(data=st.data())
    def create_big_transfers(self, data: st.DataObject) -> None:
        """Amounts near the int64 limit, pending and posted, to drive balances to overflow."""
        size = data.draw(st.integers(1, 4), label="size")
        batch = []
        for _ in range(size):
            t = data.draw(new_transfer(self.model), label="transfer")
            big = data.draw(st.sampled_from([*HUGE, 1, 2]), label="amount")
            batch.append(msgspec.structs.replace(t, amount=big))
        self.run_transfers(batch, frozenset())

    def run_transfers(self, batch: list[Transfer], request_ends: frozenset[int]) -> None:
        results, expirations = self.model.create_transfers(batch, self.clock.ns, request_ends)
        outcome = self.engine.create_transfers(batch, request_ends=request_ends)
        self.check_outcome(outcome, results, expirations)
        self.sent.extend(batch)
        self.accepted.extend(t for t, r in zip(batch, results, strict=True) if r == R.OK)
        del self.sent[:-60]
        del self.accepted[:-60]

    @rule(data=st.data())
    def tick(self, data: st.DataObject) -> None:
        """Move the clock: a little, past timeouts, backwards (wall clocks step back; timestamps
        must not), or right around a pending deadline, where off-by-one errors live."""
        kind = data.draw(st.integers(0, 9), label="kind")
        deadlines = sorted(
            t.timestamp + t.timeout * NS
            for i, t in self.model.transfers.items()
            if self.model.status.get(i) == "pending" and 0 < t.timeout <= 3600
        )
        if kind < 3 and deadlines:
            target = data.draw(st.sampled_from(deadlines), label="deadline")
            self.clock.ns = target + data.draw(st.integers(-4, 2), label="offset")
        elif kind < 8:
            self.clock.ns += data.draw(
                st.sampled_from([NS // 2, NS, 2 * NS, 3 * NS, 7 * NS, 3601 * NS]), label="jump"
            )
        elif kind < 9:
            self.clock.ns += data.draw(st.integers(0, 10_000), label="small")
        else:
            self.clock.ns -= data.draw(st.integers(1, 10_000), label="back")

    @rule()
    def restart(self) -> None:
        """Crash and recover: a fresh engine replays the committed log and carries on."""
        fresh = self.log.replay(self.clock)
        same_state(fresh, self.engine)
        self.engine = fresh
        # A recovered engine knows only committed timestamps.
        self.model.last_timestamp = self.log.last_timestamp

    # ------------------------------------------------------------------ invariants

    @invariant()
    def invariants_hold(self) -> None:
        check_invariants(self.engine)


LedgerMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestLedgerMachine = LedgerMachine.TestCase


# ============================================================================ invariant-only


@st.composite
def blind_transfer(draw) -> Transfer:
    """A transfer built without looking at any state: post/void hit pending ids by chance."""
    flags = transfer_flags(draw)
    if draw(st.integers(0, 3)) == 0:
        flags = draw(st.sampled_from([POST, VOID])) | (flags & LINKED)
    return Transfer(
        id=draw(st.integers(1, 30)),
        debit_account_id=draw(st.integers(1, 6)),
        credit_account_id=draw(st.integers(1, 6)),
        amount=amount(draw) if draw(st.integers(0, 19)) else 0,
        ledger=1,
        code=1,
        flags=flags,
        pending_id=draw(st.integers(1, 30)) if flags & (POST | VOID) else 0,
        timeout=draw(st.sampled_from([0, 1, 2])) if flags & PENDING else 0,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(
            st.lists(blind_transfer(), min_size=1, max_size=10),
            st.sampled_from([0, 1, NS // 2, NS, 3 * NS]),
        ),
        min_size=1,
        max_size=12,
    ),
    flags=st.lists(st.sampled_from([0, DMNEC, CMNED, HISTORY]), min_size=6, max_size=6),
)
def test_invariants_over_random_batches(
    steps: list[tuple[list[Transfer], int]], flags: list[int]
) -> None:
    clock = FakeClock()
    engine = Engine(clock)
    log = Log()
    outcome = engine.create_accounts(
        [Account(id=i + 1, ledger=1, code=1, flags=f) for i, f in enumerate(flags)]
    )
    assert outcome.results == [A.OK] * 6
    log.commit(outcome)
    for batch, step in steps:
        clock.ns += step
        outcome = engine.create_transfers(batch)
        assert len(outcome.results) == len(batch)
        log.commit(outcome)
        check_invariants(engine)
        # Rejected events leave no record; accepted ones are stored as sent (but the amount).
        accepted = [t for t, r in zip(batch, outcome.results, strict=True) if r == R.OK]
        assert [t.id for t in outcome.transfers] == [t.id for t in accepted]
    same_state(log.replay(clock), engine)
