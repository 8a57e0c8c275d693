"""The Double-11 simulator: a discrete-event loop in virtual time that drives the REAL payments
service and ledger with a funnel of simulated shoppers, over simulated banks behind real
channels (flow control, circuit breakers).

How time works. The loop owns a `ManualClock` and never sleeps. It moves in windows of
`window_ms` of virtual time; the events of one window (cashier visits, payment rounds, resumes
of payments whose bank timed out) run concurrently on `workers` threads, each at its own
virtual time (`EventClock`), so that the ledger's writer can group many payments into one
commit. Whatever an event causes (the next funnel stage, a retry after "bank busy", a resume)
is scheduled in a later window. With `workers=1` the events run one by one in time order and a
run is fully deterministic for its seed; with more workers the order of calls inside a window
varies, and so may a few outcomes (which of two racing payments got a bank's last token).

A shopper's journey: a "buy" click -> (0.3-2 s) the cashier: an order is created, and the
chosen coupon quoted -> for half of them, (1-6 s) pay: the funding options are tried in order
(the preferred card or the wallet, the other cards, the wallet): a bank that is busy
(throttled, breaker open, maintenance, queue full) or declines sends the user to the next
option at once (failover); when every option was busy the user retries the whole round after
the shortest retry-after ("bank busy, retry"), up to `retry_rounds_max` rounds; a bank that
timed out leaves the payment open and the same payment is resumed after the timeout (the bank
answers the same request id with what it really did). A coupon that ran out is dropped and the
same option is tried again without it. Every attempt ends as a row of the payments store,
succeeded or failed with its reason; every intent to pay ends succeeded or failed with a reason.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from formicary.channels import NS_PER_MS, NS_PER_S, BreakerState
from formicary.payments import (
    BankBusy,
    BankDeclined,
    CouponExhausted,
    CouponNotApplicable,
    Funding,
    InsufficientFunds,
    Outcome,
    PaymentError,
    PaymentState,
)
from formicary.sim.config import DRAIN_S_MAX, Double11Config
from formicary.sim.gateway import BankOutcomeUnknown, GatewayCall
from formicary.sim.recorder import Recorder
from formicary.sim.timebase import ForwardClock
from formicary.sim.world import (
    MIDNIGHT_NS,
    SimCampaign,
    SimUser,
    World,
    build_world,
    choose_campaign,
    order_amount_fen,
    populate,
    recover_open_work,
)

__all__ = ["Double11", "Journey", "SecondView", "View"]

_CASHIER, _PAY = 0, 1
# Think times of the simulated shoppers (virtual seconds).
CLICK_TO_CASHIER_S = (0.3, 2.0)
CASHIER_TO_PAY_S = (1.0, 6.0)
REACTION_S = (0.3, 1.5)  # a user reads "bank busy, retry" and tries again
# A payment whose bank keeps timing out is resumed at most this often; bank answers arrive
# within 120 s and each resume waits at least the 3 s timeout, so 50 is never reached in practice.
RESUMES_MAX = 50
OPTIONS_MAX = 4
TOP_BANKS_SHOWN = 5
_FINAL = (PaymentState.SUCCEEDED, PaymentState.FAILED)


@dataclass(slots=True)
class Journey:
    """One shopper's way from a click to paid (or not). Touched by one task at a time."""

    id: int
    user: SimUser
    merchant_id: int
    amount_fen: int
    campaign: SimCampaign | None
    options: tuple[Funding, ...]
    pays: bool
    pay_delay_ns: int
    order_id: int = 0
    rounds: int = 0
    dead: set[int] = field(default_factory=set)  # options that cannot pay (declined, funds)
    round_busy: list[int] = field(default_factory=list)  # retry-afters seen in this round
    open_payment: int | None = None  # a payment whose bank outcome is unknown
    cursor: int = 0  # the next option of the current round (0: a new round)
    last_option: int = -1  # the option of the previous attempt in this round
    round_tries: int = 0  # options tried in this round (failovers are the ones after the first)
    resumes: int = 0
    outcome: str = ""  # "succeeded", or why the intent failed
    last_reason: str = ""
    funding_used: str = ""
    paid_option: int = -1  # the option that paid (above 0: after a failover)


@dataclass(slots=True)
class _Attempt:
    at_ns: int
    done_ns: int
    option: int
    result: str  # succeeded, busy, declined, coupon_exhausted, unknown, or an error code
    reason: str  # the channel's reason for busy, or the payments error code
    bank_ms: float | None  # virtual time at the banks (None: no bank was called)
    service_ms: float  # real time of the payments call
    retry_after_ns: int = 0
    failover: bool = False
    resumed: bool = False  # the resume of an attempt whose bank timed out (not a new row)


@dataclass(slots=True)
class _TaskResult:
    journey: Journey
    at_ns: int
    kind: int
    attempts: list[_Attempt] = field(default_factory=list)
    follow_up_ns: int | None = None  # the journey's next event (PAY: a new round or a resume)
    retried: bool = False
    end_ns: int = 0


@dataclass(frozen=True, slots=True)
class SecondView:
    """What the live view shows after each virtual second."""

    clock: str  # Beijing time of the second, HH:MM:SS
    tau_s: int  # seconds after midnight (negative before)
    clicks: int
    cashier: int
    pay_intents: int
    succeeded: int
    throttled: int
    failed: int
    bank_p50_ms: float
    bank_p99_ms: float
    service_p50_ms: float
    service_p99_ms: float
    totals: dict[str, int]
    top_banks: list[tuple[str, int, int, int]]  # code, offered, throttled, capacity
    breakers_open: list[str]
    wall_s: float
    done_fraction: float


class View(Protocol):
    """Where progress goes: a rich live panel, plain lines, or nowhere."""

    def wants(self, second_index: int) -> bool: ...

    def second(self, view: SecondView) -> None: ...

    def note(self, message: str) -> None: ...


class _NoView:
    def wants(self, second_index: int) -> bool:
        return False

    def second(self, view: SecondView) -> None:
        pass

    def note(self, message: str) -> None:
        pass


def _jitter(seed: int, journey_id: int, n: int) -> float:
    """A uniform [0, 1) draw that depends only on (seed, journey, n): workers may compute it in
    any order and still get the same value (splitmix64)."""
    x = (seed * 0x9E3779B97F4A7C15 + journey_id * 0xBF58476D1CE4E5B9 + n) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return ((x ^ (x >> 31)) >> 11) / float(1 << 53)


class Double11:
    """One run. `run()` builds the world in `out_dir`, simulates, and returns the raw results;
    `formicary.sim.report` turns them into the report files."""

    def __init__(self, config: Double11Config, out_dir: Path, view: View | None = None) -> None:
        self.config = config
        self.out_dir = out_dir
        self.view: View = view or _NoView()
        self.world: World | None = None
        self.start_ns = MIDNIGHT_NS - config.lead_s * NS_PER_S
        self.arrivals_end_ns = self.start_ns + config.duration_s * NS_PER_S
        span_s = config.duration_s + DRAIN_S_MAX + 2
        self.recorder = Recorder(self.start_ns // NS_PER_S, span_s)
        self.window_ns = config.window_ms * NS_PER_MS
        self._rng = random.Random(f"double11:{config.seed}")
        self._np_rng = np.random.default_rng(config.seed)
        self._heap: list[tuple[int, int, int, Journey]] = []
        self._seq = 0
        self._journeys: list[Journey] = []
        self._exhausted: set[int] = set()  # campaign ids the service said ran out
        self._local = threading.local()
        self._closed_second = -1
        self.end_ns = self.start_ns
        # Totals for the report.
        self.attempt_results: Counter[str] = Counter()
        self.busy_reasons: Counter[str] = Counter()
        self.failed_reasons: Counter[str] = Counter()
        self.succeeded_by_funding: Counter[str] = Counter()
        self.wall: dict[str, float] = {}
        self.leftover_waiting = 0
        self._stuck: list[Journey] = []
        self._run0 = 0.0
        self._window_end_ns = 0
        self.breakers_opened_before: dict[str, int] = {}  # by channel, when the night began
        self.windows = 0

    # ------------------------------------------------------------------------ the run

    def run(self) -> Double11:
        wall0 = time.perf_counter()
        self.world = world = build_world(self.config, self.out_dir)
        world.gateway.on_call = self._on_call
        pool = ThreadPoolExecutor(self.config.workers) if self.config.workers > 1 else None
        try:
            self.view.note(
                f"setting up {self.config.users:,} users, {self.config.merchants:,} merchants,"
                f" {self.config.banks} banks (virtual evening before)"
            )
            populate(world, pool)
            self.wall["setup_s"] = time.perf_counter() - wall0
            self._run0 = time.perf_counter()
            self._loop(pool)
            self.wall["run_s"] = time.perf_counter() - self._run0
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        finish0 = time.perf_counter()
        self._finish_leftovers()
        self.wall["finish_s"] = time.perf_counter() - finish0
        self.wall["wall_s"] = time.perf_counter() - wall0
        return self

    def close(self) -> None:
        if self.world is not None:
            self.world.close()

    @property
    def journeys(self) -> list[Journey]:
        return self._journeys

    # ------------------------------------------------------------------------ the loop

    def _loop(self, pool: ThreadPoolExecutor | None) -> None:
        assert self.world is not None
        clock = self.world.clock
        for channel in self.world.channels:  # measure the night, not the setup
            if isinstance(channel.clock, ForwardClock):
                channel.clock.skew_ns_max = 0
            self.breakers_opened_before[channel.name] = channel.breaker.opened_count
        t = self.start_ns
        drain_end_ns = self.arrivals_end_ns + DRAIN_S_MAX * NS_PER_S
        windows = 0
        while t < drain_end_ns and (t < self.arrivals_end_ns or self._heap):
            windows += 1
            w = t + self.window_ns
            clock.set(max(clock.now_ns(), t))
            if t < self.arrivals_end_ns:
                self._arrivals(t, min(w, self.arrivals_end_ns))
            self._window_end_ns = w
            tasks = []
            while self._heap and self._heap[0][0] < w:
                at_ns, _, kind, journey = heapq.heappop(self._heap)
                tasks.append((at_ns, kind, journey))
            if pool is not None and len(tasks) > 1:
                results = list(pool.map(self._task, tasks))
            else:
                results = [self._task(task) for task in tasks]
            for result in results:
                self._absorb(result, w)
            self.end_ns = w
            self._close_seconds(w)
            if t >= self.arrivals_end_ns and self._heap and self._heap[0][0] >= w + self.window_ns:
                # Draining and idle: jump to the window of the next event.
                skip = (self._heap[0][0] - self.start_ns) // self.window_ns
                t = self.start_ns + skip * self.window_ns
            else:
                t = w
        self.windows = windows

    def _arrivals(self, a_ns: int, b_ns: int) -> None:
        """Buy clicks in [a, b): a Poisson count at the curve's rate, uniform in the window."""
        config = self.config
        world = self.world
        assert world is not None
        mid_tau = ((a_ns + b_ns) / 2 - MIDNIGHT_NS) / NS_PER_S
        rate = config.funnel.clicks_per_s(config.curve.factor(mid_tau))
        count = int(self._np_rng.poisson(rate * (b_ns - a_ns) / NS_PER_S))
        if not count:
            return
        rng = self._rng
        offsets = sorted(rng.randrange(b_ns - a_ns) for _ in range(count))
        platform = [c for c in world.campaigns if c.funder == "platform"]
        merchants = rng.choices(world.merchants, weights=world.merchant_weights, k=count)
        for offset, merchant_id in zip(offsets, merchants, strict=True):
            at_ns = a_ns + offset
            self.recorder.add("clicks", at_ns)
            if rng.random() >= config.funnel.cashier_given_click:
                continue
            user = world.users[rng.randrange(len(world.users))]
            amount = order_amount_fen(rng)
            pays = rng.random() < config.funnel.pay_given_cashier
            campaign = None
            if pays and rng.random() < config.coupon_share:
                campaign = choose_campaign(
                    rng, amount, world.shop_campaigns.get(merchant_id), platform, self._usable
                )
            journey = Journey(
                id=len(self._journeys) + 1,
                user=user,
                merchant_id=merchant_id,
                amount_fen=amount,
                campaign=campaign,
                options=self._options(user, rng),
                pays=pays,
                pay_delay_ns=int(rng.uniform(*CASHIER_TO_PAY_S) * NS_PER_S),
            )
            self._journeys.append(journey)
            self._push(at_ns + int(rng.uniform(*CLICK_TO_CASHIER_S) * NS_PER_S), _CASHIER, journey)

    def _options(self, user: SimUser, rng: random.Random) -> tuple[Funding, ...]:
        cards = [Funding.card(card_id) for card_id, _ in user.cards]
        if not user.wallet:
            options = cards
        elif rng.random() < self.config.card_first_share:
            options = [*cards, Funding.wallet()]
        else:
            options = [Funding.wallet(), *cards]
        return tuple(options[:OPTIONS_MAX])

    def _usable(self, campaign: SimCampaign) -> bool:
        return campaign.id not in self._exhausted

    def _push(self, at_ns: int, kind: int, journey: Journey) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at_ns, self._seq, kind, journey))

    # ------------------------------------------------------------------------ tasks (workers)

    def _task(self, task: tuple[int, int, Journey]) -> _TaskResult:
        at_ns, kind, journey = task
        assert self.world is not None
        with self.world.events.at(at_ns):
            if kind == _CASHIER:
                return self._cashier(journey, at_ns)
            return self._pay(journey, at_ns)

    def _cashier(self, j: Journey, at_ns: int) -> _TaskResult:
        assert self.world is not None
        cashier = self.world.payments.cashier
        order = cashier.create_order(j.merchant_id, j.amount_fen, merchant_order_no=f"d11-{j.id}")
        j.order_id = order.id
        if j.campaign is not None:
            if j.campaign.id in self._exhausted:
                j.campaign = None
            else:
                try:  # the cashier shows the discount before the user pays
                    cashier.quote(order.id, j.campaign.id)
                except CouponNotApplicable:
                    j.campaign = None
        result = _TaskResult(j, at_ns, _CASHIER)
        if j.pays:
            result.follow_up_ns = at_ns + j.pay_delay_ns
        return result

    def _pay(self, j: Journey, at_ns: int) -> _TaskResult:
        """Attempts of one round, from `j.cursor` on (or the resume of a payment whose bank timed
        out, then the rest of its round). Calls stay inside the current window: an attempt
        that would start after it continues the round as a new event (this bounds how far out
        of order calls can reach a bank, see timebase)."""
        assert self.world is not None
        result = _TaskResult(j, at_ns, _PAY)
        now_ns = at_ns
        resuming = j.open_payment is not None
        i = j.cursor
        if i == 0 and not resuming:
            j.round_busy = []
            j.round_tries = 0
        while i < len(j.options):
            if not resuming and i in j.dead:
                i += 1
                continue
            if now_ns >= self._window_end_ns:
                j.cursor = i
                result.follow_up_ns = now_ns
                return self._ended(result, now_ns)
            self.world.events.move_to(now_ns)
            attempt = self._attempt(j, i, now_ns, resuming)
            attempt.failover = j.round_tries > 0 and not resuming and i != j.last_option
            attempt.resumed = resuming
            if not resuming and i != j.last_option:
                j.round_tries += 1
            j.last_option = i
            result.attempts.append(attempt)
            now_ns = attempt.done_ns
            outcome = attempt.result
            if outcome == "unknown":
                j.resumes += 1
                j.cursor = i
                if j.resumes <= RESUMES_MAX:
                    result.follow_up_ns = now_ns + attempt.retry_after_ns
                # else: left open for the final recover() (see _finish_leftovers)
                return self._ended(result, now_ns)
            resuming = False
            j.open_payment = None
            if outcome == "succeeded":
                j.outcome = "succeeded"
                j.funding_used = j.options[i].kind
                j.paid_option = i
                return self._ended(result, now_ns)
            if outcome == "coupon_exhausted":
                continue  # the same option again, without the coupon (dropped by _attempt)
            if outcome == "busy":
                j.round_busy.append(attempt.retry_after_ns)
            elif outcome == "declined":
                j.dead.add(i)
                j.last_reason = attempt.reason
            else:
                j.outcome = attempt.reason  # anything else is final (e.g. payment_timed_out)
                return self._ended(result, now_ns)
            i += 1
        j.cursor = 0
        j.last_option = -1
        if j.round_busy and j.rounds < self.config.retry_rounds_max:
            j.rounds += 1
            lo, hi = REACTION_S
            reaction_s = lo + (hi - lo) * _jitter(self.config.seed, j.id, j.rounds)
            wait_ns = max(min(j.round_busy), 1) + int(reaction_s * NS_PER_S)
            result.follow_up_ns = now_ns + wait_ns
            result.retried = True
        elif j.round_busy:
            j.outcome = "bank_busy"
        else:
            j.outcome = j.last_reason or "declined"
        return self._ended(result, now_ns)

    @staticmethod
    def _ended(result: _TaskResult, now_ns: int) -> _TaskResult:
        result.end_ns = now_ns
        return result

    def _attempt(self, j: Journey, option: int, at_ns: int, resuming: bool) -> _Attempt:
        assert self.world is not None
        cashier = self.world.payments.cashier
        campaign = j.campaign
        if campaign is not None and campaign.id in self._exhausted:
            campaign = j.campaign = None
        calls: list[GatewayCall] = []
        self._local.calls = calls
        retry_after_ns = 0
        started = time.perf_counter_ns()
        try:
            if resuming:
                assert j.open_payment is not None
                cashier.resume(j.open_payment)
            else:
                cashier.pay(
                    j.order_id,
                    j.user.id,
                    j.options[option],
                    campaign_id=None if campaign is None else campaign.id,
                )
            outcome, reason = "succeeded", ""
        except BankOutcomeUnknown as error:
            outcome, reason = "unknown", error.code
            retry_after_ns = error.retry_after_ns
            if not resuming:
                open_rows = [p for p in cashier.payments_of(j.order_id) if p.state not in _FINAL]
                assert len(open_rows) == 1, open_rows
                j.open_payment = open_rows[0].id
        except CouponExhausted as error:
            assert campaign is not None
            self._exhausted.add(campaign.id)  # a set add is atomic under the GIL
            j.campaign = None
            outcome, reason = "coupon_exhausted", error.code
        except BankBusy as error:
            outcome, reason = "busy", error.code
        except (BankDeclined, InsufficientFunds) as error:
            outcome, reason = "declined", error.code
        except PaymentError as error:
            outcome, reason = error.code, error.code
        service_ms = (time.perf_counter_ns() - started) / 1e6
        self._local.calls = None
        bank_ns = 0
        sent = False
        for call in calls:
            if call.result.reply is not None:
                sent = True
                bank_ns += call.result.reply.completed_ns - call.called_ns
        if outcome == "busy":
            busy = [c for c in calls if c.outcome is Outcome.BUSY]
            if busy:
                reason = str(busy[-1].result.reason)
                retry_after_ns = max(1, min(c.result.retry_after_ns for c in busy))
        return _Attempt(
            at_ns=at_ns,
            done_ns=at_ns + bank_ns,
            option=option,
            result=outcome,
            reason=reason,
            bank_ms=bank_ns / NS_PER_MS if sent else None,
            service_ms=service_ms,
            retry_after_ns=retry_after_ns,
        )

    def _on_call(self, call: GatewayCall) -> None:
        calls = getattr(self._local, "calls", None)
        if calls is not None:
            calls.append(call)

    # ------------------------------------------------------------------------ results (loop)

    def _absorb(self, result: _TaskResult, window_end_ns: int) -> None:
        r = self.recorder
        j = result.journey
        if result.kind == _CASHIER:
            r.add("cashier", result.at_ns)
            if result.follow_up_ns is not None:
                at_ns = max(result.follow_up_ns, window_end_ns)
                r.add("pay_intents", at_ns)
                self._push(at_ns, _PAY, j)
            return
        for a in result.attempts:
            self.attempt_results[a.result] += 1
            if not a.resumed:
                r.add("attempts", a.at_ns)
            r.latency(a.at_ns, a.bank_ms, a.service_ms)
            if a.failover:
                r.add("failovers", a.at_ns)
            if a.result == "succeeded":
                r.add("succeeded", a.done_ns)
            elif a.result == "busy":
                r.add("throttled", a.at_ns)
                self.busy_reasons[a.reason] += 1
            elif a.result == "declined":
                r.add("declined", a.at_ns)
            elif a.result == "unknown":
                r.add("unknown", a.at_ns)
        if result.retried:
            r.add("retries", result.follow_up_ns or result.end_ns)
        if result.follow_up_ns is not None:
            self._push(max(result.follow_up_ns, window_end_ns), _PAY, j)
            return
        if j.outcome == "succeeded":
            self.succeeded_by_funding[j.funding_used] += 1
        elif not j.outcome:
            self._stuck.append(j)  # its payment's outcome is still unknown: see the end
        else:
            r.add("failed", result.end_ns)
            self.failed_reasons[j.outcome] += 1

    # ------------------------------------------------------------------------ the live view

    def _close_seconds(self, now_ns: int) -> None:
        """Hand every virtual second that has fully passed to the view."""
        last_complete = now_ns // NS_PER_S - 1 - self.recorder.first_second
        while self._closed_second < last_complete:
            self._closed_second += 1
            if self.view.wants(self._closed_second):
                self.view.second(self._second_view(self._closed_second))

    def _second_view(self, index: int) -> SecondView:
        assert self.world is not None
        r = self.recorder
        second = r.first_second + index
        c = r.counts
        bank = r.quantiles("bank", slice(index, index + 1), (0.5, 0.99))
        service = r.quantiles("service", slice(index, index + 1), (0.5, 0.99))
        top: list[tuple[str, int, int, int]] = []
        breakers_open = []
        for bank_info, channel in zip(self.world.banks, self.world.channels, strict=True):
            series = channel.stats.series(second, second)
            offered = series.column("offered")[0]
            throttled = series.column("throttled")[0] + series.column("breaker_rejected")[0]
            if offered:
                top.append((bank_info.code, offered, throttled, bank_info.capacity_tps))
            if channel.breaker.state is not BreakerState.CLOSED:
                breakers_open.append(f"{bank_info.code}:{channel.breaker.state}")
        top.sort(key=lambda row: (-row[1] / max(1, row[3]), row[0]))
        totals = {name: r.total(name) for name in c}
        total_s = (self.arrivals_end_ns - self.start_ns) / NS_PER_S
        tau = second - MIDNIGHT_NS // NS_PER_S
        return SecondView(
            clock=_beijing(second),
            tau_s=tau,
            clicks=int(c["clicks"][index]),
            cashier=int(c["cashier"][index]),
            pay_intents=int(c["pay_intents"][index]),
            succeeded=int(c["succeeded"][index]),
            throttled=int(c["throttled"][index]),
            failed=int(c["failed"][index]),
            bank_p50_ms=bank[0],
            bank_p99_ms=bank[1],
            service_p50_ms=service[0],
            service_p99_ms=service[1],
            totals=totals,
            top_banks=top[:TOP_BANKS_SHOWN],
            breakers_open=breakers_open,
            wall_s=time.perf_counter() - self._run0,
            done_fraction=min(1.0, (index + 1) / total_s),
        )

    # ------------------------------------------------------------------------ the end

    def _finish_leftovers(self) -> None:
        """Journeys the drain did not finish (none in practice): resolve their open payments
        with `recover()`, then give each its final outcome from the payments store."""
        assert self.world is not None
        world = self.world
        self.leftover_waiting = recover_open_work(world, self.end_ns + 10 * NS_PER_S)
        for j in [*self._stuck, *(entry[3] for entry in self._heap)]:
            if j.outcome:
                continue
            payment = None
            if j.open_payment is not None:
                payment = world.payments.cashier.payment(j.open_payment)
            if payment is not None and payment.state == PaymentState.SUCCEEDED:
                j.outcome = "succeeded"
                self.succeeded_by_funding[payment.funding_kind] += 1
                continue
            if payment is not None and payment.state == PaymentState.FAILED:
                j.outcome = payment.failure_code
            else:  # never reached the cashier's end within the drain (or still open)
                j.outcome = "drain_timeout" if payment is None else "bank_outcome_unknown"
            self.failed_reasons[j.outcome] += 1
            self.recorder.add("failed", self.end_ns)
        self._heap.clear()
        # Deliver every bank answer still in flight, so the channels' counters are complete.
        world.clock.set(world.clock.now_ns() + 200 * NS_PER_S)
        world.router.advance()


def _beijing(second: int) -> str:
    local = (second + 8 * 3_600) % 86_400
    return f"{local // 3600:02d}:{local % 3600 // 60:02d}:{local % 60:02d}"
