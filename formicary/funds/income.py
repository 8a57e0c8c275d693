"""Daily income of a money-market fund: 万份收益 and the exact allocation to every holder.

Units: money is int fen; shares are int fen-shares. The NAV is fixed at 1.00 yuan, so one share
is 100 fen-shares, one fen-share is worth exactly one fen, and reinvesting x fen of income adds
x fen-shares.

With S the total earning shares (fen-shares) and I the day's posted income (fen):

- 万份收益 (income per 10,000 shares, yuan) is W = (I / 100) / (S / 100) * 10,000 = 10,000 * I / S.
  It is published to 4 decimals, rounding half up (away from zero at exactly half): fund
  contracts state "保留到小数点后第4位，小数点后第5位四舍五入", which is half-up, so the
  product's rule replaces the half-even default of DESIGN.md.
- A holder with s fen-shares (s / 100 shares) earns (s / 100) / 10,000 * W yuan = s * I / S fen,
  computed from the exact ratio (not from the rounded W) and truncated toward zero to the fen
  (分以下舍去). Truncation never pays out more than was earned, so on a positive day the
  remainder R = I - sum(holder income) is in [0, n) fen for n holders; on a negative day each
  holder loses at most their exact share of the loss (never more than their shares, as long as
  the loss does not exceed the fund) and R is in (-n, 0]: the fund's rounding account absorbs
  the sub-fen part of the loss. R has the sign of I (of I + carried, below). Allocating from
  the rounded W instead could pay out more than I, leaving the rounding account to fund the
  difference.
- The remainder is posted to the fund's rounding account, so the books balance to the fen:
  sum(holder income) + R == I exactly. The account's balance is undistributed income that
  belongs to the holders collectively, so the next day's allocation can take it back
  (`carried_fen`): then sum(holder income) + R == I + carried, and the balance stays below one
  fen per holder instead of growing by about half a fen per holder every day.

Exactness: s * I reaches 10^27, beyond int64, so the allocation takes a float64 estimate of
floor(s * I / S) and checks it with the exact residual s * I - q * S, computed in uint64
arithmetic (wrapping modulo 2^64 is defined for unsigned integers). The estimate is within one
of the true quotient (relative error below 3 * 2^-53 on a quotient below 2^47), so the true
residual lies in (-S, 2S), inside int64, and the wrapped result reinterpreted as int64 is the
true residual. One correction step brings every residual into [0, S), which is then asserted:
0 <= s * I - q * S < S is exactly the definition of q = floor(s * I / S).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

__all__ = [
    "FEN_SHARES_PER_SHARE",
    "HOLDERS_MAX",
    "HOLDER_SHARES_MAX",
    "INCOME_FEN_MAX",
    "TOTAL_SHARES_MAX",
    "WANFEN_QUANTUM",
    "Allocation",
    "AllocationError",
    "allocate_income",
    "reinvest",
    "wanfen_income",
]

# NAV 1.00 yuan per share = 100 fen per share; one fen-share is one fen.
FEN_SHARES_PER_SHARE = 100
# Bounds under which the allocation is proven exact (see the module docstring): 10^16 fen-shares
# is 10^14 yuan, well above any fund (Yu'e Bao peaked near 1.7 * 10^12 yuan); 10^14 fen is a
# day's income of 10^12 yuan; 10^13 fen-shares is 10^11 yuan in one holding.
TOTAL_SHARES_MAX = 10**16
INCOME_FEN_MAX = 10**14
HOLDER_SHARES_MAX = 10**13
# 80 million holders today; the bound keeps the remainder (< holders fen) and memory finite.
HOLDERS_MAX = 1_000_000_000
# 万份收益 is published in yuan to 4 decimals.
WANFEN_QUANTUM = Decimal("0.0001")
# Holders are processed in blocks that keep the scratch arrays in the CPU cache (2^16 int64 is
# 512 KiB per array): 10M holders took 55 ms with blocks of 2^14..2^16 and 110 ms in one piece.
_BLOCK = 1 << 16

Int64Array = npt.NDArray[np.int64]


class AllocationError(ValueError):
    """Inputs the allocation refuses: out of bounds, negative shares, or no shares at all."""


@dataclass(frozen=True, slots=True, eq=False)
class Allocation:
    """One day's income split over the holders; `per_holder_fen` is read-only and aligned with
    the shares array it was computed from. The books: distributed_fen + remainder_fen ==
    income_fen + carried_fen."""

    income_fen: int
    carried_fen: int
    total_shares: int
    wanfen_yuan: Decimal
    per_holder_fen: Int64Array
    distributed_fen: int
    remainder_fen: int


def wanfen_income(income_fen: int, total_shares: int) -> Decimal:
    """万份收益 in yuan, 10,000 * income / total shares, rounded half up to 4 decimals."""
    income_fen = operator.index(income_fen)
    total_shares = operator.index(total_shares)
    if total_shares <= 0:
        raise AllocationError(f"total shares must be positive, got {total_shares}")
    # W in units of 0.0001 yuan is 10^4 * W = 10^8 * I / S: round that ratio with integers.
    ten_thousandths = _round_half_up(10**8 * income_fen, total_shares)
    return Decimal(ten_thousandths).scaleb(-4)


def allocate_income(shares: Int64Array, income_fen: int, *, carried_fen: int = 0) -> Allocation:
    """Split `income_fen` (may be negative) over the holders in proportion to `shares`
    (int64 fen-shares, one entry per holder); each holder's income is truncated toward zero
    to the fen and the remainder goes to the fund's rounding account.

    `carried_fen` is the rounding account's balance brought forward to be distributed with
    today's income (see docs/funds.md); 万份收益 is computed from `income_fen` alone, the
    manager's realised income of the day."""
    income_fen = operator.index(income_fen)
    carried_fen = operator.index(carried_fen)
    total_shares = _checked_total(shares)
    distributable_fen = income_fen + carried_fen
    for name, amount in (("income", income_fen), ("income + carried", distributable_fen)):
        if abs(amount) > INCOME_FEN_MAX:
            raise AllocationError(f"|{name}| {abs(amount)} fen exceeds {INCOME_FEN_MAX}")
    if distributable_fen < -total_shares:
        # At NAV 1.00 the fund's net assets are its shares: a bigger loss cannot be spread
        # without taking some holder below zero shares.
        raise AllocationError(
            f"loss {-distributable_fen} fen exceeds the fund's {total_shares} shares"
        )

    per_holder = np.empty(shares.shape[0], dtype=np.int64)
    _floor_mul_div(shares, abs(distributable_fen), total_shares, per_holder)
    if distributable_fen < 0:
        np.negative(per_holder, out=per_holder)
    distributed_fen = int(per_holder.sum())
    remainder_fen = distributable_fen - distributed_fen
    # Each holder's truncated fraction is below one fen, so the remainder is below one fen per
    # holder, with the sign of what was distributed.
    assert 0 <= remainder_fen * _sign(distributable_fen) < shares.shape[0], remainder_fen
    per_holder.setflags(write=False)
    return Allocation(
        income_fen=income_fen,
        carried_fen=carried_fen,
        total_shares=total_shares,
        wanfen_yuan=wanfen_income(income_fen, total_shares),
        per_holder_fen=per_holder,
        distributed_fen=distributed_fen,
        remainder_fen=remainder_fen,
    )


def reinvest(shares: Int64Array, allocation: Allocation, *, in_place: bool = False) -> Int64Array:
    """The holders' shares after reinvesting the day's income (a negative day reduces them).
    `in_place` updates `shares` itself, saving a copy of the register."""
    if shares.shape != allocation.per_holder_fen.shape:
        raise AllocationError(
            f"shares {shares.shape} and allocation {allocation.per_holder_fen.shape} differ"
        )
    result = shares if in_place else shares.copy()
    # One fen of income buys one fen-share at NAV 1.00.
    np.add(result, allocation.per_holder_fen, out=result)
    # A negative day never takes more than a holder's exact share of a loss no bigger than
    # the fund, so no holding goes below zero.
    assert allocation.distributed_fen >= 0 or int(result.min(initial=0)) >= 0
    return result


def _checked_total(shares: Int64Array) -> int:
    if not isinstance(shares, np.ndarray) or shares.dtype != np.int64 or shares.ndim != 1:
        raise AllocationError("shares must be a one-dimensional numpy int64 array")
    count = shares.shape[0]
    if count == 0:
        raise AllocationError("no holders: there is nothing to allocate to")
    if count > HOLDERS_MAX:
        raise AllocationError(f"{count} holders exceed {HOLDERS_MAX}")
    low, high = int(shares.min()), int(shares.max())
    if low < 0:
        raise AllocationError(f"negative holding {low}")
    if high > HOLDER_SHARES_MAX:
        raise AllocationError(f"holding {high} exceeds {HOLDER_SHARES_MAX} fen-shares")
    if count * high >= 2**63:
        # The int64 sum below could wrap; a float64 sum (relative error far below 10^-6 for
        # pairwise summation) proves it cannot before we trust it.
        approximate = float(shares.sum(dtype=np.float64))
        if approximate > TOTAL_SHARES_MAX * 1.001:
            raise AllocationError(f"total shares ~{approximate:.3e} exceed {TOTAL_SHARES_MAX}")
    total = int(shares.sum())
    if total == 0:
        raise AllocationError("total shares are 0: no holder can receive income")
    if total > TOTAL_SHARES_MAX:
        raise AllocationError(f"total shares {total} exceed {TOTAL_SHARES_MAX}")
    return total


def _floor_mul_div(shares: Int64Array, numerator: int, denominator: int, out: Int64Array) -> None:
    """out[i] = floor(shares[i] * numerator / denominator), exactly, for holdings within
    HOLDER_SHARES_MAX, 0 <= numerator <= INCOME_FEN_MAX and 0 < denominator <= TOTAL_SHARES_MAX
    with shares[i] <= denominator."""
    assert 0 <= numerator <= INCOME_FEN_MAX and 0 < denominator <= TOTAL_SHARES_MAX
    # Python's int / int is correctly rounded, so the ratio carries one rounding only.
    ratio = numerator / denominator
    numerator_u64 = np.uint64(numerator)
    denominator_u64 = np.uint64(denominator)
    estimate = np.empty(_BLOCK, dtype=np.float64)
    residual = np.empty(_BLOCK, dtype=np.uint64)
    product = np.empty(_BLOCK, dtype=np.uint64)
    count = shares.shape[0]
    for start in range(0, count, _BLOCK):
        stop = min(start + _BLOCK, count)
        size = stop - start
        block_shares = shares[start:stop]
        quotient = out[start:stop]
        block_estimate = estimate[:size]
        np.multiply(block_shares, ratio, out=block_estimate)
        # Truncation is the floor here: every estimate is >= 0.
        np.copyto(quotient, block_estimate, casting="unsafe")
        # residual = shares * numerator - quotient * denominator, modulo 2^64.
        block_residual = residual[:size]
        block_product = product[:size]
        np.multiply(block_shares.view(np.uint64), numerator_u64, out=block_residual)
        np.multiply(quotient.view(np.uint64), denominator_u64, out=block_product)
        np.subtract(block_residual, block_product, out=block_residual)
        exact = block_residual.view(np.int64)
        # The proof obligation: 0 <= residual < denominator means quotient is the floor.
        if int(exact.min()) >= 0 and int(exact.max()) < denominator:
            continue
        # The estimate was one too high (residual < 0) or one too low (residual >= S).
        low = exact < 0
        quotient[low] -= 1
        exact[low] += denominator
        high = exact >= denominator
        quotient[high] += 1
        exact[high] -= denominator
        assert int(exact.min()) >= 0 and int(exact.max()) < denominator


def _round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to an integer, halves away from zero (四舍五入)."""
    assert denominator > 0
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return magnitude if numerator >= 0 else -magnitude


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)
