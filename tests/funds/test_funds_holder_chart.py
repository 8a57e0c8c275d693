"""One holder's chart: the series equal the statement to the fen, the files, the CLI option."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from typer.testing import CliRunner

from formicary.cli import app
from formicary.funds.fund import UnknownHolder
from formicary.funds.ledger_ids import Code
from formicary.funds.report import (
    HolderSeries,
    NoHolderHistory,
    holder_figure,
    holder_series,
    write_holder_chart,
)
from formicary.ledger import Transfer, TransferFlags
from tests.funds.fund_builders import FundWorld, beijing, world

FIRST_DAY = date(2026, 3, 3)  # Monday 2026-03-02's subscriptions earn from Tuesday
# The calendar days posted, with the income of each (one losing day).
INCOMES = [9_000, 9_100, 8_800, 9_300, 9_300, -500, 9_050]
DAYS = [FIRST_DAY + timedelta(days=n) for n in range(len(INCOMES))]
# alice's orders after her first subscription of 10,000 yuan, by the Beijing day placed.
ALICE_ORDERS = {date(2026, 3, 4): 500_000, date(2026, 3, 6): -200_000}
ALICE_LATER = 100_000  # bought after the last posted day
runner = CliRunner()


def build(w: FundWorld) -> None:
    """alice and bob hold; alice buys and sells between the daily runs (each run at 09:00 the
    morning after its day); carol buys only after the last posted day."""
    w.fund.subscribe("alice", w.wallet(0), 1_000_000, "a1")
    w.fund.subscribe("bob", w.wallet(1), 3_000_000, "b1")
    for day, income in zip(DAYS, INCOMES, strict=True):
        w.clock.set(beijing(day.year, day.month, day.day + 1, 9, 0))
        w.run.run(day, income)
        order_day = day + timedelta(days=1)
        amount = ALICE_ORDERS.get(order_day)
        if amount:
            w.clock.set(beijing(order_day.year, order_day.month, order_day.day, 10, 0))
            if amount > 0:
                w.fund.subscribe("alice", w.wallet(0), amount, f"a{order_day}")
            else:
                w.fund.redeem("alice", w.wallet(0), -amount, f"r{order_day}", instant=True)
    w.clock.set(beijing(2026, 3, 10, 10, 0))
    w.fund.subscribe("alice", w.wallet(0), ALICE_LATER, "a-later")
    w.fund.subscribe("carol", w.wallet(2), 700_000, "c1")


@pytest.fixture
def fund(tmp_path: Path) -> Iterator[FundWorld]:
    with world(tmp_path, beijing(2026, 3, 2, 10, 0)) as w:
        build(w)
        yield w


def statement_income(w: FundWorld, user: str, days: int) -> list[int]:
    """The statement's own figures: each posted day's plan, read for the holder."""
    posted = [d for d in w.fund.store.days() if d.status == "posted"][-days:]
    index = w.fund.holder_account(user) - w.fund.holder_base
    return [amount for _, amount in w.run.holder_income(index, posted)]


def test_the_series_equal_the_statement_and_the_ledger_to_the_fen(fund: FundWorld) -> None:
    w = fund
    series = holder_series(w.fund, w.run, "alice", days=30)
    assert series.days == tuple(DAYS)
    assert list(series.income_fen) == statement_income(w, "alice", 30)
    assert all(isinstance(x, int) for x in series.income_fen + series.holding_fen)
    assert series.income_fen[0] > 0 and series.income_fen[5] < 0  # the losing day
    # The holding: each day's income and that day's orders on top of the day before.
    assert series.holding_fen[0] == 1_000_000 + series.income_fen[0]
    for n in range(1, len(DAYS)):
        change = series.income_fen[n] + ALICE_ORDERS.get(DAYS[n], 0)
        assert series.holding_fen[n] - series.holding_fen[n - 1] == change, DAYS[n]
    # ... and it ends on the ledger's shares, less the order placed after the last day.
    assert series.shares_fen == w.fund.shares("alice")
    assert series.later_orders_fen == ALICE_LATER
    assert series.holding_fen[-1] + ALICE_LATER == series.shares_fen
    assert series.wanfen == tuple(d.wanfen for d in w.fund.store.days())
    # A shorter window is the tail of the longer one.
    tail = holder_series(w.fund, w.run, "alice", days=3)
    assert tail.days == series.days[-3:] and tail.holding_fen == series.holding_fen[-3:]
    assert list(tail.income_fen) == statement_income(w, "alice", 3)
    # bob never traded: his holding is his subscription plus his income to date.
    bob = holder_series(w.fund, w.run, "bob")
    running = 3_000_000
    for income, holding in zip(bob.income_fen, bob.holding_fen, strict=True):
        running += income
        assert holding == running
    assert bob.holding_fen[-1] == w.fund.shares("bob") and bob.later_orders_fen == 0


def test_the_drawing_plots_exactly_the_series(fund: FundWorld) -> None:
    series = holder_series(fund.fund, fund.run, "alice")
    figure = holder_figure(series)
    try:
        top, bottom = figure.axes
        bars = [round(Decimal(str(float(p.get_height()))) * 100) for p in bottom.patches]
        assert bars == list(series.income_fen)
        (line,) = top.get_lines()
        assert [round(Decimal(str(float(y))) * 100) for y in line.get_ydata()] == list(
            series.holding_fen
        )
        assert "Formicary Money Fund" in figure.get_suptitle()
        assert "fund no. 1" in figure.get_suptitle() and "alice" in figure.get_suptitle()
        assert "holding" in top.get_ylabel() and "daily income" in bottom.get_ylabel()
        assert bottom.get_xlabel()
    finally:
        plt.close(figure)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_chart_files(fund: FundWorld, tmp_path: Path) -> None:
    series = holder_series(fund.fund, fund.run, "alice")
    png = write_holder_chart(series, tmp_path / "alice.png").read_bytes()
    width, height = png_size(png)
    assert width >= 800 and height >= 500
    assert len(png) > 20_000  # drawn, not an empty canvas
    page = write_holder_chart(series, tmp_path / "alice.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and "<table>" in page
    losing = f"<tr><td>2026-03-08</td><td>{series.income_fen[5] / 100:,.2f}</td>"
    assert losing in page and series.income_fen[5] < 0
    with pytest.raises(ValueError, match=r"\.png or \.html"):
        write_holder_chart(series, tmp_path / "alice.gif")
    # A user id with matplotlib's math markup and HTML in it is drawn and written as text.
    odd = HolderSeries(**{**_fields(series), "user_id": "$x^2$ <b>"})
    assert png_size(write_holder_chart(odd, tmp_path / "odd.png").read_bytes())[0] >= 800
    assert "&lt;b&gt;" in write_holder_chart(odd, tmp_path / "odd.html").read_text("utf-8")


def _fields(series: HolderSeries) -> dict[str, object]:
    return {name: getattr(series, name) for name in HolderSeries.__dataclass_fields__}


def test_a_holder_with_no_history_gets_a_message(fund: FundWorld, tmp_path: Path) -> None:
    # carol bought after the last posted day: no income and no holding in any of them.
    carol = holder_series(fund.fund, fund.run, "carol")
    assert carol.is_empty and carol.shares_fen == 700_000 and carol.later_orders_fen == 700_000
    with pytest.raises(NoHolderHistory, match="no holding and no income over the last 7"):
        write_holder_chart(carol, tmp_path / "carol.png")
    assert not (tmp_path / "carol.png").exists()
    with pytest.raises(UnknownHolder, match="holds nothing"):
        holder_series(fund.fund, fund.run, "nobody")


def test_a_fund_with_no_posted_day_has_nothing_to_chart(tmp_path: Path) -> None:
    with world(tmp_path, beijing(2026, 3, 2, 10, 0)) as w:
        w.fund.subscribe("dave", w.wallet(0), 100_000, "d1")
        series = holder_series(w.fund, w.run, "dave")
        assert series.days == () and series.shares_fen == 100_000
        assert series.later_orders_fen == 100_000
        with pytest.raises(NoHolderHistory, match="no income day has been posted"):
            holder_figure(series)


ROW = re.compile(
    r"(\d{4}-\d{2}-\d{2})\s*│\s*(-?[\d,]+\.\d\d)\s*│\s*(-?[\d.]+)\s*│\s*([\d,]+\.\d\d)"
)


def fen(yuan: str) -> int:
    return int(Decimal(yuan.replace(",", "")) * 100)


def test_the_statement_command_writes_the_chart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    url = f"sqlite:///{tmp_path}/ledger.db"
    with world(state, beijing(2026, 3, 2, 10, 0), database_url=url) as w:
        build(w)
        expected = holder_series(w.fund, w.run, "alice")
    common = ("--database-url", url, "--state-dir", str(state))

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["funds", "statement", *args, *common], env={"COLUMNS": "200"})
        return result.exit_code, result.output

    chart = tmp_path / "alice.png"
    code, output = invoke("--user", "alice", "--chart", str(chart))
    assert code == 0, output
    assert f"chart written to {chart}" in output
    assert chart.read_bytes().startswith(b"\x89PNG") and chart.stat().st_size > 20_000
    # The printed statement is the charted series, to the fen.
    rows = ROW.findall(output)
    assert [date.fromisoformat(r[0]) for r in rows] == list(expected.days)
    assert [fen(r[1]) for r in rows] == list(expected.income_fen)
    assert [Decimal(r[2]) for r in rows] == list(expected.wanfen)
    assert [fen(r[3]) for r in rows] == list(expected.holding_fen)
    assert "Formicary Money Fund (fund no. 1)" in output and "+1,000.00 shares" in output

    code, output = invoke("--user", "alice", "--days", "2", "--chart", f"{tmp_path}/a.html")
    assert code == 0, output
    assert len(ROW.findall(output)) == 2 and (tmp_path / "a.html").exists()

    # No history, an unknown user, a wrong file type: one readable line each, exit 1.
    for user, name, message in [
        ("carol", "carol.png", "no chart written: 'carol' has no income history"),
        ("nobody", "nobody.png", "holds nothing"),
        ("alice", "alice.gif", ".png or .html"),
    ]:
        code, output = invoke("--user", user, "--chart", f"{tmp_path}/{name}")
        assert code == 1 and message in output, output
        assert "Traceback" not in output and not (tmp_path / name).exists()


def test_reservations_count_only_when_posted(fund: FundWorld) -> None:
    """A pending debit of the holder's shares (a fund payment in flight) moves nothing until it
    is posted, and a voided one never does: the series follow the ledger's posted shares."""
    w = fund
    account, issuance = w.fund.holder_account("alice"), w.fund.issuance
    w.clock.set(beijing(2026, 3, 10, 11, 0))

    def transfer(n: int, amount: int, flags: TransferFlags, pending_id: int = 0) -> Transfer:
        return Transfer(
            id=9_000 + n,
            debit_account_id=account if not pending_id else 0,
            credit_account_id=issuance if not pending_id else 0,
            amount=amount,
            ledger=w.fund.config.share_ledger if not pending_id else 0,
            code=Code.CHECKOUT if not pending_id else 0,
            flags=flags,
            pending_id=pending_id,
        )

    results = w.ledger.create_transfers(
        [
            transfer(1, 50_000, TransferFlags.PENDING),
            transfer(2, 30_000, TransferFlags.PENDING),
            transfer(3, 40_000, TransferFlags.POST_PENDING_TRANSFER, pending_id=9_001),
            transfer(4, 0, TransferFlags.VOID_PENDING_TRANSFER, pending_id=9_002),
        ]
    )
    assert results == ["ok"] * 4
    series = holder_series(w.fund, w.run, "alice")
    assert series.shares_fen == w.fund.shares("alice")
    assert series.later_orders_fen == ALICE_LATER - 40_000
    assert series.holding_fen[-1] + series.later_orders_fen == series.shares_fen
