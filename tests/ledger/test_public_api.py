"""Pins the ledger's public surface: changing it must be a deliberate edit of this list."""

from __future__ import annotations

import formicary.ledger

EXPECTED = {
    "AMOUNT_MAX",
    "BATCH_EVENTS_MAX",
    "BULK_LEGS_MAX",
    "DEFAULT_DATABASE_URL",
    "ID_MAX",
    "Account",
    "AccountBalance",
    "AccountFlags",
    "AccountResult",
    "BatchOutcome",
    "BatchTooLarge",
    "BulkRecord",
    "BulkResult",
    "BulkTransfer",
    "Engine",
    "Expiration",
    "LedgerError",
    "LedgerService",
    "PendingStatus",
    "ServiceBusy",
    "ServiceUnavailable",
    "Store",
    "StoreError",
    "Transfer",
    "TransferFlags",
    "TransferResult",
    "open_store",
}


def test_public_names_are_pinned() -> None:
    assert set(formicary.ledger.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(formicary.ledger, name), name


def test_errors_share_one_base() -> None:
    for error in (
        formicary.ledger.BatchTooLarge,
        formicary.ledger.ServiceBusy,
        formicary.ledger.ServiceUnavailable,
    ):
        assert issubclass(error, formicary.ledger.LedgerError)
