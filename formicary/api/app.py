"""The HTTP API: Litestar routes under /v1 over one LedgerService.

The hot routes (`POST /v1/accounts`, `POST /v1/transfers`) decode the body straight into typed
msgspec Structs with one cached, strict decoder (see `_BatchRequest`), convert to ledger records,
submit the batch through the service's async API and encode one result per event. Event failures
are results (200); a malformed request is a 4xx problem+json and applies nothing.

Reads of single records and balances go to the engine through `query_async` (they run on the
writer between batches, so they see exactly the committed state). Listings (transfers of an
account, balance history) are blocking store queries and run on a worker thread.
"""

import base64
import binascii
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio
import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Example, Tag
from litestar.params import Body, HeaderParameter, PathParameter, QueryParameter
from litestar.serialization import encode_json

from formicary.api.funds_routes import DEFAULT_FUNDS_DIR, FUNDS_DIR_ENV, FundHost, fund_routes
from formicary.api.idempotency import IdempotencyCache
from formicary.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from formicary.api.metrics import HttpMetrics, render
from formicary.api.openapi import polish_openapi
from formicary.api.payments_routes import (
    DEFAULT_PAYMENTS_DIR,
    PAYMENTS_DIR_ENV,
    PaymentsHost,
    payment_routes,
)
from formicary.api.problems import Problem, exception_handlers, problem_responses
from formicary.api.wealth_routes import (
    DEFAULT_WEALTH_DIR,
    WEALTH_DIR_ENV,
    WealthHost,
    wealth_routes,
)
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
    account_out,
    to_account,
    to_transfer,
    transfer_out,
)
from formicary.ledger.engine import Engine
from formicary.ledger.service import LedgerService, ServiceUnavailable
from formicary.ledger.store import DEFAULT_DATABASE_URL, StoreError, open_store
from formicary.ledger.types import (
    BATCH_EVENTS_MAX,
    ID_MAX,
    LEDGER_MAX,
    Account,
    AccountBalance,
    AccountFlags,
)

__all__ = ["DATABASE_URL_ENV", "create_app"]

log = logging.getLogger("formicary.api")

DATABASE_URL_ENV = "FORMICARY_DATABASE_URL"
# The schemes `open_store` understands.
_STORE_URL_PREFIXES = ("sqlite://", "postgresql://", "postgres://")
API_VERSION = "0.1.0"
TIMESTAMP_MAX = 2**63 - 1
PAGE_LIMIT_MAX = 1000
PAGE_LIMIT_DEFAULT = 100
# /readyz must answer quickly even when the writer or the store hangs.
READY_TIMEOUT_S = 2.0
# A batch of 8,190 events with every optional field is ~3.5 MB of JSON; leave headroom.
REQUEST_BODY_MAX_BYTES = 16 * 1024 * 1024

T = TypeVar("T")
E = TypeVar("E")
Row = TypeVar("Row")

_ACCOUNTS_DECODER = msgspec.json.Decoder(list[AccountIn])
_TRANSFERS_DECODER = msgspec.json.Decoder(list[TransferIn])
_encoder = msgspec.json.Encoder()
_HISTORY = int(AccountFlags.HISTORY)


class StatusOut(msgspec.Struct):
    status: str


class _BatchRequest(Request[Any, Any, Any]):
    """Decode a batch body with the route's cached, strict msgspec decoder.

    Litestar's default decodes JSON to dicts and then converts them with `strict=False` (which
    would accept `"amount": "500"`). One typed, strict decode is both faster and exact; the
    signature model then passes the decoded Structs through untouched.
    """

    async def body(self) -> bytes:
        body = await super().body()
        if not body:
            raise Problem(
                "validation_failed",
                "the request body is empty: send a JSON array of 1 to 8190 events",
                errors=[FieldErrorOut(path="$", message="missing request body")],
            )
        return body

    async def json(self) -> Any:
        decoder: msgspec.json.Decoder[Any] = self.route_handler.opt["batch_decoder"]
        try:
            events = decoder.decode(await self.body())
        except msgspec.MsgspecError as error:
            raise Problem.from_decode_error(error) from None
        if not events:
            raise Problem("empty_batch", "a batch holds 1 to 8190 events, this one has none")
        if len(events) > BATCH_EVENTS_MAX:
            raise Problem(
                "batch_too_large",
                f"a batch holds at most {BATCH_EVENTS_MAX} events, this one has {len(events)}; "
                "split it (nothing was applied)",
            )
        return events


# ----------------------------------------------------------------------------- parameters

IdPath = Annotated[
    str,
    PathParameter(
        pattern=r"^[0-9]{1,39}$",
        description="unsigned 128-bit id as decimal digits (at most 2^128 - 1)",
        examples=[Example(value="1")],
    ),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=255,
        description="Replays the first answer for a retried request with the same key and body "
        "(header `Idempotent-Replayed: true`); the same key with a different body is a 422. "
        "Keys live in memory for 24 h or the last 100,000 keys. After a server restart the "
        "ledger's own idempotency by event id still holds: re-sent events answer `exists` and "
        "nothing is applied twice.",
    ),
]
Limit = Annotated[
    int,
    QueryParameter(ge=1, le=PAGE_LIMIT_MAX, description="page size, 1 to 1000", required=False),
]
Cursor = Annotated[
    str | None,
    QueryParameter(
        max_length=200,
        required=False,
        description="`next_cursor` of the previous page (same `order`)",
    ),
]
TimestampFrom = Annotated[
    int,
    QueryParameter(
        name="from",
        ge=0,
        le=TIMESTAMP_MAX,
        required=False,
        description="only items with timestamp >= from (ns, inclusive)",
    ),
]
TimestampTo = Annotated[
    int,
    QueryParameter(
        ge=0,
        le=TIMESTAMP_MAX,
        required=False,
        description="only items with timestamp <= to (ns, inclusive)",
    ),
]
Order = Annotated[
    Literal["asc", "desc"],
    QueryParameter(required=False, description="oldest first (asc) or newest first (desc)"),
]


def _path_id(value: str, name: str) -> int:
    # The pattern already admitted only 1-39 ASCII digits; 39 digits can still exceed 2^128 - 1.
    if not (value.isascii() and value.isdigit()):
        raise Problem.invalid(name, "must be decimal digits")
    number = int(value)
    if number > ID_MAX:
        raise Problem.invalid(name, f"must be at most {ID_MAX}")
    return number


def _convert(data: Sequence[E], convert: Callable[[E, int], T]) -> list[T]:
    try:
        return [convert(event, index) for index, event in enumerate(data)]
    except InvalidField as error:
        path, _, message = str(error).partition(" ")
        raise Problem.invalid(path, message) from None


# ----------------------------------------------------------------------------- cursors


def _encode_cursor(order: str, timestamp: int) -> str:
    raw = f"{order}:{timestamp}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(cursor: str, order: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        cursor_order, _, digits = raw.partition(":")
        timestamp = int(digits) if digits.isascii() and digits.isdigit() else -1
    except (binascii.Error, UnicodeDecodeError, ValueError):
        cursor_order, timestamp = "", -1
    if cursor_order not in ("asc", "desc") or not 0 <= timestamp <= TIMESTAMP_MAX:
        raise Problem.invalid("cursor", "is not a cursor returned by this API")
    if cursor_order != order:
        raise Problem.invalid("cursor", f"was issued for order={cursor_order}, not {order}")
    return timestamp


def _window(
    timestamp_from: int, timestamp_to: int, cursor: str | None, order: str
) -> tuple[int, int]:
    """The inclusive timestamp range still to list: [from, to] narrowed past the cursor."""
    low, high = timestamp_from, timestamp_to
    if cursor is not None:
        last = _decode_cursor(cursor, order)
        # Timestamps are unique, so "strictly after the last one seen" loses and repeats nothing.
        if order == "asc":
            low = max(low, last + 1)
        else:
            high = min(high, last - 1)
    return low, high


def _next_cursor(rows: Sequence[Any], limit: int, order: str) -> str | None:
    # We fetched limit + 1 rows: a row beyond the page means there is a next page.
    if len(rows) <= limit:
        return None
    return _encode_cursor(order, rows[limit - 1].timestamp)


def _balance_out(b: AccountBalance) -> BalanceOut:
    return BalanceOut(
        timestamp=b.timestamp,
        debits_pending=b.debits_pending,
        debits_posted=b.debits_posted,
        credits_pending=b.credits_pending,
        credits_posted=b.credits_posted,
    )


def _current_balance(engine: Engine, account_id: int) -> BalanceOut | None:
    a = engine.accounts.get(account_id)
    if a is None:
        return None
    return BalanceOut(
        timestamp=engine.last_timestamp,
        debits_pending=a.debits_pending,
        debits_posted=a.debits_posted,
        credits_pending=a.credits_pending,
        credits_posted=a.credits_posted,
    )


def _trial_balance(engine: Engine, ledger: int) -> TrialBalanceOut:
    dp, dpo, cp, cpo = engine.trial_balance(ledger)
    return TrialBalanceOut(
        ledger=ledger,
        debits_pending=dp,
        debits_posted=dpo,
        credits_pending=cp,
        credits_posted=cpo,
        balanced=dp == cp and dpo == cpo,
    )


# ----------------------------------------------------------------------------- the app


class _Context:
    """What the handlers share: the service (set at startup) and the HTTP-layer state."""

    def __init__(self, service: LedgerService | None) -> None:
        self._service = service
        self.idempotency = IdempotencyCache()
        self.http_metrics = HttpMetrics()

    @property
    def service(self) -> LedgerService:
        service = self._service
        if service is None:
            raise ServiceUnavailable("the ledger service is not running")
        return service


def create_app(
    *,
    database_url: str | None = None,
    service: LedgerService | None = None,
    funds_dir: str | Path | None = None,
    payments_dir: str | Path | None = None,
    wealth_dir: str | Path | None = None,
) -> Litestar:
    """The API app. With `service`, the caller owns its life cycle; without, the app opens the
    store at `database_url` (or $FORMICARY_DATABASE_URL, or the default SQLite file) on startup
    and closes it on shutdown. The money-market fund keeps its own files in `funds_dir` (or
    $FORMICARY_FUNDS_DIR, or ./formicary-funds), created on its first request; the payments core
    likewise in `payments_dir` (or $FORMICARY_PAYMENTS_DIR, or ./formicary-payments), its secret
    from $FORMICARY_PAYMENTS_SECRET or a file generated there; the fixed-term marketplace in
    `wealth_dir` (or $FORMICARY_WEALTH_DIR, or ./formicary-wealth)."""
    assert service is None or database_url is None, "pass a service or a database URL, not both"
    ctx = _Context(service)
    funds = FundHost(
        lambda: ctx.service,
        funds_dir or os.environ.get(FUNDS_DIR_ENV) or DEFAULT_FUNDS_DIR,
    )
    payments = PaymentsHost(
        lambda: ctx.service,
        payments_dir or os.environ.get(PAYMENTS_DIR_ENV) or DEFAULT_PAYMENTS_DIR,
    )
    wealth = WealthHost(
        lambda: ctx.service,
        wealth_dir or os.environ.get(WEALTH_DIR_ENV) or DEFAULT_WEALTH_DIR,
        # The server's fund (opened once, by its host): fund-funded purchases, payouts into it.
        fund=lambda: funds._open()[0],
    )
    owns_service = service is None
    url = database_url or os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL
    if owns_service and not url.startswith(_STORE_URL_PREFIXES):
        # Fail now, not at startup, so that `formicary serve` can say what is wrong. Opening
        # the store is I/O and waits for the lifespan.
        raise StoreError(
            f"unsupported database URL {url!r}: use sqlite:///path or postgresql://..."
        )

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        if not owns_service:
            try:
                yield
            finally:
                funds.close()
                payments.close()
                wealth.close()
            return
        # Opening, migrating and replaying the log is blocking I/O: keep it off the event loop.
        store = await anyio.to_thread.run_sync(open_store, url)
        started = LedgerService(store)
        try:
            await anyio.to_thread.run_sync(started.start)
        except BaseException:
            store.close()
            raise
        ctx._service = started
        log.info("ledger service started on %s", url.split("@")[-1])
        try:
            yield
        finally:
            funds.close()
            payments.close()
            wealth.close()
            ctx._service = None
            await anyio.to_thread.run_sync(started.close)

    async def answer(
        route: str,
        request: Request[Any, Any, Any],
        events: list[Any],
        idempotency_key: str | None,
        submit: Callable[[list[Any]], Awaitable[list[str]]],
    ) -> Response[CreateResultsOut]:
        replayed = False
        if idempotency_key is None:
            results = await submit(events)
        else:
            body = await request.body()
            results, replayed = await ctx.idempotency.run(
                route, idempotency_key, body, partial(submit, events)
            )
        assert len(results) == len(events), "one result per event"
        ids = [str(event.id) for event in events]
        # Positional construction through map: ~2x faster than a keyword comprehension.
        out = CreateResultsOut(list(map(CreateResultOut, range(len(ids)), ids, results)))
        return Response(
            content=_encoder.encode(out),
            media_type=MediaType.JSON,
            status_code=200,
            headers={"Idempotent-Replayed": "true"} if replayed else None,
        )

    batch_route: dict[str, Any] = {
        "status_code": 200,
        "request_class": _BatchRequest,
        "request_max_body_size": REQUEST_BODY_MAX_BYTES,
        "responses": problem_responses(400, 413, 422, 503),
        "response_headers": [
            ResponseHeader(
                name="Idempotent-Replayed",
                description="`true` when this answer replays an earlier one (Idempotency-Key)",
                documentation_only=True,
                required=False,
            )
        ],
    }

    @post(
        "/v1/accounts",
        opt={"batch_decoder": _ACCOUNTS_DECODER},
        summary="Create accounts (a batch of 1 to 8190)",
        tags=["accounts"],
        **batch_route,
    )
    async def create_accounts(
        request: Request[Any, Any, Any],
        data: Annotated[
            list[AccountIn],
            Body(min_items=1, max_items=BATCH_EVENTS_MAX, description="accounts to create"),
        ],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[CreateResultsOut]:
        """One result per account, in order: `ok`, `exists`, or why it was not created."""
        accounts = _convert(data, to_account)
        return await answer(
            "accounts", request, accounts, idempotency_key, ctx.service.create_accounts_async
        )

    @post(
        "/v1/transfers",
        opt={"batch_decoder": _TRANSFERS_DECODER},
        summary="Create transfers (a batch of 1 to 8190)",
        tags=["transfers"],
        **batch_route,
    )
    async def create_transfers(
        request: Request[Any, Any, Any],
        data: Annotated[
            list[TransferIn],
            Body(min_items=1, max_items=BATCH_EVENTS_MAX, description="transfers to create"),
        ],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[CreateResultsOut]:
        """One result per transfer, in order. Linked chains succeed or fail together."""
        transfers = _convert(data, to_transfer)
        return await answer(
            "transfers", request, transfers, idempotency_key, ctx.service.create_transfers_async
        )

    async def require_account(account_id: int) -> Account:
        found = await ctx.service.query_async(lambda e: e.lookup_accounts((account_id,)))
        if not found:
            raise Problem("not_found", f"account {account_id} does not exist")
        return found[0]

    def require_history(account: Account) -> None:
        if not account.flags & _HISTORY:
            raise Problem(
                "history_not_enabled",
                f"account {account.id} was created without the `history` flag, so its balance "
                'history is not recorded; create accounts with flags ["history"] to query it',
            )

    async def in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(partial(function, *args, **kwargs))

    async def page_rows(
        query: Callable[..., list[Row]],
        account_id: int,
        window: tuple[int, int],
        limit: int,
        order: str,
    ) -> list[Row]:
        """Up to limit + 1 rows of a store listing (the extra row says whether a next page
        exists); the store query is blocking I/O, so it runs off the event loop."""
        low, high = window
        if low > high:
            return []
        return await in_thread(
            query,
            account_id,
            timestamp_min=low,
            timestamp_max=high,
            limit=limit + 1,
            reverse=order == "desc",
        )

    @get(
        "/v1/accounts/{account_id:str}",
        responses=problem_responses(400, 404, 503),
        summary="Look up an account (committed balances)",
        tags=["accounts"],
    )
    async def get_account(account_id: IdPath) -> AccountOut:
        number = _path_id(account_id, "account_id")
        return account_out(await require_account(number))

    @get(
        "/v1/transfers/{transfer_id:str}",
        responses=problem_responses(400, 404, 503),
        summary="Look up a transfer",
        tags=["transfers"],
    )
    async def get_transfer(transfer_id: IdPath) -> TransferOut:
        number = _path_id(transfer_id, "transfer_id")
        found = await ctx.service.query_async(
            lambda e: [transfer_out(t) for t in e.lookup_transfers((number,))]
        )
        if not found:
            raise Problem("not_found", f"transfer {number} does not exist")
        return found[0]

    @get(
        "/v1/accounts/{account_id:str}/transfers",
        responses=problem_responses(400, 404, 503),
        summary="Transfers debiting or crediting an account (cursor pagination)",
        tags=["accounts"],
    )
    async def list_account_transfers(
        account_id: IdPath,
        limit: Limit = PAGE_LIMIT_DEFAULT,
        cursor: Cursor = None,
        timestamp_from: TimestampFrom = 0,
        to: TimestampTo = TIMESTAMP_MAX,
        order: Order = "asc",
    ) -> TransferPage:
        number = _path_id(account_id, "account_id")
        window = _window(timestamp_from, to, cursor, order)
        await require_account(number)
        rows = await page_rows(ctx.service.account_transfers, number, window, limit, order)
        return TransferPage(
            items=[transfer_out(t) for t in rows[:limit]],
            next_cursor=_next_cursor(rows, limit, order),
        )

    @get(
        "/v1/accounts/{account_id:str}/balances",
        responses=problem_responses(400, 404, 409, 503),
        summary="Balance history of a `history` account (cursor pagination)",
        tags=["accounts"],
    )
    async def list_account_balances(
        account_id: IdPath,
        limit: Limit = PAGE_LIMIT_DEFAULT,
        cursor: Cursor = None,
        timestamp_from: TimestampFrom = 0,
        to: TimestampTo = TIMESTAMP_MAX,
        order: Order = "asc",
    ) -> BalancePage:
        number = _path_id(account_id, "account_id")
        window = _window(timestamp_from, to, cursor, order)
        require_history(await require_account(number))
        rows = await page_rows(ctx.service.account_balances, number, window, limit, order)
        return BalancePage(
            items=[_balance_out(b) for b in rows[:limit]],
            next_cursor=_next_cursor(rows, limit, order),
        )

    @get(
        "/v1/accounts/{account_id:str}/balance",
        responses=problem_responses(400, 404, 409, 503),
        summary="An account's balances now, or as of a timestamp (`history` accounts)",
        tags=["accounts"],
    )
    async def get_account_balance(
        account_id: IdPath,
        at: Annotated[
            int | None,
            QueryParameter(
                ge=0,
                le=TIMESTAMP_MAX,
                required=False,
                description="balances right after the last event at or before this timestamp "
                "(ns); needs the `history` flag. Without it: the current balances.",
            ),
        ] = None,
    ) -> BalanceOut:
        number = _path_id(account_id, "account_id")
        if at is None:
            current = await ctx.service.query_async(lambda e: _current_balance(e, number))
            if current is None:
                raise Problem("not_found", f"account {number} does not exist")
            return current
        account = await require_account(number)
        require_history(account)
        rows = await in_thread(
            ctx.service.account_balances, number, timestamp_max=at, limit=1, reverse=True
        )
        if rows:
            return _balance_out(rows[0])
        if at < account.timestamp:
            raise Problem(
                "not_found",
                f"account {number} was created at {account.timestamp}, after {at}",
            )
        # Created at or before `at` with no event since: every balance is still zero.
        return BalanceOut(
            timestamp=account.timestamp,
            debits_pending=0,
            debits_posted=0,
            credits_pending=0,
            credits_posted=0,
        )

    @get(
        "/v1/ledgers/{ledger:str}/trial-balance",
        responses=problem_responses(400, 503),
        summary="Totals of debits and credits over every account of a ledger",
        tags=["ledgers"],
    )
    async def get_trial_balance(
        ledger: Annotated[
            str,
            PathParameter(
                pattern=r"^[0-9]{1,10}$",
                description="ledger code, 1 to 2^32 - 1 (e.g. 156)",
                examples=[Example(value="156")],
            ),
        ],
    ) -> TrialBalanceOut:
        number = int(ledger) if ledger.isascii() and ledger.isdigit() else 0
        if not 1 <= number <= LEDGER_MAX:
            raise Problem.invalid("ledger", f"must be an integer from 1 to {LEDGER_MAX}")
        return await ctx.service.query_async(partial(_trial_balance, ledger=number))

    @get("/healthz", summary="The process is up", tags=["operations"])
    async def healthz() -> StatusOut:
        return StatusOut(status="ok")

    @get(
        "/readyz",
        responses=problem_responses(503),
        summary="The ledger accepts requests and its store answers",
        tags=["operations"],
    )
    async def readyz() -> StatusOut:
        service = ctx.service
        if not service.ready:
            raise ServiceUnavailable("the ledger service is not ready")
        try:
            with anyio.fail_after(READY_TIMEOUT_S):
                # The writer answers between batches, and the store answers a query.
                await service.query_async(lambda e: e.last_timestamp)
                await anyio.to_thread.run_sync(
                    partial(service.account_transfers, 0, limit=1), abandon_on_cancel=True
                )
        except TimeoutError:
            raise ServiceUnavailable(
                f"the ledger did not answer within {READY_TIMEOUT_S} s"
            ) from None
        except ServiceUnavailable:
            raise
        except Exception as error:
            raise ServiceUnavailable(f"the store failed a query: {error}") from None
        return StatusOut(status="ready")

    @get(
        "/metrics",
        media_type=METRICS_CONTENT_TYPE,
        summary="Prometheus metrics (text format 0.0.4)",
        tags=["operations"],
    )
    async def metrics() -> str:
        return render(ctx._service, ctx.http_metrics, ctx.idempotency)

    openapi_json: list[bytes] = []

    @get("/openapi.json", include_in_schema=False, media_type=MediaType.JSON)
    async def openapi(request: Request[Any, Any, Any]) -> bytes:
        if not openapi_json:
            openapi_json.append(encode_json(request.app.openapi_schema.to_schema()))
        return openapi_json[0]

    app = Litestar(
        route_handlers=[
            create_accounts,
            create_transfers,
            get_account,
            get_transfer,
            list_account_transfers,
            list_account_balances,
            get_account_balance,
            get_trial_balance,
            healthz,
            readyz,
            metrics,
            openapi,
            *fund_routes(funds),
            *payment_routes(payments, ctx.idempotency),
            *wealth_routes(wealth),
        ],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        middleware=[ctx.http_metrics],
        openapi_config=OpenAPIConfig(
            title="Formicary ledger API",
            version=API_VERSION,
            description="Double-entry ledger: batches of accounts and transfers, lookups, "
            "balances and history; the money-market fund, the payments core and the fixed-term "
            "marketplace on it. Errors are RFC 9457 problem+json with a stable `code`.",
            path="/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
            tags=[
                Tag(name="accounts"),
                Tag(name="transfers"),
                Tag(name="ledgers"),
                Tag(name="funds"),
                Tag(name="payments"),
                Tag(name="wealth"),
                Tag(name="operations"),
            ],
        ),
        request_max_body_size=REQUEST_BODY_MAX_BYTES,
    )
    polish_openapi(app.openapi_schema)
    app.state.context = ctx
    app.state.payments = payments
    return app
