"""The ledger engine: a pure, in-memory, deterministic state machine over batches of events.

The engine validates and applies a batch, and returns one result per event plus the records the
store must make durable (`BatchOutcome`). It does no I/O: the service commits the outcome and only
then answers the callers. On start the service rebuilds the engine by `replay`-ing the committed
log (accounts, transfers and pending expirations, in timestamp order).

Semantics follow TigerBeetle: linked chains are atomic; two-phase transfers reserve with `pending`
and finish with `post_pending_transfer` (full or partial) or `void_pending_transfer`; pending
transfers with a timeout expire at their deadline; balancing transfers move as much as the limit
allows; closing transfers close an account until they are voided or expire.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Literal

import msgspec

from formicary.ledger import native
from formicary.ledger.bulk import BulkRecord, legs_digest, pack_legs, unpack_legs
from formicary.ledger.types import (
    ACCOUNT_FLAGS_KNOWN,
    AMOUNT_MAX,
    BATCH_EVENTS_MAX,
    BULK_LEGS_MAX,
    ID_MAX,
    NS_PER_S,
    TRANSFER_FLAGS_KNOWN,
    Account,
    AccountBalance,
    AccountFlags,
    AccountResult,
    BulkResult,
    BulkTransfer,
    Transfer,
    TransferFlags,
    TransferResult,
)

__all__ = ["BatchOutcome", "Engine", "Expiration", "FastPath", "PendingStatus"]

TIMESTAMP_MAX = 2**63 - 1

# Flag bits as plain ints: IntFlag arithmetic is ~10x slower than int arithmetic in the hot loop.
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
_BAL_DR = int(TransferFlags.BALANCING_DEBIT)
_BAL_CR = int(TransferFlags.BALANCING_CREDIT)
_CLOSE_DR = int(TransferFlags.CLOSING_DEBIT)
_CLOSE_CR = int(TransferFlags.CLOSING_CREDIT)
_T_UNKNOWN = ~int(TRANSFER_FLAGS_KNOWN)
_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_HISTORY = int(AccountFlags.HISTORY)
_CLOSED = int(AccountFlags.CLOSED)
_A_UNKNOWN = ~int(ACCOUNT_FLAGS_KNOWN)

R = TransferResult
_OK = R.OK


class PendingStatus:
    """Life cycle of a pending transfer."""

    PENDING = 1
    POSTED = 2
    VOIDED = 3
    EXPIRED = 4


class Expiration(msgspec.Struct, frozen=True, gc=False):
    """A pending transfer released by its timeout, at `timestamp` (part of the durable log)."""

    timestamp: int
    pending_id: int


class BatchOutcome(msgspec.Struct, gc=False):
    """What one batch produced: a result per event, and the records to commit durably."""

    results: list[str]
    accounts: list[Account] = msgspec.field(default_factory=list)
    transfers: list[Transfer] = msgspec.field(default_factory=list)
    expirations: list[Expiration] = msgspec.field(default_factory=list)
    # (account id, balances after the event) for accounts with the `history` flag.
    history: list[tuple[int, AccountBalance]] = msgspec.field(default_factory=list)
    bulks: list[BulkRecord] = msgspec.field(default_factory=list)
    # For a failed bulk transfer: the index of the leg that failed it (-1: the header did).
    failed_leg: int = -1


class _Chain:
    """Undo log of an open linked chain: what to restore if one of its events fails."""

    __slots__ = ("accounts", "history_len", "start", "statuses", "transfer_ids", "transfers_len")

    def __init__(self, start: int, transfers_len: int, history_len: int) -> None:
        self.start = start
        self.transfers_len = transfers_len
        self.history_len = history_len
        self.accounts: list[tuple[Account, int, int, int, int, int]] = []
        self.transfer_ids: list[int] = []
        self.statuses: list[tuple[int, int]] = []


FastPath = Literal["native", "python", "off"]


class Engine:
    """In-memory ledger state and the rules that change it.

    `fast_path` picks how runs of plain transfers are applied: "native" (the compiled loop of
    native.py, where built; else "python"), "python" (`_fast_run`), or "off" (every event through
    the general path: the reference the tests compare the other two against). All three give
    the same results, records and balances.
    """

    def __init__(self, clock_ns: Callable[[], int], *, fast_path: FastPath = "native") -> None:
        self._clock_ns = clock_ns
        if fast_path == "native" and native.fast_run is None:
            fast_path = "python"
        self.fast_path: FastPath = fast_path
        self._run_fast = {
            "native": self._native_fast_run,
            "python": self._fast_run,
            "off": _no_fast_run,
        }[fast_path]
        self.accounts: dict[int, Account] = {}
        self.transfers: dict[int, Transfer] = {}
        self.pending_status: dict[int, int] = {}
        # Bulk id -> (header without legs, digest of the legs): enough to answer a re-sent bulk
        # without keeping millions of legs in memory.
        self.bulks: dict[int, tuple[BulkRecord, bytes]] = {}
        # Min-heap of (deadline_ns, pending id); stale entries are skipped when popped.
        self._expiries: list[tuple[int, int]] = []
        self.last_timestamp = 0

    # ----------------------------------------------------------------- timestamps

    def _timestamps(self, count: int) -> int:
        """Reserve `count` unique, strictly increasing timestamps; return the first."""
        first = max(self.last_timestamp + 1, self._clock_ns())
        assert first + count < TIMESTAMP_MAX
        self.last_timestamp = first + count - 1
        return first

    # ----------------------------------------------------------------- accounts

    def create_accounts(self, batch: Sequence[Account]) -> BatchOutcome:
        assert 0 < len(batch) <= BATCH_EVENTS_MAX, "batch size is checked by the caller"
        outcome = BatchOutcome(results=[])
        self._expire(outcome)
        timestamp = self._timestamps(len(batch))
        results = outcome.results
        for a in batch:
            result = self._create_account(a, timestamp, outcome)
            results.append(result)
            timestamp += 1
        return outcome

    def _create_account(self, a: Account, timestamp: int, outcome: BatchOutcome) -> str:
        Ar = AccountResult
        if a.timestamp != 0:
            return Ar.TIMESTAMP_MUST_BE_ZERO
        if a.flags & _A_UNKNOWN:
            return Ar.RESERVED_FLAG
        if a.id == 0:
            return Ar.ID_MUST_NOT_BE_ZERO
        if a.id >= ID_MAX:
            return Ar.ID_MUST_NOT_BE_INT_MAX
        if a.flags & _DMNEC and a.flags & _CMNED:
            return Ar.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if a.debits_pending:
            return Ar.DEBITS_PENDING_MUST_BE_ZERO
        if a.debits_posted:
            return Ar.DEBITS_POSTED_MUST_BE_ZERO
        if a.credits_pending:
            return Ar.CREDITS_PENDING_MUST_BE_ZERO
        if a.credits_posted:
            return Ar.CREDITS_POSTED_MUST_BE_ZERO
        if a.ledger == 0:
            return Ar.LEDGER_MUST_NOT_BE_ZERO
        if a.code == 0:
            return Ar.CODE_MUST_NOT_BE_ZERO
        e = self.accounts.get(a.id)
        if e is not None:
            # A closing transfer may have closed the stored account since; compare creation flags.
            if a.flags != e.flags & ~_CLOSED and a.flags != e.flags:
                return Ar.EXISTS_WITH_DIFFERENT_FLAGS
            if a.user_data_128 != e.user_data_128:
                return Ar.EXISTS_WITH_DIFFERENT_USER_DATA_128
            if a.user_data_64 != e.user_data_64:
                return Ar.EXISTS_WITH_DIFFERENT_USER_DATA_64
            if a.user_data_32 != e.user_data_32:
                return Ar.EXISTS_WITH_DIFFERENT_USER_DATA_32
            if a.ledger != e.ledger:
                return Ar.EXISTS_WITH_DIFFERENT_LEDGER
            if a.code != e.code:
                return Ar.EXISTS_WITH_DIFFERENT_CODE
            return Ar.EXISTS
        created = msgspec.structs.replace(a, timestamp=timestamp)
        self.accounts[a.id] = created
        outcome.accounts.append(msgspec.structs.replace(created))
        return Ar.OK

    # ----------------------------------------------------------------- transfers

    def create_transfers(
        self, batch: Sequence[Transfer], request_ends: Collection[int] = ()
    ) -> BatchOutcome:
        """Validate and apply a batch; failed events change nothing (linked chains: all or none).

        A batch may coalesce several client requests; `request_ends` holds the index of the last
        event of each (but the final one), so that a chain never runs from one request into the
        next: a chain still open at a request's end fails with linked_event_chain_open.
        """
        count = len(batch)
        assert 0 < count <= BATCH_EVENTS_MAX, "batch size is checked by the caller"
        # Every event is ok unless it or its chain fails: start from all ok and overwrite the
        # failures, so that the fast path below has no result to record.
        outcome = BatchOutcome(results=[_OK] * count)
        self._expire(outcome)
        first = self._timestamps(count)

        results = outcome.results
        chain: _Chain | None = None
        # After a failure inside a chain, the rest of that chain is not evaluated.
        chain_broken = False
        last = count - 1
        index = 0
        while index < count:
            if chain is None and not chain_broken:
                # The common case: runs of plain posted transfers and chains of them.
                index += self._run_fast(batch, index, first, outcome, request_ends)
                if index == count:
                    break
            t = batch[index]
            timestamp = first + index
            flags = t.flags
            linked = flags & _LINKED
            if chain_broken:
                results[index] = R.LINKED_EVENT_FAILED
                if not linked or index in request_ends:
                    chain_broken = False
                index += 1
                continue
            if linked and chain is None:
                chain = _Chain(index, len(outcome.transfers), len(outcome.history))
            if linked and (index == last or index in request_ends):
                result = R.LINKED_EVENT_CHAIN_OPEN
            else:
                result = self._create_transfer(t, timestamp, outcome, chain)
            index += 1
            if result is _OK:
                if not linked and chain is not None:
                    chain = None  # the chain closed successfully
                continue
            results[index - 1] = result
            if chain is not None:
                self._rollback(chain, outcome)
                for earlier in range(chain.start, index - 1):
                    results[earlier] = R.LINKED_EVENT_FAILED
                chain = None
                # The rest of a failed chain fails too, but a chain never crosses a request.
                chain_broken = bool(linked) and index - 1 not in request_ends
        return outcome

    def _fast_run(
        self,
        batch: Sequence[Transfer],
        start: int,
        first: int,
        outcome: BatchOutcome,
        request_ends: Collection[int],
    ) -> int:
        """Apply the run of plain posted transfers (no flags, or `linked` chains of them) that
        begins at `start` and succeeds; return how many events it applied.

        It tests, with fewer attribute loads, branches and calls, exactly the conditions under
        which `_create_transfer` returns ok for such an event (none is skipped), and applies the
        same effects. It stops before the first event that is not plain or does not pass; if that
        event is inside a chain, it undoes the chain's earlier events and stops before the chain.
        The general path then takes over there and checks everything again in the pinned order,
        so every result code is the one the general path alone would give.
        """
        count = len(batch)
        last = count - 1
        accounts_get = self.accounts.get
        transfers = self.transfers
        stored_transfers = outcome.transfers
        append_transfer = stored_transfers.append
        replace = msgspec.structs.replace
        # The open chain: where it started, and what to restore if it cannot finish here.
        chain_start = -1
        chain_transfers = chain_history = 0
        undo: list[tuple[Account, int, Account, int]] = []
        index = start
        while index < count:
            t = batch[index]
            flags = t.flags
            if flags:
                if flags != _LINKED or index == last or index in request_ends:
                    break  # not plain, or a chain left open: the general path says why
                if chain_start < 0:
                    chain_start = index
                    chain_transfers = len(stored_transfers)
                    chain_history = len(outcome.history)
            tid = t.id
            dr_id = t.debit_account_id
            cr_id = t.credit_account_id
            amount = t.amount
            ledger = t.ledger
            if (
                t.timestamp
                or t.pending_id
                or t.timeout
                or t.code == 0
                or ledger == 0
                or amount <= 0
                or not 0 < tid < ID_MAX
                or not 0 < dr_id < ID_MAX
                or not 0 < cr_id < ID_MAX
                or dr_id == cr_id
                or tid in transfers
            ):
                break
            dr = accounts_get(dr_id)
            cr = accounts_get(cr_id)
            if dr is None or cr is None or not dr.ledger == ledger == cr.ledger:
                break
            # Every field is loaded before any arithmetic: with 1M accounts each account and
            # each balance is a cache miss, and misses close together overlap (measured 5-10%
            # faster there than interleaving the two).
            dr_flags = dr.flags
            cr_flags = cr.flags
            dr_dp = dr.debits_pending
            dr_dpo = dr.debits_posted
            dr_cpo = dr.credits_posted
            cr_cp = cr.credits_pending
            cr_cpo = cr.credits_posted
            both_flags = dr_flags | cr_flags
            dr_total = dr_dp + dr_dpo + amount
            cr_total = cr_cp + cr_cpo + amount
            if (
                both_flags & _CLOSED
                or dr_dpo + amount > AMOUNT_MAX
                or cr_cpo + amount > AMOUNT_MAX
                or dr_total > AMOUNT_MAX
                or cr_total > AMOUNT_MAX
                or (dr_flags & _DMNEC and dr_total > dr_cpo)
                or (cr_flags & _CMNED and cr_total > cr.debits_posted)
            ):
                break
            if chain_start >= 0:
                undo.append((dr, dr_dpo, cr, cr_cpo))
            timestamp = first + index
            # Not balancing, so the stored amount is the one asked for.
            stored = replace(t, timestamp=timestamp)
            dr.debits_posted = dr_dpo + amount
            cr.credits_posted = cr_cpo + amount
            transfers[tid] = stored
            append_transfer(stored)
            if both_flags & _HISTORY:
                _record_history(outcome, timestamp, dr, cr)
            index += 1
            if not flags and chain_start >= 0:
                chain_start = -1  # the chain closed: it stays
                undo.clear()
        if chain_start >= 0:
            # The chain cannot finish on the fast path: undo it, newest first.
            for dr, dr_dpo, cr, cr_cpo in reversed(undo):
                cr.credits_posted = cr_cpo
                dr.debits_posted = dr_dpo
            for stored in stored_transfers[chain_transfers:]:
                del transfers[stored.id]
            del stored_transfers[chain_transfers:]
            del outcome.history[chain_history:]
            return chain_start - start
        return index - start

    def _native_fast_run(
        self,
        batch: Sequence[Transfer],
        start: int,
        first: int,
        outcome: BatchOutcome,
        request_ends: Collection[int],
    ) -> int:
        """`_fast_run` in C (native.py); it leaves events on `history` accounts to the general
        path, which records their balances."""
        assert native.fast_run is not None
        return native.fast_run(
            batch, start, first, self.accounts, self.transfers, outcome.transfers, request_ends
        )

    def _rollback(self, chain: _Chain, outcome: BatchOutcome) -> None:
        for account, dp, dpo, cp, cpo, flags in reversed(chain.accounts):
            account.debits_pending = dp
            account.debits_posted = dpo
            account.credits_pending = cp
            account.credits_posted = cpo
            account.flags = flags
        # Statuses first: a pending created earlier in this chain and then posted or voided by
        # it must end up with no status at all, not with its restored "pending" one.
        for pending_id, status in reversed(chain.statuses):
            self.pending_status[pending_id] = status
        for transfer_id in chain.transfer_ids:
            del self.transfers[transfer_id]
            self.pending_status.pop(transfer_id, None)
        del outcome.transfers[chain.transfers_len :]
        del outcome.history[chain.history_len :]

    def _create_transfer(
        self, t: Transfer, timestamp: int, outcome: BatchOutcome, chain: _Chain | None
    ) -> str:
        flags = t.flags
        if t.timestamp != 0:
            return R.TIMESTAMP_MUST_BE_ZERO
        if flags & _T_UNKNOWN:
            return R.RESERVED_FLAG
        tid = t.id
        if tid == 0:
            return R.ID_MUST_NOT_BE_ZERO
        if tid >= ID_MAX:
            return R.ID_MUST_NOT_BE_INT_MAX
        existing = self.transfers.get(tid)
        if existing is not None:
            return _compare_existing(t, existing, self.transfers)
        if flags & (_POST | _VOID):
            if flags & _PENDING or (flags & _POST and flags & _VOID):
                return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
            if flags & (_BAL_DR | _BAL_CR | _CLOSE_DR | _CLOSE_CR):
                return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
            return self._post_or_void(t, timestamp, outcome, chain)

        dr_id = t.debit_account_id
        cr_id = t.credit_account_id
        if dr_id == 0:
            return R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if dr_id >= ID_MAX:
            return R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if cr_id == 0:
            return R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if cr_id >= ID_MAX:
            return R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if dr_id == cr_id:
            return R.ACCOUNTS_MUST_BE_DIFFERENT
        if t.pending_id != 0:
            return R.PENDING_ID_MUST_BE_ZERO
        pending = flags & _PENDING
        if not pending:
            if t.timeout != 0:
                return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
            if flags & (_CLOSE_DR | _CLOSE_CR):
                return R.CLOSING_TRANSFER_MUST_BE_PENDING
        amount = t.amount
        if amount <= 0:
            return R.AMOUNT_MUST_NOT_BE_ZERO
        ledger = t.ledger
        if ledger == 0:
            return R.LEDGER_MUST_NOT_BE_ZERO
        if t.code == 0:
            return R.CODE_MUST_NOT_BE_ZERO
        accounts = self.accounts
        dr = accounts.get(dr_id)
        if dr is None:
            return R.DEBIT_ACCOUNT_NOT_FOUND
        cr = accounts.get(cr_id)
        if cr is None:
            return R.CREDIT_ACCOUNT_NOT_FOUND
        if dr.ledger != cr.ledger:
            return R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if ledger != dr.ledger:
            return R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
        if dr.flags & _CLOSED:
            return R.DEBIT_ACCOUNT_ALREADY_CLOSED
        if cr.flags & _CLOSED:
            return R.CREDIT_ACCOUNT_ALREADY_CLOSED

        dr_dp = dr.debits_pending
        dr_dpo = dr.debits_posted
        cr_cp = cr.credits_pending
        cr_cpo = cr.credits_posted
        if flags & _BAL_DR:
            available = dr.credits_posted - dr_dp - dr_dpo
            if available <= 0:
                return R.EXCEEDS_CREDITS
            amount = min(amount, available)
        if flags & _BAL_CR:
            available = cr.debits_posted - cr_cp - cr_cpo
            if available <= 0:
                return R.EXCEEDS_DEBITS
            amount = min(amount, available)

        if pending:
            if dr_dp + amount > AMOUNT_MAX:
                return R.OVERFLOWS_DEBITS_PENDING
            if cr_cp + amount > AMOUNT_MAX:
                return R.OVERFLOWS_CREDITS_PENDING
        # Checked for pending transfers too (as TigerBeetle does): a pending may be posted later.
        if dr_dpo + amount > AMOUNT_MAX:
            return R.OVERFLOWS_DEBITS_POSTED
        if cr_cpo + amount > AMOUNT_MAX:
            return R.OVERFLOWS_CREDITS_POSTED
        if dr_dp + dr_dpo + amount > AMOUNT_MAX:
            return R.OVERFLOWS_DEBITS
        if cr_cp + cr_cpo + amount > AMOUNT_MAX:
            return R.OVERFLOWS_CREDITS
        if pending and timestamp + t.timeout * NS_PER_S > TIMESTAMP_MAX:
            return R.OVERFLOWS_TIMEOUT
        if dr.flags & _DMNEC and dr_dp + dr_dpo + amount > dr.credits_posted:
            return R.EXCEEDS_CREDITS
        if cr.flags & _CMNED and cr_cp + cr_cpo + amount > cr.debits_posted:
            return R.EXCEEDS_DEBITS

        # Valid: apply. Only linked chains need an undo log.
        if chain is not None:
            chain.accounts.append(_snapshot(dr))
            chain.accounts.append(_snapshot(cr))
            chain.transfer_ids.append(tid)
        stored = msgspec.structs.replace(t, amount=amount, timestamp=timestamp)
        if pending:
            dr.debits_pending = dr_dp + amount
            cr.credits_pending = cr_cp + amount
            self.pending_status[tid] = PendingStatus.PENDING
            if t.timeout:
                heapq.heappush(self._expiries, (timestamp + t.timeout * NS_PER_S, tid))
            if flags & _CLOSE_DR:
                dr.flags |= _CLOSED
            if flags & _CLOSE_CR:
                cr.flags |= _CLOSED
        else:
            dr.debits_posted = dr_dpo + amount
            cr.credits_posted = cr_cpo + amount
        self.transfers[tid] = stored
        outcome.transfers.append(stored)
        if (dr.flags | cr.flags) & _HISTORY:
            _record_history(outcome, timestamp, dr, cr)
        return _OK

    def _post_or_void(
        self, t: Transfer, timestamp: int, outcome: BatchOutcome, chain: _Chain | None
    ) -> str:
        pid = t.pending_id
        if pid == 0:
            return R.PENDING_ID_MUST_NOT_BE_ZERO
        if pid >= ID_MAX:
            return R.PENDING_ID_MUST_NOT_BE_INT_MAX
        if pid == t.id:
            return R.PENDING_ID_MUST_BE_DIFFERENT
        if t.timeout != 0:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        p = self.transfers.get(pid)
        if p is None:
            return R.PENDING_TRANSFER_NOT_FOUND
        if not p.flags & _PENDING:
            return R.PENDING_TRANSFER_NOT_PENDING
        if t.debit_account_id and t.debit_account_id != p.debit_account_id:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        if t.credit_account_id and t.credit_account_id != p.credit_account_id:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        if t.ledger and t.ledger != p.ledger:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
        if t.code and t.code != p.code:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CODE
        post = t.flags & _POST
        # Amount 0 means "the whole pending amount"; a post may capture less (partial post).
        amount = t.amount or p.amount
        if amount < 0:
            return R.AMOUNT_MUST_NOT_BE_ZERO
        if amount > p.amount:
            return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
        if not post and amount < p.amount:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
        status = self.pending_status[pid]
        if status == PendingStatus.POSTED:
            return R.PENDING_TRANSFER_ALREADY_POSTED
        if status == PendingStatus.VOIDED:
            return R.PENDING_TRANSFER_ALREADY_VOIDED
        if status == PendingStatus.EXPIRED:
            return R.PENDING_TRANSFER_EXPIRED
        if p.timeout and p.timestamp + p.timeout * NS_PER_S <= timestamp:
            return R.PENDING_TRANSFER_EXPIRED
        dr = self.accounts[p.debit_account_id]
        cr = self.accounts[p.credit_account_id]
        # A closed account accepts no movement but voids (which release reservations; voiding
        # the closing transfer reopens it), as in TigerBeetle: a closing transfer is never posted.
        if post and dr.flags & _CLOSED:
            return R.DEBIT_ACCOUNT_ALREADY_CLOSED
        if post and cr.flags & _CLOSED:
            return R.CREDIT_ACCOUNT_ALREADY_CLOSED

        if chain is not None:
            chain.accounts.append(_snapshot(dr))
            chain.accounts.append(_snapshot(cr))
            chain.transfer_ids.append(t.id)
            chain.statuses.append((pid, status))
        stored = Transfer(
            id=t.id,
            debit_account_id=p.debit_account_id,
            credit_account_id=p.credit_account_id,
            amount=amount,
            ledger=p.ledger,
            code=p.code,
            flags=t.flags,
            pending_id=pid,
            timeout=0,
            user_data_128=t.user_data_128,
            user_data_64=t.user_data_64,
            user_data_32=t.user_data_32,
            timestamp=timestamp,
        )
        self._finish_pending(p, dr, cr, post, amount)
        self.transfers[t.id] = stored
        outcome.transfers.append(stored)
        if (dr.flags | cr.flags) & _HISTORY:
            _record_history(outcome, timestamp, dr, cr)
        return _OK

    def _finish_pending(
        self, p: Transfer, dr: Account, cr: Account, post: int, amount: int
    ) -> None:
        """Release the reservation of pending `p`; a post moves `amount` to posted."""
        dr.debits_pending -= p.amount
        cr.credits_pending -= p.amount
        if post:
            dr.debits_posted += amount
            cr.credits_posted += amount
            self.pending_status[p.id] = PendingStatus.POSTED
        else:
            # Voiding a closing transfer reopens the account it closed.
            if p.flags & _CLOSE_DR:
                dr.flags &= ~_CLOSED
            if p.flags & _CLOSE_CR:
                cr.flags &= ~_CLOSED
            self.pending_status[p.id] = PendingStatus.VOIDED

    # ----------------------------------------------------------------- bulk transfers

    def create_bulk(self, bulk: BulkTransfer) -> BatchOutcome:
        """Validate and apply one bulk transfer: every leg or none (see BulkTransfer)."""
        outcome = BatchOutcome(results=[BulkResult.OK])
        self._expire(outcome)
        timestamp = self._timestamps(1)
        result, failed_leg = self._create_bulk(bulk, timestamp, outcome)
        outcome.results[0] = result
        outcome.failed_leg = failed_leg
        return outcome

    def _create_bulk(
        self, b: BulkTransfer, timestamp: int, outcome: BatchOutcome
    ) -> tuple[str, int]:
        B = BulkResult
        if b.timestamp != 0:
            return B.TIMESTAMP_MUST_BE_ZERO, -1
        if b.id == 0:
            return B.ID_MUST_NOT_BE_ZERO, -1
        if b.id >= ID_MAX:
            return B.ID_MUST_NOT_BE_INT_MAX, -1
        if b.account_id == 0:
            return B.ACCOUNT_ID_MUST_NOT_BE_ZERO, -1
        if b.account_id >= ID_MAX:
            return B.ACCOUNT_ID_MUST_NOT_BE_INT_MAX, -1
        ids = b.leg_account_ids
        amounts = b.leg_amounts
        if not ids:
            return B.LEGS_MUST_NOT_BE_EMPTY, -1
        if len(ids) > BULK_LEGS_MAX:
            return B.LEGS_EXCEED_MAX, -1
        if len(ids) != len(amounts):
            return B.LEG_COUNTS_DIFFER, -1
        if b.ledger == 0:
            return B.LEDGER_MUST_NOT_BE_ZERO, -1
        if b.code == 0:
            return B.CODE_MUST_NOT_BE_ZERO, -1
        existing = self.bulks.get(b.id)
        if existing is not None:
            return _compare_existing_bulk(b, *existing), -1
        common = self.accounts.get(b.account_id)
        if common is None:
            return B.ACCOUNT_NOT_FOUND, -1
        ledger = b.ledger
        if common.ledger != ledger:
            return B.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, -1
        if common.flags & _CLOSED:
            return B.ACCOUNT_ALREADY_CLOSED, -1

        # Pass 1 checks every leg against the balances before the bulk; legs name distinct
        # accounts, so no leg can change what another leg's check saw.
        credit_legs = b.debit_common
        accounts_get = self.accounts.get
        seen = {b.account_id}
        legs: list[Account] = []
        total = 0
        for index, (account_id, amount) in enumerate(zip(ids, amounts, strict=True)):
            if not 0 < account_id < ID_MAX:
                return B.LEG_ACCOUNT_ID_MUST_BE_VALID, index
            if account_id in seen:
                return B.LEG_ACCOUNTS_MUST_BE_UNIQUE, index
            seen.add(account_id)
            if not 0 < amount <= AMOUNT_MAX:
                return B.LEG_AMOUNT_MUST_BE_POSITIVE, index
            a = accounts_get(account_id)
            if a is None:
                return B.LEG_ACCOUNT_NOT_FOUND, index
            if a.ledger != ledger:
                return B.LEG_TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, index
            if a.flags & _CLOSED:
                return B.LEG_ACCOUNT_ALREADY_CLOSED, index
            if credit_legs:
                posted = a.credits_posted + amount
                if posted > AMOUNT_MAX or posted + a.credits_pending > AMOUNT_MAX:
                    return B.LEG_OVERFLOWS, index
                if a.flags & _CMNED and posted + a.credits_pending > a.debits_posted:
                    return B.LEG_EXCEEDS_DEBITS, index
            else:
                posted = a.debits_posted + amount
                if posted > AMOUNT_MAX or posted + a.debits_pending > AMOUNT_MAX:
                    return B.LEG_OVERFLOWS, index
                if a.flags & _DMNEC and posted + a.debits_pending > a.credits_posted:
                    return B.LEG_EXCEEDS_CREDITS, index
            legs.append(a)
            total += amount
        if credit_legs:
            posted = common.debits_posted + total
            if posted > AMOUNT_MAX or posted + common.debits_pending > AMOUNT_MAX:
                return B.OVERFLOWS, -1
            if common.flags & _DMNEC and posted + common.debits_pending > common.credits_posted:
                return B.EXCEEDS_CREDITS, -1
        else:
            posted = common.credits_posted + total
            if posted > AMOUNT_MAX or posted + common.credits_pending > AMOUNT_MAX:
                return B.OVERFLOWS, -1
            if common.flags & _CMNED and posted + common.credits_pending > common.debits_posted:
                return B.EXCEEDS_DEBITS, -1

        # Pass 2: everything holds, apply.
        record = _bulk_record(b, timestamp)
        self._apply_bulk(record, legs, amounts)
        self.bulks[b.id] = (
            msgspec.structs.replace(record, leg_accounts=b"", leg_amounts=b""),
            legs_digest(record.leg_accounts, record.leg_amounts),
        )
        outcome.bulks.append(record)
        if common.flags & _HISTORY:
            _record_history_of(outcome, timestamp, common)
        for a in legs:
            if a.flags & _HISTORY:
                _record_history_of(outcome, timestamp, a)
        return B.OK, -1

    def _apply_bulk(self, record: BulkRecord, legs: list[Account], amounts: list[int]) -> None:
        common = self.accounts[record.account_id]
        total = 0
        if record.debit_common:
            for a, amount in zip(legs, amounts, strict=True):
                a.credits_posted += amount
                total += amount
            common.debits_posted += total
        else:
            for a, amount in zip(legs, amounts, strict=True):
                a.debits_posted += amount
                total += amount
            common.credits_posted += total

    # ----------------------------------------------------------------- expiry

    def next_deadline(self) -> int | None:
        """The earliest pending deadline (ns) that may still need expiring, if any."""
        return self._expiries[0][0] if self._expiries else None

    def expire(self) -> BatchOutcome:
        """An event-less batch that only releases pending transfers past their deadline; the
        service runs it when idle so that reservations are released on time, not at the next
        write."""
        outcome = BatchOutcome(results=[])
        self._expire(outcome)
        return outcome

    def _expire(self, outcome: BatchOutcome) -> None:
        """Release every pending transfer whose deadline has passed, before the next batch."""
        heap = self._expiries
        now = max(self.last_timestamp + 1, self._clock_ns())
        while heap and heap[0][0] <= now:
            deadline, pid = heapq.heappop(heap)
            p = self.transfers.get(pid)
            if p is None or self.pending_status.get(pid) != PendingStatus.PENDING:
                continue  # already posted or voided, or rolled back with its chain
            if p.timestamp + p.timeout * NS_PER_S != deadline:
                continue  # a stale entry of a rolled-back transfer that reused the id
            timestamp = self._timestamps(1)
            self._apply_expiration(p)
            outcome.expirations.append(Expiration(timestamp=timestamp, pending_id=pid))
            dr = self.accounts[p.debit_account_id]
            cr = self.accounts[p.credit_account_id]
            if (dr.flags | cr.flags) & _HISTORY:
                _record_history(outcome, timestamp, dr, cr)

    def _apply_expiration(self, p: Transfer) -> None:
        dr = self.accounts[p.debit_account_id]
        cr = self.accounts[p.credit_account_id]
        dr.debits_pending -= p.amount
        cr.credits_pending -= p.amount
        if p.flags & _CLOSE_DR:
            dr.flags &= ~_CLOSED
        if p.flags & _CLOSE_CR:
            cr.flags &= ~_CLOSED
        self.pending_status[p.id] = PendingStatus.EXPIRED

    # ----------------------------------------------------------------- recovery

    def replay(
        self, accounts: Iterable[Account], log: Iterable[Transfer | Expiration | BulkRecord]
    ) -> None:
        """Rebuild state from committed records: accounts, then the log in timestamp order.

        Committed records were validated when they were first applied, so replay only re-applies
        their effects; it asserts the invariants that would reveal a corrupt log.
        """
        for a in accounts:
            assert a.id not in self.accounts, "duplicate account in the store"
            self.accounts[a.id] = msgspec.structs.replace(a)
            self.last_timestamp = max(self.last_timestamp, a.timestamp)
        last = 0
        for record in log:
            assert record.timestamp > last, "log must be in strictly increasing timestamp order"
            last = record.timestamp
            if isinstance(record, Expiration):
                self._apply_expiration(self.transfers[record.pending_id])
            elif isinstance(record, BulkRecord):
                self._replay_bulk(record)
            else:
                self._replay_transfer(record)
        self.last_timestamp = max(self.last_timestamp, last)

    def _replay_transfer(self, t: Transfer) -> None:
        assert t.id not in self.transfers, "transfer applied twice in the store"
        dr = self.accounts[t.debit_account_id]
        cr = self.accounts[t.credit_account_id]
        flags = t.flags
        if flags & (_POST | _VOID):
            p = self.transfers[t.pending_id]
            assert self.pending_status[p.id] == PendingStatus.PENDING
            self._finish_pending(p, dr, cr, flags & _POST, t.amount)
        elif flags & _PENDING:
            dr.debits_pending += t.amount
            cr.credits_pending += t.amount
            self.pending_status[t.id] = PendingStatus.PENDING
            if t.timeout:
                heapq.heappush(self._expiries, (t.timestamp + t.timeout * NS_PER_S, t.id))
            if flags & _CLOSE_DR:
                dr.flags |= _CLOSED
            if flags & _CLOSE_CR:
                cr.flags |= _CLOSED
        else:
            dr.debits_posted += t.amount
            cr.credits_posted += t.amount
        self.transfers[t.id] = t

    def _replay_bulk(self, record: BulkRecord) -> None:
        assert record.id not in self.bulks, "bulk transfer applied twice in the store"
        account_ids, amounts = unpack_legs(record)
        accounts = self.accounts
        self._apply_bulk(record, [accounts[i] for i in account_ids], amounts)
        self.bulks[record.id] = (
            msgspec.structs.replace(record, leg_accounts=b"", leg_amounts=b""),
            legs_digest(record.leg_accounts, record.leg_amounts),
        )

    # ----------------------------------------------------------------- queries

    def lookup_accounts(self, ids: Iterable[int]) -> list[Account]:
        """Copies of the accounts that exist, in request order (absent ids are skipped)."""
        found = (self.accounts.get(i) for i in ids)
        return [msgspec.structs.replace(a) for a in found if a is not None]

    def lookup_transfers(self, ids: Iterable[int]) -> list[Transfer]:
        found = (self.transfers.get(i) for i in ids)
        return [t for t in found if t is not None]

    def trial_balance(self, ledger: int) -> tuple[int, int, int, int]:
        """Totals (debits_pending, debits_posted, credits_pending, credits_posted) of a ledger."""
        dp = dpo = cp = cpo = 0
        for a in self.accounts.values():
            if a.ledger == ledger:
                dp += a.debits_pending
                dpo += a.debits_posted
                cp += a.credits_pending
                cpo += a.credits_posted
        return dp, dpo, cp, cpo


def _snapshot(a: Account) -> tuple[Account, int, int, int, int, int]:
    return (a, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, a.flags)


def _record_history(outcome: BatchOutcome, timestamp: int, dr: Account, cr: Account) -> None:
    for a in (dr, cr):
        if a.flags & _HISTORY:
            _record_history_of(outcome, timestamp, a)


def _no_fast_run(
    batch: Sequence[Transfer],
    start: int,
    first: int,
    outcome: BatchOutcome,
    request_ends: Collection[int],
) -> int:
    return 0


def _record_history_of(outcome: BatchOutcome, timestamp: int, a: Account) -> None:
    balance = AccountBalance(
        timestamp=timestamp,
        debits_pending=a.debits_pending,
        debits_posted=a.debits_posted,
        credits_pending=a.credits_pending,
        credits_posted=a.credits_posted,
    )
    outcome.history.append((a.id, balance))


def _bulk_record(b: BulkTransfer, timestamp: int) -> BulkRecord:
    leg_accounts, leg_amounts = pack_legs(b.leg_account_ids, b.leg_amounts)
    return BulkRecord(
        id=b.id,
        account_id=b.account_id,
        debit_common=b.debit_common,
        ledger=b.ledger,
        code=b.code,
        user_data_128=b.user_data_128,
        user_data_64=b.user_data_64,
        user_data_32=b.user_data_32,
        timestamp=timestamp,
        leg_accounts=leg_accounts,
        leg_amounts=leg_amounts,
    )


def _compare_existing_bulk(b: BulkTransfer, e: BulkRecord, digest: bytes) -> str:
    """Idempotency for bulks: `exists` only when header and legs match the stored one."""
    B = BulkResult
    if b.account_id != e.account_id:
        return B.EXISTS_WITH_DIFFERENT_ACCOUNT_ID
    if b.debit_common != e.debit_common:
        return B.EXISTS_WITH_DIFFERENT_DIRECTION
    valid = all(0 <= i <= ID_MAX for i in b.leg_account_ids) and all(
        -AMOUNT_MAX - 1 <= a <= AMOUNT_MAX for a in b.leg_amounts
    )
    if not valid or legs_digest(*pack_legs(b.leg_account_ids, b.leg_amounts)) != digest:
        return B.EXISTS_WITH_DIFFERENT_LEGS
    if (b.user_data_128, b.user_data_64, b.user_data_32) != (
        e.user_data_128,
        e.user_data_64,
        e.user_data_32,
    ):
        return B.EXISTS_WITH_DIFFERENT_USER_DATA
    if b.ledger != e.ledger:
        return B.EXISTS_WITH_DIFFERENT_LEDGER
    if b.code != e.code:
        return B.EXISTS_WITH_DIFFERENT_CODE
    return B.EXISTS


def _compare_existing(t: Transfer, e: Transfer, transfers: dict[int, Transfer]) -> str:
    """Idempotency: a re-sent id is `exists` only when every field the client set matches."""
    if t.flags != e.flags:
        return R.EXISTS_WITH_DIFFERENT_FLAGS
    post_or_void = t.flags & (_POST | _VOID)
    # Post/void may leave accounts, ledger, code and amount zero: they come from the pending.
    if t.debit_account_id != e.debit_account_id and not (post_or_void and t.debit_account_id == 0):
        return R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if t.credit_account_id != e.credit_account_id and not (
        post_or_void and t.credit_account_id == 0
    ):
        return R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    if t.amount != e.amount:
        balancing = t.flags & (_BAL_DR | _BAL_CR)
        # A balancing transfer stores the amount it could move, at most the amount asked for.
        # Post/void amount 0 means "the whole pending amount": it matches only a full one.
        whole = post_or_void and t.amount == 0 and e.amount == transfers[e.pending_id].amount
        if not (balancing and t.amount > e.amount) and not whole:
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
    if t.ledger != e.ledger and not (post_or_void and t.ledger == 0):
        return R.EXISTS_WITH_DIFFERENT_LEDGER
    if t.code != e.code and not (post_or_void and t.code == 0):
        return R.EXISTS_WITH_DIFFERENT_CODE
    return R.EXISTS
