"""The `formicary` command: a thin layer over the library (serve, demo, bench)."""

from __future__ import annotations

import json
import logging
import os
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from formicary.channels.cli import app as channels_app
from formicary.funds.cli import app as funds_app
from formicary.ledger.store import DEFAULT_DATABASE_URL
from formicary.logs import configure_logging
from formicary.payments_cli import app as payments_app
from formicary.progress import progress_bars
from formicary.sim.cli import app as sim_app
from formicary.wealth.cli import app as wealth_app

__all__ = ["app"]

app = typer.Typer(
    help="Formicary: an internet-finance platform on one double-entry ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that print their figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(funds_app, name="funds")
app.add_typer(channels_app, name="channels")
app.add_typer(wealth_app, name="wealth")
app.add_typer(sim_app, name="sim")
app.add_typer(payments_app, name="payments")

console = Console()

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///path.db (default) or postgresql://...; env FORMICARY_DATABASE_URL",
        show_default=False,
    ),
]


class LogFormat(StrEnum):
    json = "json"
    text = "text"


def resolve_database_url(database_url: str | None) -> str:
    return database_url or os.environ.get("FORMICARY_DATABASE_URL") or DEFAULT_DATABASE_URL


def _check_store(url: str) -> None:
    """Open and migrate the store once before serving, so that a bad URL, an unreachable server
    or an unwritable path is one clear line instead of a failed application startup."""
    from formicary.ledger.store import open_store

    try:
        store = open_store(url)
        try:
            store.migrate()
        finally:
            store.close()
    except Exception as error:  # the CLI boundary: any cause becomes one readable line
        console.print(f"[red]cannot open the ledger store {url}:[/red] {error}")
        raise typer.Exit(2) from error


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    database_url: DatabaseUrl = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    log_format: Annotated[
        LogFormat, typer.Option(help="json: one object per line; text: for a terminal")
    ] = LogFormat.json,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from formicary.api import create_app
    from formicary.ledger.store import StoreError

    url = resolve_database_url(database_url)
    _check_store(url)
    try:
        application = create_app(database_url=url)
    except StoreError as error:
        console.print(f"[red]cannot open the ledger store:[/red] {error}")
        raise typer.Exit(2) from error
    configure_logging(log_level, log_format.value)
    logging.getLogger("formicary").info(
        "serving", extra={"url": f"http://{host}:{port}", "store": url, "docs": "/docs"}
    )
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # keep the handlers configure_logging installed
        access_log=False,  # one log line per request would cost more than the request
        loop="uvloop",
        http="httptools",
    )


@app.command()
def demo(
    database_url: DatabaseUrl = None,
    users: Annotated[int, typer.Option(help="user wallets to open")] = 2_000,
    merchants: Annotated[int, typer.Option(help="merchant wallets to open")] = 50,
    payments: Annotated[int, typer.Option(help="payments in the burst")] = 100_000,
) -> None:
    """Start the service, open accounts, run a burst of payments, check the books."""
    from formicary.demo import run_demo

    ok = run_demo(console, database_url, users=users, merchants=merchants, payments=payments)
    if not ok:
        raise typer.Exit(1)


@bench_app.command("ledger")
def bench_ledger(
    transfers: Annotated[int, typer.Option(help="payments per scenario (a-c)")] = 1_000_000,
    http_transfers: Annotated[
        int, typer.Option(help="payments per HTTP scenario (d, e)")
    ] = 300_000,
    accounts: Annotated[int, typer.Option(help="wallets")] = 10_000,
    scenarios: Annotated[str, typer.Option(help="which scenarios, e.g. abde")] = "abcde",
    postgres_url: Annotated[
        str, typer.Option(help="server for (c): a fresh database is created there and dropped")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Transfers/s and batch latency p50/p99: (a) engine, (b) SQLite, (c) PostgreSQL,
    (d) HTTP batches of 1,000, (e) HTTP single transfers from 64 SDK callers."""
    from formicary.bench.pgtemp import PostgresUnavailable
    from formicary.bench.run import run_ledger_bench

    try:
        results = run_ledger_bench(
            console,
            transfers=transfers,
            http_transfers=http_transfers,
            accounts=accounts,
            scenarios=scenarios,
            postgres_url=postgres_url,
            quiet=as_json,
        )
    except PostgresUnavailable as error:
        console.print(f"[red]{error}[/red]; skip (c) with --scenarios abde")
        raise typer.Exit(2) from error
    if as_json:
        print(json.dumps(results))


@bench_app.command("funds")
def bench_funds(
    holders: Annotated[int, typer.Option(help="fund holders paid in the daily run")] = 10_000_000,
    orders: Annotated[
        int, typer.Option(help="subscriptions, then redemptions, to time (32 threads)")
    ] = 20_000,
    workdir: Annotated[
        str | None, typer.Option(help="where the temporary ledger goes (default: the system's)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The fund's daily income for N holders end to end into the durable ledger (target:
    10M in <= 40 s, peak memory <= 8 GiB), and subscriptions/redemptions per second."""
    from formicary.bench.funds import run_funds_bench

    if holders < 1 or orders < 0:
        console.print("[red]--holders must be at least 1 and --orders not negative[/red]")
        raise typer.Exit(2)
    with progress_bars(console, disable=as_json) as progress:
        results = run_funds_bench(
            holders=holders, orders=orders, progress=progress, workdir=workdir
        )
    _print_figures(results, f"bench funds: {holders:,} holders", as_json)


@bench_app.command("payments")
def bench_payments(
    payments: Annotated[int, typer.Option(help="three-leg payments per scenario")] = 1_000_000,
    users: Annotated[int, typer.Option(help="paying users (wallets)")] = 10_000,
    merchants: Annotated[int, typer.Option(help="merchants paid")] = 500,
    batch_items: Annotated[int, typer.Option(help="payments per batch call (a)")] = 20_000,
    http_payments: Annotated[int, typer.Option(help="payments over HTTP (b)")] = 300_000,
    http_users: Annotated[int, typer.Option(help="users set up over HTTP (b)")] = 1_000,
    http_batch_items: Annotated[int, typer.Option(help="payments per request (b)")] = 2_000,
    scenarios: Annotated[str, typer.Option(help="a: in process; b: over HTTP")] = "ab",
    workdir: Annotated[
        str | None, typer.Option(help="where the temporary files go (default: the system's)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Three-leg payments per second, durable on SQLite: (a) in process through the payments
    batch interface (target 85,900/s), (b) over HTTP in batched requests (target 30,000/s)."""
    from formicary.bench.payments import run_payments_bench, run_payments_http_bench
    from formicary.payments.batch import BATCH_ITEMS_MAX

    sizes = (payments, users, merchants, http_payments, http_users)
    batches_ok = all(0 < b <= BATCH_ITEMS_MAX for b in (batch_items, http_batch_items))
    if min(sizes) < 1 or not batches_ok or not set(scenarios) <= {"a", "b"} or not scenarios:
        console.print(
            "[red]sizes must be at least 1, --batch-items and --http-batch-items 1 to"
            f" {BATCH_ITEMS_MAX:,}, and --scenarios letters among a and b[/red]"
        )
        raise typer.Exit(2)
    results: dict[str, object] = {}
    with progress_bars(console, disable=as_json) as progress:
        if "a" in scenarios:
            results["a"] = run_payments_bench(
                payments=payments,
                users=users,
                merchants=merchants,
                batch_items=batch_items,
                progress=progress,
                workdir=workdir,
            )
        if "b" in scenarios:
            results["b"] = run_payments_http_bench(
                payments=http_payments,
                users=http_users,
                merchants=merchants,
                batch_items=http_batch_items,
                progress=progress,
                workdir=workdir,
            )
    if as_json:
        print(json.dumps({"scenarios": results}))
        return
    for letter, figures in results.items():
        assert isinstance(figures, dict)
        _print_figures(figures, f"bench payments ({letter})", False)


def _print_figures(results: dict[str, object], title: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(results))
        return
    table = Table(title=f"{title} (2 cores, SQLite durable)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in results.items():
        if key != "machine":
            shown = (
                f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
            )
            table.add_row(key, str(shown))
    console.print(table)


if __name__ == "__main__":
    app()
