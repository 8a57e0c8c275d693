"""Pieces the product routes share (payments, funds, wealth): one copy of each."""

from __future__ import annotations

from collections.abc import Sequence

from litestar import HttpMethod, Response, route
from litestar.handlers import HTTPRouteHandler

from formicary.api.problems import Problem
from formicary.api.wire import InvalidField, parse_id

__all__ = ["wallet_account_id", "with_options"]


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
