"""Capacity planning: exact required tx/s per bank, long-tail generation, CSV input."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest

from formicary.channels import (
    BankDemand,
    InvalidPlanInput,
    long_tail_demands,
    plan_capacity,
    read_demands_csv,
    zipf_shares,
)


def test_required_capacity_is_exact_and_shortfalls_are_reported() -> None:
    demands = [
        BankDemand("icbc", Fraction("0.3"), 500),
        BankDemand("ccb", Fraction("0.7"), 1_000),
    ]
    result = plan_capacity(1_000, demands, Fraction("1.5"))
    icbc, ccb = result.banks
    # 1,000 * 0.3 * 1.5 is exactly 450 (a float product would round up to 451).
    assert (icbc.required_tps, icbc.shortfall_tps, icbc.ok) == (450, 0, True)
    assert (ccb.required_tps, ccb.shortfall_tps, ccb.ok) == (1_050, 50, False)
    assert result.short == (ccb,)
    assert (result.required_tps_total, result.declared_tps_total) == (1_500, 1_500)
    assert result.shortfall_tps_total == 50


def test_required_rounds_up_to_a_whole_transaction() -> None:
    thirds = [BankDemand("a", Fraction(1, 3), 0), BankDemand("b", Fraction(2, 3), 0)]
    result = plan_capacity(10, thirds, 1)
    assert [b.required_tps for b in result.banks] == [4, 7]  # 3.33 -> 4, 6.67 -> 7


def test_zipf_shares_are_a_long_tail_summing_to_one() -> None:
    shares = zipf_shares(150, seed=11)
    assert sum(shares) == 1
    assert shares == sorted(shares, reverse=True)
    assert shares[0] > 20 * shares[-1]  # a few large banks, many small ones
    assert sum(shares[:10]) > Fraction(1, 2)
    assert zipf_shares(150, seed=11) == shares
    assert zipf_shares(150, seed=12) != shares


def test_a_generated_market_of_150_banks_has_some_short_banks() -> None:
    peak_tps = 500_000
    demands = long_tail_demands(150, peak_tps=peak_tps, seed=11)
    assert len({d.name for d in demands}) == 150 and demands[0].name == "bank-001"
    result = plan_capacity(peak_tps, demands, Fraction(3, 2))
    exact_total = peak_tps * Fraction(3, 2)
    assert exact_total <= result.required_tps_total < exact_total + len(demands)
    assert 0 < len(result.short) < 75  # the default 15% under-provisioned, give or take
    for bank in result.banks:
        assert bank.required_tps == math.ceil(peak_tps * bank.share * Fraction(3, 2))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shares.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_shares_from_a_csv_are_scaled_to_one_when_rounded(tmp_path: Path) -> None:
    path = write(tmp_path, "bank,share,capacity_tps\na,0.333,100\nb,0.333,100\nc,0.333,100\n")
    demands = read_demands_csv(path)
    assert [d.share for d in demands] == [Fraction(1, 3)] * 3
    assert [d.capacity_tps for d in demands] == [100, 100, 100]


def test_traffic_estimates_from_a_csv_become_shares(tmp_path: Path) -> None:
    path = write(tmp_path, "bank,estimate_tps,capacity_tps\na,300,500\nb,100,100\n")
    demands = read_demands_csv(path)
    assert [d.share for d in demands] == [Fraction(3, 4), Fraction(1, 4)]
    result = plan_capacity(400, demands, Fraction(3, 2))
    assert [b.required_tps for b in result.banks] == [450, 150]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bank,share\na,1\n", "header"),
        ("bank,share,estimate_tps,capacity_tps\na,1,1,1\n", "header"),
        ("bank,share,capacity_tps\na,0.5,100\nb,0.4,100\n", "sum to 0.9000"),
        ("bank,share,capacity_tps\na,1e3,100\n", "not a non-negative decimal"),
        ("bank,share,capacity_tps\na,-0.5,100\nb,1.5,1\n", "not a non-negative decimal"),
        ("bank,share,capacity_tps\na,1,many\n", "not a whole number"),
        ("bank,share,capacity_tps\na,0.5,1\na,0.5,1\n", "appears twice"),
        ("bank,share,capacity_tps\n,1,1\n", "empty bank name"),
        ("bank,share,capacity_tps\na,1,1,extra\n", "more fields"),
        ("bank,share,capacity_tps\n", "no banks"),
        ("bank,estimate_tps,capacity_tps\na,0,1\n", "sums to 0"),
    ],
)
def test_bad_files_are_refused_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidPlanInput, match=message):
        read_demands_csv(write(tmp_path, text))


@pytest.mark.parametrize(
    ("peak_tps", "headroom", "message"),
    [(0, Fraction(3, 2), "peak"), (100, Fraction(1, 2), "headroom"), (100, 11, "headroom")],
)
def test_bad_plan_parameters_are_refused(peak_tps: int, headroom: Fraction, message: str) -> None:
    with pytest.raises(InvalidPlanInput, match=message):
        plan_capacity(peak_tps, [BankDemand("a", Fraction(1), 1)], headroom)


def test_shares_given_directly_must_sum_to_one() -> None:
    with pytest.raises(InvalidPlanInput, match="sum to exactly 1"):
        plan_capacity(100, [BankDemand("a", Fraction(1, 2), 1)])
