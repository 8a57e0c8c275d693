"""PNG plots of a Double-11 run (matplotlib, headless): the funnel and payments per second,
latency, throttled and failed per second, and the load of every bank.

All x axes are virtual seconds relative to 00:00:00 Beijing time (negative: before midnight).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display, no GUI toolkit (CI, servers)

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["PlotData", "write_plots"]

TOP_BANK_LINES = 8
DPI = 100


class PlotData:
    """What the plots need, as plain arrays (one value per virtual second)."""

    def __init__(
        self,
        tau_s: np.ndarray,
        counts: dict[str, np.ndarray],
        latency: dict[str, np.ndarray],
        bank_codes: list[str],
        bank_capacity: np.ndarray,
        bank_offered: np.ndarray,  # banks x seconds
        bank_passed: np.ndarray,  # banks x seconds
    ) -> None:
        self.tau_s = tau_s
        self.counts = counts
        self.latency = latency
        self.bank_codes = bank_codes
        self.bank_capacity = bank_capacity
        self.bank_offered = bank_offered
        self.bank_passed = bank_passed


def _figure(title: str, height: float = 4.0) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(11, height), dpi=DPI)
    ax.set_title(title)
    ax.set_xlabel("virtual seconds after 00:00:00 (Beijing)")
    ax.grid(True, alpha=0.3)
    ax.axvline(0, color="grey", linewidth=0.8, linestyle=":")
    return fig, ax


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_plots(data: PlotData, out_dir: Path) -> list[Path]:
    x = data.tau_s
    c = data.counts
    paths = []

    fig, ax = _figure("The funnel: clicks, cashier visits, payments per second")
    ax.plot(x, c["clicks"], label="buy clicks/s", linewidth=1)
    ax.plot(x, c["cashier"], label="cashier visits/s", linewidth=1)
    ax.plot(x, c["pay_intents"], label="payments started/s", linewidth=1)
    ax.plot(x, c["succeeded"], label="payments succeeded/s", linewidth=1.6, color="black")
    ax.set_ylabel("per virtual second")
    ax.legend(loc="upper right")
    paths.append(_save(fig, out_dir / "payments_per_s.png"))

    fig, ax = _figure("Latency per second: banks (simulated) and the service (measured)")
    for key, label, style in (
        ("bank_p50", "bank p50 (virtual ms)", "-"),
        ("bank_p99", "bank p99 (virtual ms)", "--"),
        ("service_p50", "service p50 (real ms)", "-"),
        ("service_p99", "service p99 (real ms)", "--"),
    ):
        ax.plot(x, data.latency[key], style, label=label, linewidth=1)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.legend(loc="upper right")
    paths.append(_save(fig, out_dir / "latency.png"))

    fig, ax = _figure("Throttled, failed and retried per second")
    ax.plot(x, c["throttled"], label="throttled attempts/s (bank busy)", linewidth=1)
    ax.plot(x, c["failovers"], label="failovers/s (next card or wallet)", linewidth=1)
    ax.plot(x, c["retries"], label="retry rounds/s", linewidth=1)
    ax.plot(x, c["declined"], label="declined attempts/s", linewidth=1)
    ax.plot(x, c["failed"], label="failed payments/s", linewidth=1.6, color="red")
    ax.set_ylabel("per virtual second")
    ax.legend(loc="upper right")
    paths.append(_save(fig, out_dir / "throttled_failed.png"))

    fig, (top, heat) = plt.subplots(
        2, 1, figsize=(11, 9), dpi=DPI, gridspec_kw={"height_ratios": [1, 1.6]}
    )
    order = np.argsort(-data.bank_offered.sum(axis=1), kind="stable")[:TOP_BANK_LINES]
    for k in order:
        (line,) = top.plot(x, data.bank_offered[k], linewidth=1, label=data.bank_codes[k])
        top.axhline(data.bank_capacity[k], color=line.get_color(), linewidth=0.6, linestyle=":")
    top.set_title(f"Calls offered per second, top {len(order)} banks (dotted: flow limit)")
    top.set_ylabel("calls/s")
    top.grid(True, alpha=0.3)
    top.legend(loc="upper right", ncol=4, fontsize=8)
    capacity = np.maximum(data.bank_capacity, 1)[:, None]
    utilisation = data.bank_passed / capacity
    image = heat.imshow(
        utilisation,
        aspect="auto",
        interpolation="nearest",
        cmap="magma",
        vmin=0,
        vmax=1.0,
        extent=(float(x[0]) - 0.5, float(x[-1]) + 0.5, len(data.bank_codes) - 0.5, -0.5),
    )
    heat.set_title("Load per bank: calls passed / flow limit (rows: banks, largest first)")
    heat.set_xlabel("virtual seconds after 00:00:00 (Beijing)")
    heat.set_ylabel("bank rank")
    fig.colorbar(image, ax=heat, label="utilisation")
    paths.append(_save(fig, out_dir / "bank_load.png"))
    return paths
