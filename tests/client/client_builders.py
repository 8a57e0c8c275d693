"""Builders shared by the SDK tests (a plain module: `conftest` is ambiguous across test dirs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from litestar import Litestar

from formicary.client import AccountIn, TransferIn

LEDGER = 156
BANK = 1  # an unlimited source account: may go negative (bank clearing)
FAST: dict[str, Any] = {"backoff_s": 0.001, "backoff_max_s": 0.005}


def accounts(count: int, *flags: str) -> list[AccountIn]:
    """The bank (id 1) and `count` wallets (ids 100..) that cannot go negative."""
    wallets = [
        AccountIn(
            id=100 + i,
            ledger=LEDGER,
            code=2,
            flags=["debits_must_not_exceed_credits", *flags],  # type: ignore[list-item]
        )
        for i in range(count)
    ]
    return [AccountIn(id=BANK, ledger=LEDGER, code=1), *wallets]


def transfer(id: int, debit: int, credit: int, amount: int, *flags: str) -> TransferIn:
    return TransferIn(
        id=id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        ledger=LEDGER,
        code=1,
        flags=list(flags),  # type: ignore[arg-type]
    )


@contextmanager
def served(app: Litestar) -> Iterator[str]:
    """`app` served by uvicorn in a thread on a free loopback port; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during startup (see the log above)"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
