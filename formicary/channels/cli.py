"""`formicary channels ...`: a thin command layer over `formicary.channels.planning`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from formicary.channels.errors import InvalidPlanInput
from formicary.channels.planning import (
    BANKS_MAX,
    CapacityPlan,
    long_tail_demands,
    parse_headroom,
    plan_capacity,
    read_demands_csv,
)

__all__ = ["app"]

app = typer.Typer(
    help="Bank channels: capacity planning for the simulated (and real) banks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> typer.Exit:
    """One readable line on stderr and exit status 2 (bad input), never a traceback."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


@app.callback()
def _group() -> None:
    """Bank channels: flow control, circuit breaking and failover over simulated banks."""


@app.command()
def plan(
    peak: Annotated[int, typer.Option(help="forecast peak, payments per second")],
    banks: Annotated[
        int | None,
        typer.Option(help=f"generate this many banks (1..{BANKS_MAX}) with a long-tail share"),
    ] = None,
    shares: Annotated[
        Path | None,
        typer.Option(
            help="CSV with a header: bank,share,capacity_tps or bank,estimate_tps,capacity_tps",
            dir_okay=False,
        ),
    ] = None,
    headroom: Annotated[str, typer.Option(help="capacity factor over the peak")] = "1.5",
    seed: Annotated[int, typer.Option(help="seed of the generated banks (--banks)")] = 11,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The tx/s each bank must hold at the peak, against what it declares."""
    try:
        if (banks is None) == (shares is None):
            raise InvalidPlanInput("give exactly one of --banks N or --shares FILE.csv")
        if banks is not None:
            demands = long_tail_demands(banks, peak_tps=peak, seed=seed)
        else:
            assert shares is not None
            demands = read_demands_csv(shares)
        result = plan_capacity(peak, demands, parse_headroom(headroom))
    except InvalidPlanInput as error:
        raise _fail(str(error)) from None
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    console = Console()
    console.print(_table(result))
    console.print(_summary(result))


def _table(result: CapacityPlan) -> Table:
    table = Table(title=f"Capacity at a peak of {result.peak_tps:,} payments/s")
    table.add_column("bank")
    table.add_column("share", justify="right")
    table.add_column("required tx/s", justify="right")
    table.add_column("declared tx/s", justify="right")
    table.add_column("shortfall", justify="right")
    table.add_column("status")
    for bank in result.banks:
        table.add_row(
            bank.name,
            f"{float(bank.share):.2%}",
            f"{bank.required_tps:,}",
            f"{bank.declared_tps:,}",
            f"{bank.shortfall_tps:,}" if bank.shortfall_tps else "",
            "[green]OK[/green]" if bank.ok else "[red]SHORT[/red]",
        )
    return table


def _summary(result: CapacityPlan) -> str:
    head = (
        f"{len(result.banks)} banks: peak {result.peak_tps:,}/s x headroom "
        f"{float(result.headroom):g} needs {result.required_tps_total:,} tx/s; "
        f"declared {result.declared_tps_total:,} tx/s. "
    )
    if not result.short:
        return head + "[green]Every bank holds its share.[/green]"
    return head + (
        f"[red]{len(result.short)} banks short by {result.shortfall_tps_total:,} tx/s in "
        f"total[/red] (largest: {max(result.short, key=lambda b: b.shortfall_tps).name})."
    )
