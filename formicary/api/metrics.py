"""Prometheus text exposition (format 0.0.4) of the ledger's and the HTTP layer's counters.

No client library: the counters are plain ints kept by their owners (the service's `Metrics`,
the HTTP middleware below), and rendering them is a few lines of text.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from formicary.ledger.service import LATENCY_BUCKETS_S

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from formicary.api.idempotency import IdempotencyCache
    from formicary.ledger.service import LedgerService

__all__ = ["CONTENT_TYPE", "HttpMetrics", "render"]

# Litestar appends "; charset=utf-8" to text media types.
CONTENT_TYPE = "text/plain; version=0.0.4"


class HttpMetrics(ASGIMiddleware):
    """Count routed HTTP requests by method, route template and status.

    Runs inside Litestar's routing, so `path_template` bounds the label set to the declared
    routes; requests that match no route never reach it (they are 404/405 problems).
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        status = 500  # if the app dies before answering, that is what the client sees

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_counting)
        finally:
            key = (scope.get("method", ""), scope.get("path_template", ""), status)  # type: ignore[call-overload]
            self.requests[key] += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(
    service: LedgerService | None,
    http: HttpMetrics,
    idempotency: IdempotencyCache,
) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, Any]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    ready = 1 if service is not None and service.ready else 0
    metric(
        "formicary_ledger_ready",
        "gauge",
        "1 when the ledger service accepts requests.",
        [("", ready)],
    )
    if service is not None:
        m = service.metrics
        metric("formicary_ledger_batches_total", "counter", "Batches committed.", [("", m.batches)])
        metric(
            "formicary_ledger_events_total",
            "counter",
            "Events committed, by kind.",
            [(f'{{kind="{kind}"}}', count) for kind, count in sorted(m.events.items())],
        )
        metric(
            "formicary_ledger_results_failed_total",
            "counter",
            "Events whose result was not ok.",
            [("", m.results_failed)],
        )
        metric(
            "formicary_ledger_busy_rejections_total",
            "counter",
            "Requests rejected because the queue was full.",
            [("", m.busy_rejections)],
        )
        metric(
            "formicary_ledger_commit_failures_total",
            "counter",
            "Batches whose commit failed (nothing applied).",
            [("", m.commit_failures)],
        )
        metric(
            "formicary_ledger_queued_events",
            "gauge",
            "Events waiting for the writer.",
            [("", service.queued_events)],
        )
        buckets = list(m.commit_buckets)
        cumulative = 0
        samples: list[tuple[str, Any]] = []
        for bound, count in zip(LATENCY_BUCKETS_S, buckets, strict=False):
            cumulative += count
            samples.append((f'_bucket{{le="{bound}"}}', cumulative))
        total = sum(buckets)
        samples.append(('_bucket{le="+Inf"}', total))
        lines.append("# HELP formicary_ledger_commit_seconds Store commit latency per batch.")
        lines.append("# TYPE formicary_ledger_commit_seconds histogram")
        for suffix, value in samples:
            lines.append(f"formicary_ledger_commit_seconds{suffix} {value}")
        lines.append(f"formicary_ledger_commit_seconds_sum {m.commit_seconds_sum:.9f}")
        lines.append(f"formicary_ledger_commit_seconds_count {total}")
    metric(
        "formicary_idempotency_keys",
        "gauge",
        "Idempotency keys remembered.",
        [("", len(idempotency))],
    )
    metric(
        "formicary_idempotency_replays_total",
        "counter",
        "Requests answered by replaying an earlier answer.",
        [("", idempotency.replays)],
    )
    metric(
        "formicary_idempotency_conflicts_total",
        "counter",
        "Idempotency keys reused with a different body.",
        [("", idempotency.conflicts)],
    )
    metric(
        "formicary_http_requests_total",
        "counter",
        "HTTP requests by method, route and status.",
        [
            (f'{{method="{_escape(method)}",route="{_escape(route)}",status="{status}"}}', count)
            for (method, route, status), count in sorted(http.requests.items())
        ],
    )
    return "\n".join(lines) + "\n"
