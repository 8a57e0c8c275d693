"""`formicary wealth simulate`: the scenario runs from listing to maturity and balances."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from formicary.wealth.cli import app
from formicary.wealth.simulate import simulate


def test_simulate_prints_the_story_and_balanced_books(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--out-dir", str(tmp_path / "run"), "--users", "12"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "refused by rule bank_total_assets" in out
    assert "refused by rule pc_insurer_solvency" in out
    assert "failed to launch" in out and "launched" in out
    assert "matured" in out
    assert "OFF" not in out and out.count("balanced") == 4


def test_simulate_refuses_a_used_directory(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    result = CliRunner().invoke(app, ["simulate", "--out-dir", str(tmp_path)])
    assert result.exit_code == 1 and "not empty" in result.output


def test_the_simulation_is_reproducible(tmp_path: Path) -> None:
    first = simulate(tmp_path / "a", users=8, seed=3, threads=1)
    second = simulate(tmp_path / "b", users=8, seed=3, threads=1)
    assert first.balanced and second.balanced
    assert first.events == second.events
    assert [p.raised_fen for p in first.products] == [p.raised_fen for p in second.products]
