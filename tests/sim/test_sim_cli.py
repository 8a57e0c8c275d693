"""`formicary sim double11` through typer's CliRunner, as a user would run it."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from formicary.sim.cli import app

runner = CliRunner()
TINY = ["--users", "60", "--merchants", "5", "--duration-s", "20", "--scale", "0.1"]
IMAGES = ("payments_per_s.png", "latency.png", "throttled_failed.png", "bank_load.png")


def test_a_tiny_run_writes_the_report_files_and_prints_json(tmp_path: Path) -> None:
    out = tmp_path / "night"
    result = runner.invoke(
        app, ["double11", "--out-dir", str(out), *TINY, "--workers", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the JSON alone on stdout; progress went to stderr
    assert report["conservation_ok"] is True
    assert report["succeeded"] > 0 and report["clicks"] > report["payments_attempted"] > 0
    assert len(report["banks"]) == 120
    for name in ("ledger.db", "payments.db", "report.html", "report.json", *IMAGES):
        assert (out / name).is_file(), name
    assert json.loads((out / "report.json").read_text()) == report
    page = (out / "report.html").read_text()
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(embedded) == len(IMAGES)
    for data in embedded:
        assert base64.b64decode(data).startswith(b"\x89PNG")
    assert "src='http" not in page and "<link" not in page  # self-contained
    assert "Ledger conservation check" in page and "simulated" in page.lower()


def test_a_non_empty_out_dir_is_refused_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "old-report.json").write_text("{}")
    result = runner.invoke(app, ["double11", "--out-dir", str(tmp_path), *TINY])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error:") and "not empty" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old-report.json"]  # untouched


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--banks", "99"], "banks must be"), (["--users", "1"], "users must be")],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["double11", "--out-dir", str(tmp_path / "x"), *args])
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
