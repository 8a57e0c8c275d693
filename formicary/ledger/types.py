"""Ledger records, flags and result codes (TigerBeetle semantics, int64 amounts).

Records are plain msgspec Structs with integer fields: the engine keeps them in memory by the
million, so they carry no per-instance dict and are not tracked by the cyclic garbage collector.
"""

from __future__ import annotations

from enum import IntFlag, StrEnum

import msgspec

__all__ = [
    "AMOUNT_MAX",
    "BATCH_EVENTS_MAX",
    "ID_MAX",
    "Account",
    "AccountBalance",
    "AccountFlags",
    "AccountResult",
    "BulkResult",
    "BulkTransfer",
    "CreateResult",
    "Transfer",
    "TransferFlags",
    "TransferResult",
]

# Amounts and balances are int64 because that is what SQLite INTEGER and PostgreSQL bigint hold.
AMOUNT_MAX = 2**63 - 1
# Ids are 128-bit unsigned; 0 and 2^128-1 are reserved (as in TigerBeetle).
ID_MAX = 2**128 - 1
# One batch is one transaction and one fsync; the limit bounds memory and latency per commit.
BATCH_EVENTS_MAX = 8190
# Legs of one bulk transfer: one commit carries them all, so this bounds its memory and latency
# (~0.1 s at 1 us per leg) while letting a fund pay 10M holders in 100 bulks.
BULK_LEGS_MAX = 100_000
# Ledger and code are u32/u16 in TigerBeetle; we keep the same ranges.
LEDGER_MAX = 2**32 - 1
CODE_MAX = 2**16 - 1
USER_DATA_64_MAX = 2**64 - 1
USER_DATA_32_MAX = 2**32 - 1
# Timeouts are seconds; the deadline (timestamp + timeout in ns) must stay inside int64.
TIMEOUT_MAX = 2**32 - 1
NS_PER_S = 1_000_000_000


class AccountFlags(IntFlag):
    """Account flags; values match TigerBeetle's bit positions."""

    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1
    CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2
    HISTORY = 1 << 3
    CLOSED = 1 << 5


ACCOUNT_FLAGS_KNOWN = (
    AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    | AccountFlags.HISTORY
    | AccountFlags.CLOSED
)


class TransferFlags(IntFlag):
    """Transfer flags; values match TigerBeetle's bit positions."""

    NONE = 0
    LINKED = 1 << 0
    PENDING = 1 << 1
    POST_PENDING_TRANSFER = 1 << 2
    VOID_PENDING_TRANSFER = 1 << 3
    BALANCING_DEBIT = 1 << 4
    BALANCING_CREDIT = 1 << 5
    CLOSING_DEBIT = 1 << 6
    CLOSING_CREDIT = 1 << 7


TRANSFER_FLAGS_KNOWN = (
    TransferFlags.LINKED
    | TransferFlags.PENDING
    | TransferFlags.POST_PENDING_TRANSFER
    | TransferFlags.VOID_PENDING_TRANSFER
    | TransferFlags.BALANCING_DEBIT
    | TransferFlags.BALANCING_CREDIT
    | TransferFlags.CLOSING_DEBIT
    | TransferFlags.CLOSING_CREDIT
)


class Account(msgspec.Struct, gc=False):
    """An account: identity and limits set at creation, balances maintained by the engine."""

    id: int
    ledger: int
    code: int
    flags: int = 0
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    timestamp: int = 0


class Transfer(msgspec.Struct, gc=False):
    """A transfer of `amount` from the debit account to the credit account."""

    id: int
    debit_account_id: int
    credit_account_id: int
    amount: int
    ledger: int
    code: int
    flags: int = 0
    pending_id: int = 0
    timeout: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    timestamp: int = 0


class BulkTransfer(msgspec.Struct, gc=False):
    """One posting between one account and many, all legs or none: a fund's daily income.

    Equivalent to a linked chain of plain posted transfers between `account_id` and each leg's
    account (the common account is debited when `debit_common`, else credited), but carried as
    one log record, so that paying millions of holders costs one small record per leg instead
    of a full transfer. Bulk ids are a namespace of their own, apart from transfer ids.
    """

    id: int
    account_id: int
    debit_common: bool
    ledger: int
    code: int
    leg_account_ids: list[int]
    leg_amounts: list[int]
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    timestamp: int = 0


class AccountBalance(msgspec.Struct, frozen=True, gc=False):
    """An account's balances right after the event at `timestamp` (history accounts only)."""

    timestamp: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int


class AccountResult(StrEnum):
    """Result of one create-account event."""

    OK = "ok"
    TIMESTAMP_MUST_BE_ZERO = "timestamp_must_be_zero"
    RESERVED_FLAG = "reserved_flag"
    ID_MUST_NOT_BE_ZERO = "id_must_not_be_zero"
    ID_MUST_NOT_BE_INT_MAX = "id_must_not_be_int_max"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    DEBITS_PENDING_MUST_BE_ZERO = "debits_pending_must_be_zero"
    DEBITS_POSTED_MUST_BE_ZERO = "debits_posted_must_be_zero"
    CREDITS_PENDING_MUST_BE_ZERO = "credits_pending_must_be_zero"
    CREDITS_POSTED_MUST_BE_ZERO = "credits_posted_must_be_zero"
    LEDGER_MUST_NOT_BE_ZERO = "ledger_must_not_be_zero"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = "exists_with_different_user_data_128"
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = "exists_with_different_user_data_64"
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = "exists_with_different_user_data_32"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS = "exists"


class TransferResult(StrEnum):
    """Result of one create-transfer event, in the order the engine checks them."""

    OK = "ok"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    TIMESTAMP_MUST_BE_ZERO = "timestamp_must_be_zero"
    RESERVED_FLAG = "reserved_flag"
    ID_MUST_NOT_BE_ZERO = "id_must_not_be_zero"
    ID_MUST_NOT_BE_INT_MAX = "id_must_not_be_int_max"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = "debit_account_id_must_not_be_zero"
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = "debit_account_id_must_not_be_int_max"
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = "credit_account_id_must_not_be_zero"
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = "credit_account_id_must_not_be_int_max"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_MUST_BE_ZERO = "pending_id_must_be_zero"
    PENDING_ID_MUST_NOT_BE_ZERO = "pending_id_must_not_be_zero"
    PENDING_ID_MUST_NOT_BE_INT_MAX = "pending_id_must_not_be_int_max"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    CLOSING_TRANSFER_MUST_BE_PENDING = "closing_transfer_must_be_pending"
    AMOUNT_MUST_NOT_BE_ZERO = "amount_must_not_be_zero"
    LEDGER_MUST_NOT_BE_ZERO = "ledger_must_not_be_zero"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = (
        "transfer_must_have_the_same_ledger_as_accounts"
    )
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = (
        "pending_transfer_has_different_debit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = (
        "pending_transfer_has_different_credit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = "pending_transfer_has_different_ledger"
    PENDING_TRANSFER_HAS_DIFFERENT_CODE = "pending_transfer_has_different_code"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = "exists_with_different_debit_account_id"
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = "exists_with_different_credit_account_id"
    EXISTS_WITH_DIFFERENT_AMOUNT = "exists_with_different_amount"
    EXISTS_WITH_DIFFERENT_PENDING_ID = "exists_with_different_pending_id"
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = "exists_with_different_user_data_128"
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = "exists_with_different_user_data_64"
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = "exists_with_different_user_data_32"
    EXISTS_WITH_DIFFERENT_TIMEOUT = "exists_with_different_timeout"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS = "exists"
    OVERFLOWS_DEBITS_PENDING = "overflows_debits_pending"
    OVERFLOWS_CREDITS_PENDING = "overflows_credits_pending"
    OVERFLOWS_DEBITS_POSTED = "overflows_debits_posted"
    OVERFLOWS_CREDITS_POSTED = "overflows_credits_posted"
    OVERFLOWS_DEBITS = "overflows_debits"
    OVERFLOWS_CREDITS = "overflows_credits"
    OVERFLOWS_TIMEOUT = "overflows_timeout"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    DEBIT_ACCOUNT_ALREADY_CLOSED = "debit_account_already_closed"
    CREDIT_ACCOUNT_ALREADY_CLOSED = "credit_account_already_closed"


class BulkResult(StrEnum):
    """Result of one bulk transfer, in the order the engine checks them."""

    OK = "ok"
    TIMESTAMP_MUST_BE_ZERO = "timestamp_must_be_zero"
    ID_MUST_NOT_BE_ZERO = "id_must_not_be_zero"
    ID_MUST_NOT_BE_INT_MAX = "id_must_not_be_int_max"
    ACCOUNT_ID_MUST_NOT_BE_ZERO = "account_id_must_not_be_zero"
    ACCOUNT_ID_MUST_NOT_BE_INT_MAX = "account_id_must_not_be_int_max"
    LEGS_MUST_NOT_BE_EMPTY = "legs_must_not_be_empty"
    LEGS_EXCEED_MAX = "legs_exceed_max"
    LEG_COUNTS_DIFFER = "leg_counts_differ"
    LEDGER_MUST_NOT_BE_ZERO = "ledger_must_not_be_zero"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    EXISTS_WITH_DIFFERENT_ACCOUNT_ID = "exists_with_different_account_id"
    EXISTS_WITH_DIFFERENT_DIRECTION = "exists_with_different_direction"
    EXISTS_WITH_DIFFERENT_LEGS = "exists_with_different_legs"
    EXISTS_WITH_DIFFERENT_USER_DATA = "exists_with_different_user_data"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS = "exists"
    ACCOUNT_NOT_FOUND = "account_not_found"
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = (
        "transfer_must_have_the_same_ledger_as_accounts"
    )
    ACCOUNT_ALREADY_CLOSED = "account_already_closed"
    LEG_ACCOUNT_ID_MUST_BE_VALID = "leg_account_id_must_be_valid"
    LEG_ACCOUNTS_MUST_BE_UNIQUE = "leg_accounts_must_be_unique"
    LEG_AMOUNT_MUST_BE_POSITIVE = "leg_amount_must_be_positive"
    LEG_ACCOUNT_NOT_FOUND = "leg_account_not_found"
    LEG_TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = (
        "leg_transfer_must_have_the_same_ledger_as_accounts"
    )
    LEG_ACCOUNT_ALREADY_CLOSED = "leg_account_already_closed"
    LEG_OVERFLOWS = "leg_overflows"
    LEG_EXCEEDS_CREDITS = "leg_exceeds_credits"
    LEG_EXCEEDS_DEBITS = "leg_exceeds_debits"
    OVERFLOWS = "overflows"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"


class CreateResult(msgspec.Struct, frozen=True, gc=False):
    """The outcome of one event of a batch: its index in the batch and its result code."""

    index: int
    result: str
