"""A payments `BankGateway` over the bank channels (flow control, circuit breakers, banks).

Payments asks a bank to `authorize`, `capture`, `void`, `collect` or `payout` by its own request
id; this adapter sends each call through the channel of the card's bank and maps the channel's
answer onto the three outcomes payments knows:

- succeeded -> `OK`;
- declined (by the bank, or an idempotency conflict) -> `DECLINED`;
- throttled, breaker open, unavailable (maintenance, bank queue full), the router's retry-later
  -> `BUSY`: nothing was done; the reason carries the retry-after;
- a bank error (the bank processed nothing) -> `BUSY`;
- a timeout -> raises `BankOutcomeUnknown`: retry the *same* id later.

Why a timeout raises instead of answering: the bank may have done it, so neither "declined" nor
"busy" (both promise nothing was done) is true. Payments leaves its record open when a gateway
raises, and `Cashier.resume` / `Payments.recover` later repeat the call with the same id; the
bank then answers from its idempotency table with what it really did. A call that timed out
once stays "unknown" until the bank answers it: if its retry is throttled, that is unknown
again, never busy (a capture the bank made must not be read as "nothing was done").

A repeated call (same operation and request id) is answered from the gateway's memory of its
first definite answer, as the `BankGateway` contract requires, without passing through flow
control again: a payment resumed after its capture timed out must not have its (approved)
authorization refused as "busy" on the way to learning what the capture did.

Ids at the bank: the authorization is `authorize:{request_id}`; its capture and void are
`capture:{request_id}` / `void:{request_id}` naming that authorization; `collect:{request_id}`
and `payout:{request_id}`. The card id the bank sees is the masked number payments stores.

The gateway never routes to another bank: the ledger legs of a card payment name the clearing
account of the card's own bank, so failing over to another card (or the wallet) is a new
payment attempt at the cashier, which the caller decides (the Double-11 simulator does).

Thread-safe: channels are single-threaded discrete-event models, so calls are serialised by a
lock. Nothing here is specific to the simulator: with `MonotonicClock` channels (and, one day,
real banks behind the same `submit` shape) payments can use it as is.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping

import msgspec

from formicary.channels import (
    NS_PER_MS,
    BankOutcome,
    BankRequest,
    Channel,
    ChannelResult,
    ChannelStatus,
    Operation,
    Router,
    RouteStatus,
)
from formicary.payments import BankAccountRef, Outcome, PaymentError, Reply

__all__ = [
    "BankOutcomeUnknown",
    "ChannelGateway",
    "GatewayCall",
    "outcome_for",
]

# Calls whose outcome is unknown (timed out, not yet learnt): each is retried within minutes,
# so a bound far above any in-flight count is a bug detector, not a capacity limit.
UNRESOLVED_MAX = 100_000
# Approved authorizations not yet captured or voided (tracked so that a report can say how many
# holds were left to expire at the bank). Oldest forgotten first beyond this.
HOLDS_MAX = 1_000_000
# Definite answers (ok, declined) kept to answer a repeated call without asking again. Payments
# repeats a call only while resuming a record, within its card reservation (minutes), so the
# newest million answers are plenty; the oldest are forgotten first (the bank's own
# idempotency table still answers a forgotten id correctly, only through flow control).
ANSWERS_MAX = 1_000_000

_OK = Reply(Outcome.OK)
# Statuses that guarantee nothing was applied: the caller may retry after retry_after_ns.
_NOT_APPLIED = frozenset(
    {
        ChannelStatus.THROTTLED,
        ChannelStatus.BREAKER_OPEN,
        ChannelStatus.UNAVAILABLE,
        RouteStatus.RETRY_LATER,
    }
)


class BankOutcomeUnknown(PaymentError):
    """The bank did not answer in time: what it did is unknown until the same request id is
    retried, no earlier than `retry_after_ns` from now. Payments leaves the record open."""

    code = "bank_outcome_unknown"

    def __init__(self, message: str, *, operation: str, request_id: str, retry_after_ns: int):
        super().__init__(message)
        self.operation = operation
        self.request_id = request_id
        self.retry_after_ns = retry_after_ns


class GatewayCall(msgspec.Struct, frozen=True):
    """One call through the gateway, for observers (simulators, metrics)."""

    operation: str
    request_id: str  # payments' request id (the bank saw `{operation}:{request_id}`)
    bank_code: str
    called_ns: int  # the channel's time when the call was made
    result: ChannelResult
    outcome: Outcome | None  # None: unknown (BankOutcomeUnknown was raised)


def outcome_for(
    status: ChannelStatus | RouteStatus, bank_outcome: BankOutcome | None
) -> Outcome | None:
    """The payments outcome of a channel (or route) answer; None means "unknown: retry the same
    id later" (a timeout). A bank error did nothing, so it is busy, not unknown."""
    if status in (ChannelStatus.SUCCEEDED, RouteStatus.SUCCEEDED):
        return Outcome.OK
    if status in (ChannelStatus.DECLINED, RouteStatus.DECLINED):
        return Outcome.DECLINED
    if status in _NOT_APPLIED:
        return Outcome.BUSY
    if status in (ChannelStatus.FAILED, RouteStatus.FAILED):
        return None if bank_outcome is BankOutcome.TIMEOUT else Outcome.BUSY
    raise ValueError(f"no payments outcome for {status!r}")  # RouteStatus.WALLET: not a bank


class ChannelGateway:
    """`BankGateway` over a `Router`'s channels; see the module docstring.

    `channel_for` maps a payments bank code (e.g. "ICBC") to a channel name (default: the same
    string, or a lookup in a mapping). `on_call` sees every call after it was answered.
    """

    def __init__(
        self,
        router: Router,
        *,
        channel_for: Callable[[str], str] | Mapping[str, str] | None = None,
        on_call: Callable[[GatewayCall], None] | None = None,
    ) -> None:
        self.router = router
        if channel_for is None:
            self._channel_for: Callable[[str], str] = str
        elif isinstance(channel_for, Mapping):
            mapping = dict(channel_for)
            self._channel_for = lambda code: mapping.get(code, "")
        else:
            self._channel_for = channel_for
        self.on_call = on_call
        self._lock = threading.Lock()
        self._unresolved: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._holds: OrderedDict[str, None] = OrderedDict()
        self._answers: OrderedDict[tuple[str, str], Reply] = OrderedDict()
        # "operation:status" -> count, plus holds bookkeeping; read them for reports.
        self.counts: Counter[str] = Counter()

    # -- BankGateway ----------------------------------------------------------------------------

    def authorize(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        request = BankRequest.authorize(
            _id("authorize", request_id), account.masked_number, amount_fen
        )
        return self._call(Operation.AUTHORIZE, request_id, account, request)

    def capture(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        request = BankRequest.capture(
            _id("capture", request_id), _id("authorize", request_id), amount_fen
        )
        return self._call(Operation.CAPTURE, request_id, account, request)

    def void(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        # The bank's void releases the whole authorization (or reverses its capture).
        request = BankRequest.void(_id("void", request_id), _id("authorize", request_id))
        return self._call(Operation.VOID, request_id, account, request)

    def collect(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        request = BankRequest.collect(_id("collect", request_id), account.masked_number, amount_fen)
        return self._call(Operation.COLLECT, request_id, account, request)

    def payout(self, request_id: str, account: BankAccountRef, amount_fen: int) -> Reply:
        request = BankRequest.payout(_id("payout", request_id), account.masked_number, amount_fen)
        return self._call(Operation.PAYOUT, request_id, account, request)

    # -- inspection -----------------------------------------------------------------------------

    @property
    def unresolved(self) -> int:
        """Calls that timed out and whose real outcome has not been learnt yet."""
        return len(self._unresolved)

    @property
    def holds_open(self) -> int:
        """Approved authorizations neither captured nor voided (they expire at the bank)."""
        return len(self._holds)

    # -- internals ------------------------------------------------------------------------------

    def _channel(self, bank_code: str) -> Channel | None:
        name = self._channel_for(bank_code)
        try:
            return self.router.channel(name)
        except KeyError:
            return None

    def _call(
        self, operation: Operation, request_id: str, account: BankAccountRef, request: BankRequest
    ) -> Reply:
        op = str(operation)
        key = (op, request_id)
        with self._lock:
            known = self._answers.get(key)
            if known is not None:
                self.counts[f"{op}:replayed"] += 1
                return known
            channel = self._channel(account.bank_code)
            if channel is None:
                self.counts[f"{op}:no_channel"] += 1
                return Reply(Outcome.DECLINED, f"no channel for bank {account.bank_code}")
            called_ns = channel.clock.now_ns()
            result = channel.submit(request)
            bank_outcome = result.reply.outcome if result.reply is not None else None
            outcome = outcome_for(result.status, bank_outcome)
            retry_after_ns = result.retry_after_ns
            if outcome is None:
                # Timed out: the real answer arrives no earlier than the caller's deadline.
                assert result.reply is not None
                retry_after_ns = max(1, result.reply.completed_ns - called_ns)
            elif key in self._unresolved and result.status in _NOT_APPLIED:
                # This retry was not even sent: the first call's outcome is still unknown.
                outcome = None
            where = f"{account.bank_code} {result.status}/{result.reason}"
            reply = self._settle(operation, key, outcome, where, retry_after_ns)
        call = GatewayCall(op, request_id, account.bank_code, called_ns, result, outcome)
        if self.on_call is not None:
            self.on_call(call)
        if reply is None:
            raise BankOutcomeUnknown(
                f"{op} {request_id} at {where}: outcome unknown, retry the same id after "
                f"{retry_after_ns // NS_PER_MS} ms",
                operation=op,
                request_id=request_id,
                retry_after_ns=retry_after_ns,
            )
        return reply

    def _settle(
        self,
        operation: Operation,
        key: tuple[str, str],
        outcome: Outcome | None,
        where: str,
        retry_after_ns: int,
    ) -> Reply | None:
        """Book an answer (under the lock): remember definite ones, track unknown ones and
        holds; None means unknown."""
        self.counts[f"{key[0]}:{outcome or 'unknown'}"] += 1
        if outcome is None:
            self._unresolved[key] = None
            self._unresolved.move_to_end(key)
            assert len(self._unresolved) <= UNRESOLVED_MAX, "unknown outcomes pile up"
            return None
        self._unresolved.pop(key, None)
        if outcome is Outcome.BUSY:  # nothing was done: a retry is a fresh call
            retry_ms = -(-retry_after_ns // NS_PER_MS)
            return Reply(Outcome.BUSY, f"{where}; retry after {retry_ms} ms")
        if outcome is Outcome.OK:
            reply = _OK
            self._track_hold(operation, key[1])
        else:
            reply = Reply(Outcome.DECLINED, where)
        self._answers[key] = reply
        if len(self._answers) > ANSWERS_MAX:
            self._answers.popitem(last=False)
        return reply

    def _track_hold(self, operation: Operation, request_id: str) -> None:
        if operation is Operation.AUTHORIZE:
            self._holds[request_id] = None
            if len(self._holds) > HOLDS_MAX:
                self._holds.popitem(last=False)
                self.counts["holds_forgotten"] += 1
        elif operation in (Operation.CAPTURE, Operation.VOID):
            self._holds.pop(request_id, None)


def _id(operation: str, request_id: str) -> str:
    return f"{operation}:{request_id}"
