"""The final report of a Double-11 run: `report.json`, PNG plots, and one self-contained HTML
page (plots embedded as base64, tables, the conservation check).
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from formicary.channels import NS_PER_S
from formicary.sim.checks import Check, conservation_checks
from formicary.sim.double11 import Double11
from formicary.sim.plots import PlotData, write_plots
from formicary.sim.world import MIDNIGHT_NS

__all__ = ["BankLine", "CampaignLine", "Double11Report", "build_report", "write_outputs"]

BANK_ROWS_SHOWN = 15


class CampaignLine(msgspec.Struct, frozen=True):
    id: int
    name: str
    kind: str
    funder: str
    discount_fen: int
    budget_fen: int
    spent_fen: int  # from the ledger: the budget account's posted debits
    uses: int  # succeeded payments with this coupon (from the payments store)
    remaining_fen: int
    exhausted: bool  # the service refused a discount because the budget ran out


class BankLine(msgspec.Struct, frozen=True):
    code: str
    rank: int
    kind: str  # healthy, slow, failing, maintenance, override
    share: float  # of the cards
    capacity_tps: int  # also the channel's flow limit
    offered: int
    passed: int
    throttled: int
    breaker_rejected: int
    succeeded: int
    declined: int
    failed: int
    unavailable: int
    passed_per_s_max: int
    breaker_opened: int
    breaker_state: str


class Double11Report(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a run ends with; `report.json` is this, encoded."""

    config: dict[str, Any]
    virtual_start: str  # Beijing time of the first arrival
    virtual_end: str  # Beijing time when the last journey ended
    virtual_s: float
    clicks: int
    cashier_visits: int
    payments_attempted: int  # users who went on to pay (the funnel's third stage)
    funnel_ratio: list[float]  # clicks : cashier : payments, scaled to 12 for clicks
    attempts: int  # payment attempts (rows), failovers and retries included
    succeeded: int
    failed: int
    failed_by_reason: dict[str, int]
    throttled: int  # attempts refused as busy (nothing moved), then failed over or retried
    throttled_by_reason: dict[str, int]
    attempts_by_result: dict[str, int]
    failovers: int
    retries: int
    unknown_outcomes: int  # attempts whose bank timed out (resumed with the same id)
    succeeded_by_funding: dict[str, int]
    peak_payments_per_s: int  # succeeded payments in the busiest virtual second
    peak_at: str  # Beijing time of that second
    expected_peak_payments_per_s: float
    latency_ms: dict[str, float]
    coupons: list[CampaignLine]
    coupon_spent_fen: int
    coupon_budget_fen: int
    banks: list[BankLine]
    breakers_opened: int
    banks_throttled: int
    gateway: dict[str, int]
    setup: dict[str, int]
    real_time: dict[str, float]
    channel_skew_ms_max: float
    conservation: list[Check]
    conservation_ok: bool
    files: list[str]


def _beijing(ns: int) -> str:
    second = ns // NS_PER_S + 8 * 3_600
    day = "11-11" if second >= MIDNIGHT_NS // NS_PER_S + 8 * 3_600 else "11-10"
    local = second % 86_400
    return f"{day} {local // 3600:02d}:{local % 3600 // 60:02d}:{local % 60:02d}"


def _last_active_index(sim: Double11) -> int:
    counts = sim.recorder.counts
    active = np.zeros(sim.recorder.span_s, dtype=bool)
    for name in ("clicks", "attempts", "succeeded", "failed", "cashier"):
        active |= counts[name] > 0
    nonzero = np.flatnonzero(active)
    floor = sim.config.duration_s - 1
    return int(max(floor, nonzero[-1] if len(nonzero) else 0))


def _campaigns(sim: Double11) -> list[CampaignLine]:
    world = sim.world
    assert world is not None
    uses = {
        row[0]: int(row[1])
        for row in world.store.rows(
            "SELECT campaign_id, COUNT(*) FROM payments WHERE state = 'succeeded'"
            " AND campaign_id IS NOT NULL GROUP BY campaign_id"
        )
    }
    lines = []
    for c in world.campaigns:
        spent = world.payments.campaigns.get(
            c.id
        ).budget_fen - world.payments.campaigns.remaining_fen(c.id)
        lines.append(
            CampaignLine(
                id=c.id,
                name=c.name,
                kind=str(c.kind),
                funder=c.funder,
                discount_fen=c.discount_fen,
                budget_fen=c.budget_fen,
                spent_fen=spent,
                uses=uses.get(c.id, 0),
                remaining_fen=c.budget_fen - spent,
                exhausted=c.id in sim._exhausted,
            )
        )
    return lines


def _banks(
    sim: Double11, first_second: int, last_second: int
) -> tuple[list[BankLine], dict[str, np.ndarray]]:
    world = sim.world
    assert world is not None
    lines = []
    offered, passed = [], []
    for bank, channel in zip(world.banks, world.channels, strict=True):
        series = channel.stats.series(first_second, last_second)
        col = {name: np.asarray(series.column(name), dtype=np.int64) for name in series.columns}
        offered.append(col["offered"])
        passed.append(col["passed"])
        opened = channel.breaker.opened_count - sim.breakers_opened_before.get(channel.name, 0)
        lines.append(
            BankLine(
                code=bank.code,
                rank=bank.rank,
                kind=bank.kind,
                share=round(bank.share, 5),
                capacity_tps=bank.capacity_tps,
                offered=int(col["offered"].sum()),
                passed=int(col["passed"].sum()),
                throttled=int(col["throttled"].sum()),
                breaker_rejected=int(col["breaker_rejected"].sum()),
                succeeded=int(col["succeeded"].sum()),
                declined=int(col["declined"].sum()),
                failed=int(col["failed"].sum()),
                unavailable=int(col["unavailable"].sum()),
                passed_per_s_max=int(col["passed"].max(initial=0)),
                breaker_opened=opened,
                breaker_state=str(channel.breaker.state),
            )
        )
    matrices = {"offered": np.vstack(offered), "passed": np.vstack(passed)}
    return lines, matrices


def build_report(sim: Double11, *, plots: bool = True) -> tuple[Double11Report, PlotData | None]:
    """Read the run's results, the channels' counters, the ledger and the store."""
    world = sim.world
    assert world is not None
    config = sim.config
    r = sim.recorder
    last = _last_active_index(sim)
    first_second = r.first_second
    last_second = first_second + last
    rows = slice(0, last + 1)
    counts = {name: values[rows] for name, values in r.counts.items()}
    succeeded_per_s = counts["succeeded"]
    peak_index = int(np.argmax(succeeded_per_s)) if len(succeeded_per_s) else 0
    clicks, cashier, intents = (r.total(n) for n in ("clicks", "cashier", "pay_intents"))
    bank_q = r.quantiles("bank", rows, (0.5, 0.99))
    service_q = r.quantiles("service", rows, (0.5, 0.99))
    bank_lines, matrices = _banks(sim, first_second, last_second)
    coupons = _campaigns(sim)
    checks = conservation_checks(world)
    # The simulator's own bookkeeping must agree with the store: every intent ended, and the
    # succeeded ones are exactly the store's succeeded payments of the night.
    journeys = [j for j in sim.journeys if j.pays]
    ended = sum(1 for j in journeys if j.outcome)
    succeeded = sum(1 for j in journeys if j.outcome == "succeeded")
    store_succeeded = int(
        world.store.scalar(
            "SELECT COUNT(*) FROM payments p JOIN orders o ON o.id = p.order_id"
            " WHERE p.state = 'succeeded' AND o.merchant_order_no LIKE 'd11-%'"
        )
    )
    store_attempts = int(
        world.store.scalar(
            "SELECT COUNT(*) FROM payments p JOIN orders o ON o.id = p.order_id"
            " WHERE o.merchant_order_no LIKE 'd11-%'"
        )
    )
    checks.append(
        Check(
            "every payment ended: succeeded or failed with a reason",
            ended == len(journeys)
            and succeeded == store_succeeded
            and r.total("attempts") == store_attempts,
            f"{len(journeys):,} payments: {succeeded:,} succeeded (store: {store_succeeded:,}),"
            f" {ended - succeeded:,} failed with a reason, {len(journeys) - ended} unfinished;"
            f" {r.total('attempts'):,} attempts made, {store_attempts:,} recorded by the service",
        )
    )
    gateway = dict(world.gateway.counts)
    gateway["holds_open"] = world.gateway.holds_open
    gateway["unresolved"] = world.gateway.unresolved
    gateway["records_waiting"] = sim.leftover_waiting  # open after the final recover() passes
    run_s = sim.wall.get("run_s", 0.0)
    attempts = r.total("attempts")
    skew_ns = max(getattr(ch.clock, "skew_ns_max", 0) for ch in world.channels)
    report = Double11Report(
        config=msgspec.to_builtins(config),
        virtual_start=_beijing(sim.start_ns),
        virtual_end=_beijing(sim.end_ns),
        virtual_s=round((sim.end_ns - sim.start_ns) / NS_PER_S, 3),
        clicks=clicks,
        cashier_visits=cashier,
        payments_attempted=intents,
        funnel_ratio=[
            12.0,
            round(12 * cashier / clicks, 3) if clicks else 0.0,
            round(12 * intents / clicks, 3) if clicks else 0.0,
        ],
        attempts=attempts,
        succeeded=succeeded,
        failed=sum(sim.failed_reasons.values()),
        failed_by_reason=dict(sim.failed_reasons.most_common()),
        throttled=r.total("throttled"),
        throttled_by_reason=dict(sim.busy_reasons.most_common()),
        attempts_by_result=dict(sim.attempt_results.most_common()),
        failovers=r.total("failovers"),
        retries=r.total("retries"),
        unknown_outcomes=r.total("unknown"),
        succeeded_by_funding=dict(sim.succeeded_by_funding),
        peak_payments_per_s=int(succeeded_per_s[peak_index]) if len(succeeded_per_s) else 0,
        peak_at=_beijing((first_second + peak_index) * NS_PER_S),
        expected_peak_payments_per_s=round(config.peak_payments_per_s, 1),
        latency_ms={
            "bank_p50": round(bank_q[0], 1),
            "bank_p99": round(bank_q[1], 1),
            "service_p50": round(service_q[0], 2),
            "service_p99": round(service_q[1], 2),
        },
        coupons=coupons,
        coupon_spent_fen=sum(c.spent_fen for c in coupons),
        coupon_budget_fen=sum(c.budget_fen for c in coupons),
        banks=bank_lines,
        breakers_opened=sum(b.breaker_opened for b in bank_lines),
        banks_throttled=sum(1 for b in bank_lines if b.throttled),
        gateway=gateway,
        setup=dict(world.setup_counts),
        real_time={
            "setup_s": round(sim.wall.get("setup_s", 0.0), 2),
            "run_s": round(run_s, 2),
            "finish_s": round(sim.wall.get("finish_s", 0.0), 2),
            "wall_s": round(sim.wall.get("wall_s", 0.0), 2),
            "attempts_per_s": round(attempts / run_s, 1) if run_s else 0.0,
            "payments_per_s": round(succeeded / run_s, 1) if run_s else 0.0,
            "virtual_s_per_real_s": round((sim.end_ns - sim.start_ns) / NS_PER_S / run_s, 2)
            if run_s
            else 0.0,
            "windows": float(sim.windows),
            "workers": float(config.workers),
        },
        channel_skew_ms_max=round(skew_ns / 1e6, 3),
        conservation=checks,
        conservation_ok=all(c.ok for c in checks),
        files=[],
    )
    if not plots:
        return report, None
    codes = [b.code for b in world.banks]
    data = PlotData(
        tau_s=np.arange(last + 1) + (first_second - MIDNIGHT_NS // NS_PER_S),
        counts=counts,
        latency={
            "bank_p50": r.per_second_quantiles("bank", 0.5, last),
            "bank_p99": r.per_second_quantiles("bank", 0.99, last),
            "service_p50": r.per_second_quantiles("service", 0.5, last),
            "service_p99": r.per_second_quantiles("service", 0.99, last),
        },
        bank_codes=codes,
        bank_capacity=np.asarray([b.capacity_tps for b in world.banks], dtype=np.int64),
        bank_offered=matrices["offered"],
        bank_passed=matrices["passed"],
    )
    return report, data


def write_outputs(sim: Double11, *, plots: bool = True) -> Double11Report:
    """Write report.json, the PNGs and report.html into the run's directory; snapshot the
    in-memory payments tables to payments.db. Returns the report (with the file list)."""
    world = sim.world
    assert world is not None
    started = time.perf_counter()
    out = sim.out_dir
    report, data = build_report(sim, plots=plots)
    images = write_plots(data, out) if data is not None else []
    if not sim.config.durable_payments:
        # VACUUM INTO writes a consistent copy of the database (SQLite >= 3.27).
        world.store.rows("VACUUM INTO ?", (str(out / "payments.db"),))
    files = ["ledger.db", "payments.db", *(p.name for p in images), "report.html", "report.json"]
    real_time = dict(report.real_time)
    real_time["report_s"] = round(time.perf_counter() - started, 2)
    report = msgspec.structs.replace(report, files=files, real_time=real_time)
    (out / "report.html").write_text(render_html(report, images), encoding="utf-8")
    (out / "report.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
    return report


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;
color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .note{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0 1.5rem} td,th{padding:.25rem .7rem;
border-bottom:1px solid #ddd;text-align:right} th{background:#f4f4f4} td:first-child,
th:first-child{text-align:left} .ok{color:#0a7a32;font-weight:600} .bad{color:#b00020;
font-weight:600} img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(11rem,1fr));gap:.6rem}
.card{background:#f7f7f9;border-radius:6px;padding:.6rem .8rem} .card b{font-size:1.3rem;
display:block}
"""


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return '<span class="ok">yes</span>' if value else '<span class="bad">no</span>'
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return html.escape(str(value))


def _yuan(fen: int) -> str:
    return f"{fen / 100:,.2f}"


def render_html(report: Double11Report, images: list[Path]) -> str:
    r = report
    t = r.real_time
    cards = [
        ("payments succeeded", f"{r.succeeded:,}"),
        ("failed", f"{r.failed:,}"),
        ("throttled attempts", f"{r.throttled:,}"),
        ("peak payments/s (virtual)", f"{r.peak_payments_per_s:,} at {r.peak_at[6:]}"),
        ("real time", f"{r.real_time['wall_s'] + r.real_time.get('report_s', 0.0):.1f} s"),
        ("conservation", "holds" if r.conservation_ok else "BROKEN"),
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>Formicary Double-11 simulation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Double-11 simulation</h1>",
        "<p class='note'>Simulated shoppers and banks driving the real Formicary payments"
        " service and ledger (durable SQLite). Virtual time "
        f"{html.escape(r.virtual_start)} to {html.escape(r.virtual_end)} Beijing,"
        f" {r.virtual_s:,.0f} virtual seconds in {r.real_time['run_s']:.1f} real seconds.</p>",
        "<div class='grid'>",
        *(f"<div class='card'>{html.escape(k)}<b>{html.escape(v)}</b></div>" for k, v in cards),
        "</div>",
        "<h2>Final report</h2>",
        _table(
            ["", "count"],
            [
                ["buy clicks", r.clicks],
                ["cashier visits", r.cashier_visits],
                ["payments attempted", r.payments_attempted],
                [
                    "funnel (clicks : cashier : payments)",
                    " : ".join(f"{x:g}" for x in r.funnel_ratio),
                ],
                ["payment attempts (failovers and retries included)", r.attempts],
                ["succeeded", r.succeeded],
                ["throttled attempts (bank busy: failed over or retried)", r.throttled],
                ["failovers", r.failovers],
                ["retry rounds", r.retries],
                ["bank timeouts resumed with the same id", r.unknown_outcomes],
                ["failed", r.failed],
                ["peak payments/s (virtual)", f"{r.peak_payments_per_s:,} at {r.peak_at}"],
                ["expected peak payments/s (the curve)", r.expected_peak_payments_per_s],
                [
                    "real seconds: setup + run + report",
                    f"{t['setup_s']:.1f} + {t['run_s']:.1f} + {t.get('report_s', 0.0):.1f}",
                ],
                ["real attempts/s during the run", r.real_time["attempts_per_s"]],
            ],
        ),
        "<h2>Plots</h2>",
    ]
    for path in images:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<img alt='{html.escape(path.stem)}' src='data:image/png;base64,{data}'>")
    parts.append("<h2>Why payments failed, and why attempts were throttled</h2>")
    parts.append(
        _table(["failed: reason", "payments"], [[k, v] for k, v in r.failed_by_reason.items()])
    )
    parts.append(
        _table(
            ["throttled: reason", "attempts"], [[k, v] for k, v in r.throttled_by_reason.items()]
        )
    )
    parts.append(
        _table(
            ["succeeded by funding", "payments"],
            [[k, v] for k, v in r.succeeded_by_funding.items()],
        )
    )
    parts.append("<h2>Coupons and red packets: spend against budgets</h2>")
    parts.append(
        _table(
            ["campaign", "funder", "discount", "budget (yuan)", "spent (yuan)", "uses", "ran out"],
            [
                [
                    c.name,
                    c.funder,
                    _yuan(c.discount_fen),
                    _yuan(c.budget_fen),
                    _yuan(c.spent_fen),
                    c.uses,
                    c.exhausted,
                ]
                for c in r.coupons
            ],
        )
    )
    shown = sorted(r.banks, key=lambda b: -b.offered)[:BANK_ROWS_SHOWN]
    shown += [b for b in r.banks if b not in shown and (b.breaker_opened or b.kind != "healthy")]
    parts.append(f"<h2>Banks ({len(r.banks)} simulated; the busiest and every unusual one)</h2>")
    parts.append(
        _table(
            [
                "bank",
                "kind",
                "limit/s",
                "offered",
                "passed",
                "max passed/s",
                "throttled",
                "breaker rejected",
                "failed",
                "unavailable",
                "breaker opened",
            ],
            [
                [
                    b.code,
                    b.kind,
                    b.capacity_tps,
                    b.offered,
                    b.passed,
                    b.passed_per_s_max,
                    b.throttled,
                    b.breaker_rejected,
                    b.failed,
                    b.unavailable,
                    b.breaker_opened,
                ]
                for b in shown
            ],
        )
    )
    parts.append("<h2>Ledger conservation check</h2>")
    parts.append(
        _table(["check", "holds", "detail"], [[c.name, c.ok, c.detail] for c in r.conservation])
    )
    parts.append("<h2>Latency</h2>")
    parts.append(_table(["", "ms"], [[k, v] for k, v in r.latency_ms.items()]))
    parts.append("<h2>Run</h2>")
    parts.append(_table(["real time", "value"], [[k, v] for k, v in r.real_time.items()]))
    parts.append(_table(["setup", "count"], [[k, v] for k, v in r.setup.items()]))
    parts.append(_table(["bank gateway", "count"], [[k, v] for k, v in sorted(r.gateway.items())]))
    parts.append(_table(["config", "value"], [[k, _short(v)] for k, v in r.config.items()]))
    parts.append("</body></html>\n")
    return "".join(parts)


def _short(value: object) -> str:
    text = msgspec.json.encode(value).decode() if not isinstance(value, str) else value
    return text if len(text) <= 160 else text[:157] + "..."
