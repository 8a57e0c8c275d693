"""Builders shared by the SDK tests (a plain module: `conftest` is ambiguous across test dirs)."""

from __future__ import annotations

from typing import Any

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
