"""Progress of a run: a rich Live panel refreshed every virtual second on a terminal, or plain
lines every few virtual seconds when the output is not a TTY (CI logs stay readable)."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from formicary.sim.double11 import SecondView

__all__ = ["PlainView", "RichView", "make_view"]

PLAIN_EVERY_S = 10


class RichView:
    """A live panel: this second's funnel, latency, the busiest banks, open breakers."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live = Live(console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> RichView:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def wants(self, second_index: int) -> bool:
        return True

    def note(self, message: str) -> None:
        self.console.print(f"[dim]{message}[/dim]")

    def second(self, v: SecondView) -> None:
        self._live.update(_panel(v), refresh=True)


def _panel(v: SecondView) -> Panel:
    t = v.totals
    now = Table.grid(padding=(0, 2))
    for _ in range(4):
        now.add_column(justify="right")
    now.add_row("clicks/s", f"{v.clicks:,}", "total clicks", f"{t['clicks']:,}")
    now.add_row("cashier/s", f"{v.cashier:,}", "total cashier", f"{t['cashier']:,}")
    now.add_row("payments/s", f"[bold]{v.succeeded:,}[/bold]", "succeeded", f"{t['succeeded']:,}")
    now.add_row("throttled/s", f"{v.throttled:,}", "throttled", f"{t['throttled']:,}")
    now.add_row("failed/s", f"{v.failed:,}", "failed", f"{t['failed']:,}")
    now.add_row(
        "bank p50/p99",
        f"{v.bank_p50_ms:,.0f}/{v.bank_p99_ms:,.0f} ms",
        "service p50/p99",
        f"{v.service_p50_ms:,.1f}/{v.service_p99_ms:,.1f} ms",
    )
    banks = Table(title="busiest banks this second", expand=False, show_edge=False)
    for name in ("bank", "offered", "refused", "limit/s"):
        banks.add_column(name, justify="right")
    for code, offered, refused, capacity in v.top_banks:
        banks.add_row(code, f"{offered:,}", f"{refused:,}", f"{capacity:,}")
    breakers = ", ".join(v.breakers_open[:12]) or "none"
    if len(v.breakers_open) > 12:
        breakers += f" (+{len(v.breakers_open) - 12})"
    footer = Table.grid(padding=(0, 1))
    footer.add_row(
        ProgressBar(total=1.0, completed=v.done_fraction, width=40),
        f"[dim]{v.done_fraction:4.0%} of the arrivals, real {v.wall_s:,.1f} s[/dim]",
    )
    return Panel(
        Group(
            now,
            banks,
            f"breakers not closed: {breakers}",
            footer,
        ),
        title=f"Double 11 — {v.clock} Beijing (t{v.tau_s:+d} s, virtual)",
    )


class PlainView:
    """One line every `every_s` virtual seconds (and notes), for logs."""

    def __init__(self, stream: TextIO, every_s: int = PLAIN_EVERY_S) -> None:
        assert every_s > 0
        self.stream = stream
        self.every_s = every_s

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.flush()

    def wants(self, second_index: int) -> bool:
        return second_index % self.every_s == self.every_s - 1

    def note(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def second(self, v: SecondView) -> None:
        t = v.totals
        print(
            f"{v.clock} t{v.tau_s:+d}s payments/s={v.succeeded} clicks/s={v.clicks}"
            f" throttled/s={v.throttled} failed/s={v.failed}"
            f" bank_p50/p99={v.bank_p50_ms:.0f}/{v.bank_p99_ms:.0f}ms"
            f" succeeded={t['succeeded']} throttled={t['throttled']} failed={t['failed']}"
            f" breakers_open={len(v.breakers_open)} real={v.wall_s:.1f}s",
            file=self.stream,
            flush=True,
        )


def make_view(console: Console) -> RichView | PlainView:
    """Rich on a terminal, plain lines otherwise."""
    if console.is_terminal:
        return RichView(console)
    return PlainView(console.file)
