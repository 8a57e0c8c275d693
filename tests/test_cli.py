"""The `formicary` command: demo, bench and serve's error handling, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from formicary.cli import app

runner = CliRunner()


def test_demo_runs_end_to_end_and_the_books_balance(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "formicary.cli",
            "demo",
            "--users",
            "200",
            "--merchants",
            "10",
            "--payments",
            "3000",
            "--database-url",
            f"sqlite:///{tmp_path / 'demo.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "opened 212 accounts" in result.stdout
    assert "transfers/s" in result.stdout
    assert "balanced" in result.stdout and "NOT BALANCED" not in result.stdout


def test_bench_ledger_json_has_the_documented_keys() -> None:
    result = runner.invoke(
        app,
        [
            "bench",
            "ledger",
            "--scenarios",
            "a",
            "--transfers",
            "20000",
            "--accounts",
            "100",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["machine"]["cores"] >= 1
    engine = figures["scenarios"]["a"]
    for key in (
        "scenario",
        "description",
        "transfers",
        "seconds",
        "transfers_per_s",
        "batch_size",
        "batch_latency_ms_p50",
        "batch_latency_ms_p99",
        "target_transfers_per_s",
        "met_target",
        "failed_results",
        "conserved",
        "note",
    ):
        assert key in engine
    assert engine["transfers"] == 20_000
    assert engine["failed_results"] == 0 and engine["conserved"] is True
    assert engine["transfers_per_s"] > 0


def test_bench_without_postgres_says_how_to_skip_it() -> None:
    result = runner.invoke(
        app,
        [
            "bench",
            "ledger",
            "--scenarios",
            "c",
            "--transfers",
            "100",
            "--postgres-url",
            "postgresql://postgres@127.0.0.1:1/postgres",
        ],
    )
    assert result.exit_code == 2
    assert "--scenarios abde" in result.output


def test_serve_refuses_a_bad_database_url_in_one_line() -> None:
    result = runner.invoke(app, ["serve", "--database-url", "mysql://somewhere/db"])
    assert result.exit_code == 2
    assert "unsupported database URL" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_an_unwritable_sqlite_path() -> None:
    result = runner.invoke(app, ["serve", "--database-url", "sqlite:////nonexistent/dir/x.db"])
    assert result.exit_code == 2
    assert "cannot open the ledger store" in result.output


def test_bench_payments_json_has_the_documented_keys(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "bench",
            "payments",
            "--payments",
            "3000",
            "--users",
            "30",
            "--merchants",
            "5",
            "--batch-items",
            "1000",
            "--http-payments",
            "2000",
            "--http-users",
            "10",
            "--http-batch-items",
            "500",
            "--workdir",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    scenarios = json.loads(result.output)["scenarios"]
    assert scenarios["a"]["succeeded"] == 3000 and scenarios["b"]["succeeded"] == 2000
    for figures in scenarios.values():
        assert figures["books_balanced"] is True
        for key in ("payments_per_s", "transfers_per_s", "target_payments_per_s", "met_target"):
            assert key in figures, key
    assert "batch_latency_ms_p99" in scenarios["a"]
    assert "request_latency_ms_p99" in scenarios["b"]
    bad = runner.invoke(app, ["bench", "payments", "--batch-items", "0"])
    assert bad.exit_code == 2 and "--batch-items" in bad.output
