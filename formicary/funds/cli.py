"""`formicary funds ...`: post a day's income, chart the yields, print a statement, simulate."""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from formicary.progress import progress_bars

__all__ = ["app"]

app = typer.Typer(
    help="The money-market fund: daily income, yields, statements.", no_args_is_help=True
)
console = Console()

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="the ledger: sqlite:///path.db (default) or postgresql://...;"
        " env FORMICARY_DATABASE_URL",
        show_default=False,
    ),
]
StateDir = Annotated[
    Path, typer.Option("--state-dir", help="the fund's own files (holders, published days, plans)")
]
DEFAULT_STATE_DIR = Path("formicary-funds")


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/red]")
    return typer.Exit(1)


@contextmanager
def _open_fund(database_url: str | None, state_dir: Path):  # type: ignore[no-untyped-def]
    from formicary.funds.daily import DailyRun
    from formicary.funds.fund import MoneyMarketFund
    from formicary.funds.store import FundStore
    from formicary.ledger import DEFAULT_DATABASE_URL, LedgerService, open_store

    url = database_url or os.environ.get("FORMICARY_DATABASE_URL") or DEFAULT_DATABASE_URL
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        ledger = LedgerService(open_store(url))
        ledger.start()
    except Exception as error:  # the CLI boundary: one readable line
        raise _fail(f"cannot open the ledger {url}: {error}") from error
    store = FundStore(state_dir / "fund.db")
    try:
        fund = MoneyMarketFund(ledger, store)
        fund.start()
        yield fund, DailyRun(fund, state_dir / "plans")
    finally:
        store.close()
        ledger.close()


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise _fail(f"not a date (YYYY-MM-DD): {text!r}") from error


@app.command("post-income")
def post_income(
    day: Annotated[str, typer.Option("--date", help="the calendar day the income belongs to")],
    income_fen: Annotated[
        int | None,
        typer.Option(help="the day's realised income in fen (default: the SHIBOR model, 2013-14)"),
    ] = None,
    database_url: DatabaseUrl = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Post one day's income to every holder (idempotent; resumes a run that was cut short)."""
    from formicary.funds.fund import FundError
    from formicary.funds.rates import RateUnavailable, daily_income_fen, load_shibor

    when = _parse_day(day)
    with _open_fund(database_url, state_dir) as (fund, run):
        if income_fen is None:
            assets = fund.reconcile()["custody_cash_fen"]
            try:
                income_fen = daily_income_fen(assets, when, load_shibor())
            except (RateUnavailable, ValueError) as error:
                raise _fail(f"no modelled income for {when}: {error}; pass --income-fen") from error
        with progress_bars(console) as progress:
            try:
                record = run.run(when, income_fen, progress)
            except FundError as error:
                raise _fail(str(error)) from error
        books = fund.reconcile()
    console.print(
        f"{record.day}: income {record.income_fen / 100:,.2f} yuan over"
        f" {record.earning_shares / 100:,.2f} earning shares; 万份收益 {record.wanfen} yuan;"
        f" 7-day yield {record.yield_7d if record.yield_7d is not None else '-'}%;"
        f" {record.paid_holders:,} holders paid; rounding account {record.remainder_fen} fen"
    )
    console.print(
        f"books: custody {books['custody_cash_fen']:,} fen = shares outstanding"
        f" {books['shares_outstanding']:,}"
        + (" [green]balanced[/green]" if books["difference_fen"] == 0 else " [red]OFF[/red]")
    )


@app.command()
def yields(
    out: Annotated[Path | None, typer.Option(help="write a chart: .png or .html")] = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Print the published 万份收益 and 7-day yields; optionally chart them."""
    from formicary.funds.report import write_yield_chart
    from formicary.funds.store import FundStore

    store = FundStore(state_dir / "fund.db")
    try:
        days = [d for d in store.days() if d.status == "posted"]
    finally:
        store.close()
    if not days:
        raise _fail(f"no day posted yet in {state_dir}")
    console.print(_days_table(days[-30:]))
    if out is not None:
        try:
            write_yield_chart(days, out, "Formicary Money Fund")
        except ValueError as error:
            raise _fail(str(error)) from error
        console.print(f"chart written to {out}")


@app.command()
def statement(
    user: Annotated[str, typer.Option(help="the user id")],
    days: Annotated[int, typer.Option(min=1, help="how many recent posted days")] = 30,
    chart: Annotated[
        Path | None,
        typer.Option(
            help="also write the holder's chart (daily income and holding): .png or .html"
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """A holder's shares, daily income and holding; optionally charted."""
    from formicary.funds.fund import UnknownHolder
    from formicary.funds.report import CHART_SUFFIXES, holder_series, write_holder_chart

    if chart is not None and chart.suffix not in CHART_SUFFIXES:
        raise _fail(f"chart file must end in .png or .html, not {chart.suffix or 'nothing'}")
    with _open_fund(database_url, state_dir) as (fund, run):
        try:
            series = holder_series(fund, run, user, days)
        except UnknownHolder as error:
            raise _fail(str(error)) from error
    table = Table(
        title=f"{series.fund_name} (fund no. {series.fund_no}), {user}:"
        f" {series.shares_fen / 100:,.2f} shares (yuan at NAV 1.00)"
    )
    table.add_column("day")
    table.add_column("income (yuan)", justify="right")
    table.add_column("万份收益", justify="right")
    table.add_column("holding (yuan)", justify="right")
    for day, amount, wanfen, holding in zip(
        series.days, series.income_fen, series.wanfen, series.holding_fen, strict=True
    ):
        table.add_row(str(day), f"{amount / 100:,.2f}", str(wanfen), f"{holding / 100:,.2f}")
    if series.days:
        console.print(table)
        console.print(f"total over these days: {series.total_income_fen / 100:,.2f} yuan")
    else:
        console.print(f"{user}: {series.shares_fen / 100:,.2f} shares; no income day posted yet")
    if series.later_orders_fen:
        console.print(
            f"orders after {series.days[-1] if series.days else 'the last posted day'}:"
            f" {series.later_orders_fen / 100:+,.2f} shares"
        )
    if chart is not None:
        try:
            write_holder_chart(series, chart)
        except ValueError as error:  # NoHolderHistory: nothing to chart
            raise _fail(f"no chart written: {error}") from error
        console.print(f"chart written to {chart}")


@app.command("simulate")
def simulate_command(
    out_dir: Annotated[Path, typer.Option(help="a new directory for the run's files")] = Path(
        "fund-simulation"
    ),
    holders: Annotated[int, typer.Option(help="holders")] = 2_000,
    days: Annotated[int, typer.Option(help="calendar days")] = 30,
    start: Annotated[
        str, typer.Option(help="first day (SHIBOR data: 2013-07-01 .. 2014-08-29)")
    ] = "2013-12-02",
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
) -> None:
    """Simulate the fund for N days on real 2013-14 interbank rates; chart the yields."""
    from formicary.funds.fund import FundError
    from formicary.funds.rates import RateUnavailable
    from formicary.funds.report import write_yield_chart
    from formicary.funds.simulate import simulate

    first = _parse_day(start)
    with Progress(
        TextColumn("[bold]days posted"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("days", total=days)
        try:
            result = simulate(
                out_dir,
                holders=holders,
                days=days,
                start=first,
                seed=seed,
                progress=lambda n, record: bar.update(
                    task, completed=(record.day - first).days + 1
                ),
            )
        except (ValueError, FundError, RateUnavailable) as error:
            raise _fail(str(error)) from error
    if not result.days:
        raise _fail("no day earned income: simulate more days")
    console.print(_days_table(result.days))
    png = write_yield_chart(result.days, out_dir / "yields.png", "Formicary Money Fund (simulated)")
    html = write_yield_chart(
        result.days, out_dir / "yields.html", "Formicary Money Fund (simulated)"
    )
    console.print(f"orders: {result.orders}")
    books = result.books
    console.print(
        f"books: custody {books['custody_cash_fen']:,} fen = shares outstanding"
        f" {books['shares_outstanding']:,}"
        + (" [green]balanced[/green]" if books["difference_fen"] == 0 else " [red]OFF[/red]")
    )
    console.print(f"charts: {png}, {html}")


def _days_table(days: list) -> Table:  # type: ignore[type-arg]
    table = Table(title="published figures")
    for name in ("day", "income (yuan)", "万份收益", "7-day yield %", "holders paid"):
        table.add_column(name, justify="right")
    for d in days:
        table.add_row(
            str(d.day),
            f"{d.income_fen / 100:,.2f}",
            str(d.wanfen),
            "-" if d.yield_7d is None else str(d.yield_7d),
            f"{d.paid_holders:,}",
        )
    return table
