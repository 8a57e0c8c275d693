"""Runs the ledger benchmark scenarios with progress bars and prints a table of figures."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from formicary.bench.ledger import ScenarioResult, bench_engine, bench_store
from formicary.bench.pgtemp import temporary_database

__all__ = ["TARGETS", "run_ledger_bench"]

# Targets of the foundation issue, transfers per second on a 2-core machine.
TARGETS = {"a": 0, "b": 250_000, "c": 100_000, "d": 100_000, "e": 20_000}


@contextmanager
def _progress(console: Console, quiet: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    )
    with progress:
        yield progress


def _runner(progress: Progress, description: str, total: int) -> Callable[[int], None]:
    task = progress.add_task(description, total=total)
    return lambda done: progress.advance(task, done)


def run_ledger_bench(
    console: Console,
    *,
    transfers: int,
    http_transfers: int,
    accounts: int,
    scenarios: str,
    postgres_url: str,
    quiet: bool,
) -> dict[str, object]:
    """Run the chosen scenarios; return {"machine": ..., "scenarios": {letter: figures}}."""
    import os
    import platform

    from formicary.bench.http import bench_http_batches, bench_http_sdk

    results: list[ScenarioResult] = []
    with _progress(console, quiet) as progress, tempfile.TemporaryDirectory() as tmp:
        if "a" in scenarios:
            tick = _runner(progress, "(a) engine", transfers)
            results.append(bench_engine(transfers, accounts, tick))
        if "b" in scenarios:
            url = f"sqlite:///{Path(tmp) / 'bench-b.db'}"
            tick = _runner(progress, "(b) SQLite", transfers)
            results.append(bench_store("b", url, transfers, accounts, TARGETS["b"], tick))
        if "c" in scenarios:
            with temporary_database(postgres_url) as url:
                tick = _runner(progress, "(c) PostgreSQL", transfers)
                results.append(bench_store("c", url, transfers, accounts, TARGETS["c"], tick))
        if "d" in scenarios:
            url = f"sqlite:///{Path(tmp) / 'bench-d.db'}"
            tick = _runner(progress, "(d) HTTP batches", http_transfers)
            results.append(bench_http_batches(url, http_transfers, accounts, TARGETS["d"], tick))
        if "e" in scenarios:
            url = f"sqlite:///{Path(tmp) / 'bench-e.db'}"
            tick = _runner(progress, "(e) HTTP SDK", http_transfers)
            results.append(bench_http_sdk(url, http_transfers, accounts, TARGETS["e"], tick))

    if not quiet:
        table = Table(title=f"formicary bench ledger ({os.cpu_count()} cores)")
        for column in ("", "scenario", "transfers/s", "p50 ms", "p99 ms", "target", "ok"):
            table.add_column(column)
        for r in results:
            table.add_row(
                r.scenario,
                r.description,
                f"{r.transfers_per_s:,.0f}",
                f"{r.batch_latency_ms_p50:.2f}",
                f"{r.batch_latency_ms_p99:.2f}",
                f"{r.target_transfers_per_s:,}" if r.target_transfers_per_s else "-",
                "yes" if r.met_target else "[red]NO[/red]",
            )
        console.print(table)
        for r in results:
            if r.note:
                console.print(f"({r.scenario}) {r.note}")
            if not r.conserved or r.failed_results:
                console.print(
                    f"[red]({r.scenario}) conserved={r.conserved} "
                    f"failed_results={r.failed_results}[/red]"
                )
    return {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "accounts": accounts,
        "scenarios": {r.scenario: {f: getattr(r, f) for f in r.__struct_fields__} for r in results},
    }
