"""The HTTP JSON API (Litestar + msgspec): `create_app()` builds the ASGI app.

`create_app` is imported lazily so that `formicary.api.wire` (shared with the SDK) stays cheap
to import without pulling in Litestar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from formicary.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from formicary.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
