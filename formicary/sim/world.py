"""The world of a Double-11 run: simulated banks behind real channels, and the REAL payments
service and ledger (durable SQLite in the output directory), populated with simulated users,
merchants and coupon campaigns before the night.

Everything below the service is simulated (banks), and so is everything above it (users,
merchants, their behaviour); the money moves only through `Payments` and `LedgerService`.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from formicary.channels import (
    NS_PER_S,
    AbsoluteWindow,
    BankProfile,
    BreakerRule,
    Channel,
    DailyWindow,
    FlowRule,
    ManualClock,
    Router,
    SimulatedBank,
    fleet_profiles,
    zipf_shares,
)
from formicary.ledger import LedgerService, open_store
from formicary.payments import (
    BankBusy,
    BankDeclined,
    CampaignKind,
    Funding,
    IdentityLevel,
    Payments,
    PaymentsStore,
)
from formicary.payments.money import FEE_PLANS
from formicary.payments.parties import luhn_ok
from formicary.sim.config import Double11Config
from formicary.sim.gateway import BankOutcomeUnknown, ChannelGateway
from formicary.sim.timebase import EventClock, ForwardClock

__all__ = [
    "MIDNIGHT_NS",
    "SimBank",
    "SimCampaign",
    "SimUser",
    "World",
    "build_world",
]

# 2024-11-11 00:00:00 China Standard Time (UTC+8), in ns since the epoch (UTC).
MIDNIGHT_NS = 1_731_254_400 * NS_PER_S
BEIJING_OFFSET_S = 8 * 3_600
# Parties are created in the evening before, two hours ahead of the peak (outside every
# maintenance window), spread out so that top-ups do not hit the banks' flow limits.
SETUP_START_NS = MIDNIGHT_NS - 2 * 3_600 * NS_PER_S
USER_SPACING_NS = 20_000_000  # 50 new users per virtual second
SETUP_WINDOW_NS = NS_PER_S
CAPACITY_TPS_MIN = 5
CARDS_PER_USER_WEIGHTS = (0.5, 0.35, 0.15)  # 1, 2 or 3 cards
TOP_UP_FEN_RANGE = (30_000, 500_000)  # 300 .. 5,000 yuan
MERCHANT_CAMPAIGNS_MAX = 10
MERCHANT_CATEGORIES = ("5311", "5411", "5651", "5732", "5812", "5942", "5999")
# Order amounts: lognormal around 120 yuan (a Double-11 basket), capped by the users' level.
ORDER_MEDIAN_FEN = 12_000
ORDER_SIGMA = 0.9
ORDER_FEN_RANGE = (100, 1_000_000)
USER_LEVEL = IdentityLevel.VERIFIED  # 10,000 yuan per payment
# Coupon choice: a merchant's own coupon when it has one (half the time), the platform's big
# coupon on orders that qualify (half the time), else the platform red packet.
RED_PACKET_FEN = 500
BIG_COUPON_FEN, BIG_COUPON_MIN_FEN = 2_000, 20_000
SHOP_COUPON_FEN, SHOP_COUPON_MIN_FEN = 1_000, 10_000
RECOVER_PASSES_MAX = 20


@dataclass(frozen=True, slots=True)
class SimBank:
    rank: int  # 1 = the largest
    code: str  # payments bank code and channel name, e.g. "B001"
    share: float  # of the cards
    kind: str  # healthy, slow, failing, maintenance, or override
    capacity_tps: int


@dataclass(slots=True)
class SimUser:
    index: int
    id: int
    cards: tuple[tuple[int, str], ...]  # (card id, bank code), preferred first
    wallet: bool  # was given a wallet balance (the top-up may still have failed)


@dataclass(slots=True)
class SimCampaign:
    id: int
    name: str
    kind: CampaignKind
    funder: str  # "platform" or "merchant"
    merchant_id: int | None  # where it applies (None: everywhere)
    discount_fen: int
    min_order_fen: int
    budget_fen: int


@dataclass
class World:
    config: Double11Config
    out_dir: Path
    clock: ManualClock
    events: EventClock
    ledger: LedgerService
    store: PaymentsStore
    payments: Payments
    router: Router
    gateway: ChannelGateway
    banks: list[SimBank]
    users: list[SimUser] = field(default_factory=list)
    merchants: list[int] = field(default_factory=list)
    merchant_weights: list[float] = field(default_factory=list)
    campaigns: list[SimCampaign] = field(default_factory=list)
    shop_campaigns: dict[int, SimCampaign] = field(default_factory=dict)
    setup_counts: dict[str, int] = field(default_factory=dict)

    def close(self) -> None:
        self.ledger.close()
        self.store.close()

    @property
    def channels(self) -> tuple[Channel, ...]:
        return self.router.channels


def card_number(bank_rank: int, serial: int) -> str:
    """A Luhn-valid 19-digit number, unique per (bank, serial); the masked form keeps the
    bank's 6-digit prefix and the last four digits."""
    body = f"6{bank_rank:04d}{serial:013d}"
    return next(body + str(d) for d in range(10) if luhn_ok(body + str(d)))


def order_amount_fen(rng: random.Random) -> int:
    amount = round(ORDER_MEDIAN_FEN * math.exp(rng.gauss(0.0, ORDER_SIGMA)))
    return min(max(amount, ORDER_FEN_RANGE[0]), ORDER_FEN_RANGE[1])


# ----------------------------------------------------------------------------- the banks


def build_banks(config: Double11Config, events: EventClock) -> tuple[list[SimBank], Router]:
    """The simulated fleet: Zipf shares, seeded slow and failing banks (fleet_profiles), a few
    in maintenance across midnight, the overrides; each behind a channel whose flow limit is the
    bank's capacity, sized against the expected peak of card calls."""
    n = config.banks
    shares = [float(s) for s in zipf_shares(n, seed=config.seed)]
    base = fleet_profiles(
        n,
        capacity_tps_total=CAPACITY_TPS_MIN * n,
        seed=config.seed,
        slow_fraction=config.slow_fraction,
        failing_fraction=config.failing_fraction,
    )
    # Card calls at the peak: every payment that reaches a card sends an authorize and a capture.
    card_share = (1 - config.wallet_user_share) + config.wallet_user_share * config.card_first_share
    peak_calls = config.peak_payments_per_s * card_share * 2
    rng = random.Random(f"banks:{config.seed}")
    # Maintenance across midnight for a few mid-sized banks (not the three largest).
    candidates = list(range(4, n + 1))
    in_maintenance = set(rng.sample(candidates, min(config.maintenance_banks, len(candidates))))
    overrides = {o.rank: o for o in config.bank_overrides}
    banks, channels = [], []
    for rank, (profile, share) in enumerate(zip(base, shares, strict=True), start=1):
        code = f"B{rank:03d}"
        kind = (
            "slow"
            if profile.latency_p50_ms >= 1_000
            else "failing"
            if profile.error_rate >= 0.5
            else "healthy"
        )
        capacity = max(CAPACITY_TPS_MIN, math.ceil(config.bank_headroom * share * peak_calls))
        changes: dict[str, object] = {"name": code, "capacity_tps": capacity}
        if rank in in_maintenance:
            start_s = rng.randint(20, 40)
            end_s = rng.randint(40, 90)
            # Seconds after local midnight; the window spans midnight (start > end).
            changes["maintenance"] = (
                DailyWindow(86_400 - start_s, end_s, utc_offset_s=BEIJING_OFFSET_S),
            )
            kind = "maintenance"
        override = overrides.get(rank)
        if override is not None:
            kind = "override"
            for name in ("capacity_tps", "error_rate", "latency_p50_ms", "latency_p99_ms"):
                value = getattr(override, name)
                if value is not None:
                    changes[name] = value
            if override.maintenance is not None:
                start, end = override.maintenance
                changes["maintenance"] = (
                    AbsoluteWindow(MIDNIGHT_NS + start * NS_PER_S, MIDNIGHT_NS + end * NS_PER_S),
                )
        profile = msgspec.structs.replace(profile, **changes)  # type: ignore[arg-type]
        if profile.latency_p99_ms < profile.latency_p50_ms:
            profile = msgspec.structs.replace(profile, latency_p99_ms=profile.latency_p50_ms)
        banks.append(SimBank(rank, code, share, kind, profile.capacity_tps))
        channels.append(_channel(profile, config, events))
    return banks, Router(channels, clock=events, remembered_max=1_000)


def _channel(profile: BankProfile, config: Double11Config, events: EventClock) -> Channel:
    # Flow limit = capacity: the bank is never offered more than it declares it can start;
    # calls over it queue briefly (evenly spaced) before they are refused.
    # The default breaker (Sentinel's: slow > 1 s or errors over half of >= 5 calls in 1 s).
    return Channel(
        SimulatedBank(profile, seed=config.seed),
        FlowRule(qps=profile.capacity_tps, max_queueing_ms=config.flow_queueing_ms),
        BreakerRule(),
        clock=ForwardClock(events),
    )


# ----------------------------------------------------------------------------- the service


def build_world(config: Double11Config, out_dir: Path) -> World:
    """Open the real ledger and payments over files in `out_dir` and the simulated banks."""
    clock = ManualClock(SETUP_START_NS)
    events = EventClock(clock)
    banks, router = build_banks(config, events)
    gateway = ChannelGateway(router)
    ledger = LedgerService(open_store(f"sqlite:///{out_dir / 'ledger.db'}"), clock_ns=events)
    ledger.start()
    # The payments tables: in memory by default, copied to payments.db at the end. Why: the
    # store commits every row change with its own fsync (no group commit yet), ~1,200/s on
    # this disk, and a card payment writes its row 4-5 times; see docs/double11.md.
    store = PaymentsStore(out_dir / "payments.db" if config.durable_payments else None)
    secret = hashlib.sha256(f"formicary-double11:{config.seed}".encode()).digest()
    payments = Payments(ledger, store, gateway, secret=secret, clock_ns=events)
    payments.setup()
    return World(config, out_dir, clock, events, ledger, store, payments, router, gateway, banks)


def populate(world: World, pool: ThreadPoolExecutor | None) -> None:
    """Merchants, campaigns (merchant ones funded from a pre-sale), users with cards and wallet
    top-ups: all through the payments API, in virtual time before the night."""
    config = world.config
    rng = random.Random(f"world:{config.seed}")
    counts = world.setup_counts
    p = world.payments
    with world.events.at(SETUP_START_NS):
        for j in range(config.merchants):
            merchant = p.parties.register_merchant(
                f"shop-{j + 1}",
                category=rng.choice(MERCHANT_CATEGORIES),
                fee_plan="offline_qr" if rng.random() < 0.2 else "online",
                settlement_bank_code=world.banks[j % 20].code,  # shops bank with the big banks
                settlement_account_number=f"6214{j + 1:012d}",
            )
            world.merchants.append(merchant.id)
        # Popularity is long-tailed too: the k-th shop draws ~1/k of the traffic.
        world.merchant_weights = [1.0 / k for k in range(1, config.merchants + 1)]
        _campaigns(world, rng)
    counts["merchants"] = len(world.merchants)
    _users(world, rng, pool)


def _campaigns(world: World, rng: random.Random) -> None:
    """Two platform campaigns and up to ten shop coupons, budgets sized to run out."""
    config = world.config
    p = world.payments
    uses = _expected_coupon_uses(world, rng)
    cover = config.coupon_budget_cover

    def budget(kind: str, discount_fen: int) -> int:
        return max(1, round(cover * uses.get(kind, 0.0))) * discount_fen

    specs = [
        ("Double 11 red packet", CampaignKind.RED_PACKET, RED_PACKET_FEN, 0, "red"),
        ("Double 11: 20 off 200", CampaignKind.COUPON, BIG_COUPON_FEN, BIG_COUPON_MIN_FEN, "big"),
    ]
    for name, kind, discount, min_order, key in specs:
        c = p.campaigns.create(
            name,
            kind,
            discount_fen=discount,
            budget_fen=budget(key, discount),
            min_order_fen=min_order,
        )
        world.campaigns.append(
            SimCampaign(c.id, name, kind, "platform", None, discount, min_order, c.budget_fen)
        )
    shops = world.merchants[: _shop_campaign_count(config.merchants)]
    budgets = {m: budget(f"shop:{m}", SHOP_COUPON_FEN) for m in shops}
    _presale(world, budgets)
    for m in shops:
        name = f"shop-{world.merchants.index(m) + 1}: 10 off 100"
        c = p.campaigns.create(
            name,
            CampaignKind.COUPON,
            discount_fen=SHOP_COUPON_FEN,
            budget_fen=budgets[m],
            funder_merchant_id=m,
            min_order_fen=SHOP_COUPON_MIN_FEN,
        )
        sim = SimCampaign(
            c.id,
            name,
            CampaignKind.COUPON,
            "merchant",
            m,
            SHOP_COUPON_FEN,
            SHOP_COUPON_MIN_FEN,
            c.budget_fen,
        )
        world.campaigns.append(sim)
        world.shop_campaigns[m] = sim


def _shop_campaign_count(merchants: int) -> int:
    return min(MERCHANT_CAMPAIGNS_MAX, max(1, merchants // 20))


def choose_campaign(
    rng: random.Random,
    amount_fen: int,
    shop: SimCampaign | None,
    platform: Sequence[SimCampaign],
    usable: Callable[[SimCampaign], bool],
) -> SimCampaign | None:
    """The coupon a user picks at the cashier (see the constants above for the rule)."""
    if (
        shop is not None
        and usable(shop)
        and amount_fen >= shop.min_order_fen
        and rng.random() < 0.5
    ):
        return shop
    red, big = platform
    if usable(big) and amount_fen >= big.min_order_fen and rng.random() < 0.5:
        return big
    return red if usable(red) else None


def _expected_coupon_uses(world: World, rng: random.Random) -> dict[str, float]:
    """Expected uses per campaign over the run: the choice rule applied to a sample of
    orders (merchant by popularity, amount by the order distribution)."""
    config = world.config
    samples = 20_000
    shops = set(world.merchants[: _shop_campaign_count(config.merchants)])
    counts: dict[str, int] = {}
    red = SimCampaign(0, "red", CampaignKind.RED_PACKET, "platform", None, 1, 0, 1)
    big = SimCampaign(0, "big", CampaignKind.COUPON, "platform", None, 1, BIG_COUPON_MIN_FEN, 1)
    picks = rng.choices(world.merchants, weights=world.merchant_weights, k=samples)
    for merchant in picks:
        shop = None
        if merchant in shops:
            shop = SimCampaign(
                0,
                f"shop:{merchant}",
                CampaignKind.COUPON,
                "merchant",
                merchant,
                1,
                SHOP_COUPON_MIN_FEN,
                1,
            )
        chosen = choose_campaign(rng, order_amount_fen(rng), shop, (red, big), lambda c: True)
        if chosen is not None:
            counts[chosen.name] = counts.get(chosen.name, 0) + 1
    coupon_payments = config.expected_payments * config.coupon_share
    return {name: coupon_payments * n / samples for name, n in counts.items()}


def _presale(world: World, budgets: dict[int, int]) -> None:
    """Shops fund their coupons from their wallets, so they need takings first: a pre-sale
    buyer tops up from a healthy bank and buys from each of them (real wallet payments)."""
    if not budgets:
        return
    p = world.payments
    healthy = [b for b in world.banks if b.kind == "healthy"]
    bank = healthy[0] if healthy else world.banks[0]
    buyer = p.parties.register_user("presale-buyer", IdentityLevel.FULL)
    card = p.parties.bind_card(buyer.id, bank.code, card_number(bank.rank, 9_999_999_999_999))
    cap = 20_000_000  # the FULL level's per-operation cap
    amounts = {}
    for m, budget_fen in budgets.items():
        merchant = p.parties.merchant(m)
        rate_bp = FEE_PLANS[merchant.fee_plan].rate_bp
        # The shop keeps amount - fee >= budget (fees round half even: one fen of margin).
        amounts[m] = math.ceil(budget_fen * 10_000 / (10_000 - rate_bp)) + 1
    needed = sum(amounts.values())
    t = world.events.now_ns()
    number = 0
    while needed > 0:
        number += 1
        assert number <= 200, "the pre-sale top-ups keep failing"
        amount = min(cap, needed)
        t += NS_PER_S  # a second apart: a busy bank has room again
        with world.events.at(t):
            try:
                p.parties.top_up(buyer.id, card.id, amount, request_id=f"presale-{number}")
                needed -= amount
            except (BankBusy, BankDeclined, BankOutcomeUnknown):
                continue
    with world.events.at(t + NS_PER_S):
        for m, amount in amounts.items():
            order = p.cashier.create_order(m, amount, merchant_order_no=f"presale-{m}")
            p.cashier.pay(order.id, buyer.id, Funding.wallet())


def _users(world: World, rng: random.Random, pool: ThreadPoolExecutor | None) -> None:
    """Users with 1-3 cards (banks by Zipf share) and, for most, a wallet top-up; created in
    windows of virtual time, concurrently when there is a pool."""
    config = world.config
    codes = [b.code for b in world.banks]
    ranks = {b.code: b.rank for b in world.banks}
    weights = [b.share for b in world.banks]
    plans = []
    for i in range(config.users):
        n_cards = rng.choices((1, 2, 3), weights=CARDS_PER_USER_WEIGHTS)[0]
        banks: list[str] = []
        while len(banks) < n_cards:
            code = rng.choices(codes, weights=weights)[0]
            if code not in banks:
                banks.append(code)
        wallet = rng.random() < config.wallet_user_share
        top_up_fen = rng.randint(*TOP_UP_FEN_RANGE) if wallet else 0
        at_ns = SETUP_START_NS + 60 * NS_PER_S + i * USER_SPACING_NS
        plans.append((i, at_ns, banks, top_up_fen))

    def make(plan: tuple[int, int, list[str], int]) -> tuple[SimUser, str]:
        i, at_ns, banks, top_up_fen = plan
        p = world.payments
        with world.events.at(at_ns):
            user = p.parties.register_user(f"shopper-{i + 1}", USER_LEVEL)
            cards = tuple(
                (p.parties.bind_card(user.id, code, card_number(ranks[code], i + 1)).id, code)
                for code in banks
            )
            outcome = "no_top_up"
            if top_up_fen:
                outcome = "top_up_failed"
                for card_id, _ in cards:  # the next card if a bank is busy or declines
                    try:
                        key = f"seed-{i + 1}-{card_id}"
                        p.parties.top_up(user.id, card_id, top_up_fen, request_id=key)
                        outcome = "top_up_ok"
                        break
                    except (BankBusy, BankDeclined):
                        continue
                    except BankOutcomeUnknown:
                        outcome = "top_up_unknown"  # recover() learns it below
                        break
        return SimUser(i, user.id, cards, bool(top_up_fen)), outcome

    counts = world.setup_counts
    window_start = 0
    while window_start < len(plans):
        first_ns = plans[window_start][1]
        window_end = window_start
        while window_end < len(plans) and plans[window_end][1] < first_ns + SETUP_WINDOW_NS:
            window_end += 1
        batch = plans[window_start:window_end]
        world.clock.set(max(world.clock.now_ns(), first_ns))
        results = list(pool.map(make, batch)) if pool else [make(plan) for plan in batch]
        for user, outcome in results:
            world.users.append(user)
            counts[outcome] = counts.get(outcome, 0) + 1
        window_start = window_end
    counts["users"] = len(world.users)
    # Top-ups whose bank timed out: retry the same ids until the banks answered.
    recover_open_work(world, world.clock.now_ns() + 10 * NS_PER_S)


def recover_open_work(world: World, from_ns: int) -> int:
    """`Payments.recover()` passes, 5 virtual seconds apart, until nothing waits (bounded);
    returns how many records still wait."""
    at_ns = max(from_ns, world.clock.now_ns())
    waiting = 0
    for _ in range(RECOVER_PASSES_MAX):
        world.clock.set(at_ns)
        with world.events.at(at_ns):
            waiting = world.payments.recover().waiting
        if waiting == 0:
            break
        at_ns += 5 * NS_PER_S
    return waiting
