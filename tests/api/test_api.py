"""The HTTP API over both stores: every route, the bad-input list, idempotency, pagination."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import TestClient

from formicary.api import create_app
from formicary.ledger.service import LedgerService, ServiceBusy
from formicary.ledger.store import StoreError
from formicary.ledger.types import AMOUNT_MAX, BATCH_EVENTS_MAX, ID_MAX
from tests.api.schemathesis_support import ROUTES

PROBLEM = "application/problem+json"
CNY = 156
USD = 840


def account(id_: int, *, ledger: int = CNY, code: int = 1, flags: tuple[str, ...] = ()) -> dict:
    return {"id": str(id_), "ledger": ledger, "code": code, "flags": list(flags)}


def transfer(
    id_: int,
    debit: int,
    credit: int,
    amount: int,
    *,
    ledger: int = CNY,
    flags: tuple[str, ...] = (),
    pending_id: int | None = None,
    timeout: int = 0,
) -> dict:
    return {
        "id": str(id_),
        "debit_account_id": str(debit),
        "credit_account_id": str(credit),
        "amount": amount,
        "ledger": ledger,
        "code": 1,
        "flags": list(flags),
        "pending_id": None if pending_id is None else str(pending_id),
        "timeout": timeout,
    }


def create(client: TestClient, kind: str, events: list[Any], **kwargs: Any) -> list[str]:
    response = client.post(f"/v1/{kind}", json=events, **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["index"] for r in body["results"]] == list(range(len(events)))
    assert [r["id"] for r in body["results"]] == [str(int(e["id"])) for e in events]
    return [r["result"] for r in body["results"]]


def get_account(client: TestClient, id_: int) -> dict:
    response = client.get(f"/v1/accounts/{id_}")
    assert response.status_code == 200, response.text
    return response.json()


def balances(client: TestClient, id_: int) -> tuple[int, int, int, int]:
    a = get_account(client, id_)
    return a["debits_pending"], a["debits_posted"], a["credits_pending"], a["credits_posted"]


def assert_problem(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == "https://formicary.dev/problems/" + code.replace("_", "-")
    assert body["title"] and body["detail"]
    return body


def setup_wallets(client: TestClient) -> None:
    """1: bank clearing (unlimited), 2 and 3: wallets that cannot go negative, 4: history."""
    results = create(
        client,
        "accounts",
        [
            account(1),
            account(2, flags=("debits_must_not_exceed_credits",)),
            account(3, flags=("debits_must_not_exceed_credits",)),
            account(4, flags=("history",)),
        ],
    )
    assert results == ["ok"] * 4
    assert create(client, "transfers", [transfer(100, 1, 2, 1_000)]) == ["ok"]


# ----------------------------------------------------------------------------- happy paths


def test_create_and_look_up_accounts_and_transfers(client: TestClient) -> None:
    setup_wallets(client)
    a = get_account(client, 2)
    assert a["id"] == "2" and a["ledger"] == CNY and a["code"] == 1
    assert a["flags"] == ["debits_must_not_exceed_credits"]
    assert balances(client, 2) == (0, 0, 0, 1_000)
    assert balances(client, 1) == (0, 1_000, 0, 0)
    assert a["timestamp"] > 0

    response = client.get("/v1/transfers/100")
    assert response.status_code == 200
    t = response.json()
    assert t["id"] == "100" and t["amount"] == 1_000 and t["pending_id"] is None
    assert t["debit_account_id"] == "1" and t["credit_account_id"] == "2"
    assert t["timestamp"] > a["timestamp"]

    # Re-sending the same events is safe: the ledger answers `exists`, nothing applies twice.
    assert create(client, "accounts", [account(2, flags=("debits_must_not_exceed_credits",))]) == [
        "exists"
    ]
    assert create(client, "transfers", [transfer(100, 1, 2, 1_000)]) == ["exists"]
    assert balances(client, 2) == (0, 0, 0, 1_000)


def test_ids_accept_integers_and_large_strings(client: TestClient) -> None:
    big = ID_MAX - 1
    assert create(client, "accounts", [{"id": big, "ledger": CNY, "code": 7}]) == ["ok"]
    assert get_account(client, big)["id"] == str(big)
    assert create(client, "accounts", [{"id": ID_MAX, "ledger": CNY, "code": 7}]) == [
        "id_must_not_be_int_max"
    ]


def test_linked_chain_and_two_phase(client: TestClient) -> None:
    setup_wallets(client)
    # A payment with a fee: both legs or neither.
    results = create(
        client,
        "transfers",
        [transfer(200, 2, 3, 600, flags=("linked",)), transfer(201, 2, 1, 600)],
    )
    assert results == ["linked_event_failed", "exceeds_credits"]
    assert balances(client, 2) == (0, 0, 0, 1_000)

    assert create(client, "transfers", [transfer(300, 2, 3, 400, flags=("pending",))]) == ["ok"]
    assert balances(client, 2) == (400, 0, 0, 1_000)
    post = transfer(301, 2, 3, 250, flags=("post_pending_transfer",), pending_id=300)
    assert create(client, "transfers", [post]) == ["ok"]
    assert balances(client, 2) == (0, 250, 0, 1_000)
    assert balances(client, 3) == (0, 0, 0, 250)
    assert client.get("/v1/transfers/301").json()["pending_id"] == "300"


def test_trial_balance_is_balanced(client: TestClient) -> None:
    setup_wallets(client)
    create(client, "transfers", [transfer(101, 2, 3, 300), transfer(102, 1, 4, 50)])
    create(client, "transfers", [transfer(103, 3, 2, 100, flags=("pending",))])
    response = client.get(f"/v1/ledgers/{CNY}/trial-balance")
    assert response.status_code == 200
    tb = response.json()
    assert tb == {
        "ledger": CNY,
        "debits_pending": 100,
        "debits_posted": 1_350,
        "credits_pending": 100,
        "credits_posted": 1_350,
        "balanced": True,
    }
    empty = client.get(f"/v1/ledgers/{USD}/trial-balance").json()
    assert empty["debits_posted"] == 0 and empty["balanced"] is True
    assert_problem(client.get("/v1/ledgers/0/trial-balance"), 400, "validation_failed")
    assert_problem(client.get(f"/v1/ledgers/{2**32}/trial-balance"), 400, "validation_failed")


# ----------------------------------------------------------------------------- bad input


def test_malformed_json_applies_nothing(client: TestClient) -> None:
    setup_wallets(client)
    for body in (b"[{", b"not json", b'{"id": "1"}', b"[1, 2]", b""):
        response = client.post(
            "/v1/transfers", content=body, headers={"content-type": "application/json"}
        )
        assert_problem(response, 400, "validation_failed")
    assert balances(client, 2) == (0, 0, 0, 1_000)


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("amount", "500", "$[0].amount"),  # strict: a string is not an integer
        ("amount", 1.5, "$[0].amount"),
        ("amount", -1, "$[0].amount"),
        ("amount", AMOUNT_MAX + 1, "$[0].amount"),
        ("amount", 2**64, "$[0].amount"),
        ("ledger", -1, "$[0].ledger"),
        ("flags", ["no_such_flag"], "$[0].flags[0]"),
        ("id", "12a", "$[0].id"),
        ("id", -5, "$[0].id"),
        ("id", str(ID_MAX + 1), "$[0].id"),
        ("debit_account_id", str(ID_MAX + 1), "$[0].debit_account_id"),
        ("timeout", 2**32, "$[0].timeout"),
        ("unknown_field", 1, "$[0]"),
    ],
)
def test_invalid_fields_are_400_with_path(
    client: TestClient, field: str, value: Any, path: str
) -> None:
    setup_wallets(client)
    event = transfer(500, 1, 2, 10)
    event[field] = value
    body = assert_problem(client.post("/v1/transfers", json=[event]), 400, "validation_failed")
    assert body["errors"][0]["path"] == path
    assert path in body["detail"]
    assert client.get("/v1/transfers/500").status_code == 404
    assert balances(client, 2) == (0, 0, 0, 1_000)


def test_event_failures_are_results(client: TestClient) -> None:
    setup_wallets(client)
    create(client, "accounts", [account(5, ledger=USD), account(6, flags=("closed",))])
    before = {i: balances(client, i) for i in (1, 2, 3, 5, 6)}
    results = create(
        client,
        "transfers",
        [
            transfer(600, 1, 2, 0),  # zero amount
            transfer(601, 1, 99, 10),  # unknown credit account
            transfer(602, 98, 2, 10),  # unknown debit account
            transfer(603, 1, 5, 10),  # different ledgers
            transfer(604, 2, 2, 10),  # same account on both sides
            transfer(605, 1, 6, 10),  # closed account
            transfer(606, 3, 1, 10),  # wallet 3 has no money
        ],
    )
    assert results == [
        "amount_must_not_be_zero",
        "credit_account_not_found",
        "debit_account_not_found",
        "accounts_must_have_the_same_ledger",
        "accounts_must_be_different",
        "credit_account_already_closed",
        "exceeds_credits",
    ]
    assert {i: balances(client, i) for i in (1, 2, 3, 5, 6)} == before
    for id_ in range(600, 607):
        assert_problem(client.get(f"/v1/transfers/{id_}"), 404, "not_found")
    assert client.get("/readyz").status_code == 200


def test_balance_overflow_is_a_result(client: TestClient) -> None:
    create(client, "accounts", [account(1), account(2), account(3)])
    assert create(client, "transfers", [transfer(1, 1, 2, AMOUNT_MAX)]) == ["ok"]
    before = balances(client, 2), balances(client, 3)
    results = create(client, "transfers", [transfer(2, 3, 2, 1)])
    assert results[0].startswith("overflows_credits"), results
    assert (balances(client, 2), balances(client, 3)) == before
    assert balances(client, 2) == (0, 0, 0, AMOUNT_MAX)


def test_empty_and_oversized_batches_apply_nothing(client: TestClient) -> None:
    setup_wallets(client)
    assert_problem(client.post("/v1/transfers", json=[]), 400, "empty_batch")
    assert_problem(client.post("/v1/accounts", json=[]), 400, "empty_batch")
    events = [transfer(10_000 + i, 1, 2, 1) for i in range(BATCH_EVENTS_MAX + 1)]
    assert_problem(client.post("/v1/transfers", json=events), 413, "batch_too_large")
    accounts = [account(10_000 + i) for i in range(BATCH_EVENTS_MAX + 1)]
    assert_problem(client.post("/v1/accounts", json=accounts), 413, "batch_too_large")
    assert client.get("/v1/transfers/10000").status_code == 404
    assert client.get("/v1/accounts/10000").status_code == 404
    assert balances(client, 2) == (0, 0, 0, 1_000)
    # The largest allowed batch goes through in one request.
    results = create(client, "transfers", events[:BATCH_EVENTS_MAX])
    assert results == ["ok"] * BATCH_EVENTS_MAX
    assert balances(client, 2) == (0, 0, 0, 1_000 + BATCH_EVENTS_MAX)


def test_oversized_body_is_413(client: TestClient) -> None:
    body = b"[" + b" " * (17 * 1024 * 1024) + b"]"
    response = client.post(
        "/v1/transfers", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


def test_post_pending_failures_change_nothing(client: TestClient, clock) -> None:
    setup_wallets(client)
    create(
        client,
        "transfers",
        [
            transfer(700, 2, 3, 100, flags=("pending",)),
            transfer(701, 2, 3, 100, flags=("pending",), timeout=1),
        ],
    )
    assert create(
        client,
        "transfers",
        [transfer(702, 0, 0, 0, flags=("void_pending_transfer",), pending_id=700)],
    ) == ["ok"]
    clock.advance(2)  # pending 701 times out: the next batch releases it
    assert create(client, "accounts", [account(7)]) == ["ok"]
    before = balances(client, 2), balances(client, 3)
    assert before[0] == (0, 0, 0, 1_000)
    results = create(
        client,
        "transfers",
        [
            transfer(710, 2, 3, 50, flags=("post_pending_transfer",), pending_id=999),
            transfer(711, 2, 3, 50, flags=("post_pending_transfer",), pending_id=700),
            transfer(712, 2, 3, 50, flags=("post_pending_transfer",), pending_id=701),
        ],
    )
    assert results == [
        "pending_transfer_not_found",
        "pending_transfer_already_voided",
        "pending_transfer_expired",
    ]
    assert (balances(client, 2), balances(client, 3)) == before
    assert client.get("/readyz").status_code == 200


def test_malformed_ids_in_paths(client: TestClient) -> None:
    for path in ("/v1/accounts/abc", "/v1/accounts/-1", "/v1/transfers/1.5", "/v1/accounts/%201"):
        assert_problem(client.get(path), 400, "validation_failed")
    too_big = str(ID_MAX + 1)
    for path in (
        f"/v1/accounts/{too_big}",
        f"/v1/transfers/{too_big}",
        f"/v1/accounts/{too_big}/transfers",
        f"/v1/accounts/{too_big}/balances",
        f"/v1/accounts/{too_big}/balance",
    ):
        assert_problem(client.get(path), 400, "validation_failed")
    assert_problem(client.get("/v1/accounts/7"), 404, "not_found")
    assert_problem(client.get("/v1/transfers/7"), 404, "not_found")
    assert_problem(client.get("/v1/accounts/7/transfers"), 404, "not_found")
    assert_problem(client.get("/v1/accounts/7/balances"), 404, "not_found")
    assert_problem(client.get("/v1/accounts/7/balance"), 404, "not_found")


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404, "not_found")
    response = client.delete("/v1/accounts/1")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


# ----------------------------------------------------------------------------- idempotency


def test_idempotency_key_replays_and_conflicts(client: TestClient) -> None:
    setup_wallets(client)
    batch = [transfer(800, 2, 3, 100), transfer(801, 3, 1, 5_000)]
    key = {"Idempotency-Key": "pay-800"}
    first = client.post("/v1/transfers", json=batch, headers=key)
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    replay = client.post("/v1/transfers", json=batch, headers=key)
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    # The exact first answer (ok, not exists), and nothing applied twice.
    assert replay.json() == first.json()
    assert [r["result"] for r in replay.json()["results"]] == ["ok", "exceeds_credits"]
    assert balances(client, 3) == (0, 0, 0, 100)
    # Without the key, the ledger's idempotency by id still holds.
    assert create(client, "transfers", batch[:1]) == ["exists"]

    other = [transfer(802, 2, 3, 100)]
    body = assert_problem(
        client.post("/v1/transfers", json=other, headers=key), 422, "idempotency_key_reused"
    )
    assert "pay-800" in body["detail"]
    assert client.get("/v1/transfers/802").status_code == 404
    # Keys are scoped per route.
    response = client.post("/v1/accounts", json=[account(50)], headers=key)
    assert response.status_code == 200 and "idempotent-replayed" not in response.headers


def test_failed_requests_are_not_remembered(client: TestClient) -> None:
    setup_wallets(client)
    key = {"Idempotency-Key": "retry-me"}
    assert_problem(
        client.post("/v1/transfers", json=[{"id": "1", "amount": -1}], headers=key),
        400,
        "validation_failed",
    )
    response = client.post("/v1/transfers", json=[transfer(900, 2, 3, 1)], headers=key)
    assert response.status_code == 200
    assert "idempotent-replayed" not in response.headers


# ----------------------------------------------------------------------------- listings


def _walk(client: TestClient, url: str, order: str, limit: int = 100) -> list[list[dict]]:
    pages = []
    cursor = None
    for _ in range(20):  # bounded walk
        params: dict[str, Any] = {"limit": limit, "order": order}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get(url, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("pagination did not end")


def test_pagination_walks_250_transfers_both_ways(client: TestClient) -> None:
    create(client, "accounts", [account(1), account(2, flags=("history",)), account(3)])
    create(client, "transfers", [transfer(1000 + i, 1, 2, i + 1) for i in range(200)])
    create(client, "transfers", [transfer(1200 + i, 1, 2, 201 + i) for i in range(50)])
    create(client, "transfers", [transfer(5000, 1, 3, 1)])  # another account's

    for order in ("asc", "desc"):
        pages = _walk(client, "/v1/accounts/2/transfers", order)
        assert [len(p) for p in pages] == [100, 100, 50]
        items = [t for page in pages for t in page]
        amounts = [t["amount"] for t in items]
        expected = list(range(1, 251))
        assert amounts == (expected if order == "asc" else expected[::-1])
        stamps = [t["timestamp"] for t in items]
        assert stamps == sorted(stamps, reverse=order == "desc")
        assert len(set(stamps)) == 250

        pages = _walk(client, "/v1/accounts/2/balances", order)
        assert [len(p) for p in pages] == [100, 100, 50]
        credits = [b["credits_posted"] for page in pages for b in page]
        running = [sum(range(1, n + 1)) for n in range(1, 251)]
        assert credits == (running if order == "asc" else running[::-1])

    # Time window: from/to are inclusive.
    everything = client.get("/v1/accounts/2/transfers", params={"limit": 1000}).json()["items"]
    assert len(everything) == 250
    low, high = everything[10]["timestamp"], everything[19]["timestamp"]
    window = client.get(
        "/v1/accounts/2/transfers", params={"from": low, "to": high, "limit": 4}
    ).json()
    assert [t["amount"] for t in window["items"]] == [11, 12, 13, 14]
    rest = client.get(
        "/v1/accounts/2/transfers",
        params={"from": low, "to": high, "limit": 100, "cursor": window["next_cursor"]},
    ).json()
    assert [t["amount"] for t in rest["items"]] == list(range(15, 21))
    assert rest["next_cursor"] is None
    assert client.get("/v1/accounts/2/transfers", params={"from": high, "to": low}).json() == {
        "items": [],
        "next_cursor": None,
    }

    # Cursors are opaque but checked.
    cursor = window["next_cursor"]
    assert_problem(
        client.get("/v1/accounts/2/transfers", params={"cursor": cursor, "order": "desc"}),
        400,
        "validation_failed",
    )
    for bad in ("garbage!", "AAAA", ""):
        assert_problem(
            client.get("/v1/accounts/2/transfers", params={"cursor": bad}),
            400,
            "validation_failed",
        )
    for params in ({"limit": 0}, {"limit": 1001}, {"order": "sideways"}, {"from": -1}):
        assert_problem(
            client.get("/v1/accounts/2/transfers", params=params), 400, "validation_failed"
        )


def test_balance_history_and_balance_at(client: TestClient) -> None:
    setup_wallets(client)
    create(client, "transfers", [transfer(110, 1, 4, 10)])
    create(client, "transfers", [transfer(111, 1, 4, 20)])
    create(client, "transfers", [transfer(112, 4, 1, 5, flags=("pending",))])
    history = client.get("/v1/accounts/4/balances").json()["items"]
    assert [(b["debits_pending"], b["credits_posted"]) for b in history] == [
        (0, 10),
        (0, 30),
        (5, 30),
    ]
    created = get_account(client, 4)["timestamp"]
    at = client.get("/v1/accounts/4/balance", params={"at": history[1]["timestamp"]}).json()
    assert at == history[1]
    between = history[1]["timestamp"] + (history[2]["timestamp"] - history[1]["timestamp"]) // 2
    assert client.get("/v1/accounts/4/balance", params={"at": between}).json() == history[1]
    before_any = client.get("/v1/accounts/4/balance", params={"at": created}).json()
    assert before_any == {
        "timestamp": created,
        "debits_pending": 0,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": 0,
    }
    assert_problem(
        client.get("/v1/accounts/4/balance", params={"at": created - 1}), 404, "not_found"
    )
    now = client.get("/v1/accounts/4/balance").json()
    assert (now["debits_pending"], now["credits_posted"]) == (5, 30)
    assert now["timestamp"] >= history[2]["timestamp"]

    # Accounts without the history flag: current balance yes, history no.
    assert client.get("/v1/accounts/2/balance").json()["credits_posted"] == 1_000
    body = assert_problem(client.get("/v1/accounts/2/balances"), 409, "history_not_enabled")
    assert "history" in body["detail"]
    assert_problem(
        client.get("/v1/accounts/2/balance", params={"at": 1}), 409, "history_not_enabled"
    )


# ----------------------------------------------------------------------------- operations

_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})? (?P<value>[-+0-9.eE]+|NaN|\+Inf)$"
)


def parse_metrics(text: str) -> dict[str, float]:
    """A strict-enough reader of the Prometheus text format: every line must parse."""
    samples: dict[str, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"unparsable metrics line {line!r}"
        base = re.sub(r"_(bucket|sum|count)$", "", match["name"])
        assert match["name"] in types or base in types, f"sample without TYPE: {line}"
        samples[match["name"] + (match["labels"] or "")] = float(match["value"])
    return samples


def test_metrics_healthz_readyz(client: TestClient) -> None:
    setup_wallets(client)
    create(client, "transfers", [transfer(120, 3, 1, 1)])  # fails: exceeds_credits
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse_metrics(response.text)
    assert samples["formicary_ledger_ready"] == 1
    assert samples["formicary_ledger_batches_total"] >= 3
    assert samples['formicary_ledger_events_total{kind="accounts"}'] == 4
    assert samples['formicary_ledger_events_total{kind="transfers"}'] == 2
    assert samples["formicary_ledger_results_failed_total"] == 1
    assert samples["formicary_ledger_busy_rejections_total"] == 0
    assert samples["formicary_ledger_commit_failures_total"] == 0
    count = samples["formicary_ledger_commit_seconds_count"]
    assert samples['formicary_ledger_commit_seconds_bucket{le="+Inf"}'] == count >= 3
    key = 'formicary_http_requests_total{method="POST",route="/v1/transfers",status="200"}'
    assert samples[key] == 2


def test_busy_and_unavailable_are_503_with_retry_after(
    client: TestClient, service: LedgerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_wallets(client)

    async def busy(_: Any) -> list[str]:
        raise ServiceBusy("ledger busy: retry shortly")

    monkeypatch.setattr(service, "create_transfers_async", busy)
    response = client.post("/v1/transfers", json=[transfer(130, 2, 3, 1)])
    assert_problem(response, 503, "service_busy")
    assert response.headers["retry-after"] == "1"
    monkeypatch.undo()

    service.close()
    response = client.post("/v1/transfers", json=[transfer(131, 2, 3, 1)])
    assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"]
    assert_problem(client.get("/readyz"), 503, "service_unavailable")
    assert client.get("/healthz").status_code == 200


def test_unexpected_errors_are_500_problems(
    client: TestClient, service: LedgerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(service, "query_async", broken)
    body = assert_problem(client.get("/v1/accounts/1"), 500, "internal_error")
    assert "a bug" not in body["detail"]


def test_openapi_and_docs(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in ROUTES:
        assert path in paths, path
    post = paths["/v1/transfers"]["post"]
    assert "200" in post["responses"] and "201" not in post["responses"]
    for status in ("400", "413", "422", "503"):
        assert "application/problem+json" in post["responses"][status]["content"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "swagger" in docs.text.lower()


def test_bad_database_url_fails_at_creation() -> None:
    with pytest.raises(StoreError, match="unsupported database URL"):
        create_app(database_url="mysql://nope")


def test_app_owns_its_service(database_url: str) -> None:
    """Without a service, the app opens the store on startup and closes it on shutdown."""
    app = create_app(database_url=database_url)
    key = {"Idempotency-Key": "first"}
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        create(client, "accounts", [account(1), account(2)])
        assert create(client, "transfers", [transfer(1, 1, 2, 42)], headers=key) == ["ok"]
    # A new process on the same database recovers the committed state. The idempotency keys
    # are gone with the old process, but the ledger's idempotency by id still holds.
    with TestClient(create_app(database_url=database_url)) as client:
        assert balances(client, 2) == (0, 0, 0, 42)
        response = client.post("/v1/transfers", json=[transfer(1, 1, 2, 42)], headers=key)
        assert response.status_code == 200 and "idempotent-replayed" not in response.headers
        assert response.json()["results"][0]["result"] == "exists"
        assert balances(client, 2) == (0, 0, 0, 42)
