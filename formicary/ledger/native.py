"""The compiled parts of the ledger, when they are built.

- `_fastpath.c`: the engine's fast path.
- `_sqlitewriter.c`: the SQLite store's commit connection, whose batches run without the GIL
  (so that a commit overlaps the engine's next batch on the other core).

`pip install` compiles them (gcc, the Python headers and, for the writer, sqlite3.h). Where one
is missing, or with FORMICARY_PURE_PYTHON=1 in the environment, the ledger uses its Python code
instead: the same results and the same files, slower. The Python code is the reference; the
tests hold the compiled parts to the same results (tests/ledger/test_engine_fast_path.py,
test_native_writer.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Sequence
from typing import Any

from formicary.ledger.types import ID_MAX, Account, Transfer

__all__ = [
    "FastRun",
    "fast_run",
    "native_available",
    "sqlite_writer",
]

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

fast_run: FastRun | None = None
# The class of the GIL-free SQLite commit connection: Writer(path) with transaction(batches),
# execute(sql, params=()), executemany(sql, rows), in_transaction and close().
sqlite_writer: Any = None


def native_available() -> bool:
    """Whether both compiled extensions were built and import."""
    try:
        from formicary.ledger import _fastpath, _sqlitewriter  # noqa: F401
    except ImportError:
        return False
    return True


if os.environ.get("FORMICARY_PURE_PYTHON", "") not in ("1", "true", "yes"):
    try:
        from formicary.ledger import _fastpath
    except ImportError:
        pass
    else:
        _fastpath.configure(Account, Transfer, ID_MAX)
        fast_run = _fastpath.fast_run
    with contextlib.suppress(ImportError):
        from formicary.ledger._sqlitewriter import Writer as sqlite_writer
