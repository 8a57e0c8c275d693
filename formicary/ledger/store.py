"""The storage contract every ledger store implements, and the factory that picks one by URL.

The transfer log is the truth: a commit appends the batch's new accounts, transfers, pending
expirations and (for `history` accounts) balance rows, in one transaction, durably. Balances are
not written on the hot path; the engine derives them by replaying the log on start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from formicary.ledger.engine import BatchOutcome, Expiration
from formicary.ledger.types import Account, AccountBalance, Transfer

__all__ = ["DEFAULT_DATABASE_URL", "Store", "StoreError", "open_store"]

DEFAULT_DATABASE_URL = "sqlite:///formicary.db"


class StoreError(Exception):
    """The store could not do what was asked (bad URL, unreachable server, failed commit)."""


class Store(Protocol):
    """A durable home for the ledger log. `commit` runs on the single writer thread only;
    queries may run concurrently from other threads and see only committed data."""

    def migrate(self) -> None:
        """Create or upgrade the schema (versioned, idempotent)."""

    def load_accounts(self) -> list[Account]:
        """Every account as created (zero balances, creation flags), in timestamp order."""

    def load_log(self) -> Iterator[Transfer | Expiration]:
        """Every committed transfer and expiration, merged in strictly increasing timestamp."""

    def commit(self, outcome: BatchOutcome) -> None:
        """Append the outcome's records in one transaction; durable when this returns."""

    def account_transfers(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[Transfer]:
        """Transfers debiting or crediting the account with timestamp in [min, max],
        oldest first (newest first if `reverse`), at most `limit`."""

    def account_balances(
        self,
        account_id: int,
        *,
        timestamp_min: int = 0,
        timestamp_max: int = 2**63 - 1,
        limit: int = 100,
        reverse: bool = False,
    ) -> list[AccountBalance]:
        """Balance history rows of a `history` account in [min, max], like account_transfers."""

    def index_now(self) -> None:
        """Bring the derived per-account index up to the log's end before returning (queries
        are correct without it; this bounds their cost, e.g. after a burst)."""

    def close(self) -> None:
        """Release connections; further calls are errors."""


def open_store(url: str) -> Store:
    """Open the store named by a database URL: sqlite:///path or postgresql://..."""
    if url.startswith("sqlite://"):
        from formicary.ledger.sqlite_store import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        from formicary.ledger.postgres_store import PostgresStore

        return PostgresStore(url)
    raise StoreError(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://...")
