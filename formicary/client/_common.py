"""Pieces shared by the sync and async clients: encoding, decoding, errors, chunking, backoff.

Nothing here does I/O, so both clients stay thin shells around the same rules.
"""

from __future__ import annotations

import email.utils
import random
import time
import types
import typing
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, Generic, TypeVar

import httpx
import msgspec

from formicary.api.wire import (
    AccountIn,
    AccountOut,
    BalanceOut,
    BalancePage,
    CreateResultOut,
    CreateResultsOut,
    FieldErrorOut,
    InvalidField,
    TransferIn,
    TransferOut,
    TransferPage,
    TrialBalanceOut,
    to_account,
    to_transfer,
)
from formicary.client._errors import (
    ApiError,
    BadRequest,
    BusyError,
    Conflict,
    InvalidEventError,
    NotFound,
    PayloadTooLarge,
    ProtocolError,
    ServerError,
)
from formicary.ledger.types import BATCH_EVENTS_MAX

# ---------------------------------------------------------------------------------------------
# Limits and defaults. Everything the client does is bounded (TIGER_STYLE): batch size, linger,
# retries, backoff, pages walked by an iterator.

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S: Final = 10.0
# The server's batch limit: one request is one engine batch and one commit (fsync).
DEFAULT_BATCH_MAX: Final = BATCH_EVENTS_MAX
# Linger only when the batcher was idle: just long enough for concurrent callers that arrive
# together to share a request, short against one HTTP round trip (~1 ms on a loopback).
DEFAULT_LINGER_S: Final = 0.0005
LINGER_S_MAX: Final = 1.0
DEFAULT_RETRIES: Final = 6
RETRIES_MAX: Final = 100
DEFAULT_BACKOFF_S: Final = 0.02
DEFAULT_BACKOFF_MAX_S: Final = 2.0
# An iterator gives up (ProtocolError) rather than loop forever on a server bug.
PAGES_MAX: Final = 1_000_000

USER_AGENT: Final = "formicary-client/0.1"
JSON_HEADERS: Final = {"content-type": "application/json", "accept": "application/json"}
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"

# 503 (busy/unavailable) and 429 (rate limited) promise that nothing was applied: retry.
RETRY_STATUSES: Final = frozenset({429, 503})
# Transient transport failures. Not UnsupportedProtocol / LocalProtocolError / InvalidURL:
# those are our own bugs and retrying cannot fix them.
RETRY_EXCEPTIONS: Final = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

E = TypeVar("E", AccountIn, TransferIn)
S = TypeVar("S", bound=msgspec.Struct)


def check_options(batch_max: int, linger_s: float, retries: int) -> None:
    """Fail fast on options outside their limits (a negative linger would spin, etc.)."""
    if not 1 <= batch_max <= BATCH_EVENTS_MAX:
        raise ValueError(f"batch_max must be in 1..{BATCH_EVENTS_MAX}, got {batch_max}")
    if not 0.0 <= linger_s <= LINGER_S_MAX:
        raise ValueError(f"linger_s must be in 0..{LINGER_S_MAX}, got {linger_s}")
    if not 0 <= retries <= RETRIES_MAX:
        raise ValueError(f"retries must be in 0..{RETRIES_MAX}, got {retries}")


def new_idempotency_key() -> str:
    """A fresh key for one POST, reused by every retry of that POST (so a replay is exact)."""
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------
# Encoding. Ids go out as strings of decimal digits: JSON numbers above 2^53 are corrupted by
# many JSON parsers on the way (proxies, JS tooling), and 128-bit ids routinely exceed that.
# Fields still equal to their default are omitted, which shrinks a typical transfer by ~40%;
# the server's decoder fills the same defaults back in.


def _mentions_str(annotation: Any) -> bool:
    """True when a wire field accepts a string (the DecimalId | int id fields)."""
    if annotation is str:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _mentions_str(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(_mentions_str(arg) for arg in typing.get_args(annotation))
    return False


class EventCodec(Generic[E]):
    """Turns a wire input Struct into a compact mirror Struct with ids as strings."""

    def __init__(self, source: type[E], name: str) -> None:
        fields = msgspec.structs.fields(source)
        self.source = source
        # Mirror every field of the source (so fields added to the wire type later travel too)
        # with an `Any` type: values were typed by the caller's Struct already.
        spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for f in fields:
            if f.default is not msgspec.NODEFAULT:
                spec.append((f.name, Any, f.default))
            elif f.default_factory is not msgspec.NODEFAULT:
                spec.append((f.name, Any, msgspec.field(default_factory=f.default_factory)))
            else:
                spec.append((f.name, Any))
        self.wire: type[msgspec.Struct] = msgspec.defstruct(
            name,
            spec,
            omit_defaults=True,
            rename={f.name: f.encode_name for f in fields},
        )
        self._id_positions = tuple(i for i, f in enumerate(fields) if _mentions_str(f.type))

    def encode_form(self, event: E) -> msgspec.Struct:
        if type(event) is not self.source:
            raise InvalidEventError(f"expected {self.source.__name__}, got {type(event).__name__}")
        values = list(msgspec.structs.astuple(event))
        for i in self._id_positions:
            value = values[i]
            # Zero stays an int so that omit_defaults drops it (0 is every id field's default).
            if type(value) is int and value:
                values[i] = str(value)
        return self.wire(*values)


ACCOUNT_CODEC: Final = EventCodec(AccountIn, "_AccountWire")
TRANSFER_CODEC: Final = EventCodec(TransferIn, "_TransferWire")
ENCODER: Final = msgspec.json.Encoder()


def validate_event(event: E) -> None:
    """Check one event as the server would, before it joins an auto-batch.

    Why: an auto-batched request carries events from many independent callers, and a server
    400/422 refuses the whole request. Checking each event on submit keeps one caller's typo
    from failing everybody else's transfers.
    """
    kind = type(event)
    try:
        checked = msgspec.convert(msgspec.structs.asdict(event), kind)
        if kind is TransferIn:
            to_transfer(checked, 0)
        else:
            to_account(checked, 0)
    except (msgspec.ValidationError, InvalidField) as exc:
        # to_transfer/to_account name the field "$[0].x"; the caller passed no list.
        message = str(exc).replace("$[0].", "")
        raise InvalidEventError(f"invalid {kind.__name__}: {message}") from exc


def check_single(event: E, kind: type[E]) -> None:
    """Preconditions for create_account/create_transfer (auto-batched single events)."""
    if type(event) is not kind:
        raise InvalidEventError(f"expected {kind.__name__}, got {type(event).__name__}")
    # A linked event binds itself to whatever event comes next in the request; in an
    # auto-batch that is a stranger's event, and the chain would be meaningless (or left open).
    if "linked" in event.flags:
        raise InvalidEventError(
            "a single auto-batched event must not carry the 'linked' flag: "
            "send the whole chain as one list with create_transfers()"
        )
    validate_event(event)


def chunks(events: Sequence[E], batch_max: int) -> Iterator[tuple[int, Sequence[E]]]:
    """Split a list into requests of at most batch_max events, never inside a linked chain.

    Yields (offset, chunk). A chain (events flagged `linked`, closed by the first one without)
    is atomic only inside one request, so a cut may fall only after a chain-closing event.
    """
    total = len(events)
    start = 0
    while start < total:
        end = min(start + batch_max, total)
        if end < total:
            cut = end
            # Walk back to just after the last event that does not continue a chain.
            while cut > start and "linked" in getattr(events[cut - 1], "flags", ()):
                cut -= 1
            if cut == start:
                raise InvalidEventError(
                    f"a linked chain starting at index {start} is longer than "
                    f"batch_max={batch_max}; it cannot be sent atomically"
                )
            end = cut
        yield start, events[start:end]
        start = end


def encode_batch(events: Sequence[E], codec: EventCodec[E]) -> bytes:
    return ENCODER.encode([codec.encode_form(e) for e in events])


def encode_wire_forms(forms: Sequence[msgspec.Struct]) -> bytes:
    return ENCODER.encode(forms)


# ---------------------------------------------------------------------------------------------
# Decoding. One Decoder per type, built once: msgspec decoders hold no per-call state, so they
# are safe to share between threads.


class _Problem(msgspec.Struct):
    type: str = "about:blank"
    title: str = ""
    status: int | None = None
    detail: str = ""
    code: str = ""
    errors: list[FieldErrorOut] = []


RESULTS_DECODER: Final = msgspec.json.Decoder(CreateResultsOut)
ACCOUNT_DECODER: Final = msgspec.json.Decoder(AccountOut)
TRANSFER_DECODER: Final = msgspec.json.Decoder(TransferOut)
BALANCE_DECODER: Final = msgspec.json.Decoder(BalanceOut)
TRIAL_BALANCE_DECODER: Final = msgspec.json.Decoder(TrialBalanceOut)
TRANSFER_PAGE_DECODER: Final = msgspec.json.Decoder(TransferPage)
BALANCE_PAGE_DECODER: Final = msgspec.json.Decoder(BalancePage)
_PROBLEM_DECODER: Final = msgspec.json.Decoder(_Problem)


def decode(decoder: msgspec.json.Decoder[S], response: httpx.Response) -> S:
    try:
        return decoder.decode(response.content)
    except msgspec.DecodeError as exc:
        raise ProtocolError(
            f"{response.request.method} {response.request.url.path}: "
            f"unexpected response body ({exc})"
        ) from exc


def results_of(response: httpx.Response, count: int, offset: int = 0) -> list[CreateResultOut]:
    """The per-event results of a create request, checked for one result per event, in order."""
    results = decode(RESULTS_DECODER, response).results
    if len(results) != count or any(r.index != i for i, r in enumerate(results)):
        raise ProtocolError(
            f"expected {count} results indexed 0..{count - 1}, got {len(results)} "
            f"({[r.index for r in results[:5]]}...)"
        )
    if offset:
        # Indexes refer to the caller's whole list, not to the chunk that carried them.
        results = [
            CreateResultOut(index=r.index + offset, id=r.id, result=r.result) for r in results
        ]
    return results


# ---------------------------------------------------------------------------------------------
# Errors.

_STATUS_ERRORS: Final[Mapping[int, type[ApiError]]] = {
    400: BadRequest,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: BadRequest,
    429: BusyError,
    503: BusyError,
}


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def api_error(response: httpx.Response) -> ApiError:
    """The exception for a non-2xx answer, filled from its problem+json body when it has one."""
    status = response.status_code
    problem = _Problem()
    if response.content:
        try:
            problem = _PROBLEM_DECODER.decode(response.content)
        except msgspec.DecodeError:
            # Not problem+json (a proxy's HTML page, say): keep the text as the detail.
            problem = _Problem(detail=response.text[:500])
    if status in _STATUS_ERRORS:
        kind = _STATUS_ERRORS[status]
    elif status >= 500:
        kind = ServerError
    else:
        kind = ApiError
    return kind(
        status,
        code=problem.code,
        title=problem.title or response.reason_phrase,
        detail=problem.detail,
        type=problem.type,
        retry_after_s=_retry_after_s(response.headers.get("retry-after")),
        errors=problem.errors,
    )


def check(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    raise api_error(response)


# ---------------------------------------------------------------------------------------------
# Backoff and paths.


def backoff_s(attempt: int, base_s: float, max_s: float, retry_after_s: float | None) -> float:
    """Delay before retry number `attempt` (0-based): exponential with jitter, capped.

    Jitter spreads the retries of many clients that were refused at the same moment, so they
    do not return as one herd. A server's Retry-After is honoured but still capped by max_s:
    the caller's patience is bounded by `retries * max_s`, whatever the server says.
    """
    ceiling = min(max_s, base_s * (2**attempt))
    delay = ceiling / 2 + random.uniform(0.0, ceiling / 2)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(delay, max_s)


def path_id(value: int | str, what: str = "id") -> str:
    """An id for a URL path: decimal digits only, so nothing can escape the path segment."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer or a string of decimal digits")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what} must not be negative, got {value}")
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 39:
        return value
    raise ValueError(f"{what} must be an integer or a string of decimal digits, got {value!r}")


def page_params(
    limit: int | None,
    cursor: str | None,
    from_: int | None,
    to: int | None,
    order: str | None,
) -> dict[str, str]:
    if order is not None and order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    params: dict[str, str] = {}
    if limit is not None:
        params["limit"] = str(limit)
    if cursor is not None:
        params["cursor"] = cursor
    if from_ is not None:
        params["from"] = str(from_)
    if to is not None:
        params["to"] = str(to)
    if order is not None:
        params["order"] = order
    return params


def next_cursor_or_stop(
    page: TransferPage | BalancePage, cursor: str | None, pages: int
) -> str | None:
    """The cursor of the following page, or None when the walk is over."""
    if page.next_cursor is None:
        return None
    if page.next_cursor == cursor:
        raise ProtocolError(f"the server returned the same cursor twice: {cursor!r}")
    if pages >= PAGES_MAX:
        raise ProtocolError(f"gave up after {PAGES_MAX} pages")
    return page.next_cursor
