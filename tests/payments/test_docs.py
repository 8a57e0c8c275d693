"""The example in docs/payments.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "payments.md"


def test_the_payments_doc_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    monkeypatch.chdir(tmp_path)  # the example opens its files in the current directory
    exec(compile(example, str(DOC), "exec"), {})
    assert (tmp_path / "payments.db").exists()
