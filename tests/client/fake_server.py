"""A small in-memory fake of the ledger HTTP API, for testing the SDK without the real server.

It implements the contract of DESIGN.md §4.1 minimally (posted transfers, balance limits,
linked chains, idempotency keys, cursor pages, problem+json errors) and records every request,
so tests can count POSTs and look at their bodies. It can be served two ways:

- `FakeLedger.transport()`: an httpx.MockTransport for the sync Client (a POST sleeps
  `post_delay_s` in the calling thread, which is what lets concurrent calls pile up);
- `FakeLedger.asgi`: an ASGI app for httpx.ASGITransport and the AsyncClient (a POST awaits
  `post_delay_s`).

Fault injection: `busy_next` answers that many requests with 503 + Retry-After, and
`FlakyTransport` / `AsyncFlakyTransport` raise connection errors before delegating.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import msgspec

from formicary.api.wire import AccountIn, TransferIn

BATCH_EVENTS_MAX = 8190
PROBLEM = "application/problem+json"
JSON = "application/json"

_accounts_decoder = msgspec.json.Decoder(list[AccountIn])
_transfers_decoder = msgspec.json.Decoder(list[TransferIn])


@dataclass
class Recorded:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class FakeLedger:
    post_delay_s: float = 0.0
    batch_events_max: int = BATCH_EVENTS_MAX
    busy_next: int = 0  # answer the next N requests 503 (then normally)
    retry_after: str = "0"
    requests: list[Recorded] = field(default_factory=list)
    accounts: dict[int, dict[str, Any]] = field(default_factory=dict)
    transfers: dict[int, dict[str, Any]] = field(default_factory=dict)
    history: dict[int, list[dict[str, int]]] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], tuple[bytes, bytes]] = field(default_factory=dict)
    clock: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- inspection -----------------------------------------------------------------------------

    def posts(self, path: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and (path is None or r.path == path)]

    # -- serving --------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and self.post_delay_s:
                time.sleep(self.post_delay_s)  # a round trip, during which calls pile up
            status, headers, body = self.handle(
                request.method,
                request.url.path,
                dict(parse_qsl(request.url.query.decode())),
                dict(request.headers),
                request.read(),
            )
            return httpx.Response(status, headers=headers, content=body)

        return httpx.MockTransport(handler)

    async def asgi(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        assert scope["type"] == "http", scope["type"]
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        if scope["method"] == "POST" and self.post_delay_s:
            await asyncio.sleep(self.post_delay_s)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        status, out_headers, body = self.handle(
            scope["method"], scope["path"], query, headers, b"".join(chunks)
        )
        raw = [(k.lower().encode(), v.encode()) for k, v in out_headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    # -- the contract ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Answer:
        with self.lock:
            self.requests.append(Recorded(method, path, query, headers, body))
            if self.busy_next > 0:
                self.busy_next -= 1
                return _problem(
                    503, "service_busy", "queue full", {"Retry-After": self.retry_after}
                )
            try:
                return self._route(method, path, query, headers, body)
            except _Problem as p:
                return _problem(p.status, p.code, p.detail)

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Answer:
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/healthz":
            return _json({"status": "ok"})
        if method == "GET" and path == "/readyz":
            return _json({"status": "ready"})
        if method == "POST" and path in ("/v1/accounts", "/v1/transfers"):
            return self._post(path, headers, body)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "accounts"]:
            account = self.accounts.get(_int_id(parts[2]))
            if account is None:
                raise _Problem(404, "not_found", f"account {parts[2]} not found")
            return _json(account)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "transfers"]:
            transfer = self.transfers.get(_int_id(parts[2]))
            if transfer is None:
                raise _Problem(404, "not_found", f"transfer {parts[2]} not found")
            return _json(transfer)
        if method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "accounts"]:
            account_id = _int_id(parts[2])
            if account_id not in self.accounts:
                raise _Problem(404, "not_found", f"account {parts[2]} not found")
            if parts[3] == "transfers":
                items = [
                    t
                    for t in self.transfers.values()
                    if account_id in (int(t["debit_account_id"]), int(t["credit_account_id"]))
                ]
                return self._page(items, query)
            if parts[3] == "balances":
                if "history" not in self.accounts[account_id]["flags"]:
                    raise _Problem(409, "history_not_enabled", "no history")
                return self._page(self.history.get(account_id, []), query)
            if parts[3] == "balance":
                return _json(self._balance(account_id, query.get("at")))
        if method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "ledgers"]:
            ledger = int(parts[2])
            totals = dict.fromkeys(_BALANCE_FIELDS, 0)
            for a in self.accounts.values():
                if a["ledger"] == ledger:
                    for name in _BALANCE_FIELDS:
                        totals[name] += a[name]
            balanced = (
                totals["debits_posted"] == totals["credits_posted"]
                and totals["debits_pending"] == totals["credits_pending"]
            )
            return _json({"ledger": ledger, **totals, "balanced": balanced})
        raise _Problem(404, "not_found", f"no route {method} {path}")

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> Answer:
        try:
            limit = int(query.get("limit", "10"))
            start = int(query["cursor"].removeprefix("c")) if "cursor" in query else 0
        except ValueError as exc:
            raise _Problem(400, "validation_failed", str(exc)) from exc
        if not 1 <= limit <= 1000:
            raise _Problem(400, "validation_failed", "limit must be in 1..1000")
        lo, hi = int(query.get("from", "0")), int(query.get("to", str(2**63 - 1)))
        selected = [i for i in items if lo <= i["timestamp"] <= hi]
        if query.get("order", "asc") == "desc":
            selected.reverse()
        page = selected[start : start + limit]
        more = start + limit < len(selected)
        return _json({"items": page, "next_cursor": f"c{start + limit}" if more else None})

    def _balance(self, account_id: int, at: str | None) -> dict[str, int]:
        account = self.accounts[account_id]
        if at is None:
            return {"timestamp": self.clock, **{k: account[k] for k in _BALANCE_FIELDS}}
        past = [h for h in self.history.get(account_id, []) if h["timestamp"] <= int(at)]
        if not past:
            return {"timestamp": int(at), **dict.fromkeys(_BALANCE_FIELDS, 0)}
        return past[-1]

    def _post(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        key = headers.get("idempotency-key")
        if key is not None and (path, key) in self.idempotency:
            first_body, first_answer = self.idempotency[(path, key)]
            if first_body != body:
                raise _Problem(422, "idempotency_key_reused", "different body")
            return 200, {"content-type": JSON, "idempotent-replayed": "true"}, first_answer
        decoder = _accounts_decoder if path == "/v1/accounts" else _transfers_decoder
        try:
            events = decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise _Problem(400, "validation_failed", str(exc)) from exc
        except msgspec.DecodeError as exc:
            raise _Problem(400, "validation_failed", f"malformed JSON: {exc}") from exc
        if not events:
            raise _Problem(400, "empty_batch", "the batch holds no events")
        if len(events) > self.batch_events_max:
            raise _Problem(413, "batch_too_large", f"at most {self.batch_events_max} events")
        if path == "/v1/accounts":
            results = [self._create_account(a) for a in events]  # type: ignore[arg-type]
        else:
            results = self._create_transfers(events)  # type: ignore[arg-type]
        answer = msgspec.json.encode(
            {
                "results": [
                    {"index": i, "id": str(e.id), "result": r}
                    for i, (e, r) in enumerate(zip(events, results, strict=True))
                ]
            }
        )
        if key is not None:
            self.idempotency[(path, key)] = (body, answer)
        return 200, {"content-type": JSON}, answer

    def _create_account(self, a: AccountIn) -> str:
        account_id = int(a.id)
        if account_id in self.accounts:
            return "exists"
        self.clock += 1
        self.accounts[account_id] = {
            "id": str(account_id),
            "ledger": a.ledger,
            "code": a.code,
            "flags": list(a.flags),
            **dict.fromkeys(_BALANCE_FIELDS, 0),
            "user_data_128": str(a.user_data_128),
            "user_data_64": str(a.user_data_64),
            "user_data_32": a.user_data_32,
            "timestamp": self.clock,
        }
        return "ok"

    def _create_transfers(self, events: list[TransferIn]) -> list[str]:
        results = [""] * len(events)
        start = 0
        while start < len(events):
            end = start  # the chain is events[start..end]: linked ones, then one closing it
            while end < len(events) and "linked" in events[end].flags:
                end += 1
            if end == len(events):
                for k in range(start, end):
                    results[k] = "linked_event_chain_open"
                break
            snapshot = self._snapshot() if end > start else None
            for k in range(start, end + 1):
                results[k] = self._create_transfer(events[k])
                if results[k] != "ok" and snapshot is not None:
                    # A chain lands whole or not at all: undo it, blame the others.
                    self._restore(snapshot)
                    failed = results[k]
                    for m in range(start, end + 1):
                        results[m] = "linked_event_failed"
                    results[k] = failed
                    break
            start = end + 1
        return results

    def _create_transfer(self, t: TransferIn) -> str:
        transfer_id = int(t.id)
        debit_id, credit_id = int(t.debit_account_id), int(t.credit_account_id)
        existing = self.transfers.get(transfer_id)
        if existing is not None:
            return "exists" if existing["amount"] == t.amount else "exists_with_different_amount"
        if t.amount == 0:
            return "amount_must_not_be_zero"
        if debit_id == credit_id:
            return "accounts_must_be_different"
        debit, credit = self.accounts.get(debit_id), self.accounts.get(credit_id)
        if debit is None:
            return "debit_account_not_found"
        if credit is None:
            return "credit_account_not_found"
        if "debits_must_not_exceed_credits" in debit["flags"] and (
            debit["debits_posted"] + t.amount > debit["credits_posted"]
        ):
            return "exceeds_credits"
        self.clock += 1
        debit["debits_posted"] += t.amount
        credit["credits_posted"] += t.amount
        self.transfers[transfer_id] = {
            "id": str(transfer_id),
            "debit_account_id": str(debit_id),
            "credit_account_id": str(credit_id),
            "amount": t.amount,
            "ledger": t.ledger,
            "code": t.code,
            "flags": list(t.flags),
            "pending_id": None,
            "timeout": t.timeout,
            "user_data_128": str(t.user_data_128),
            "user_data_64": str(t.user_data_64),
            "user_data_32": t.user_data_32,
            "timestamp": self.clock,
        }
        for account in (debit, credit):
            if "history" in account["flags"]:
                self.history.setdefault(int(account["id"]), []).append(
                    {"timestamp": self.clock, **{k: account[k] for k in _BALANCE_FIELDS}}
                )
        return "ok"

    def _snapshot(self) -> tuple[Any, ...]:
        return copy.deepcopy((self.accounts, self.transfers, self.history, self.clock))

    def _restore(self, snapshot: tuple[Any, ...]) -> None:
        self.accounts, self.transfers, self.history, self.clock = copy.deepcopy(snapshot)


_BALANCE_FIELDS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


class _Problem(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _int_id(text: str) -> int:
    if not text.isdigit():
        raise _Problem(400, "validation_failed", f"id must be decimal digits, got {text!r}")
    return int(text)


def _json(value: Any) -> Answer:
    return 200, {"content-type": JSON}, msgspec.json.encode(value)


def _problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Answer:
    body = msgspec.json.encode(
        {
            "type": f"https://formicary.dev/problems/{code.replace('_', '-')}",
            "title": code.replace("_", " "),
            "status": status,
            "detail": detail,
            "code": code,
        }
    )
    return status, {"content-type": PROBLEM, **(headers or {})}, body


# -- flaky transports: connection errors before delegating ------------------------------------


class FlakyTransport(httpx.BaseTransport):
    """Raise `error` for the first `failures` requests, then hand requests to `inner`."""

    def __init__(
        self, inner: httpx.BaseTransport, failures: int, error: type[Exception] = httpx.ConnectError
    ) -> None:
        self.inner = inner
        self.failures = failures
        self.error = error
        self.attempts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error("connection refused", request=request)  # type: ignore[call-arg]
        return self.inner.handle_request(request)


class AsyncFlakyTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of FlakyTransport."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        failures: int,
        error: type[Exception] = httpx.ConnectError,
    ) -> None:
        self.inner = inner
        self.failures = failures
        self.error = error
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error("connection refused", request=request)  # type: ignore[call-arg]
        return await self.inner.handle_async_request(request)


class RawTransport(httpx.BaseTransport):
    """Answer every request with one fixed response (for odd statuses and bodies)."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return httpx.Response(self.status, headers=self.headers, content=self.body)
