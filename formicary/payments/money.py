"""Integer money arithmetic: basis points, pro-rata shares and fee plans.

Amounts are int fen; rates are int basis points (1 bp = 0.01%). Every division rounds half to
even ("banker's rounding", DESIGN.md §3): over many payments it is unbiased, where half-up would
give the platform a systematic extra half fen. No floats anywhere.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "AMOUNT_FEN_MAX",
    "BP_PER_UNIT",
    "FEE_PLANS",
    "FeePlan",
    "bp_of",
    "div_half_even",
    "pro_rata",
]

BP_PER_UNIT = 10_000
# The largest amount of one operation: 10 billion yuan. Far below the ledger's int64 so that
# sums over many operations, and products with basis points, stay exact and far from overflow.
AMOUNT_FEN_MAX = 10**12


def div_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even (both >= 0, denominator > 0)."""
    assert numerator >= 0 and denominator > 0
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def bp_of(amount_fen: int, rate_bp: int) -> int:
    """`rate_bp` basis points of `amount_fen`, rounded half to even to the fen."""
    assert 0 <= rate_bp <= BP_PER_UNIT
    return div_half_even(amount_fen * rate_bp, BP_PER_UNIT)


def pro_rata(total_fen: int, part: int, whole: int) -> int:
    """`total_fen * part / whole` rounded half to even: the share of `total_fen` that goes with
    `part` of `whole`. Exact at the ends: 0 for part 0, `total_fen` for part == whole. Used
    cumulatively (share of the running total minus what was already allocated), so the shares
    of a sequence of parts always add up to exactly the share of their sum."""
    assert 0 <= part <= whole and whole > 0
    return div_half_even(total_fen * part, whole)


class FeePlan(msgspec.Struct, frozen=True):
    """A merchant fee plan: the platform's fee in basis points of the fee base."""

    name: str
    rate_bp: int


# The plans a merchant can be on. The online rate is a placeholder to tune with the business;
# the offline QR rate is Alipay's published 0.6%, and the card-acquiring plan is the 1.25% a
# card acquirer charges, kept to compare against.
FEE_PLANS: dict[str, FeePlan] = {
    plan.name: plan
    for plan in (
        FeePlan("online", 55),
        FeePlan("offline_qr", 60),
        FeePlan("card_acquiring", 125),
    )
}
