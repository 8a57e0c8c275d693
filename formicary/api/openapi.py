"""Touch-ups of the OpenAPI document Litestar generates, so that it states the real contract.

Two things Litestar cannot express from our types:
- 128-bit id fields are `DecimalId | int`; Litestar renders the union without the digit pattern
  or the integer's bounds (msgspec cannot carry a 2^128 bound, see `wire.py`). We state both.
- Litestar stores numeric bounds as floats: `le=2**63 - 1` becomes 9.223372036854776e18, which
  is 2^63 — one past int64. Integer schemas get their bounds back as exact integers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar.openapi.spec import OpenAPI, OpenAPIType, Schema

from formicary.api.wire import DECIMAL_ID_PATTERN
from formicary.ledger.types import ID_MAX

__all__ = ["polish_openapi"]

_INT64_MAX = 2**63 - 1
_USER_DATA_64_MAX = 2**64 - 1
_ID_FIELDS = {
    "AccountIn": ("id", "user_data_128", "user_data_64"),
    "TransferIn": (
        "id",
        "debit_account_id",
        "credit_account_id",
        "pending_id",
        "user_data_128",
        "user_data_64",
    ),
}


def polish_openapi(document: OpenAPI) -> OpenAPI:
    """Fix the document in place (before it is first rendered) and return it."""
    schemas = document.components.schemas if document.components else None
    for name, fields in _ID_FIELDS.items():
        component = schemas.get(name) if schemas else None
        if not isinstance(component, Schema) or not component.properties:
            continue
        for field in fields:
            prop = component.properties.get(field)
            if isinstance(prop, Schema):
                component.properties[field] = _id_schema(prop, field)
    _walk(document, set())
    return document


def _id_schema(old: Schema, field: str) -> Schema:
    maximum = _USER_DATA_64_MAX if field == "user_data_64" else ID_MAX
    nullable = any(isinstance(s, Schema) and s.type == OpenAPIType.NULL for s in old.one_of or ())
    variants: list[Schema] = [
        Schema(
            type=OpenAPIType.STRING,
            pattern=DECIMAL_ID_PATTERN,
            description=f"decimal digits, at most {maximum}",
            examples=["7"],
        ),
        Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=maximum),
    ]
    if nullable:
        variants.append(Schema(type=OpenAPIType.NULL))
    return Schema(one_of=variants, default=old.default, description=old.description)


def _exact(bound: float | None) -> int | float | None:
    if not isinstance(bound, float) or not bound.is_integer():
        return bound
    number = int(bound)
    # float(2**63 - 1) rounds up to 2**63: the only lossy bound we use is int64's maximum.
    return _INT64_MAX if number == _INT64_MAX + 1 else number


def _walk(node: Any, seen: set[int]) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, Schema) and node.type == OpenAPIType.INTEGER:
        node.maximum = _exact(node.maximum)
        node.minimum = _exact(node.minimum)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            _walk(getattr(node, f.name), seen)
    elif isinstance(node, dict):
        for value in node.values():
            _walk(value, seen)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, seen)
