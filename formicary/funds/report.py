"""Charts of a fund's published figures: 万份收益 and the 7-day annualised yield, PNG or HTML."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt

from formicary.funds.store import DayRecord

__all__ = ["write_yield_chart"]


def _figure_png(days: list[DayRecord], title: str) -> bytes:
    dates = [d.day for d in days]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.plot(dates, [float(d.wanfen) for d in days], color="#1f77b4", marker=".")
    top.set_ylabel("万份收益 (yuan)" if _has_cjk_font() else "income per 10k shares (yuan)")
    top.grid(alpha=0.3)
    published = [(d.day, float(d.yield_7d)) for d in days if d.yield_7d is not None]
    if published:
        bottom.plot(*zip(*published, strict=True), color="#d62728", marker=".")
    bottom.set_ylabel("7-day annualised yield (%)")
    bottom.grid(alpha=0.3)
    fig.suptitle(title)
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _has_cjk_font() -> bool:
    """Whether matplotlib can draw the Chinese label (else an English one, never tofu boxes)."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    return any("CJK" in n or "Hei" in n or "Song" in n for n in names)


def write_yield_chart(days: list[DayRecord], path: str | Path, title: str) -> Path:
    """Write the chart to `path`: .png, or .html (the chart plus a table of every day)."""
    path = Path(path)
    if not days:
        raise ValueError("no posted days to chart yet")
    if path.suffix not in (".png", ".html"):
        raise ValueError(f"chart file must end in .png or .html, not {path.suffix or 'nothing'}")
    png = _figure_png(days, title)
    if path.suffix == ".png":
        path.write_bytes(png)
        return path
    rows = "\n".join(
        f"<tr><td>{d.day}</td><td>{d.income_fen / 100:,.2f}</td><td>{d.earning_shares / 100:,.2f}"
        f"</td><td>{d.wanfen}</td><td>{'' if d.yield_7d is None else d.yield_7d}</td>"
        f"<td>{d.paid_holders:,}</td></tr>"
        for d in days
    )
    image = base64.b64encode(png).decode()
    path.write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f4f4f4}}</style></head>
<body><h1>{html.escape(title)}</h1>
<img alt="万份收益 and 7-day annualised yield" src="data:image/png;base64,{image}">
<table><tr><th>day</th><th>income (yuan)</th><th>earning shares</th><th>万份收益 (yuan)</th>
<th>7-day yield (%)</th><th>holders paid</th></tr>
{rows}
</table></body></html>
""",
        encoding="utf-8",
    )
    return path
