"""`formicary funds ...` and `formicary bench funds`, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from formicary.cli import app
from tests.funds.fund_builders import beijing, world

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_simulate_posts_days_balances_the_books_and_writes_charts(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    code, output = invoke(
        "funds", "simulate", "--out-dir", str(out), "--holders", "120", "--days", "10"
    )
    assert code == 0, output
    assert "balanced" in output and "OFF" not in output
    # 2013-12-02 is a Monday: income from Tuesday; the 7-day yield from the 7th posted day.
    assert "2013-12-03" in output and "2013-12-11" in output
    png = (out / "yields.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    html = (out / "yields.html").read_text(encoding="utf-8")
    assert "<table>" in html and "2013-12-09" in html
    code, output = invoke("funds", "simulate", "--out-dir", str(out), "--holders", "5")
    assert code == 1 and "not empty" in output


def test_post_income_yields_and_statement_on_a_real_fund(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    url = f"sqlite:///{tmp_path}/ledger.db"
    # A fund whose holders subscribed in December 2013 (the CLI uses the real clock after).
    with world(state, beijing(2013, 12, 2, 10, 0), database_url=url) as w:
        w.fund.subscribe("alice", w.wallet(0), 1_000_000, "s")
        w.fund.subscribe("bob", w.wallet(1), 3_000_000, "s")
    common = ("--database-url", url, "--state-dir", str(state))
    code, output = invoke("funds", "post-income", "--date", "2013-12-03", *common)
    assert code == 0, output
    assert "2 holders paid" in output and "balanced" in output
    code, output = invoke(
        "funds", "post-income", "--date", "2013-12-04", "--income-fen", "-40", *common
    )
    assert code == 0 and "-0.40 yuan" in output, output
    code, output = invoke(
        "funds", "yields", "--state-dir", str(state), "--out", f"{tmp_path}/y.png"
    )
    assert code == 0 and "2013-12-04" in output and (tmp_path / "y.png").exists()
    code, output = invoke("funds", "statement", "--user", "alice", *common)
    assert code == 0 and "2013-12-03" in output, output
    # Errors: one line, exit 1, nothing applied.
    for args, message in [
        (("--date", "2013-12-09"), "post 2013-12-05 first"),
        (("--date", "12/03/2013"), "not a date"),
        (("--date", "2013-12-04", "--income-fen", "5"), "cannot be posted again"),
        (("--date", "2025-01-01"), "no modelled income"),
    ]:
        code, output = invoke("funds", "post-income", *args, *common)
        assert code == 1 and message in output, output
        assert "Traceback" not in output
    code, output = invoke("funds", "statement", "--user", "nobody", *common)
    assert code == 1 and "holds nothing" in output
    code, output = invoke("funds", "yields", "--state-dir", str(state), "--out", "y.gif")
    assert code == 1 and ".png or .html" in output


def test_bench_funds_json_has_the_documented_keys(tmp_path: Path) -> None:
    code, output = invoke(
        "bench",
        "funds",
        "--holders",
        "3000",
        "--orders",
        "200",
        "--workdir",
        str(tmp_path),
        "--json",
    )
    assert code == 0, output
    figures = json.loads(output)
    assert figures["books_balanced"] is True and figures["orders_failed"] == 0
    assert figures["holders"] == 3000 and figures["paid_holders"] > 2900
    for key in (
        "setup_seconds",
        "daily_run_seconds",
        "holders_per_s",
        "extrapolated_80m_seconds",
        "peak_rss_mib",
        "target_seconds",
        "met_target",
        "subscriptions_per_s",
        "redemptions_per_s",
    ):
        assert key in figures, key
