"""Structured logs: one JSON object per line with the extra fields as data."""

from __future__ import annotations

import json
import logging

from formicary.logs import JsonFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "formicary.test", logging.WARNING, "x.py", 1, "paid %s", ("7",), None
    )
    record.__dict__.update(extra)
    return record


def test_json_line_carries_level_logger_message_and_extras() -> None:
    line = JsonFormatter().format(_record(account_id=7, color_message="\x1b[36m"))
    payload = json.loads(line)
    assert payload["level"] == "warning"
    assert payload["logger"] == "formicary.test"
    assert payload["message"] == "paid 7"
    assert payload["account_id"] == 7
    assert "color_message" not in payload
    assert payload["ts"].endswith("+00:00")
    assert "\n" not in line


def test_exceptions_are_one_field_not_extra_lines() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    payload = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in payload["exception"]
