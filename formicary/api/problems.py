"""RFC 9457 problem details: one exception type, one set of stable codes, one renderer.

Every error the API answers is `application/problem+json` with a stable `type` URI and `code`,
so that clients branch on `code` and never parse `detail`. Invalid input is 4xx, never 500:
Litestar's own validation errors (malformed JSON, wrong types, out-of-range parameters) and
routing errors are rendered here too. Event failures inside a well-formed batch are *results*
(200), not problems.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from formicary.api.wire import FieldErrorOut, ProblemOut
from formicary.ledger.service import (
    BatchTooLarge,
    LedgerError,
    ServiceBusy,
    ServiceUnavailable,
)

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "exception_handlers",
    "problem_response",
    "problem_responses",
]

log = logging.getLogger("formicary.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://formicary.dev/problems/"
# Seconds a client should wait before retrying a busy or unavailable ledger: long enough for the
# writer to drain a few batches, short enough not to idle a client that retries in a loop.
RETRY_AFTER_S = 1

# code -> (HTTP status, title). The code (and the type URI derived from it) is the stable
# contract; titles are for humans and may be reworded.
CODES: dict[str, tuple[int, str]] = {
    "validation_failed": (400, "The request is invalid"),
    "empty_batch": (400, "The batch holds no events"),
    "batch_too_large": (413, "The batch holds too many events"),
    "payload_too_large": (413, "The request body is too large"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "history_not_enabled": (409, "The account does not keep balance history"),
    "idempotency_key_reused": (422, "The idempotency key was used with a different request"),
    "invalid_order": (422, "The order is invalid"),
    "insufficient_funds": (422, "The wallet cannot pay"),
    "insufficient_shares": (422, "The holder has fewer shares"),
    "instant_limit_exceeded": (422, "Over an instant-redemption limit"),
    "fund_conflict": (409, "The fund cannot do this now"),
    # The fixed-term marketplace's refusals.
    "issuer_refused": (422, "The issuer fails a vetting rule"),
    "sold_out": (422, "Less of the product remains than asked for"),
    "not_on_sale": (422, "The product is not on sale"),
    "invalid_wealth_request": (422, "The marketplace refused the request"),
    "standard_redemption_too_late": (422, "A standard redemption pays after the sale closes"),
    "wealth_conflict": (409, "The marketplace cannot do this now"),
    # The payments core's refusals: the code is the payments error's own `code`.
    "unknown_party": (404, "No such user, merchant, card, campaign, order, payment or refund"),
    "unknown_bill": (404, "No such biller, customer account or open bill"),
    "invalid_request": (400, "The request breaks a payments rule"),
    "invalid_card": (400, "The card number is invalid"),
    "invalid_state": (409, "The record's state does not allow this"),
    "idempotency_conflict": (409, "The key was already used with other terms"),
    "order_already_paid": (409, "The order is paid by another user"),
    "refund_in_progress": (409, "Another refund of this payment is in flight"),
    "settlement_too_early": (409, "The business day has not ended yet"),
    "ledger_rejected": (409, "The ledger refused a movement the payments rules did not expect"),
    "identity_level_too_low": (422, "The user's identity level does not allow this amount"),
    "bill_overpayment": (422, "More than the bill has outstanding"),
    "family_limit_exceeded": (422, "More than is left of this month's family limit"),
    "grant_revoked": (422, "The family grant was revoked"),
    "merchant_balance_insufficient": (422, "The merchant's wallet cannot cover this"),
    "coupon_not_applicable": (422, "The campaign does not apply to this order"),
    "coupon_exhausted": (422, "The campaign's budget cannot cover the discount"),
    "refund_exceeds_payment": (422, "The refunds would exceed the payment"),
    "bank_declined": (422, "The bank declined"),
    "payment_timed_out": (422, "The card reservation expired before the bank confirmed"),
    "payment_code_error": (422, "The code was refused"),
    "code_expired": (422, "The payment code has expired"),
    "code_replayed": (422, "The payment code was already used"),
    "code_forged": (422, "The code is not one the platform issued"),
    "payment_error": (422, "The payment was refused"),
    "bank_busy": (503, "The bank is busy"),
    "service_busy": (503, "The ledger is busy"),
    "service_unavailable": (503, "The ledger is unavailable"),
    "internal_error": (500, "Internal error"),
}

_encoder = msgspec.json.Encoder()
# msgspec's messages end with " - at `$[0].amount`": split it off as the field path.
_AT_PATH = re.compile(r"^(?P<message>.*) - at `(?P<path>[^`]*)`$", re.DOTALL)


class Problem(Exception):
    """An error to answer as problem+json: a stable code, a human detail, field errors."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        errors: list[FieldErrorOut] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        assert code in CODES, code
        super().__init__(detail)
        self.code = code
        self.status, self.title = CODES[code]
        self.detail = detail
        self.errors = errors or []
        self.headers = headers

    @classmethod
    def invalid(cls, path: str, message: str) -> Problem:
        """A 400 for one invalid field, e.g. `invalid("id", "must be decimal digits")`."""
        return cls(
            "validation_failed",
            f"{message} - at `{path}`",
            errors=[FieldErrorOut(path=path, message=message)],
        )

    @classmethod
    def from_decode_error(cls, error: msgspec.MsgspecError) -> Problem:
        """A 400 for a body msgspec rejected: malformed JSON, wrong type, out of range."""
        text = str(error)
        match = _AT_PATH.match(text)
        errors = (
            [FieldErrorOut(path=match["path"], message=match["message"])]
            if match
            else [FieldErrorOut(path="$", message=text)]
        )
        return cls("validation_failed", text, errors=errors)


def problem_response(problem: Problem) -> Response[bytes]:
    body = ProblemOut(
        type=PROBLEM_TYPE_BASE + problem.code.replace("_", "-"),
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        code=problem.code,
        errors=problem.errors,
    )
    return Response(
        content=_encoder.encode(body),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def _from_http_exception(exc: HTTPException) -> Problem:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        errors = []
        for item in exc.extra if isinstance(exc.extra, list) else []:
            if isinstance(item, dict):
                errors.append(
                    FieldErrorOut(
                        path=str(item.get("key") or "$"),
                        message=str(item.get("message", "")),
                    )
                )
        detail = "; ".join(f"{e.path}: {e.message}" for e in errors) or exc.detail
        return Problem("validation_failed", detail, errors=errors)
    if status == 404:
        return Problem("not_found", exc.detail)
    if status == 405:
        return Problem("method_not_allowed", exc.detail, headers=exc.headers)
    if status == 413:
        return Problem("payload_too_large", exc.detail)
    if 400 <= status < 500:
        return Problem("validation_failed", exc.detail)
    log.error("HTTP %d: %s", status, exc.detail)
    return Problem("internal_error", "the server failed to answer this request")


def _handle_problem(_: Request[Any, Any, Any], exc: Problem) -> Response[bytes]:
    return problem_response(exc)


def _handle_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    return problem_response(_from_http_exception(exc))


def _handle_ledger(_: Request[Any, Any, Any], exc: LedgerError) -> Response[bytes]:
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    if isinstance(exc, ServiceBusy):
        return problem_response(Problem("service_busy", str(exc), headers=retry))
    if isinstance(exc, BatchTooLarge):
        # The route checks sizes first; this is the service's own guard answering.
        return problem_response(Problem("batch_too_large", str(exc)))
    if not isinstance(exc, ServiceUnavailable):
        log.error("unexpected ledger error: %s", exc)
    return problem_response(Problem("service_unavailable", str(exc), headers=retry))


def _handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # A bug: log it with the traceback, answer without leaking internals.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(Problem("internal_error", "the server failed to answer this request"))


exception_handlers: dict[type[Exception], Any] = {
    Problem: _handle_problem,
    HTTPException: _handle_http,
    LedgerError: _handle_ledger,
    Exception: _handle_unexpected,
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI `responses=` entries declaring problem+json for each status."""
    descriptions = {
        400: "Invalid request (problem+json, code `validation_failed` or `empty_batch`;"
        " payments: `invalid_request`, `invalid_card`)",
        404: "Not found (problem+json, code `not_found`; payments: `unknown_party`)",
        409: "Conflict with the current state (`history_not_enabled`, `fund_conflict`; payments:"
        " `idempotency_conflict`, `order_already_paid`, `refund_in_progress`, `invalid_state`,"
        " `settlement_too_early`, `ledger_rejected`; wealth: `wealth_conflict`)",
        413: "Too many events or too large a body (`batch_too_large`, `payload_too_large`)",
        422: "Well-formed but refused (`idempotency_key_reused`, `invalid_order`,"
        " `insufficient_funds`, `insufficient_shares`, `instant_limit_exceeded`; payments:"
        " `merchant_balance_insufficient`, `identity_level_too_low`, `coupon_not_applicable`,"
        " `coupon_exhausted`, `refund_exceeds_payment`, `bank_declined`, `payment_timed_out`,"
        " `code_expired`, `code_replayed`, `code_forged`; wealth: `issuer_refused`, `sold_out`,"
        " `not_on_sale`, `insufficient_funds`, `standard_redemption_too_late`,"
        " `invalid_wealth_request`)",
        500: "Internal error (problem+json, code `internal_error`)",
        503: "Ledger (or, for payments, the bank) busy or unavailable, nothing applied; retry"
        " after `Retry-After` seconds (`service_busy`, `service_unavailable`, `bank_busy`)",
    }
    return {
        status: ResponseSpec(
            data_container=ProblemOut,
            media_type=PROBLEM_MEDIA_TYPE,
            description=descriptions.get(status, HTTPStatus(status).phrase),
            generate_examples=False,
        )
        for status in statuses
    }


assert all(HTTPStatus(status) for status, _ in CODES.values())
