"""What a Double-11 run simulates, with a limit on everything (DESIGN.md §6).

Everything here is simulated: the users, the merchants, their behaviour and the banks. Only the
payments service and the ledger are real (durable files in the output directory).
"""

from __future__ import annotations

import msgspec

from formicary.sim.shape import Funnel, PeakCurve

__all__ = ["BANKS_MIN", "BankOverride", "Double11Config"]

USERS_MAX = 200_000
MERCHANTS_MAX = 10_000
BANKS_MIN = 100  # the issue asks for a per-bank split over 100+ banks
BANKS_MAX = 1_000
DURATION_S_MAX = 3_600
WORKERS_MAX = 64
# After the last arrival the loop drains (retries, unknown outcomes) for at most this long.
DRAIN_S_MAX = 600
OVERRIDES_MAX = 100


class BankOverride(msgspec.Struct, frozen=True, kw_only=True):
    """Make bank number `rank` (1 = the largest) behave as a test or scenario needs."""

    rank: int
    capacity_tps: int | None = None  # also its channel's flow limit
    error_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    maintenance: tuple[int, int] | None = None  # (start, end) seconds relative to midnight

    def __post_init__(self) -> None:
        if not 1 <= self.rank <= BANKS_MAX:
            raise ValueError(f"bank rank must be 1..{BANKS_MAX}")
        if self.capacity_tps is not None and not 1 <= self.capacity_tps <= 1_000_000:
            raise ValueError("capacity_tps must be 1..1000000")
        if self.error_rate is not None and not 0 <= self.error_rate <= 0.98:
            raise ValueError("error_rate must be 0..0.98 (the bank also declines 2%)")
        if self.maintenance is not None and not self.maintenance[0] < self.maintenance[1]:
            raise ValueError("a maintenance window needs start < end")


class Double11Config(msgspec.Struct, frozen=True, kw_only=True):
    """A Double-11 run. The defaults give ~14,000 payments (28,000 clicks and cashier visits)
    in 3 virtual minutes, peaking at ~300 payments per virtual second."""

    users: int = 3_000
    merchants: int = 200
    banks: int = 120
    duration_s: int = 180  # virtual seconds of arrivals; they start `lead_s` before 00:00
    seed: int = 11
    funnel: Funnel = msgspec.field(default_factory=Funnel)
    curve: PeakCurve = msgspec.field(default_factory=PeakCurve)
    # -- the users
    wallet_user_share: float = 0.7  # users with a wallet balance (topped up before the night)
    card_first_share: float = 0.55  # payments that try a card first (wallet users included)
    coupon_share: float = 0.35  # payments that use a coupon or red packet
    # Budgets are sized to cover this share of the expected coupon use, so that they run out.
    coupon_budget_cover: float = 0.6
    retry_rounds_max: int = 4  # "bank busy, retry" rounds a user makes before giving up
    # -- the banks
    slow_fraction: float = 0.05
    failing_fraction: float = 0.05
    maintenance_banks: int = 3  # banks in maintenance across midnight
    # Each bank's capacity (and flow limit) is this factor times its share of the expected peak
    # of card calls (authorize + capture): below 1, the midnight peak is throttled.
    bank_headroom: float = 0.8
    # Channels queue calls over the limit for at most this long (Sentinel's rate limiter), so
    # that a capture right behind its authorization waits a slot instead of being refused.
    flow_queueing_ms: int = 500
    bank_overrides: tuple[BankOverride, ...] = ()
    # -- the engine
    workers: int = 8  # threads running service calls; 1 is fully deterministic
    window_ms: int = 200  # events of one window of virtual time run concurrently
    durable_payments: bool = False  # the payments tables in a durable file (slower; see docs)

    def __post_init__(self) -> None:
        checks = [
            (10 <= self.users <= USERS_MAX, f"users must be 10..{USERS_MAX}"),
            (1 <= self.merchants <= MERCHANTS_MAX, f"merchants must be 1..{MERCHANTS_MAX}"),
            (BANKS_MIN <= self.banks <= BANKS_MAX, f"banks must be {BANKS_MIN}..{BANKS_MAX}"),
            (
                10 <= self.duration_s <= DURATION_S_MAX,
                f"duration_s must be 10..{DURATION_S_MAX} virtual seconds",
            ),
            (0 <= self.seed < 2**63, "seed must be 0..2^63-1"),
            (1 <= self.workers <= WORKERS_MAX, f"workers must be 1..{WORKERS_MAX}"),
            (10 <= self.window_ms <= 5_000, "window_ms must be 10..5000"),
            (0 <= self.retry_rounds_max <= 20, "retry_rounds_max must be 0..20"),
            (0 <= self.maintenance_banks <= self.banks // 10, "maintenance_banks: at most 10%"),
            (0.05 <= self.bank_headroom <= 100, "bank_headroom must be 0.05..100"),
            (0 <= self.flow_queueing_ms <= 10_000, "flow_queueing_ms must be 0..10000"),
            (len(self.bank_overrides) <= OVERRIDES_MAX, f"at most {OVERRIDES_MAX} overrides"),
            (
                self.slow_fraction + self.failing_fraction <= 0.5,
                "slow_fraction + failing_fraction must be at most 0.5",
            ),
        ]
        for share in (
            self.wallet_user_share,
            self.card_first_share,
            self.coupon_share,
            self.coupon_budget_cover,
            self.slow_fraction,
            self.failing_fraction,
        ):
            checks.append((0 <= share <= 1, "shares and fractions must be 0..1"))
        checks.extend(
            (o.rank <= self.banks, f"override of bank {o.rank}: there are {self.banks} banks")
            for o in self.bank_overrides
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def lead_s(self) -> int:
        """Arrivals start this long before midnight: the curve's ramp, or a third of a short
        run (so that every run has its peak)."""
        return int(min(self.curve.ramp_s, self.duration_s // 3))

    @property
    def expected_payments(self) -> float:
        """Payments (intents to pay) the funnel should produce over the run, in expectation."""
        start_s = -self.lead_s
        area = self.curve.integral(start_s, start_s + self.duration_s)
        return self.funnel.payments * self.funnel.unit_per_s * self.funnel.scale * area

    @property
    def peak_payments_per_s(self) -> float:
        """Payments per second at the top of the curve (the expected peak, not a measurement)."""
        return self.funnel.payments * self.funnel.unit_per_s * self.funnel.scale * self.curve.peak
