"""Strict request bodies for the product routes: decode with the route's own msgspec decoder.

Litestar's default converts with `strict=False`, which would take `"amount_fen": "500"` for 500
or `"licensed": 0` for false (see also app._BatchRequest). A route opts in with
`**strict_body(Kind)`; the signature model then passes the decoded Struct through untouched.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request

from formicary.api.problems import Problem

__all__ = ["StrictRequest", "strict_body"]


class StrictRequest(Request[Any, Any, Any]):
    """A request whose JSON body is decoded by `route_handler.opt["decoder"]`."""

    async def json(self) -> Any:
        decoder: msgspec.json.Decoder[Any] = self.route_handler.opt["decoder"]
        try:
            return decoder.decode(await self.body())
        except msgspec.MsgspecError as error:
            raise Problem.from_decode_error(error) from None


def strict_body(kind: type[msgspec.Struct]) -> dict[str, Any]:
    """Route options that decode the body strictly as `kind`."""
    return {"request_class": StrictRequest, "opt": {"decoder": msgspec.json.Decoder(kind)}}
