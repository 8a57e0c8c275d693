"""Capacity planning: how many transactions per second each bank must be able to take.

Input: the forecast peak (payments/s), each bank's share of the traffic (or an estimate of its
traffic in tx/s, from which the shares follow), a headroom factor, and each bank's declared
capacity. Each bank must hold

    required_tps = ceil(peak_tps * share * headroom)

and is short by max(0, required - declared). Arithmetic is exact (`Fraction`), so a share of
0.3 of 1,000 with headroom 1.5 is 450, not 451 from a float's 450.00000000000006.

For "what if" plans without data, `long_tail_demands` generates a realistic market: shares
follow Zipf's law (the k-th bank's traffic ~ 1/k^1.1, with a seeded jitter), so a few large
banks carry most of it, and declared capacities are 1.6-3x each bank's expected traffic, except
for a seeded fraction that is under-provisioned.
"""

from __future__ import annotations

import csv
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from formicary.channels.errors import InvalidPlanInput

__all__ = [
    "BANKS_MAX",
    "BankDemand",
    "BankPlan",
    "CapacityPlan",
    "long_tail_demands",
    "parse_headroom",
    "plan_capacity",
    "read_demands_csv",
    "zipf_shares",
]

BANKS_MAX = 10_000
PEAK_TPS_MAX = 1_000_000_000
CAPACITY_TPS_MAX = 1_000_000_000
HEADROOM_MAX = 10
CSV_BYTES_MAX = 10 * 1024 * 1024
# Shares read from a file may be rounded (three banks at 0.333): within 1% of a whole, they
# are scaled to sum to exactly 1; further off is an error.
SHARE_SUM_TOLERANCE = Fraction(1, 100)
# Plain decimals only ("0.25", "1200"): no exponents, so no input can make a huge Fraction.
DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,12})?|\.[0-9]{1,12}")
WHOLE = re.compile(r"[0-9]{1,10}")
# Scale of the integer Zipf weights: fine enough for 10,000 banks, exact as Fractions.
WEIGHT_SCALE = 10**12


@dataclass(frozen=True, slots=True)
class BankDemand:
    """One bank's expected share of peak traffic and the capacity it declares."""

    name: str
    share: Fraction
    capacity_tps: int


@dataclass(frozen=True, slots=True)
class BankPlan:
    name: str
    share: Fraction
    required_tps: int
    declared_tps: int

    @property
    def shortfall_tps(self) -> int:
        return max(0, self.required_tps - self.declared_tps)

    @property
    def ok(self) -> bool:
        return self.shortfall_tps == 0


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    peak_tps: int
    headroom: Fraction
    banks: tuple[BankPlan, ...]

    @property
    def required_tps_total(self) -> int:
        return sum(bank.required_tps for bank in self.banks)

    @property
    def declared_tps_total(self) -> int:
        return sum(bank.declared_tps for bank in self.banks)

    @property
    def shortfall_tps_total(self) -> int:
        return sum(bank.shortfall_tps for bank in self.banks)

    @property
    def short(self) -> tuple[BankPlan, ...]:
        return tuple(bank for bank in self.banks if not bank.ok)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data (shares as floats, tx/s as ints)."""
        return {
            "peak_tps": self.peak_tps,
            "headroom": float(self.headroom),
            "required_tps_total": self.required_tps_total,
            "declared_tps_total": self.declared_tps_total,
            "shortfall_tps_total": self.shortfall_tps_total,
            "banks_short": len(self.short),
            "banks": [
                {
                    "bank": bank.name,
                    "share": float(bank.share),
                    "required_tps": bank.required_tps,
                    "declared_tps": bank.declared_tps,
                    "shortfall_tps": bank.shortfall_tps,
                    "ok": bank.ok,
                }
                for bank in self.banks
            ],
        }


def plan_capacity(
    peak_tps: int, demands: Sequence[BankDemand], headroom: Fraction | int = Fraction(3, 2)
) -> CapacityPlan:
    """Required capacity per bank for `peak_tps` with `headroom`; shares must sum to 1."""
    if not 0 < peak_tps <= PEAK_TPS_MAX:
        raise InvalidPlanInput(f"peak must be 1..{PEAK_TPS_MAX:,} payments/s, got {peak_tps}")
    headroom = Fraction(headroom)
    if not 1 <= headroom <= HEADROOM_MAX:
        raise InvalidPlanInput(f"headroom must be 1..{HEADROOM_MAX}, got {float(headroom)}")
    _check_demands(demands)
    banks = tuple(
        BankPlan(
            name=demand.name,
            share=demand.share,
            required_tps=math.ceil(peak_tps * demand.share * headroom),
            declared_tps=demand.capacity_tps,
        )
        for demand in demands
    )
    return CapacityPlan(peak_tps, headroom, banks)


def parse_headroom(text: str) -> Fraction:
    """'1.5' -> 3/2, exactly."""
    return _number(text.strip(), "headroom")


def zipf_shares(
    count: int, *, exponent: float = 1.1, jitter: float = 0.3, seed: int = 11
) -> list[Fraction]:
    """`count` shares summing exactly to 1, largest first: the k-th ~ 1/k^exponent, each
    scaled by a seeded lognormal jitter (sigma `jitter`) so the tail is not a perfect curve."""
    if not 0 < count <= BANKS_MAX:
        raise InvalidPlanInput(f"number of banks must be 1..{BANKS_MAX}, got {count}")
    rng = random.Random(seed)
    raw = [rng.lognormvariate(0.0, jitter) / k**exponent for k in range(1, count + 1)]
    top = max(raw)
    # Integer weights (at least 1) make the shares exact fractions that sum to 1.
    weights = sorted((max(1, round(w / top * WEIGHT_SCALE)) for w in raw), reverse=True)
    total = sum(weights)
    return [Fraction(w, total) for w in weights]


def long_tail_demands(
    count: int, *, peak_tps: int, seed: int = 11, short_fraction: float = 0.15
) -> list[BankDemand]:
    """A generated market of `count` banks (bank-001 the largest) with declared capacities:
    most at 1.6-3x their expected peak traffic, `short_fraction` of them at 0.6-1.4x."""
    if not 0 < peak_tps <= PEAK_TPS_MAX:
        raise InvalidPlanInput(f"peak must be 1..{PEAK_TPS_MAX:,} payments/s, got {peak_tps}")
    assert 0 <= short_fraction <= 1, short_fraction
    rng = random.Random(f"capacities:{seed}")
    width = max(3, len(str(count)))
    demands = []
    for k, share in enumerate(zipf_shares(count, seed=seed), start=1):
        factor = rng.uniform(0.6, 1.4) if rng.random() < short_fraction else rng.uniform(1.6, 3)
        # Banks declare round figures: up to the next 10 tx/s, at least 10.
        capacity_tps = max(10, math.ceil(float(peak_tps * share) * factor / 10) * 10)
        demands.append(BankDemand(f"bank-{k:0{width}d}", share, capacity_tps))
    return demands


def read_demands_csv(path: Path) -> list[BankDemand]:
    """Read `bank,share,capacity_tps` or `bank,estimate_tps,capacity_tps` (with that header
    row). Shares within 1% of summing to 1 are scaled to exactly 1; estimates become shares in
    proportion."""
    try:
        if path.stat().st_size > CSV_BYTES_MAX:
            raise InvalidPlanInput(f"{path}: larger than {CSV_BYTES_MAX // 2**20} MiB")
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InvalidPlanInput(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InvalidPlanInput(f"{path}: not UTF-8 text") from None
    reader = csv.DictReader(text.splitlines())
    header = {name.strip() for name in reader.fieldnames or ()}
    has_share, has_estimate = "share" in header, "estimate_tps" in header
    if not {"bank", "capacity_tps"} <= header or has_share == has_estimate:
        raise InvalidPlanInput(
            f"{path}: the header must be bank,share,capacity_tps or bank,estimate_tps,capacity_tps"
        )
    column = "share" if has_share else "estimate_tps"
    names: list[str] = []
    seen: set[str] = set()
    weights: list[Fraction] = []
    capacities: list[int] = []
    for row in reader:
        line = reader.line_num
        if len(names) >= BANKS_MAX:
            raise InvalidPlanInput(f"{path}: more than {BANKS_MAX} banks")
        if None in row:
            raise InvalidPlanInput(f"{path} line {line}: more fields than the header")
        row = {key.strip(): (value or "").strip() for key, value in row.items()}
        name = row["bank"]
        if not name:
            raise InvalidPlanInput(f"{path} line {line}: empty bank name")
        if name in seen:
            raise InvalidPlanInput(f"{path} line {line}: bank {name!r} appears twice")
        seen.add(name)
        names.append(name)
        weights.append(_number(row[column], f"{path} line {line}: {column}"))
        capacities.append(_capacity(row["capacity_tps"], f"{path} line {line}: capacity_tps"))
    if not names:
        raise InvalidPlanInput(f"{path}: no banks")
    total = sum(weights)
    if total <= 0:
        raise InvalidPlanInput(f"{path}: the {column} column sums to 0")
    if has_share and abs(total - 1) > SHARE_SUM_TOLERANCE:
        raise InvalidPlanInput(f"{path}: shares sum to {float(total):.4f}, not 1")
    return [
        BankDemand(name, weight / total, capacity)
        for name, weight, capacity in zip(names, weights, capacities, strict=True)
    ]


def _number(text: str, where: str) -> Fraction:
    """A non-negative plain decimal, exactly."""
    if not DECIMAL.fullmatch(text):
        raise InvalidPlanInput(f"{where} {text!r} is not a non-negative decimal number")
    return Fraction(text)


def _capacity(text: str, where: str) -> int:
    if not WHOLE.fullmatch(text):
        raise InvalidPlanInput(f"{where} {text!r} is not a whole number of tx/s")
    value = int(text)
    if value > CAPACITY_TPS_MAX:
        raise InvalidPlanInput(f"{where} must be 0..{CAPACITY_TPS_MAX:,}, got {value}")
    return value


def _check_demands(demands: Sequence[BankDemand]) -> None:
    if not 0 < len(demands) <= BANKS_MAX:
        raise InvalidPlanInput(f"a plan needs 1..{BANKS_MAX} banks, got {len(demands)}")
    if len({demand.name for demand in demands}) != len(demands):
        raise InvalidPlanInput("bank names must be unique")
    for demand in demands:
        if demand.share < 0 or not 0 <= demand.capacity_tps <= CAPACITY_TPS_MAX:
            raise InvalidPlanInput(f"{demand.name}: negative share or capacity out of range")
    if sum(demand.share for demand in demands) != 1:
        raise InvalidPlanInput("shares must sum to exactly 1 (read_demands_csv scales them)")
