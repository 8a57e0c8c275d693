"""`formicary wealth ...`: the fixed-term marketplace's commands (a thin layer over the library)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app"]

app = typer.Typer(
    help="The fixed-term product marketplace: issuers, products, reservations.",
    no_args_is_help=True,
)
console = Console()


@app.callback()
def _group() -> None:
    """The fixed-term product marketplace (a group even with one command: `wealth simulate`)."""


@app.command("simulate")
def simulate_command(
    out_dir: Annotated[
        Path | None,
        typer.Option(help="a new (or empty) directory for the run's files; default: a temp dir"),
    ] = None,
    users: Annotated[int, typer.Option(help="users (4..1000)")] = 40,
    threads: Annotated[int, typer.Option(help="threads of concurrent buyers (1..32)")] = 4,
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
) -> None:
    """Run a small marketplace from listing to maturity and print what happened."""
    from formicary.wealth.errors import WealthError
    from formicary.wealth.simulate import simulate
    from formicary.wealth.terms import yield_percent

    directory = out_dir or Path(tempfile.mkdtemp(prefix="formicary-wealth-"))
    try:
        result = simulate(
            directory,
            users=users,
            threads=threads,
            seed=seed,
            say=lambda line: console.print(f"• {line}", highlight=False),
        )
    except (ValueError, WealthError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error

    table = Table(title="products")
    for name in ("product", "issuer", "term", "yield %", "size (yuan)", "raised (yuan)", "status"):
        table.add_column(name, justify="right")
    for p in result.products:
        t = p.terms
        table.add_row(
            p.product_id,
            t.issuer_id,
            f"{t.term_days} d",
            str(yield_percent(t.yield_bp)),
            f"{t.size_fen / 100:,.2f}",
            "-" if p.raised_fen is None else f"{p.raised_fen / 100:,.2f}",
            p.status,
        )
    console.print(table)
    console.print(
        "notifications: "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(result.notifications.items()))
    )
    for ledger, (dpo, cpo, dp, cp) in sorted(result.trial_balances.items()):
        state = "[green]balanced[/green]" if (dpo, dp) == (cpo, cp) else "[red]OFF[/red]"
        console.print(f"ledger {ledger}: debits {dpo:,} = credits {cpo:,} (pending {dp}) {state}")
    books = result.fund_books
    console.print(
        f"fund: custody {books['custody_cash_fen']:,} fen = shares outstanding"
        f" {books['shares_outstanding']:,}"
        + (" [green]balanced[/green]" if books["difference_fen"] == 0 else " [red]OFF[/red]")
    )
    console.print(f"files: {directory}")
    if not result.balanced:
        raise typer.Exit(1)
