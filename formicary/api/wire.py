"""Wire types of the HTTP API: msgspec Structs validated on decode, shared with the SDK.

128-bit ids (and user_data_128, user_data_64) travel as strings of decimal digits; integers are
accepted on input too. Their digits and range are checked in `to_account`/`to_transfer` rather
than with `Meta(pattern=..., le=...)`: msgspec bounds must fit in int64 (a 2^128 bound breaks
validation and the OpenAPI page), and a regex per id cost ~0.7 µs per transfer on decode (more
than the engine's whole apply), while `str.isdigit` + `int` costs a tenth of that. The pattern
stays in the JSON schema (`extra_json_schema`) for documentation. Amounts are JSON integers in
minor units, 0 .. 2^63-1.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from formicary.ledger.types import (
    AMOUNT_MAX,
    ID_MAX,
    Account,
    AccountFlags,
    Transfer,
    TransferFlags,
)

__all__ = [
    "AccountIn",
    "AccountOut",
    "BalanceOut",
    "BalancePage",
    "CreateResultOut",
    "CreateResultsOut",
    "FieldErrorOut",
    "InvalidField",
    "Page",
    "ProblemOut",
    "TransferIn",
    "TransferOut",
    "TransferPage",
    "TrialBalanceOut",
    "account_out",
    "parse_id",
    "to_account",
    "to_transfer",
    "transfer_out",
]

DECIMAL_ID_PATTERN = r"^[0-9]{1,39}$"
DecimalId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=39,
        description="unsigned 128-bit integer as a string of decimal digits",
        examples=["7"],
        # Documented, not enforced by msgspec: `parse_id` checks the digits (see above).
        extra_json_schema={"pattern": DECIMAL_ID_PATTERN},
    ),
]
IdIn = DecimalId | Annotated[int, Meta(ge=0)]
Amount = Annotated[int, Meta(ge=0, le=AMOUNT_MAX, description="minor units (fen/cents)")]
Ledger = Annotated[int, Meta(ge=1, le=2**32 - 1, description="currency/asset code, e.g. CNY=156")]
Code = Annotated[int, Meta(ge=1, le=2**16 - 1, description="account or transfer type")]
UserData32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]
TimeoutS = Annotated[int, Meta(ge=0, le=2**32 - 1, description="seconds; pending transfers only")]

AccountFlagName = Literal[
    "debits_must_not_exceed_credits", "credits_must_not_exceed_debits", "history", "closed"
]
TransferFlagName = Literal[
    "linked",
    "pending",
    "post_pending_transfer",
    "void_pending_transfer",
    "balancing_debit",
    "balancing_credit",
    "closing_debit",
    "closing_credit",
]

_ACCOUNT_FLAG_BITS: dict[str, int] = {f.name.lower(): int(f) for f in AccountFlags if f.name}
_TRANSFER_FLAG_BITS: dict[str, int] = {f.name.lower(): int(f) for f in TransferFlags if f.name}
_ACCOUNT_FLAG_NAMES = [(bit, name) for name, bit in _ACCOUNT_FLAG_BITS.items() if bit]
_TRANSFER_FLAG_NAMES = [(bit, name) for name, bit in _TRANSFER_FLAG_BITS.items() if bit]


class InvalidField(ValueError):
    """A field passed type validation but not a range check (e.g. an id above 2^128 - 1)."""


# gc=False on the input records: a batch decodes thousands of them per request and they never
# take part in reference cycles, so keeping them out of the cyclic GC saves its scans (~0.1 µs
# per event, more on a big heap).
class AccountIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: IdIn
    ledger: Ledger
    code: Code
    flags: list[AccountFlagName] = []
    user_data_128: IdIn = 0
    user_data_64: IdIn = 0
    user_data_32: UserData32 = 0


class TransferIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: IdIn
    amount: Amount
    debit_account_id: IdIn = 0
    credit_account_id: IdIn = 0
    ledger: Annotated[int, Meta(ge=0, le=2**32 - 1)] = 0
    code: Annotated[int, Meta(ge=0, le=2**16 - 1)] = 0
    flags: list[TransferFlagName] = []
    pending_id: IdIn | None = None
    timeout: TimeoutS = 0
    user_data_128: IdIn = 0
    user_data_64: IdIn = 0
    user_data_32: UserData32 = 0


class AccountOut(msgspec.Struct):
    id: str
    ledger: int
    code: int
    flags: list[str]
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    user_data_128: str
    user_data_64: str
    user_data_32: int
    timestamp: int


class TransferOut(msgspec.Struct):
    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    ledger: int
    code: int
    flags: list[str]
    pending_id: str | None
    timeout: int
    user_data_128: str
    user_data_64: str
    user_data_32: int
    timestamp: int


class CreateResultOut(msgspec.Struct):
    index: int
    id: str
    result: str


class CreateResultsOut(msgspec.Struct):
    results: list[CreateResultOut]


class BalanceOut(msgspec.Struct):
    timestamp: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int


class Page(msgspec.Struct):
    """One page of a listing; pass `next_cursor` back as `cursor` for the next page."""

    items: list[TransferOut] | list[BalanceOut]
    next_cursor: str | None


class TransferPage(msgspec.Struct):
    """One page of an account's transfers; pass `next_cursor` back as `cursor` for the next."""

    items: list[TransferOut]
    next_cursor: str | None


class BalancePage(msgspec.Struct):
    """One page of a history account's balances; pass `next_cursor` back as `cursor`."""

    items: list[BalanceOut]
    next_cursor: str | None


class FieldErrorOut(msgspec.Struct, omit_defaults=True):
    """One invalid input: where (`$[0].amount`, `limit`, `id`) and what is wrong with it."""

    path: str
    message: str


class ProblemOut(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document (`application/problem+json`); `code` is stable."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldErrorOut] = []


class TrialBalanceOut(msgspec.Struct):
    ledger: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    balanced: bool


def parse_id(value: str | int, field: str, *, maximum: int = ID_MAX) -> int:
    """An id from the wire as an int: decimal digits only, at most `maximum`."""
    if isinstance(value, str):
        # isascii: str.isdigit (and int) also accept other scripts' digits, e.g. "١٢".
        if not (value.isascii() and value.isdigit()):
            raise InvalidField(f"{field} must be a string of decimal digits, got {value!r}")
        number = int(value)
    else:
        number = value
    if number > maximum:
        raise InvalidField(f"{field} must be at most {maximum}, got {number}")
    return number


def _id(value: str | int, maximum: int = ID_MAX) -> int:
    """parse_id's fast path: no field name, a bare ValueError; callers re-check to explain."""
    if value.__class__ is str:
        if value.isdigit() and value.isascii():  # type: ignore[union-attr]
            number = int(value)
            if number <= maximum:
                return number
    elif value <= maximum:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    raise ValueError


def _flag_bits(names: list[str], bits: dict[str, int]) -> int:
    mask = 0
    for name in names:
        mask |= bits[name]
    return mask


_UD64_MAX = 2**64 - 1


def to_account(a: AccountIn, index: int) -> Account:
    try:
        return Account(
            id=_id(a.id),
            ledger=a.ledger,
            code=a.code,
            flags=_flag_bits(a.flags, _ACCOUNT_FLAG_BITS) if a.flags else 0,
            user_data_128=_id(a.user_data_128) if a.user_data_128 else 0,
            user_data_64=_id(a.user_data_64, _UD64_MAX) if a.user_data_64 else 0,
            user_data_32=a.user_data_32,
        )
    except ValueError:
        where = f"$[{index}]"
        parse_id(a.id, f"{where}.id")
        parse_id(a.user_data_128, f"{where}.user_data_128")
        parse_id(a.user_data_64, f"{where}.user_data_64", maximum=_UD64_MAX)
        raise  # pragma: no cover - the named checks above raise first


def to_transfer(t: TransferIn, index: int) -> Transfer:
    # The fast path converts without naming fields; only a failure pays for the named re-check.
    pending_id = t.pending_id
    flags = t.flags
    try:
        return Transfer(
            id=_id(t.id),
            debit_account_id=_id(t.debit_account_id),
            credit_account_id=_id(t.credit_account_id),
            amount=t.amount,
            ledger=t.ledger,
            code=t.code,
            flags=_flag_bits(flags, _TRANSFER_FLAG_BITS) if flags else 0,
            pending_id=0 if pending_id is None else _id(pending_id),
            timeout=t.timeout,
            user_data_128=_id(t.user_data_128) if t.user_data_128 else 0,
            user_data_64=_id(t.user_data_64, _UD64_MAX) if t.user_data_64 else 0,
            user_data_32=t.user_data_32,
        )
    except ValueError:
        where = f"$[{index}]"
        parse_id(t.id, f"{where}.id")
        parse_id(t.debit_account_id, f"{where}.debit_account_id")
        parse_id(t.credit_account_id, f"{where}.credit_account_id")
        if pending_id is not None:
            parse_id(pending_id, f"{where}.pending_id")
        parse_id(t.user_data_128, f"{where}.user_data_128")
        parse_id(t.user_data_64, f"{where}.user_data_64", maximum=_UD64_MAX)
        raise  # pragma: no cover - the named checks above raise first


def _flag_names(mask: int, names: list[tuple[int, str]]) -> list[str]:
    return [name for bit, name in names if mask & bit]


def account_out(a: Account) -> AccountOut:
    return AccountOut(
        id=str(a.id),
        ledger=a.ledger,
        code=a.code,
        flags=_flag_names(a.flags, _ACCOUNT_FLAG_NAMES),
        debits_pending=a.debits_pending,
        debits_posted=a.debits_posted,
        credits_pending=a.credits_pending,
        credits_posted=a.credits_posted,
        user_data_128=str(a.user_data_128),
        user_data_64=str(a.user_data_64),
        user_data_32=a.user_data_32,
        timestamp=a.timestamp,
    )


def transfer_out(t: Transfer) -> TransferOut:
    return TransferOut(
        id=str(t.id),
        debit_account_id=str(t.debit_account_id),
        credit_account_id=str(t.credit_account_id),
        amount=t.amount,
        ledger=t.ledger,
        code=t.code,
        flags=_flag_names(t.flags, _TRANSFER_FLAG_NAMES),
        pending_id=str(t.pending_id) if t.pending_id else None,
        timeout=t.timeout,
        user_data_128=str(t.user_data_128),
        user_data_64=str(t.user_data_64),
        user_data_32=t.user_data_32,
        timestamp=t.timestamp,
    )
