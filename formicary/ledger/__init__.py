"""The double-entry ledger: engine, stores and the single-writer service.

Every product moves money only through this package: build `Transfer`s (usually `linked`
chains), submit them to a `LedgerService`, and read the result code of each event.
"""

from formicary.ledger.bulk import BulkRecord
from formicary.ledger.engine import BatchOutcome, Engine, Expiration, PendingStatus
from formicary.ledger.service import (
    BatchTooLarge,
    LedgerError,
    LedgerService,
    ServiceBusy,
    ServiceUnavailable,
)
from formicary.ledger.store import DEFAULT_DATABASE_URL, Store, StoreError, open_store
from formicary.ledger.types import (
    AMOUNT_MAX,
    BATCH_EVENTS_MAX,
    BULK_LEGS_MAX,
    ID_MAX,
    Account,
    AccountBalance,
    AccountFlags,
    AccountResult,
    BulkResult,
    BulkTransfer,
    Transfer,
    TransferFlags,
    TransferResult,
)

__all__ = [
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
]
