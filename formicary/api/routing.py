"""Pieces the product routes share (payments, funds, wealth): one copy of each."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import anyio
from litestar import HttpMethod, Response, route
from litestar.handlers import HTTPRouteHandler

from formicary.api.problems import Problem
from formicary.api.wire import InvalidField, parse_id
from formicary.ledger import LedgerService

__all__ = ["Call", "LazyHost", "ProblemOf", "caller", "wallet_account_id", "with_options"]

T = TypeVar("T")

# A product's refusals: the problem answering a domain error, None for an error that is not a
# refusal (raised as it is). It may raise instead (e.g. ServiceUnavailable: the ledger is down).
ProblemOf = Callable[[Exception], Problem | None]


class Call(Protocol):
    """A blocking domain call, run off the event loop, its refusals answered as problems."""

    async def __call__(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...


def caller(problem: ProblemOf) -> Call:
    """The `_call` of a product's routes: runs `function(*args, **kwargs)` in a worker thread
    (the domain cores block on SQLite and the ledger) and raises `problem(error)` in place of a
    domain error it maps."""

    async def call(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        try:
            return await anyio.to_thread.run_sync(partial(function, *args, **kwargs))
        except Exception as error:
            answer = problem(error)
            if answer is None:
                raise
            raise answer from error

    return call


class LazyHost(ABC, Generic[T]):
    """Opens a product's core (`T`) on first use and closes it with the app, so a server used
    only as a ledger creates no files for it.

    The lock is a thread lock, not an asyncio one: the core opens in a worker thread (the routes
    call `_open` off the event loop), and the operator CLIs open it with no event loop at all.
    """

    def __init__(self, service: Callable[[], LedgerService], state_dir: str | Path) -> None:
        self._service = service
        self.state_dir = Path(state_dir)
        self._lock = threading.Lock()
        self._opened: T | None = None

    def _open(self) -> T:
        """The core, opened once (blocking: off the event loop in the routes)."""
        return self._open_with(self._create)

    def _open_with(self, create: Callable[[], T]) -> T:
        """The core, opened by `create` if not yet open: for a host whose opening takes
        options (those of the first opener apply)."""
        with self._lock:
            if self._opened is None:
                self._opened = create()
            return self._opened

    @abstractmethod
    def _create(self) -> T:
        """Open the core: called once, under the lock. On failure it leaves nothing open."""

    @abstractmethod
    def _release(self, opened: T) -> None:
        """Close what `_create` opened: called once, under the lock."""

    def close(self) -> None:
        with self._lock:
            if self._opened is not None:
                self._release(self._opened)
                self._opened = None


def with_options(handlers: Sequence[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """The handlers, preceded by an explicit OPTIONS handler for each path served by more than
    one method.

    Why: Litestar 2.25 makes a path's automatic OPTIONS handler when the path's first handler is
    registered, and keeps it (answering with that first handler's methods only) when another
    method joins the path. Registered first, an explicit handler takes the automatic one's place.
    """
    methods: dict[str, set[str]] = {}
    for handler in handlers:
        for path in handler.paths:
            methods.setdefault(path, {"OPTIONS"}).update(handler.http_methods)
    options = [_options(path, ", ".join(sorted(m))) for path, m in methods.items() if len(m) > 2]
    return [*options, *handlers]


def _options(path: str, allow: str) -> HTTPRouteHandler:
    @route(path, http_method=[HttpMethod.OPTIONS], include_in_schema=False, status_code=204)
    async def options() -> Response[None]:
        return Response(content=None, status_code=204, headers={"Allow": allow})

    return options


def wallet_account_id(value: str) -> int:
    """A body's `wallet_account_id` (a decimal string) as an account id, or a 400 naming it."""
    try:
        return parse_id(value, "wallet_account_id")
    except InvalidField as error:
        raise Problem.invalid("wallet_account_id", str(error)) from None
