"""Fixtures for the channel tests: a manual clock and small builders."""

from __future__ import annotations

import pytest

from formicary.channels import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(0)
