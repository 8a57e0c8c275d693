"""The SDK's one exception tree.

Event failures (``exceeds_credits``, ``exists``, ...) are *results*, never exceptions: the
server reports them per event and the client hands them back as strings. Exceptions are for
requests that were not processed: bad input, absent resources, a busy server, a broken network.
"""

from __future__ import annotations

from formicary.api.wire import FieldErrorOut

__all__ = [
    "ApiError",
    "BadRequest",
    "BusyError",
    "ClientClosedError",
    "Conflict",
    "FormicaryError",
    "InvalidEventError",
    "NetworkError",
    "NotFound",
    "PayloadTooLarge",
    "ProtocolError",
    "ServerError",
]


class FormicaryError(Exception):
    """Base of every error the Formicary SDK raises."""


class InvalidEventError(FormicaryError, ValueError):
    """An event was refused by the client before sending (malformed, or `linked` on a single)."""


class ClientClosedError(FormicaryError, RuntimeError):
    """The client was closed; it sends no more requests."""


class NetworkError(FormicaryError):
    """The server could not be reached or the connection broke, and retries ran out."""


class ProtocolError(FormicaryError):
    """The server answered something that does not match the API contract."""


class ApiError(FormicaryError):
    """The server refused the request with an RFC 9457 problem+json answer."""

    def __init__(
        self,
        status: int,
        *,
        code: str = "",
        title: str = "",
        detail: str = "",
        type: str = "about:blank",  # named after the RFC 9457 member
        retry_after_s: float | None = None,
        errors: list[FieldErrorOut] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.type = type
        # Seconds the server asked us to wait (Retry-After), when it said so.
        self.retry_after_s = retry_after_s
        # Which inputs were wrong (path like `$[3].amount`, message), for validation errors.
        self.errors = errors or []
        summary = f"{status} {title or 'error'}"
        if code:
            summary += f" [{code}]"
        if detail:
            summary += f": {detail}"
        super().__init__(summary)


class BadRequest(ApiError):
    """The request was invalid (400), or its Idempotency-Key was reused with another body (422)."""


class NotFound(ApiError):
    """The resource does not exist (404)."""


class Conflict(ApiError):
    """The request conflicts with the resource's state (409), e.g. history not enabled."""


class PayloadTooLarge(ApiError):
    """The request body or batch was larger than the server accepts (413)."""


class BusyError(ApiError):
    """The server is busy or unavailable (503/429); retried automatically with bounded backoff."""


class ServerError(ApiError):
    """The server failed unexpectedly (5xx other than 503)."""
