"""`formicary sim ...`: a thin command layer over `formicary.sim` (formicary/cli.py mounts it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from formicary.sim.config import BANKS_MAX, BANKS_MIN, DURATION_S_MAX, Double11Config
from formicary.sim.live import make_view
from formicary.sim.report import Double11Report
from formicary.sim.run import OutDirNotEmpty, prepare_out_dir, run_double11

__all__ = ["app"]

_D = Double11Config()  # the defaults, shown by --help

app = typer.Typer(
    help="Simulations that drive the real payments service and ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> typer.Exit:
    """One readable line on stderr and exit status 2 (bad input), never a traceback."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


@app.callback()
def _group() -> None:
    """Simulations that drive the real payments service and ledger."""


@app.command()
def double11(
    out_dir: Annotated[
        Path, typer.Option(help="a new or empty directory for the ledger, plots and report")
    ],
    users: Annotated[int, typer.Option(help="simulated shoppers (10..200000)")] = _D.users,
    merchants: Annotated[int, typer.Option(help="simulated shops (1..10000)")] = _D.merchants,
    banks: Annotated[
        int, typer.Option(help=f"simulated banks ({BANKS_MIN}..{BANKS_MAX})")
    ] = _D.banks,
    duration_s: Annotated[
        int,
        typer.Option(
            help="virtual seconds of arrivals, starting 60 s (or a third of the run) before"
            f" midnight (10..{DURATION_S_MAX})"
        ),
    ] = _D.duration_s,
    scale: Annotated[float, typer.Option(help="multiplies the funnel's rates")] = 1.0,
    seed: Annotated[int, typer.Option(help="seed of everything simulated")] = _D.seed,
    workers: Annotated[
        int, typer.Option(help="threads running service calls (1: fully deterministic)")
    ] = _D.workers,
    durable_payments: Annotated[
        bool,
        typer.Option(help="keep the payments tables in a durable file during the run (slower)"),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the report as one JSON object")
    ] = False,
) -> None:
    """A Double-11 night: clicks -> cashier -> payments (12:12:6) with a midnight peak,
    coupons, and 100+ simulated banks, through the real payments service and ledger."""
    try:
        config = Double11Config(
            users=users,
            merchants=merchants,
            banks=banks,
            duration_s=duration_s,
            seed=seed,
            workers=workers,
            durable_payments=durable_payments,
            funnel=msgspec.structs.replace(_D.funnel, scale=scale),
        )
        prepare_out_dir(out_dir)
    except (ValueError, OutDirNotEmpty) as error:
        raise _fail(str(error)) from None
    # The JSON goes to stdout alone; progress then goes to stderr.
    console = Console(stderr=as_json)
    view = make_view(console)
    with view:
        report = run_double11(config, out_dir, view=view)
    if as_json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
        return
    _summary(console, report, out_dir)
    if not report.conservation_ok:
        raise typer.Exit(1)


def _summary(console: Console, r: Double11Report, out_dir: Path) -> None:
    table = Table(title="Double 11: the final report", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    t = r.real_time
    rows = [
        (
            "buy clicks / cashier visits / payments",
            f"{r.clicks:,} / {r.cashier_visits:,} / {r.payments_attempted:,}",
        ),
        ("funnel (clicks : cashier : payments)", " : ".join(f"{x:g}" for x in r.funnel_ratio)),
        ("succeeded", f"{r.succeeded:,}"),
        ("throttled attempts (failed over or retried)", f"{r.throttled:,}"),
        ("failed", f"{r.failed:,} ({_reasons(r.failed_by_reason)})"),
        ("throttled by reason", _reasons(r.throttled_by_reason)),
        ("peak payments/s (virtual)", f"{r.peak_payments_per_s:,} at {r.peak_at}"),
        (
            "coupon spend / budgets (yuan)",
            f"{r.coupon_spent_fen / 100:,.2f} / {r.coupon_budget_fen / 100:,.2f}",
        ),
        (
            "bank p50 / p99 (virtual ms)",
            f"{r.latency_ms['bank_p50']:,} / {r.latency_ms['bank_p99']:,}",
        ),
        (
            "real time: setup + run + report",
            f"{t['setup_s']} + {t['run_s']} + {t.get('report_s', 0)} s",
        ),
        ("real attempts/s during the run", f"{r.real_time['attempts_per_s']:,}"),
        ("ledger conservation", "holds" if r.conservation_ok else "BROKEN"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for check in r.conservation:
        mark = "[green]ok[/green]" if check.ok else "[red]FAILED[/red]"
        console.print(f"  {mark} {check.name}: {check.detail}", highlight=False)
    console.print(f"report: {out_dir / 'report.html'}  (and report.json, *.png)")


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counts.items()) or "none"
