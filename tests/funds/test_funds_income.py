"""万份收益 and the exact allocation of a day's income over the holders."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from formicary.funds import (
    HOLDER_SHARES_MAX,
    INCOME_FEN_MAX,
    TOTAL_SHARES_MAX,
    Allocation,
    AllocationError,
    allocate_income,
    reinvest,
    wanfen_income,
)
from formicary.funds import income as income_module


def shares_of(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def reference(shares: np.ndarray, amount_fen: int) -> list[int]:
    """Each holder's income with Python ints: trunc(s * I / S), toward zero."""
    total = sum(int(s) for s in shares)
    magnitude = [int(s) * abs(amount_fen) // total for s in shares]
    return magnitude if amount_fen >= 0 else [-m for m in magnitude]


def check_books(allocation: Allocation, shares: np.ndarray) -> None:
    per_holder = [int(x) for x in allocation.per_holder_fen]
    distributable_fen = allocation.income_fen + allocation.carried_fen
    assert sum(per_holder) + allocation.remainder_fen == distributable_fen
    assert allocation.distributed_fen == sum(per_holder)
    assert per_holder == reference(shares, distributable_fen)
    sign = (distributable_fen > 0) - (distributable_fen < 0)
    assert 0 <= allocation.remainder_fen * sign < len(shares)


# --- hand-computed vectors -------------------------------------------------------------------

# Four holders: 10,000 shares, 2,500.50 shares, 0.33 shares and none (in fen-shares).
# S = 1,000,000 + 250,050 + 33 + 0 = 1,250,083 fen-shares.
HAND_SHARES = (1_000_000, 250_050, 33, 0)


def test_positive_day_by_hand() -> None:
    # I = 137 fen.
    # holder 1: 1,000,000 * 137 / 1,250,083 = 137,000,000 / 1,250,083 = 109.5927... -> 109
    # holder 2:   250,050 * 137 / 1,250,083 =  34,256,850 / 1,250,083 =  27.4036... -> 27
    # holder 3:        33 * 137 / 1,250,083 =       4,521 / 1,250,083 =   0.0036... -> 0
    # holder 4: no shares -> 0
    # distributed 136, remainder 137 - 136 = 1 fen to the rounding account.
    # 万份收益 = 10,000 * 137 / 1,250,083 = 1.09592723... yuan -> 1.0959.
    allocation = allocate_income(shares_of(*HAND_SHARES), 137)
    assert allocation.per_holder_fen.tolist() == [109, 27, 0, 0]
    assert (allocation.distributed_fen, allocation.remainder_fen) == (136, 1)
    assert allocation.total_shares == 1_250_083
    assert allocation.wanfen_yuan == Decimal("1.0959")
    # The published figure gives the same holder income here: 10,000 shares / 10,000 *
    # 1.0959 yuan = 1.0959 yuan = 109.59 fen -> 109.


def test_negative_day_by_hand() -> None:
    # The same holders lose 137 fen: each loss is truncated toward zero (-109.59 -> -109,
    # -27.40 -> -27, -0.0036 -> 0), so the holders bear 136 fen and the rounding account
    # the remaining -1 fen. 万份收益 = -1.09592723... -> -1.0959.
    shares = shares_of(*HAND_SHARES)
    allocation = allocate_income(shares, -137)
    assert allocation.per_holder_fen.tolist() == [-109, -27, 0, 0]
    assert (allocation.distributed_fen, allocation.remainder_fen) == (-136, -1)
    assert allocation.wanfen_yuan == Decimal("-1.0959")
    assert reinvest(shares, allocation).tolist() == [999_891, 250_023, 33, 0]


def test_carrying_the_rounding_account_forward() -> None:
    # Yesterday left 1 fen in the rounding account (test_positive_day_by_hand); today's
    # posted income is again 137 fen, so 138 fen are distributed:
    # holder 1: 138,000,000 / 1,250,083 = 110.39... -> 110
    # holder 2:  34,506,900 / 1,250,083 =  27.60... -> 27
    # holder 3:       4,554 / 1,250,083 =   0.0036 -> 0
    # distributed 137, remainder 138 - 137 = 1. 万份收益 is still 137's: 1.0959.
    allocation = allocate_income(shares_of(*HAND_SHARES), 137, carried_fen=1)
    assert allocation.per_holder_fen.tolist() == [110, 27, 0, 0]
    assert (allocation.distributed_fen, allocation.remainder_fen) == (137, 1)
    assert allocation.wanfen_yuan == Decimal("1.0959")
    # A carried balance can turn a tiny loss into a distribution, and the sign of the
    # remainder follows what is distributed: -1 + 3 = 2 fen over two equal holders.
    allocation = allocate_income(shares_of(1, 1), -1, carried_fen=3)
    assert allocation.per_holder_fen.tolist() == [1, 1]
    assert allocation.remainder_fen == 0
    assert allocation.wanfen_yuan == Decimal("-5000.0000")
    with pytest.raises(AllocationError):
        allocate_income(shares_of(1, 1), -2, carried_fen=-1)  # a loss of 3 on 2 shares


def test_exact_shares_leave_no_remainder() -> None:
    # S = 4, I = 8: 1 * 8 / 4 = 2 and 3 * 8 / 4 = 6 exactly.
    allocation = allocate_income(shares_of(1, 3), 8)
    assert allocation.per_holder_fen.tolist() == [2, 6]
    assert allocation.remainder_fen == 0
    # 万份收益 = 10,000 * 8 / 4 = 20,000 yuan per 10,000 shares (a 0.04-yuan fund doubling).
    assert allocation.wanfen_yuan == Decimal("20000.0000")


def test_halves_truncate_rather_than_round() -> None:
    # Two equal holders and 1 fen: each earns 0.5 fen -> 0; the fen goes to the account.
    assert allocate_income(shares_of(1, 1), 1).per_holder_fen.tolist() == [0, 0]
    assert allocate_income(shares_of(1, 1), 1).remainder_fen == 1
    # Three equal holders and 2 fen: 0.667 each -> 0, remainder 2 (at most n - 1 = 2).
    allocation = allocate_income(shares_of(5, 5, 5), 2)
    assert allocation.per_holder_fen.tolist() == [0, 0, 0]
    assert allocation.remainder_fen == 2
    # Loss of 1 fen over two: -0.5 each -> 0 (toward zero), the account takes -1.
    allocation = allocate_income(shares_of(1, 1), -1)
    assert allocation.per_holder_fen.tolist() == [0, 0]
    assert allocation.remainder_fen == -1


def test_a_loss_equal_to_the_fund_wipes_every_holding_exactly() -> None:
    shares = shares_of(5, 7, 0)
    allocation = allocate_income(shares, -12)
    assert allocation.per_holder_fen.tolist() == [-5, -7, 0]
    assert reinvest(shares, allocation).tolist() == [0, 0, 0]
    with pytest.raises(AllocationError):
        allocate_income(shares, -13)


def test_zero_income() -> None:
    allocation = allocate_income(shares_of(3, 4), 0)
    assert allocation.per_holder_fen.tolist() == [0, 0]
    assert allocation.remainder_fen == 0
    assert allocation.wanfen_yuan == Decimal("0.0000")


def test_a_realistic_day() -> None:
    # A 100-million-yuan fund (10^10 fen-shares) earning 4% a year: 10^10 * 0.04 / 365
    # = 1,095,890.41 -> 1,095,890 fen. 万份收益 = 10,000 * 1,095,890 / 10^10 = 1.09589 -> 1.0959.
    # A holder of 10,000 yuan (10^6 fen-shares): 10^6 * 1,095,890 / 10^10 = 109.589 -> 109 fen.
    shares = np.full(10_000, 1_000_000, dtype=np.int64)
    allocation = allocate_income(shares, 1_095_890)
    assert allocation.wanfen_yuan == Decimal("1.0959")
    assert set(allocation.per_holder_fen.tolist()) == {109}
    # 10,000 holders * 0.589 fen truncated = 5,890 fen to the rounding account.
    assert allocation.remainder_fen == 5_890


# --- 万份收益 rounding --------------------------------------------------------------------------


def test_wanfen_rounds_half_up() -> None:
    # 10^8 * 1 / (2 * 10^8) = 0.5 ten-thousandths of a yuan: half up -> 0.0001 (half even
    # would publish 0.0000).
    assert wanfen_income(1, 200_000_000) == Decimal("0.0001")
    assert wanfen_income(-1, 200_000_000) == Decimal("-0.0001")  # halves away from zero
    assert wanfen_income(3, 200_000_000) == Decimal("0.0002")  # 1.5 -> 2
    assert wanfen_income(1, 200_000_001) == Decimal("0.0000")  # 0.49999999... -> 0
    assert wanfen_income(1, 199_999_999) == Decimal("0.0001")
    assert str(wanfen_income(0, 5)) == "0.0000"  # always 4 decimals, never -0
    with pytest.raises(AllocationError):
        wanfen_income(1, 0)


# --- refusals --------------------------------------------------------------------------------


def test_refuses_bad_inputs() -> None:
    with pytest.raises(AllocationError, match="total shares are 0"):
        allocate_income(shares_of(0, 0), 5)
    with pytest.raises(AllocationError, match="no holders"):
        allocate_income(np.array([], dtype=np.int64), 5)
    with pytest.raises(AllocationError, match="negative"):
        allocate_income(shares_of(5, -1), 5)
    with pytest.raises(AllocationError, match="int64"):
        allocate_income(np.array([1.0, 2.0]), 5)
    with pytest.raises(AllocationError, match="int64"):
        allocate_income(shares_of(1, 2).astype(np.int32), 5)
    with pytest.raises(AllocationError, match="holding"):
        allocate_income(shares_of(HOLDER_SHARES_MAX + 1), 5)
    with pytest.raises(AllocationError, match="income"):
        allocate_income(shares_of(HOLDER_SHARES_MAX), INCOME_FEN_MAX + 1)
    with pytest.raises(AllocationError, match="total shares"):
        allocate_income(np.full(1_001, HOLDER_SHARES_MAX, dtype=np.int64), 5)


def test_a_total_that_would_wrap_int64_is_refused() -> None:
    # 10^6 holdings of 10^13 sum to 10^19 > 2^63: an unchecked int64 sum would wrap negative.
    with pytest.raises(AllocationError, match="total shares"):
        allocate_income(np.full(1_000_000, HOLDER_SHARES_MAX, dtype=np.int64), 5)


def test_per_holder_income_is_read_only() -> None:
    allocation = allocate_income(shares_of(1, 2), 3)
    with pytest.raises(ValueError, match="read-only"):
        allocation.per_holder_fen[0] = 5


def test_reinvest_in_place_and_by_copy() -> None:
    shares = shares_of(100, 300)
    allocation = allocate_income(shares, 8)  # 2 and 6
    assert reinvest(shares, allocation).tolist() == [102, 306]
    assert shares.tolist() == [100, 300]
    assert reinvest(shares, allocation, in_place=True) is shares
    assert shares.tolist() == [102, 306]
    with pytest.raises(AllocationError):
        reinvest(shares_of(1, 2, 3), allocation)


# --- exactness at the bounds -----------------------------------------------------------------

# Inputs on which the float64 estimate alone is wrong, found by search: the allocation must
# correct it. (shares, income) with the shares forming the whole fund.
ESTIMATE_TOO_LOW = [(5_563_847_402_147, 90_132_512_446_137)]  # one holder owns everything
ESTIMATE_TOO_HIGH = [(8_942_697_185_675, 58_571_103_553_507, 6_166_776_084_245_473)]


def naive_estimate(share: int, income_fen: int, total: int) -> int:
    return int(np.float64(share) * (income_fen / total))


def test_corrects_an_estimate_that_is_one_too_low() -> None:
    for share, income_fen in ESTIMATE_TOO_LOW:
        assert naive_estimate(share, income_fen, share) == income_fen - 1  # the trap is real
        allocation = allocate_income(shares_of(share), income_fen)
        assert allocation.per_holder_fen.tolist() == [income_fen]
        assert allocation.remainder_fen == 0


def test_corrects_an_estimate_that_is_one_too_high() -> None:
    for share, income_fen, total in ESTIMATE_TOO_HIGH:
        exact = share * income_fen // total
        assert naive_estimate(share, income_fen, total) == exact + 1  # the trap is real
        # Fill the rest of the fund with holdings at the bound, then one odd holding.
        rest = total - share
        filler = [HOLDER_SHARES_MAX] * (rest // HOLDER_SHARES_MAX) + [rest % HOLDER_SHARES_MAX]
        shares = shares_of(share, *filler)
        assert int(shares.sum()) == total
        allocation = allocate_income(shares, income_fen)
        assert int(allocation.per_holder_fen[0]) == exact
        check_books(allocation, shares)


def test_at_the_bounds() -> None:
    # The biggest fund, biggest holdings and biggest income the proof covers.
    shares = np.full(TOTAL_SHARES_MAX // HOLDER_SHARES_MAX, HOLDER_SHARES_MAX, dtype=np.int64)
    shares[-1] -= 1  # S = 10^16 - 1, so no ratio is a round number
    for income_fen in (INCOME_FEN_MAX, -INCOME_FEN_MAX, INCOME_FEN_MAX - 1, 1, -1):
        check_books(allocate_income(shares, income_fen), shares)


def test_many_blocks_against_exact_python_ints() -> None:
    # More holders than one block (2^16), with a partial last block, at realistic sizes
    # (lognormal around 3,000 yuan) and a Yu'e Bao-like 4.5% a year.
    rng = np.random.default_rng(20130613)
    count = 3 * income_module._BLOCK + 12_345
    shares = rng.lognormal(np.log(300_000), 1.6, count).astype(np.int64)
    shares[rng.integers(0, count, 500)] = 0
    total = int(shares.sum())
    for income_fen in (total * 45 // 1000 // 365, -(total // 10_000) - 7):
        allocation = allocate_income(shares, income_fen)
        exact = shares.astype(object) * abs(income_fen) // total
        expected = exact if income_fen >= 0 else -exact
        assert (allocation.per_holder_fen == expected.astype(np.int64)).all()
        assert allocation.distributed_fen + allocation.remainder_fen == income_fen


# --- properties ------------------------------------------------------------------------------

holding = st.one_of(
    st.integers(0, HOLDER_SHARES_MAX),
    st.integers(HOLDER_SHARES_MAX - 1_000, HOLDER_SHARES_MAX),
    st.integers(0, 1_000),
    st.just(0),
)


@st.composite
def funds(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """A share register (optionally padded with holdings at the bound, to reach the biggest
    totals) and an income the allocation accepts for it."""
    values = draw(st.lists(holding, min_size=1, max_size=40))
    padding = draw(st.sampled_from([0, 0, 1, 10, 999 - len(values)]))
    shares = np.array(values + [HOLDER_SHARES_MAX] * padding, dtype=np.int64)
    total = int(shares.sum())
    assume(total > 0)
    loss_max = min(total, INCOME_FEN_MAX)
    income_fen = draw(
        st.one_of(
            st.integers(-loss_max, INCOME_FEN_MAX),
            st.integers(INCOME_FEN_MAX - 1_000, INCOME_FEN_MAX),
            st.integers(-loss_max, -loss_max + 1_000),
            st.integers(max(-1_000, -loss_max), 1_000),
            # Incomes that divide evenly or nearly so: exact-integer and near-integer quotients.
            st.sampled_from([total, total - 1, total + 1, total // 2, total // 3]).filter(
                lambda i: 0 <= i <= INCOME_FEN_MAX
            ),
        )
    )
    return shares, income_fen


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(funds())
def test_allocation_is_exact_and_balances(fund: tuple[np.ndarray, int]) -> None:
    shares, income_fen = fund
    allocation = allocate_income(shares, income_fen)
    assert allocation.carried_fen == 0
    check_books(allocation, shares)
    assert allocation.wanfen_yuan == wanfen_income(income_fen, int(shares.sum()))
    after = reinvest(shares, allocation)
    assert int(after.min()) >= 0
    assert int(after.sum()) == int(shares.sum()) + allocation.distributed_fen


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(funds(), st.data())
def test_a_carried_balance_is_distributed_too(
    fund: tuple[np.ndarray, int], data: st.DataObject
) -> None:
    # Carry what a previous day could have left: less than a fen per holder, either sign.
    shares, income_fen = fund
    bound = len(shares) - 1
    carried_fen = data.draw(st.integers(-bound, bound))
    distributable_fen = income_fen + carried_fen
    assume(max(-int(shares.sum()), -INCOME_FEN_MAX) <= distributable_fen <= INCOME_FEN_MAX)
    allocation = allocate_income(shares, income_fen, carried_fen=carried_fen)
    check_books(allocation, shares)
    assert allocation.wanfen_yuan == wanfen_income(income_fen, int(shares.sum()))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, HOLDER_SHARES_MAX), st.integers(-INCOME_FEN_MAX, INCOME_FEN_MAX))
def test_one_holder_gets_everything(share: int, income_fen: int) -> None:
    # s * I / S with s == S: the float estimate is often one off here (see above).
    assume(income_fen >= -share)
    allocation = allocate_income(shares_of(share), income_fen)
    assert allocation.per_holder_fen.tolist() == [income_fen]
    assert allocation.remainder_fen == 0


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**12), 10**12), st.integers(1, TOTAL_SHARES_MAX))
def test_wanfen_is_the_nearest_ten_thousandth(income_fen: int, total_shares: int) -> None:
    # |W - 10,000 I / S| <= 0.00005, with exact halves going away from zero.
    published = wanfen_income(income_fen, total_shares)
    ten_thousandths = int(published.scaleb(4))
    error_times_2s = 2 * (ten_thousandths * total_shares - 10**8 * income_fen)
    assert -total_shares < error_times_2s * (1 if income_fen >= 0 else -1) <= total_shares
    assert published.as_tuple().exponent == -4
