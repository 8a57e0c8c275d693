"""How payments talks to the ledger: linked chains, their outcome, and busy retries.

A chain is a list of transfers with deterministic ids (see `chart`), linked so that all land or
none does. Submitting it again after a crash is safe: the ledger answers `exists` for a chain
that was applied (TigerBeetle semantics: the first leg reports `exists` and fails the chain,
the others `linked_event_failed`), which `ChainOutcome.applied` reads as "already done".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import msgspec

from formicary.ledger import (
    Account,
    AccountFlags,
    LedgerService,
    ServiceBusy,
    Transfer,
    TransferFlags,
)
from formicary.payments.chart import CNY, AccountCode
from formicary.payments.errors import LedgerBusy, LedgerRejected

__all__ = ["ChainOutcome", "LedgerClient", "leg"]

# A chain holds at most a payment's legs; bounding it keeps a request one small batch.
CHAIN_LEGS_MAX = 8
# ServiceBusy means "nothing applied, retry shortly": retry with a capped backoff for at most
# about a second, then give up with LedgerBusy rather than block a caller forever.
BUSY_RETRIES_MAX = 12
BUSY_BACKOFF_S_MAX = 0.2
_LINKED = int(TransferFlags.LINKED)
_OK = "ok"
_EXISTS = "exists"
_LINKED_FAILED = "linked_event_failed"
# A void that finds its reservation already gone (expired or voided) reached its goal.
_RELEASED = frozenset({_OK, _EXISTS, "pending_transfer_expired", "pending_transfer_already_voided"})


class ChainOutcome(msgspec.Struct, frozen=True):
    """Whether a chain is in the ledger; if not, which leg failed and why."""

    applied: bool
    failed_index: int = -1
    failed_id: int = 0  # the id of the failing transfer: its low byte is the leg number
    failed_result: str = ""


def leg(
    transfer_id: int,
    debit_account_id: int,
    credit_account_id: int,
    amount_fen: int,
    code: int,
    *,
    flags: int = 0,
    pending_id: int = 0,
    timeout_s: int = 0,
    user_data_128: int = 0,
) -> Transfer:
    """One transfer on the CNY ledger (a helper to keep chains readable)."""
    return Transfer(
        id=transfer_id,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount_fen,
        ledger=CNY,
        code=code,
        flags=flags,
        pending_id=pending_id,
        timeout=timeout_s,
        user_data_128=user_data_128,
    )


class LedgerClient:
    """Submits chains and account batches to a `LedgerService`, retrying when it is busy."""

    def __init__(
        self, service: LedgerService, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.service = service
        self._sleep = sleep

    def _retry_busy(self, call: Callable[[], list[str]]) -> list[str]:
        backoff_s = 0.001
        for _ in range(BUSY_RETRIES_MAX):
            try:
                return call()
            except ServiceBusy:
                self._sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BUSY_BACKOFF_S_MAX)
        raise LedgerBusy("the ledger stayed busy; nothing was applied, retry later")

    def ensure_accounts(self, specs: Sequence[tuple[int, AccountCode, AccountFlags]]) -> None:
        """Create accounts (id, code, flags) that do not exist yet; existing ones are fine."""
        accounts = [
            Account(id=account_id, ledger=CNY, code=int(code), flags=int(flags))
            for account_id, code, flags in specs
        ]
        results = self._retry_busy(lambda: self.service.create_accounts(accounts))
        for account, result in zip(accounts, results, strict=True):
            if result not in (_OK, _EXISTS):
                raise LedgerRejected(f"account {account.id:#x}: the ledger said {result}")

    def submit(self, chain: Sequence[Transfer]) -> ChainOutcome:
        """Submit legs as one linked chain (the flag is set here, on all but the last)."""
        assert 0 < len(chain) <= CHAIN_LEGS_MAX, len(chain)
        last = len(chain) - 1
        linked = [
            t if i == last else msgspec.structs.replace(t, flags=t.flags | _LINKED)
            for i, t in enumerate(chain)
        ]
        results = self._retry_busy(lambda: self.service.create_transfers(linked))
        if all(result == _OK for result in results):
            return ChainOutcome(applied=True)
        if results[0] == _EXISTS and all(r == _LINKED_FAILED for r in results[1:]):
            # Applied before (a retry): chains are atomic, so leg 0 existing means all do.
            found = self.service.lookup_transfers([t.id for t in linked])
            if len(found) != len(linked):
                raise LedgerRejected(f"chain {linked[0].id:#x} is only partly in the ledger")
            return ChainOutcome(applied=True)
        index = next(i for i, r in enumerate(results) if r != _LINKED_FAILED)
        result = results[index]
        if result.startswith("exists"):
            # A derived id was used for a different movement: a bug, or a payments store that
            # was reset against a used ledger. Never paper over it.
            raise LedgerRejected(f"transfer {linked[index].id:#x}: the ledger said {result}")
        return ChainOutcome(
            applied=False, failed_index=index, failed_id=linked[index].id, failed_result=result
        )

    def release(self, voids: Sequence[Transfer]) -> None:
        """Void reservations independently (not linked): each one released is progress, and
        one already expired or voided must not keep the others pending."""
        if not voids:
            return
        results = self._retry_busy(lambda: self.service.create_transfers(list(voids)))
        for void, result in zip(voids, results, strict=True):
            if result not in _RELEASED:
                raise LedgerRejected(f"void {void.id:#x}: the ledger said {result}")

    def available_fen(self, account_id: int) -> int:
        """Posted credits minus posted and pending debits: what the account can still pay."""
        found = self.service.lookup_accounts([account_id])
        if not found:
            return 0
        a = found[0]
        return a.credits_posted - a.debits_posted - a.debits_pending

    def lookup_transfers(self, ids: Sequence[int]) -> list[Transfer]:
        return self.service.lookup_transfers(ids)

    def lookup_accounts(self, ids: Sequence[int]) -> list[Account]:
        return self.service.lookup_accounts(ids)
