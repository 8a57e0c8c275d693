"""docs/channels.md's Python example runs as written, and the defaults it states are the
code's defaults."""

from __future__ import annotations

import re
from pathlib import Path

from formicary.channels import BankProfile, BreakerRule, FlowRule

DOC = (Path(__file__).parents[2] / "docs" / "channels.md").read_text(encoding="utf-8")


def test_the_simulator_example_runs() -> None:
    (example,) = re.findall(r"```python\n(.*?)```", DOC, flags=re.DOTALL)
    namespace: dict[str, object] = {}
    exec(example, namespace)
    assert len(namespace["passed"]) == 2  # type: ignore[arg-type]
    assert sum(namespace["throttled"]) > 0  # type: ignore[arg-type]


def _row(field: str) -> str:
    (row,) = re.findall(rf"^\| `{field}` \| ([^|]+) \|", DOC, flags=re.MULTILINE)
    return row.strip()


def test_the_documented_defaults_are_the_code_defaults() -> None:
    breaker = BreakerRule()
    assert _row("slow_call_ms") == f"{breaker.slow_call_ms:,}"
    assert _row("slow_ratio_max") == str(breaker.slow_ratio_max)
    assert _row("error_ratio_max") == str(breaker.error_ratio_max)
    assert _row("min_requests") == str(breaker.min_requests)
    assert _row("open_ms") == f"{breaker.open_ms:,}"
    flow = FlowRule(qps=100)
    assert _row("cold_factor") == str(flow.cold_factor)
    assert _row("completion_wait_ms") == str(flow.completion_wait_ms)
    assert _row("completions_pass") == str(breaker.completions_pass)
    bank = BankProfile(name="b", capacity_tps=1)
    assert _row("timeout_ms") == f"{bank.timeout_ms:,}"
    assert _row("latency_p50_ms`, `latency_p99_ms") == (
        f"{bank.latency_p50_ms:g}, {bank.latency_p99_ms:g}"
    )
