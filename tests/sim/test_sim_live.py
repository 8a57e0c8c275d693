"""The progress views: a rich panel on a terminal, plain lines otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from formicary.sim import SecondView
from formicary.sim.live import PlainView, RichView, make_view

VIEW = SecondView(
    clock="00:00:03",
    tau_s=3,
    clicks=600,
    cashier=590,
    pay_intents=300,
    succeeded=280,
    throttled=40,
    failed=2,
    bank_p50_ms=90.0,
    bank_p99_ms=1_200.0,
    service_p50_ms=8.0,
    service_p99_ms=30.0,
    totals={"clicks": 9_000, "cashier": 8_900, "succeeded": 4_000, "throttled": 300, "failed": 9},
    top_banks=[("B001", 120, 30, 100)],
    breakers_open=["B017:open"],
    wall_s=4.2,
    done_fraction=0.4,
)


def test_not_a_terminal_gets_plain_lines_every_ten_virtual_seconds() -> None:
    out = io.StringIO()
    view = make_view(Console(file=out))
    assert isinstance(view, PlainView)
    assert [s for s in range(30) if view.wants(s)] == [9, 19, 29]
    view.second(VIEW)
    line = out.getvalue()
    assert line.count("\n") == 1 and "payments/s=280" in line and "throttled/s=40" in line


def test_a_terminal_gets_a_live_panel() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    view = make_view(console)
    assert isinstance(view, RichView)
    with view:
        view.second(VIEW)
    text = out.getvalue()
    assert "Double 11" in text and "00:00:03" in text and "B001" in text and "B017:open" in text
