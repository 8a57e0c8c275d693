"""docs/double11.md's Python example runs as written, and the defaults it states are the
code's defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from formicary.sim import Double11Config, PeakCurve

DOC = (Path(__file__).parents[2] / "docs" / "double11.md").read_text(encoding="utf-8")


def test_the_library_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", DOC, flags=re.DOTALL)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(example, namespace)
    report = namespace["report"]
    assert report.conservation_ok  # type: ignore[attr-defined]
    assert (tmp_path / "night-small" / "report.html").is_file()


def _option(name: str) -> str:
    (row,) = re.findall(rf"^\| `--{name}` \| ([^|]+) \|", DOC, flags=re.MULTILINE)
    return row.strip()


def test_the_documented_defaults_are_the_code_defaults() -> None:
    d = Double11Config()
    assert _option("users") == str(d.users)
    assert _option("merchants") == str(d.merchants)
    assert _option("banks") == str(d.banks)
    assert _option("duration-s") == str(d.duration_s)
    assert _option("seed") == str(d.seed)
    assert _option("workers") == str(d.workers)
    assert d.funnel.unit_per_s == 10 and (d.funnel.clicks, d.funnel.cashier) == (12, 12)
    c = PeakCurve()
    assert (c.ramp_s, c.floor, c.rise_s, c.peak, c.decay_s) == (60, 0.2, 3, 5, 20)
    assert "0.2 → 1 over 60 s" in DOC and "1 → 5 in 3 s" in DOC
    assert (d.bank_headroom, d.flow_queueing_ms, d.retry_rounds_max) == (0.8, 500, 4)
    assert "0.8 × share" in DOC and "up to 500 ms" in DOC and "up to 4 rounds" in DOC
