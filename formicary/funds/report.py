"""Charts of a fund, PNG or HTML: its published figures (万份收益 and the 7-day annualised
yield), and one holder's statement (daily income and holding over time).

Money stays int fen in every series; floats appear only in the plotting calls.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from formicary.funds.ledger_ids import Code
from formicary.funds.store import DayRecord
from formicary.ledger import TransferFlags

if TYPE_CHECKING:
    from formicary.funds.daily import DailyRun
    from formicary.funds.fund import MoneyMarketFund

__all__ = [
    "HolderSeries",
    "NoHolderHistory",
    "holder_figure",
    "holder_series",
    "write_holder_chart",
    "write_yield_chart",
]

CHART_SUFFIXES = (".png", ".html")


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
    _check_suffix(path)
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


def _check_suffix(path: Path) -> None:
    if path.suffix not in CHART_SUFFIXES:
        raise ValueError(f"chart file must end in .png or .html, not {path.suffix or 'nothing'}")


# ===================================================================== one holder

_NS_PER_DAY = 86_400 * 10**9
_BEIJING_OFFSET_NS = 8 * 3600 * 10**9  # UTC+8, no daylight saving
_EPOCH = date(1970, 1, 1)
_NOT_POSTED = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING_TRANSFER)
# Ledger rows of the holder's account read per page (orders are few per holder and day).
_ORDER_PAGE = 10_000


class NoHolderHistory(ValueError):
    """The holder has nothing to chart: no posted day, or no income and no holding in it."""


@dataclass(frozen=True, slots=True)
class HolderSeries:
    """One holder's statement over consecutive posted days, oldest first, in int fen.

    `income_fen[i]` is the holder's income on `days[i]`, read from that day's plan file (the
    figure the statement prints). `holding_fen[i]` is the holder's shares (fen-shares, worth as
    many fen at NAV 1.00) at the end of `days[i]` (Beijing time), with the income of that day
    and every earlier one included. `holding_fen[-1] + later_orders_fen == shares_fen`.
    """

    fund_no: int
    fund_name: str
    user_id: str
    shares_fen: int  # the holder's shares now, from the ledger
    later_orders_fen: int  # net shares bought (+) or sold (-) after the last day
    days: tuple[date, ...]
    income_fen: tuple[int, ...]
    wanfen: tuple[Decimal, ...]
    holding_fen: tuple[int, ...]

    @property
    def total_income_fen(self) -> int:
        return sum(self.income_fen)

    @property
    def is_empty(self) -> bool:
        """No posted day, or a holder who neither earned nor held anything in these days."""
        return not any(self.income_fen) and not any(self.holding_fen)


def _beijing_day_numbers(timestamps_ns: Sequence[int]) -> np.ndarray:  # type: ignore[type-arg]
    """Days since 1970-01-01 of the Beijing calendar day of each ledger timestamp (exact)."""
    ns = np.asarray(timestamps_ns, dtype=np.int64)
    return (ns + _BEIJING_OFFSET_NS) // _NS_PER_DAY


def _beijing_day_start_ns(day: date) -> int:
    return (day - _EPOCH).days * _NS_PER_DAY - _BEIJING_OFFSET_NS


def _order_flows(
    fund: MoneyMarketFund, account_id: int, since_ns: int
) -> tuple[list[int], list[int]]:
    """(timestamps, signed shares) of every order that moved the holder's shares since
    `since_ns`: subscriptions, redemptions, checkout payments and their refunds. Income legs
    are left out (they come from the plans), and so are reservations that moved nothing."""
    stamps: list[int] = []
    amounts: list[int] = []
    while True:
        page = fund.ledger.account_transfers(account_id, timestamp_min=since_ns, limit=_ORDER_PAGE)
        for t in page:
            if t.code == Code.INCOME or t.flags & _NOT_POSTED:
                continue
            stamps.append(t.timestamp)
            amounts.append(t.amount if t.credit_account_id == account_id else -t.amount)
        if len(page) < _ORDER_PAGE:
            return stamps, amounts
        since_ns = page[-1].timestamp + 1


def holder_series(
    fund: MoneyMarketFund, run: DailyRun, user_id: str, days: int = 30
) -> HolderSeries:
    """The holder's income and holding on each of the last `days` posted days.

    Cost: one memory-mapped read of one int64 per day's plan (`DailyRun.holder_income`, the
    statement's own source), one ledger lookup, and the holder's own orders since the first
    day; nothing is read per other holder, so a fund of millions is as fast as one of ten.
    Raises `UnknownHolder` for a user who never held shares of the fund.

    The holding is counted back from the shares in the ledger now: take away the orders placed
    after each day and the income of the posted days after it. The figures assume no daily run
    is half-way (a day `planned` but not yet `posted`).
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    account = fund.holder_account(user_id)
    shares = fund.shares(user_id)
    posted = [d for d in fund.store.days() if d.status == "posted"][-days:]
    income_lines = run.holder_income(account - fund.holder_base, posted)
    income = np.fromiter((amount for _, amount in income_lines), dtype=np.int64, count=len(posted))
    if posted:
        stamps, amounts = _order_flows(
            fund, account, _beijing_day_start_ns(posted[0].day + timedelta(days=1))
        )
    else:
        stamps, amounts = _order_flows(fund, account, 0)
    flows = np.asarray(amounts, dtype=np.int64)
    order = np.argsort(_beijing_day_numbers(stamps), kind="stable")
    flow_days, flows = _beijing_day_numbers(stamps)[order], flows[order]
    # Suffix sums: orders placed after day i, and income of the posted days after day i.
    flows_after_from = np.concatenate((np.cumsum(flows[::-1])[::-1], np.zeros(1, np.int64)))
    day_numbers = np.asarray([(d.day - _EPOCH).days for d in posted], dtype=np.int64)
    first_later = np.searchsorted(flow_days, day_numbers, side="right")
    income_after = np.concatenate((np.cumsum(income[::-1])[::-1][1:], np.zeros(1, np.int64)))
    holding = shares - flows_after_from[first_later] - income_after[: len(posted)]
    later = (
        int(flows_after_from[np.searchsorted(flow_days, day_numbers[-1], "right")])
        if posted
        else int(flows.sum())
    )
    return HolderSeries(
        fund_no=fund.config.fund_no,
        fund_name=fund.config.name,
        user_id=user_id,
        shares_fen=shares,
        later_orders_fen=later,
        days=tuple(d.day for d in posted),
        income_fen=tuple(int(a) for a in income),
        wanfen=tuple(d.wanfen for d in posted),
        holding_fen=tuple(int(h) for h in holding),
    )


def _yuan_axis(value: float, _position: object) -> str:
    return f"{value:,.2f}"


def holder_title(series: HolderSeries) -> str:
    return f"{series.fund_name} (fund no. {series.fund_no}): holder {series.user_id}"


def holder_figure(series: HolderSeries) -> Figure:
    """The holder's chart: holding over time (line, top) and daily income (bars, bottom), in
    yuan. The caller closes the figure (`plt.close`)."""
    if series.is_empty:
        raise NoHolderHistory(
            f"{series.user_id!r} has no income history in fund {series.fund_no} yet"
            + (
                ": no income day has been posted"
                if not series.days
                else f": no holding and no income over the last {len(series.days)} posted days"
            )
        )
    dates = list(series.days)
    many = len(dates) > 62
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    # Floats from here on: plotting only.
    holding = np.asarray(series.holding_fen, dtype=np.int64) / 100
    income = np.asarray(series.income_fen, dtype=np.int64) / 100
    top.plot(
        dates,
        holding,
        color="#1f77b4",
        marker=None if many else ".",
        drawstyle="steps-post" if many else "default",
    )
    top.set_ylabel("holding (yuan, NAV 1.00)")
    top.grid(alpha=0.3)
    colors = np.where(np.asarray(series.income_fen) < 0, "#d62728", "#2ca02c")
    bottom.bar(dates, income, width=0.8, color=colors)
    bottom.axhline(0, color="#444444", linewidth=0.6)
    bottom.set_ylabel("daily income (yuan)")
    bottom.set_xlabel("day (Beijing)")
    bottom.grid(axis="y", alpha=0.3)
    for axes in (top, bottom):
        axes.yaxis.set_major_formatter(FuncFormatter(_yuan_axis))
    fig.suptitle(holder_title(series), parse_math=False, fontweight="bold")
    top.set_title(
        f"{dates[0]} to {dates[-1]} ({len(dates)} posted days): income"
        f" {series.total_income_fen / 100:,.2f} yuan; holding now {series.shares_fen / 100:,.2f}"
        " yuan",
        fontsize=10,
    )
    fig.autofmt_xdate()
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def write_holder_chart(series: HolderSeries, path: str | Path) -> Path:
    """Write the holder's chart to `path`: .png, or .html (the chart plus a table of every
    day). Raises `NoHolderHistory` (a ValueError) when there is nothing to chart."""
    path = Path(path)
    _check_suffix(path)
    png = _png(holder_figure(series))
    if path.suffix == ".png":
        path.write_bytes(png)
        return path
    title = holder_title(series)
    rows = "\n".join(
        f"<tr><td>{day}</td><td>{amount / 100:,.2f}</td><td>{wanfen}</td>"
        f"<td>{holding / 100:,.2f}</td></tr>"
        for day, amount, wanfen, holding in zip(
            series.days, series.income_fen, series.wanfen, series.holding_fen, strict=True
        )
    )
    image = base64.b64encode(png).decode()
    path.write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f4f4f4}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Shares now: {series.shares_fen / 100:,.2f} (yuan at NAV 1.00). Income over these days:
{series.total_income_fen / 100:,.2f} yuan.</p>
<img alt="daily income and holding of {html.escape(series.user_id)}"
 src="data:image/png;base64,{image}">
<table><tr><th>day</th><th>income (yuan)</th><th>万份收益 (yuan)</th>
<th>holding at day end (yuan)</th></tr>
{rows}
</table></body></html>
""",
        encoding="utf-8",
    )
    return path
