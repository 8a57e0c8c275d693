"""The compiled hot loops of the ledger (`_fastpath.c`), when they are built.

`pip install` compiles the extension (gcc and the Python headers are all it needs). Where it is
missing, or with FORMICARY_PURE_PYTHON=1 in the environment, the engine and the SQLite store run
their Python loops instead: the same results, about three times slower per transfer. The Python
code is the reference; tests/ledger/test_engine_fast_path.py holds the two to the same results.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from typing import Any

from formicary.ledger.types import ID_MAX, Account, Transfer

__all__ = ["FastRun", "TransferRows", "fast_run", "native_available", "transfer_rows"]

FastRun = Callable[
    [
        Sequence[Transfer],
        int,
        int,
        dict[int, Account],
        dict[int, Transfer],
        list[Transfer],
        Collection[int],
    ],
    int,
]
TransferRows = Callable[[Sequence[Transfer]], list[tuple[Any, ...]]]

fast_run: FastRun | None = None
transfer_rows: TransferRows | None = None


def native_available() -> bool:
    """Whether the compiled extension was built and imports."""
    try:
        from formicary.ledger import _fastpath  # noqa: F401
    except ImportError:
        return False
    return True


if os.environ.get("FORMICARY_PURE_PYTHON", "") not in ("1", "true", "yes") and native_available():
    from formicary.ledger import _fastpath

    _fastpath.configure(Account, Transfer, ID_MAX)
    fast_run = _fastpath.fast_run
    transfer_rows = _fastpath.transfer_rows
