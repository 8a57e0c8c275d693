"""`formicary channels plan` through typer's CliRunner, as a user would run it."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from formicary.channels import long_tail_demands, plan_capacity
from formicary.channels.cli import app

runner = CliRunner()


def test_plan_for_150_generated_banks_prints_every_bank_and_a_summary() -> None:
    result = runner.invoke(
        app, ["plan", "--peak", "500000", "--banks", "150"], env={"COLUMNS": "120"}
    )
    assert result.exit_code == 0, result.output
    expected = plan_capacity(500_000, long_tail_demands(150, peak_tps=500_000), Fraction(3, 2))
    for bank in expected.banks:
        assert bank.name in result.stdout
    assert result.stdout.count("SHORT") == len(expected.short) > 0
    assert f"150 banks: peak 500,000/s x headroom 1.5 needs {expected.required_tps_total:,}" in (
        result.stdout
    )
    assert f"{len(expected.short)} banks short by {expected.shortfall_tps_total:,} tx/s" in (
        result.stdout
    )


def test_plan_json_matches_the_library() -> None:
    result = runner.invoke(
        app,
        ["plan", "--peak", "200000", "--banks", "150", "--headroom", "2", "--seed", "3", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected = plan_capacity(200_000, long_tail_demands(150, peak_tps=200_000, seed=3), 2)
    assert data == expected.to_dict()
    assert len(data["banks"]) == 150
    assert data["required_tps_total"] == sum(b["required_tps"] for b in data["banks"])


def test_plan_from_a_shares_file(tmp_path: Path) -> None:
    path = tmp_path / "banks.csv"
    path.write_text("bank,share,capacity_tps\nicbc,0.6,1000\nabc,0.4,300\n", encoding="utf-8")
    result = runner.invoke(app, ["plan", "--peak", "1000", "--shares", str(path), "--json"])
    assert result.exit_code == 0, result.output
    banks = {b["bank"]: b for b in json.loads(result.stdout)["banks"]}
    assert (banks["icbc"]["required_tps"], banks["icbc"]["ok"]) == (900, True)
    assert (banks["abc"]["required_tps"], banks["abc"]["shortfall_tps"]) == (600, 300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "--peak", "1000"], "exactly one of --banks"),
        (["plan", "--peak", "1000", "--banks", "3", "--shares", "x.csv"], "exactly one"),
        (["plan", "--peak", "0", "--banks", "10"], "peak must be"),
        (["plan", "--peak", "1000", "--banks", "0"], "number of banks"),
        (["plan", "--peak", "1000", "--banks", "20000"], "number of banks"),
        (["plan", "--peak", "1000", "--banks", "3", "--headroom", "lots"], "headroom"),
        (["plan", "--peak", "1000", "--banks", "3", "--headroom", "0.5"], "headroom"),
        (["plan", "--peak", "1000", "--shares", "/nonexistent/banks.csv"], "cannot read"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_failure(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an escaped error


def test_a_bad_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "banks.csv"
    path.write_text("bank,share,capacity_tps\nicbc,0.6,1000\nabc,lots,300\n", encoding="utf-8")
    result = runner.invoke(app, ["plan", "--peak", "1000", "--shares", str(path)])
    assert result.exit_code == 2
    assert f"{path} line 3: share 'lots' is not a non-negative decimal number" in result.stderr
