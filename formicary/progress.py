"""Progress bars for long commands: one bar per phase of a (phase, done, total) callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["PhaseProgress", "progress_bars"]

PhaseProgress = Callable[[str, int, int], None]


@contextmanager
def progress_bars(console: Console, *, disable: bool = False) -> Iterator[PhaseProgress]:
    """A callback (phase, done, total) that draws one bar per phase while the block runs."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)

        yield progress
