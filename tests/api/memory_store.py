"""A tiny in-memory Store for API tests while the real stores are being written."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from formicary.ledger.engine import BatchOutcome, Expiration
from formicary.ledger.types import Account, AccountBalance, Transfer


class MemoryStore:
    def __init__(self, url: str = "memory://") -> None:
        self.accounts: list[Account] = []
        self.transfers: list[Transfer] = []
        self.expirations: list[Expiration] = []
        self.history: list[tuple[int, AccountBalance]] = []
        self.lock = threading.Lock()

    def migrate(self) -> None:
        pass

    def load_accounts(self) -> list[Account]:
        return list(self.accounts)

    def load_log(self) -> Iterator[Transfer | Expiration]:
        return iter(sorted([*self.transfers, *self.expirations], key=lambda r: r.timestamp))

    def commit(self, outcome: BatchOutcome) -> None:
        import msgspec

        with self.lock:
            self.accounts += [msgspec.structs.replace(a) for a in outcome.accounts]
            self.transfers += outcome.transfers
            self.expirations += outcome.expirations
            self.history += outcome.history

    def account_transfers(
        self, account_id, *, timestamp_min=0, timestamp_max=2**63 - 1, limit=100, reverse=False
    ):
        with self.lock:
            rows = [
                t
                for t in self.transfers
                if account_id in (t.debit_account_id, t.credit_account_id)
                and timestamp_min <= t.timestamp <= timestamp_max
            ]
        rows.sort(key=lambda t: t.timestamp, reverse=reverse)
        return rows[:limit]

    def account_balances(
        self, account_id, *, timestamp_min=0, timestamp_max=2**63 - 1, limit=100, reverse=False
    ):
        with self.lock:
            rows = [
                b
                for i, b in self.history
                if i == account_id and timestamp_min <= b.timestamp <= timestamp_max
            ]
        rows.sort(key=lambda b: b.timestamp, reverse=reverse)
        return rows[:limit]

    def close(self) -> None:
        pass
