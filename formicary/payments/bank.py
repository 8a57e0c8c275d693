"""What payments needs from a bank: a small protocol, and an in-memory fake for tests.

The channels layer (simulated banks, flow control, circuit breaking) adapts to `BankGateway`;
payments never imports it. The contract every gateway keeps:

- every call is idempotent by `(operation, request_id)`: a repeated call returns the first
  definite answer and never moves money twice, so payments may retry after a crash;
- `OK` means done, `DECLINED` means refused for good, `BUSY` means nothing was done and the
  caller may retry (throttled, circuit open, bank in maintenance). A transport timeout must be
  resolved by the adapter (retry the same request id) into one of these three; if the adapter
  raises instead, payments leaves the record in its current state for `recover()`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

import msgspec

__all__ = ["BankAccountRef", "BankGateway", "FakeBank", "Outcome", "Reply"]


class Outcome(StrEnum):
    """What the bank (or a funding source) said."""

    OK = "ok"
    DECLINED = "declined"
    BUSY = "busy"


class Reply(msgspec.Struct, frozen=True):
    """An outcome and, when not ok, a short reason for the record and the error message."""

    outcome: Outcome
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


OK = Reply(Outcome.OK)


class BankAccountRef(msgspec.Struct, frozen=True):
    """A card or bank account as the platform knows it: the bank and a masked number."""

    bank_code: str
    masked_number: str


class BankGateway(Protocol):
    """The bank operations payments uses; see the module docstring for the contract."""

    def authorize(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        """Hold `amount_fen` on a card (card payment, first phase)."""

    def capture(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        """Take the authorized amount (card payment, second phase)."""

    def void(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        """Release an authorization, or reverse a capture, of the same request id."""

    def collect(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        """Pull money from a card in one step (wallet top-up)."""

    def payout(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        """Push money to a card or account (withdrawal, refund, merchant settlement)."""


_OPERATIONS = ("authorize", "capture", "void", "collect", "payout")
# The fake's memory is bounded like a real bank's idempotency table: answers are kept for a
# day, at most a million of them (see `FakeBank`).
ANSWERS_MAX = 1_000_000
ANSWER_TTL_S = 86_400
SCRIPTED_MAX = 10_000
NS_PER_S = 1_000_000_000


class _Answer:
    """A definite answer the fake remembers, and when it gave it."""

    __slots__ = ("at_ns", "reply")

    def __init__(self, reply: Reply, at_ns: int) -> None:
        self.reply = reply
        self.at_ns = at_ns


class FakeBank:
    """An in-memory `BankGateway` with scriptable answers, for tests and examples.

    By default every call succeeds. `declined_cards` (masked numbers) and `busy_banks` (bank
    codes) refuse persistently; `script(operation, reply)` queues one-off answers; `on_call`
    runs before each fresh call (e.g. to move a test clock while "the bank is slow").
    It keeps the money it moved per bank (`collected_fen`, `paid_out_fen`, `captured_fen`) so
    tests can check that retries never moved money twice.

    Bounded memory, like a real bank's idempotency table. Each definite answer (ok, declined)
    is remembered for `answer_ttl_s` (a day) by `clock_ns`; an authorization not captured or
    voided by then lapses with it, and a capture can be reversed by a void only within that
    time. A repeat of an id within the TTL is answered from memory (nothing moves again); after
    it, the id is a fresh call (payments repeats a call within minutes: while resuming a
    record). At most `answers_max` answers are kept: when that many are live, a fresh call is
    answered `busy` ("idempotency table full", nothing done) until the oldest expire, so a
    long run never grows without limit and never forgets an answer early. Busy answers are not
    kept. Everything else the fake keeps is per bank code or per operation.
    """

    def __init__(
        self,
        *,
        answers_max: int = ANSWERS_MAX,
        answer_ttl_s: int = ANSWER_TTL_S,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        assert answers_max > 0 and answer_ttl_s > 0, (answers_max, answer_ttl_s)
        self.answers_max = answers_max
        self._ttl_ns = answer_ttl_s * NS_PER_S
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        # Oldest first, so that expiry looks only at the front.
        self._answers: OrderedDict[tuple[str, str], _Answer] = OrderedDict()
        self._scripted: dict[str, deque[Reply]] = {op: deque() for op in _OPERATIONS}
        # Live authorizations and captures, by request id; each has its answer in `_answers`
        # and is dropped with it.
        self._authorized: dict[str, int] = {}
        self._captured: dict[str, tuple[str, int]] = {}
        self.declined_cards: set[str] = set()
        self.busy_banks: set[str] = set()
        self.on_call: Callable[[str, str], None] | None = None
        self.calls: Counter[str] = Counter()
        self.collected_fen: Counter[str] = Counter()
        self.paid_out_fen: Counter[str] = Counter()
        self.captured_fen: Counter[str] = Counter()
        self.expired = 0  # answers forgotten after their TTL

    @property
    def answers(self) -> int:
        """Definite answers remembered now (at most `answers_max`)."""
        with self._lock:
            return len(self._answers)

    @property
    def holds_open(self) -> int:
        """Authorizations neither captured nor voided nor lapsed."""
        with self._lock:
            return len(self._authorized)

    def script(self, operation: str, reply: Reply) -> None:
        """Answer the next fresh `operation` call with `reply` (one-off, in order)."""
        assert operation in _OPERATIONS, operation
        with self._lock:
            assert len(self._scripted[operation]) < SCRIPTED_MAX, "too many scripted answers"
            self._scripted[operation].append(reply)

    def authorize(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        return self._call("authorize", request_id, account, amount_fen)

    def capture(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        return self._call("capture", request_id, account, amount_fen)

    def void(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        return self._call("void", request_id, account, amount_fen)

    def collect(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        return self._call("collect", request_id, account, amount_fen)

    def payout(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        return self._call("payout", request_id, account, amount_fen)

    def _call(
        self, operation: str, request_id: str, account: BankAccountRef, amount_fen: int
    ) -> Reply:
        assert amount_fen > 0, amount_fen
        key = (operation, request_id)
        with self._lock:
            self.calls[operation] += 1
            self._expire(self._clock_ns())
            known = self._answers.get(key)
        if known is not None:
            return known.reply  # idempotent: the first definite answer, nothing moves again
        if self.on_call is not None:
            self.on_call(operation, request_id)
        with self._lock:
            now_ns = self._clock_ns()
            self._expire(now_ns)
            # A concurrent call with the same key may have answered meanwhile.
            known = self._answers.get(key)
            if known is not None:
                return known.reply
            if len(self._answers) >= self.answers_max:
                return Reply(Outcome.BUSY, "idempotency table full; retry later")
            reply = self._decide(operation, request_id, account, amount_fen)
            if reply.outcome is not Outcome.BUSY:  # busy did nothing: a retry is a fresh call
                self._answers[key] = _Answer(reply, now_ns)
            return reply

    def _expire(self, now_ns: int) -> None:
        """Forget answers older than the TTL, with the holds and captures they made (under
        the lock). Each answer is forgotten once: amortised O(1) per call."""
        horizon_ns = now_ns - self._ttl_ns
        answers = self._answers
        while answers:
            (operation, request_id), oldest = next(iter(answers.items()))
            if oldest.at_ns > horizon_ns:
                return
            answers.popitem(last=False)
            self.expired += 1
            if operation == "authorize":
                self._authorized.pop(request_id, None)  # the hold lapses at the bank
            elif operation == "capture":
                self._captured.pop(request_id, None)  # too late to reverse by a void

    def _decide(
        self, operation: str, request_id: str, account: BankAccountRef, amount_fen: int
    ) -> Reply:
        if self._scripted[operation]:
            reply = self._scripted[operation].popleft()
        elif account.bank_code in self.busy_banks:
            reply = Reply(Outcome.BUSY, f"{account.bank_code} busy")
        elif account.masked_number in self.declined_cards and operation != "void":
            reply = Reply(Outcome.DECLINED, "card declined by issuer")
        else:
            reply = OK
        if not reply.ok:
            return reply
        bank = account.bank_code
        if operation == "authorize":
            self._authorized[request_id] = amount_fen
        elif operation == "capture":
            if self._authorized.pop(request_id, None) != amount_fen:
                return Reply(Outcome.DECLINED, "no matching authorization")
            self._captured[request_id] = (bank, amount_fen)
            self.captured_fen[bank] += amount_fen
        elif operation == "void":
            self._authorized.pop(request_id, None)
            captured = self._captured.pop(request_id, None)
            if captured is not None:
                self.captured_fen[captured[0]] -= captured[1]
        elif operation == "collect":
            self.collected_fen[bank] += amount_fen
        else:
            self.paid_out_fen[bank] += amount_fen
        return reply
