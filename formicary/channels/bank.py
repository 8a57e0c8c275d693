"""Simulated banks: a discrete-event model whose capacity, latency, failures and maintenance
windows are real behaviour that tests (and the Double-11 simulator) can observe.

A bank is never slept on. `SimulatedBank.submit(request, now_ns)` decides, from a seeded
`random.Random`, what the bank does with the request and when its answer arrives:

- Capacity: the bank works through requests one after another at `capacity_tps`, in arrival
  order (a single server of rate `capacity_tps`): request k starts at
  max(arrival, start of k-1 + 1/capacity). Under capacity the wait is ~0; beyond capacity the
  queue, and with it the latency, grows; once `queue_depth_max` requests are waiting the bank
  answers BUSY without doing anything.
- Latency: after it starts, a request takes a lognormal time (`LatencyModel`: p50, p99). If
  queueing plus latency exceeds `timeout_ms` the caller gets TIMEOUT at `timeout_ms` — but the
  bank did process it, and a retry of the same id returns the real answer.
- Failures: with probability `error_rate` the bank errs (nothing applied); with probability
  `decline_rate` it declines an authorize, collect or payout (funds, card).
- Maintenance windows (daily or absolute): the bank answers UNAVAILABLE at once.
- Idempotency: every processed request (approved, declined or errored) is remembered under its
  id for `idempotency_ttl_s`; a repeat is answered from that record without using capacity and
  never applied twice. The same id with a different request is declined (IDEMPOTENCY_CONFLICT).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from enum import StrEnum

import msgspec

from formicary.channels.clock import NS_PER_MS, NS_PER_S
from formicary.channels.errors import InvalidRule
from formicary.channels.latency import LATENCY_MS_MAX, LatencyModel
from formicary.channels.messages import BankOutcome, BankReply, BankRequest, Operation, Reason
from formicary.channels.stats import PerSecond

__all__ = [
    "AbsoluteWindow",
    "BankProfile",
    "DailyWindow",
    "Hold",
    "HoldState",
    "MaintenanceWindow",
    "SimulatedBank",
]

S_PER_DAY = 86_400
CAPACITY_TPS_MAX = 1_000_000
WINDOWS_MAX = 16
NAME_LENGTH_MAX = 64
TIMEOUT_MS_MAX = LATENCY_MS_MAX


class DailyWindow(msgspec.Struct, frozen=True):
    """A window that recurs every day from `start_s` to `end_s` seconds after local midnight
    (local = UTC + `utc_offset_s`; 28_800 for Beijing). `start_s > end_s` spans midnight."""

    start_s: int
    end_s: int
    utc_offset_s: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.start_s < S_PER_DAY and 0 <= self.end_s < S_PER_DAY):
            raise InvalidRule("daily window bounds are seconds of the day, 0..86399")
        if self.start_s == self.end_s:
            raise InvalidRule("a daily window needs start_s != end_s")
        if abs(self.utc_offset_s) > S_PER_DAY // 2 + 2 * 3600:
            raise InvalidRule(f"utc_offset_s out of range: {self.utc_offset_s}")

    def end_if_active(self, now_ns: int) -> int | None:
        """The end of the occurrence holding `now_ns`, or None when outside the window."""
        local_ns = now_ns + self.utc_offset_s * NS_PER_S
        day_start_ns = local_ns - local_ns % (S_PER_DAY * NS_PER_S)
        second = (local_ns - day_start_ns) // NS_PER_S
        if self.start_s < self.end_s:
            active = self.start_s <= second < self.end_s
            end_day_ns = day_start_ns
        else:  # spans midnight: [start, 24h) of this day, [0, end) of the next
            active = second >= self.start_s or second < self.end_s
            end_day_ns = day_start_ns + (S_PER_DAY * NS_PER_S if second >= self.start_s else 0)
        if not active:
            return None
        return end_day_ns + self.end_s * NS_PER_S - self.utc_offset_s * NS_PER_S


class AbsoluteWindow(msgspec.Struct, frozen=True):
    """A one-off window [start_ns, end_ns) of virtual time."""

    start_ns: int
    end_ns: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_ns < self.end_ns:
            raise InvalidRule("an absolute window needs 0 <= start_ns < end_ns")

    def end_if_active(self, now_ns: int) -> int | None:
        return self.end_ns if self.start_ns <= now_ns < self.end_ns else None


MaintenanceWindow = DailyWindow | AbsoluteWindow


class BankProfile(msgspec.Struct, frozen=True, kw_only=True):
    """How a simulated bank behaves. Defaults are a healthy mid-sized bank."""

    name: str
    capacity_tps: int
    latency_p50_ms: float = 80.0
    latency_p99_ms: float = 400.0
    decline_rate: float = 0.0
    error_rate: float = 0.0
    timeout_ms: int = 3_000
    # Requests that may wait in the bank's queue; None: two seconds of work.
    queue_depth_max: int | None = None
    maintenance: tuple[DailyWindow | AbsoluteWindow, ...] = ()
    idempotency_keys_max: int = 1_000_000
    idempotency_ttl_s: int = S_PER_DAY

    def __post_init__(self) -> None:
        if not 0 < len(self.name) <= NAME_LENGTH_MAX:
            raise InvalidRule(f"bank name must be 1..{NAME_LENGTH_MAX} characters")
        if not 0 < self.capacity_tps <= CAPACITY_TPS_MAX:
            raise InvalidRule(f"{self.name}: capacity_tps must be 1..{CAPACITY_TPS_MAX}")
        if not (0 <= self.decline_rate <= 1 and 0 <= self.error_rate <= 1):
            raise InvalidRule(f"{self.name}: decline_rate and error_rate are probabilities")
        if self.decline_rate + self.error_rate > 1:
            raise InvalidRule(f"{self.name}: decline_rate + error_rate must not exceed 1")
        if not 0 < self.timeout_ms <= TIMEOUT_MS_MAX:
            raise InvalidRule(f"{self.name}: timeout_ms must be 1..{TIMEOUT_MS_MAX}")
        if self.queue_depth_max is not None and not 0 < self.queue_depth_max <= 100_000_000:
            raise InvalidRule(f"{self.name}: queue_depth_max must be 1..100000000")
        if len(self.maintenance) > WINDOWS_MAX:
            raise InvalidRule(f"{self.name}: at most {WINDOWS_MAX} maintenance windows")
        if not 0 < self.idempotency_keys_max <= 100_000_000:
            raise InvalidRule(f"{self.name}: idempotency_keys_max must be 1..100000000")
        if not 0 < self.idempotency_ttl_s <= 30 * S_PER_DAY:
            raise InvalidRule(f"{self.name}: idempotency_ttl_s must be 1 s..30 days")
        LatencyModel(self.latency_p50_ms, self.latency_p99_ms)  # validates the pair

    @property
    def queue_depth_limit(self) -> int:
        return self.queue_depth_max or 2 * self.capacity_tps


class HoldState(StrEnum):
    HELD = "held"
    CAPTURED = "captured"
    VOIDED = "voided"  # released before capture
    REVERSED = "reversed"  # captured, then voided (a same-day reversal, before settlement)


class Hold(msgspec.Struct, frozen=True):
    """An authorization as the bank sees it (a snapshot)."""

    authorization_id: str
    card_id: str
    amount_fen: int
    state: HoldState
    captured_fen: int = 0


class _Record:
    """What the bank remembers about one processed idempotency id."""

    __slots__ = ("created_ns", "hold", "reply", "request")

    def __init__(
        self, request: BankRequest, reply: BankReply, hold: Hold | None, created_ns: int
    ) -> None:
        self.created_ns = created_ns
        self.request = request
        self.reply = reply  # the real answer, even if the caller timed out
        self.hold = hold  # AUTHORIZE that was approved: the authorization's current state


BANK_METRICS = (
    "received",
    "started",
    "approved",
    "declined",
    "errors",
    "timeouts",
    "unavailable",
    "busy",
    "replayed",
    "queue_depth_max",
)
_RECEIVED, _STARTED, _APPROVED, _DECLINED, _ERRORS, _TIMEOUTS = range(6)
_UNAVAILABLE, _BUSY, _REPLAYED, _QUEUE_DEPTH = range(6, 10)
_OUTCOME_METRIC = {
    BankOutcome.APPROVED: _APPROVED,
    BankOutcome.DECLINED: _DECLINED,
    BankOutcome.ERROR: _ERRORS,
    BankOutcome.TIMEOUT: _TIMEOUTS,
    BankOutcome.UNAVAILABLE: _UNAVAILABLE,
    BankOutcome.BUSY: _BUSY,
}
_FUNDS_OPERATIONS = frozenset({Operation.AUTHORIZE, Operation.COLLECT, Operation.PAYOUT})


class SimulatedBank:
    """One bank. Deterministic: the same profile, seed and submissions give the same replies.
    Submissions should come in non-decreasing `now_ns` (a discrete-event simulation's order)."""

    def __init__(self, profile: BankProfile, *, seed: int | str = 0) -> None:
        self.profile = profile
        self.name = profile.name
        self.latency = LatencyModel(profile.latency_p50_ms, profile.latency_p99_ms)
        # A str seed is hashed deterministically (random's version 2 seeding), so that every
        # bank of a fleet gets its own stream from one simulation seed.
        self._rng = random.Random(f"{seed}:{profile.name}")
        # Rounded up so that the bank never starts more than capacity_tps requests in a second.
        self._interval_ns = -(-NS_PER_S // profile.capacity_tps)
        self._timeout_ns = profile.timeout_ms * NS_PER_MS
        self._ttl_ns = profile.idempotency_ttl_s * NS_PER_S
        self._queue_depth_max = profile.queue_depth_limit
        self._next_free_ns = 0
        # Oldest first, so that expiry looks only at the front.
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self.stats = PerSecond(BANK_METRICS, maxima=("queue_depth_max",))

    # -- the model ---------------------------------------------------------------------------

    def submit(self, request: BankRequest, now_ns: int) -> BankReply:
        """The bank's answer to `request` arriving at `now_ns`."""
        assert now_ns >= 0, now_ns
        self.stats.add(_RECEIVED, now_ns)
        for window in self.profile.maintenance:
            end_ns = window.end_if_active(now_ns)
            if end_ns is not None:
                return self._refuse(request, now_ns, Reason.MAINTENANCE, end_ns - now_ns)
        self._expire(now_ns)
        record = self._records.get(request.idempotency_id)
        if record is not None:
            return self._replay(request, record, now_ns)
        if len(self._records) >= self.profile.idempotency_keys_max:
            oldest_ns = next(iter(self._records.values())).created_ns
            retry_ns = oldest_ns + self._ttl_ns - now_ns
            return self._refuse(request, now_ns, Reason.IDEMPOTENCY_TABLE_FULL, retry_ns)
        depth = self.queue_depth(now_ns)
        self.stats.peak(_QUEUE_DEPTH, now_ns, depth)
        if depth >= self._queue_depth_max:
            # Room again once the queue has drained below the bound: depth < max when
            # next_free - t < max * interval.
            room_ns = self._next_free_ns - self._queue_depth_max * self._interval_ns + 1
            return self._refuse(request, now_ns, Reason.BANK_QUEUE_FULL, room_ns - now_ns)

        start_ns = max(now_ns, self._next_free_ns)
        self._next_free_ns = start_ns + self._interval_ns
        self.stats.add(_STARTED, start_ns)
        done_ns = start_ns + self.latency.sample_ns(self._rng)
        outcome, reason, hold = self._decide(request)
        real = BankReply(
            idempotency_id=request.idempotency_id,
            outcome=outcome,
            reason=reason,
            submitted_ns=now_ns,
            completed_ns=done_ns,
        )
        self._records[request.idempotency_id] = _Record(request, real, hold, now_ns)
        return self._answer(real, now_ns)

    def queue_depth(self, now_ns: int) -> int:
        """Requests accepted that start at or after `now_ns` (waiting, or starting now)."""
        return max(0, self._next_free_ns - now_ns) // self._interval_ns

    # -- inspection (tests, simulators) -----------------------------------------------------

    def lookup(self, idempotency_id: str) -> BankReply | None:
        """The real answer to a processed id (what a retry would learn), or None."""
        record = self._records.get(idempotency_id)
        return None if record is None else record.reply

    def hold(self, authorization_id: str) -> Hold | None:
        record = self._records.get(authorization_id)
        return None if record is None else record.hold

    def processed(self) -> dict[BankOutcome, int]:
        """Count of remembered requests by real outcome: the bank's effects, each once."""
        counts = dict.fromkeys((BankOutcome.APPROVED, BankOutcome.DECLINED, BankOutcome.ERROR), 0)
        for record in self._records.values():
            counts[record.reply.outcome] += 1
        return counts

    # -- internals ------------------------------------------------------------------------------

    def _decide(self, request: BankRequest) -> tuple[BankOutcome, Reason, Hold | None]:
        draw = self._rng.random()
        if draw < self.profile.error_rate:
            return BankOutcome.ERROR, Reason.BANK_ERROR, None
        operation = request.operation
        if operation in _FUNDS_OPERATIONS:
            if draw < self.profile.error_rate + self.profile.decline_rate:
                return BankOutcome.DECLINED, Reason.DECLINED_BY_BANK, None
            hold = None
            if operation is Operation.AUTHORIZE:
                hold = Hold(
                    request.idempotency_id, request.card_id, request.amount_fen, HoldState.HELD
                )
            return BankOutcome.APPROVED, Reason.APPROVED, hold
        authorization = self._records.get(request.authorization_id)
        hold = None if authorization is None else authorization.hold
        if authorization is None or hold is None:
            return BankOutcome.DECLINED, Reason.UNKNOWN_AUTHORIZATION, None
        if operation is Operation.CAPTURE:
            if hold.state is not HoldState.HELD:
                return BankOutcome.DECLINED, Reason.AUTHORIZATION_CLOSED, None
            if request.amount_fen > hold.amount_fen:
                return BankOutcome.DECLINED, Reason.AMOUNT_OVER_AUTHORIZATION, None
            # A partial capture releases the rest, as card schemes do.
            authorization.hold = msgspec.structs.replace(
                hold, state=HoldState.CAPTURED, captured_fen=request.amount_fen
            )
        elif hold.state is HoldState.HELD:
            authorization.hold = msgspec.structs.replace(hold, state=HoldState.VOIDED)
        elif hold.state is HoldState.CAPTURED:
            authorization.hold = msgspec.structs.replace(hold, state=HoldState.REVERSED)
        else:
            return BankOutcome.DECLINED, Reason.AUTHORIZATION_CLOSED, None
        return BankOutcome.APPROVED, Reason.APPROVED, None

    def _answer(self, real: BankReply, now_ns: int) -> BankReply:
        """The caller's view of a processed request: the real answer, or TIMEOUT if it would
        arrive after the caller stopped waiting."""
        if real.completed_ns - now_ns > self._timeout_ns:
            reply = BankReply(
                idempotency_id=real.idempotency_id,
                outcome=BankOutcome.TIMEOUT,
                reason=Reason.BANK_TIMEOUT,
                submitted_ns=now_ns,
                completed_ns=now_ns + self._timeout_ns,
                replayed=real.replayed,
            )
        else:
            reply = real
        self.stats.add(_OUTCOME_METRIC[reply.outcome], reply.completed_ns)
        return reply

    def _replay(self, request: BankRequest, record: _Record, now_ns: int) -> BankReply:
        if record.request != request:
            reply = BankReply(
                idempotency_id=request.idempotency_id,
                outcome=BankOutcome.DECLINED,
                reason=Reason.IDEMPOTENCY_CONFLICT,
                submitted_ns=now_ns,
                completed_ns=now_ns,
            )
            self.stats.add(_DECLINED, now_ns)
            return reply
        self.stats.add(_REPLAYED, now_ns)
        # A repeat cannot learn the answer before the bank has it.
        real = msgspec.structs.replace(
            record.reply,
            submitted_ns=now_ns,
            completed_ns=max(now_ns, record.reply.completed_ns),
            replayed=True,
        )
        return self._answer(real, now_ns)

    def _refuse(
        self, request: BankRequest, now_ns: int, reason: Reason, retry_after_ns: int
    ) -> BankReply:
        outcome = BankOutcome.UNAVAILABLE if reason is Reason.MAINTENANCE else BankOutcome.BUSY
        self.stats.add(_OUTCOME_METRIC[outcome], now_ns)
        return BankReply(
            idempotency_id=request.idempotency_id,
            outcome=outcome,
            reason=reason,
            submitted_ns=now_ns,
            completed_ns=now_ns,
            retry_after_ns=max(1, retry_after_ns),
        )

    def _expire(self, now_ns: int) -> None:
        """Forget ids older than the TTL (a bounded number per call is enough: amortised)."""
        records = self._records
        horizon_ns = now_ns - self._ttl_ns
        for _ in range(64):
            if not records or next(iter(records.values())).created_ns > horizon_ns:
                return
            records.popitem(last=False)
