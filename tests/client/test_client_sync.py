"""The sync Client against the in-memory fake server (httpx.MockTransport)."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator

import httpx
import msgspec
import pytest
from client_builders import BANK, FAST, LEDGER, accounts, transfer
from fake_server import FakeLedger, FlakyTransport, RawTransport

import formicary.client as sdk


@pytest.fixture
def fake() -> FakeLedger:
    return FakeLedger()


@pytest.fixture
def client(fake: FakeLedger) -> Iterator[sdk.Client]:
    with sdk.Client("http://ledger.test", transport=fake.transport(), **FAST) as client:
        yield client


def test_create_and_read_back(client: sdk.Client, fake: FakeLedger) -> None:
    results = client.create_accounts(accounts(2))
    assert [(r.index, r.id, r.result) for r in results] == [
        (0, "1", "ok"),
        (1, "100", "ok"),
        (2, "101", "ok"),
    ]
    results = client.create_transfers(
        [transfer(1, BANK, 100, 500), transfer(2, 100, 101, 800), transfer(3, 100, 101, 200)]
    )
    assert [r.result for r in results] == ["ok", "exceeds_credits", "ok"]

    wallet = client.get_account(100)
    assert wallet is not None and isinstance(wallet, sdk.AccountOut)
    assert (wallet.debits_posted, wallet.credits_posted) == (200, 500)
    got = client.get_transfer("3")
    assert got is not None and (got.amount, got.debit_account_id) == (200, "100")
    assert client.get_account(999) is None
    assert client.get_transfer(999) is None

    balance = client.balance(100)
    assert (balance.debits_posted, balance.credits_posted) == (200, 500)
    trial = client.trial_balance(LEDGER)
    assert trial.balanced and trial.debits_posted == trial.credits_posted == 700
    assert client.healthz() and client.readyz()

    # Each explicit list is one POST carrying ids as strings and an idempotency key.
    posts = fake.posts()
    assert len(posts) == 2
    assert all(isinstance(e["id"], str) for p in posts for e in p.json())
    assert all(p.headers.get("idempotency-key") for p in posts)


def test_single_calls_return_their_result_code(client: sdk.Client) -> None:
    client.create_accounts(accounts(1))
    assert client.create_account(sdk.AccountIn(id=100, ledger=LEDGER, code=2)) == "exists"
    assert client.create_transfer(transfer(1, BANK, 100, 10)) == "ok"
    assert client.create_transfer(transfer(1, BANK, 100, 10)) == "exists"
    assert client.create_transfer(transfer(2, 100, BANK, 11)) == "exceeds_credits"
    assert client.create_transfer(transfer(3, 404, BANK, 1)) == "debit_account_not_found"


def test_many_threads_are_coalesced_into_few_posts(fake: FakeLedger) -> None:
    threads_count = 64
    # Each POST takes 20 ms, like a loaded server: the calls that arrive meanwhile must queue
    # and ride together in the next request.
    fake.post_delay_s = 0.02
    with sdk.Client("http://ledger.test", transport=fake.transport(), **FAST) as client:
        client.create_accounts(accounts(threads_count))
        client.create_transfers(
            [transfer(10_000 + i, BANK, 100 + i, 100) for i in range(threads_count)]
        )
        posts_before = len(fake.posts("/v1/transfers"))
        barrier = threading.Barrier(threads_count)
        outcomes: dict[int, str | BaseException] = {}

        def work(i: int) -> None:
            # Every 4th wallet overdraws: its own result must say so, the others stay "ok".
            amount = 1_000 if i % 4 == 0 else 60
            barrier.wait()
            try:
                outcomes[i] = client.create_transfer(transfer(i + 1, 100 + i, BANK, amount))
            except BaseException as exc:  # reported by the assertion below
                outcomes[i] = exc

        threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert all(not t.is_alive() for t in threads)

    posts = fake.posts("/v1/transfers")[posts_before:]
    assert len(posts) <= 8, f"{len(posts)} POSTs for {threads_count} calls"
    assert sum(len(p.json()) for p in posts) == threads_count
    assert max(len(p.json()) for p in posts) > 1
    for i in range(threads_count):
        assert outcomes[i] == ("exceeds_credits" if i % 4 == 0 else "ok"), (i, outcomes[i])
    # Every auto-batched POST had its own idempotency key.
    keys = [p.headers["idempotency-key"] for p in posts]
    assert len(set(keys)) == len(keys)


def test_batches_never_exceed_batch_max(fake: FakeLedger) -> None:
    fake.post_delay_s = 0.01
    with sdk.Client(
        "http://ledger.test", transport=fake.transport(), batch_max=5, **FAST
    ) as client:
        client.create_accounts(accounts(1))
        threads = [
            threading.Thread(target=client.create_transfer, args=(transfer(i, BANK, 100, 1),))
            for i in range(1, 41)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        account = client.get_account(100)
    sizes = [len(p.json()) for p in fake.posts("/v1/transfers")]
    assert sum(sizes) == 40 and max(sizes) <= 5
    assert account is not None and account.credits_posted == 40


def test_linked_single_is_refused_before_sending(client: sdk.Client, fake: FakeLedger) -> None:
    with pytest.raises(ValueError, match="linked"):
        client.create_transfer(transfer(1, BANK, 100, 1, "linked"))
    assert fake.posts() == []


def test_invalid_single_is_refused_alone(client: sdk.Client, fake: FakeLedger) -> None:
    with pytest.raises(sdk.InvalidEventError, match="id"):
        client.create_transfer(sdk.TransferIn(id="12x", amount=1))
    with pytest.raises(sdk.InvalidEventError, match="at most"):
        client.create_transfer(sdk.TransferIn(id=2**128, amount=1))
    with pytest.raises(sdk.InvalidEventError, match="expected TransferIn"):
        client.create_transfer(sdk.AccountIn(id=1, ledger=1, code=1))  # type: ignore[arg-type]
    assert fake.posts() == []


def test_long_lists_are_split_between_chains(fake: FakeLedger) -> None:
    with sdk.Client(
        "http://ledger.test", transport=fake.transport(), batch_max=4, **FAST
    ) as client:
        client.create_accounts(accounts(2))
        events = [
            transfer(1, BANK, 100, 10),
            transfer(2, BANK, 100, 10),
            # A chain of three that would straddle the first cut at 4:
            transfer(3, BANK, 101, 5, "linked"),
            transfer(4, 101, 100, 5, "linked"),
            transfer(5, 100, 101, 99),
        ]
        events += [transfer(i, BANK, 100, 1) for i in range(6, 12)]
        results = client.create_transfers(events, idempotency_key="order-42")
    assert [r.index for r in results] == list(range(len(events)))
    assert [r.id for r in results] == [str(i) for i in range(1, 12)]
    # The chain failed as a whole (its last leg overdraws 100) because it went in one request.
    assert [r.result for r in results[2:5]] == [
        "linked_event_failed",
        "linked_event_failed",
        "exceeds_credits",
    ]
    posts = fake.posts("/v1/transfers")
    assert [len(p.json()) for p in posts] == [2, 4, 4, 1]
    assert [p.headers["idempotency-key"] for p in posts] == [
        "order-42.0",
        "order-42.1",
        "order-42.2",
        "order-42.3",
    ]


def test_a_chain_longer_than_a_batch_is_refused(client: sdk.Client, fake: FakeLedger) -> None:
    chain = [transfer(i, BANK, 100, 1, "linked") for i in range(1, 9000)] + [
        transfer(9000, BANK, 100, 1)
    ]
    with pytest.raises(sdk.InvalidEventError, match="linked chain"):
        client.create_transfers(chain)
    assert fake.posts() == []


def test_user_idempotency_key_replays(client: sdk.Client, fake: FakeLedger) -> None:
    client.create_accounts(accounts(1))
    first = client.create_transfers([transfer(1, BANK, 100, 5)], idempotency_key="k1")
    again = client.create_transfers([transfer(1, BANK, 100, 5)], idempotency_key="k1")
    assert [r.result for r in first] == [r.result for r in again] == ["ok"]
    with pytest.raises(sdk.BadRequest) as info:
        client.create_transfers([transfer(2, BANK, 100, 5)], idempotency_key="k1")
    assert info.value.status == 422 and info.value.code == "idempotency_key_reused"


def test_errors_map_to_the_exception_tree(fake: FakeLedger) -> None:
    fake.batch_events_max = 3
    with sdk.Client("http://ledger.test", transport=fake.transport(), **FAST) as client:
        client.create_accounts(accounts(1))
        with pytest.raises(sdk.PayloadTooLarge) as too_large:
            client.create_transfers([transfer(i, BANK, 100, 1) for i in range(1, 5)])
        assert too_large.value.code == "batch_too_large" and too_large.value.status == 413
        with pytest.raises(sdk.BadRequest) as bad:
            client.create_transfers([sdk.TransferIn(id="1", amount=-5)])
        assert bad.value.code == "validation_failed" and "amount" in bad.value.detail
        with pytest.raises(sdk.NotFound) as missing:
            client.balance(999)
        assert missing.value.code == "not_found"
        with pytest.raises(sdk.Conflict):
            client.account_balances(100)  # not a history account
        assert client.create_transfers([]) == []


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (
            500,
            b'{"type":"x","title":"Internal","status":500,"detail":"boom","code":"internal_error"}',
            sdk.ServerError,
            "internal_error",
        ),
        (502, b"<html>bad gateway</html>", sdk.ServerError, ""),
        (418, b"", sdk.ApiError, ""),
    ],
)
def test_unexpected_statuses(
    status: int, body: bytes, error: type[sdk.ApiError], code: str
) -> None:
    with (
        sdk.Client("http://x", transport=RawTransport(status, body), **FAST) as client,
        pytest.raises(error) as info,
    ):
        client.get_account(1)
    assert type(info.value) is error and info.value.code == code and info.value.status == status
    if status == 502:
        assert "bad gateway" in info.value.detail


def test_malformed_success_is_a_protocol_error() -> None:
    transport = RawTransport(200, b'{"results": []}', {"content-type": "application/json"})
    with sdk.Client("http://x", transport=transport, **FAST) as client:
        with pytest.raises(sdk.ProtocolError, match="expected 1 results"):
            client.create_transfers([transfer(1, 2, 3, 4)])
        with pytest.raises(sdk.ProtocolError):
            client.get_account(1)


def test_busy_is_retried_with_the_same_key(client: sdk.Client, fake: FakeLedger) -> None:
    client.create_accounts(accounts(1))
    fake.busy_next = 3
    fake.retry_after = "1"  # honoured, but capped by backoff_max_s: the test stays fast
    assert client.create_transfer(transfer(1, BANK, 100, 5)) == "ok"
    posts = fake.posts("/v1/transfers")
    assert len(posts) == 4
    assert len({p.headers["idempotency-key"] for p in posts}) == 1
    assert len({p.body for p in posts}) == 1


def test_busy_gives_up_after_the_retry_budget(fake: FakeLedger) -> None:
    fake.busy_next = 100
    with (
        sdk.Client("http://x", transport=fake.transport(), retries=2, **FAST) as client,
        pytest.raises(sdk.BusyError) as info,
    ):
        client.create_transfer(transfer(1, BANK, 100, 5))
    assert info.value.status == 503 and info.value.code == "service_busy"
    assert info.value.retry_after_s == 0.0
    assert len(fake.requests) == 3  # the first try and two retries


def test_busy_batch_fails_every_caller_of_that_batch(fake: FakeLedger) -> None:
    fake.busy_next = 100
    fake.post_delay_s = 0.01
    errors: list[BaseException] = []
    with sdk.Client("http://x", transport=fake.transport(), retries=1, **FAST) as client:

        def work(i: int) -> None:
            try:
                client.create_transfer(transfer(i, BANK, 100, 1))
            except sdk.BusyError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 17)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert len(errors) == 16


def test_network_errors_are_retried(fake: FakeLedger) -> None:
    flaky = FlakyTransport(fake.transport(), failures=2)
    with sdk.Client("http://x", transport=flaky, **FAST) as client:
        assert client.create_accounts(accounts(0))[0].result == "ok"
        assert flaky.attempts == 3
        flaky.failures = 10
        with pytest.raises(sdk.NetworkError) as info:
            client.get_account(1)
        assert isinstance(info.value.__cause__, httpx.ConnectError)
        flaky.failures = 10
        assert client.healthz() is False  # probes do not retry, and do not raise


def test_read_timeouts_are_retried(fake: FakeLedger) -> None:
    flaky = FlakyTransport(fake.transport(), failures=1, error=httpx.ReadTimeout)
    with sdk.Client("http://x", transport=flaky, **FAST) as client:
        assert client.get_account(1) is None
    assert flaky.attempts == 2


def test_pagination_walks_every_page(client: sdk.Client, fake: FakeLedger) -> None:
    client.create_accounts(accounts(1, "history"))
    client.create_transfers([transfer(i, BANK, 100, i) for i in range(1, 26)])
    page = client.account_transfers(100, limit=10)
    assert isinstance(page, sdk.TransferPage)
    assert len(page.items) == 10 and page.next_cursor is not None
    second = client.account_transfers(100, limit=10, cursor=page.next_cursor)
    assert [t.id for t in second.items] == [str(i) for i in range(11, 21)]

    before = len(fake.requests)
    walked = list(client.iter_account_transfers(100, limit=7))
    assert [t.amount for t in walked] == list(range(1, 26))
    assert len(fake.requests) - before == 4  # ceil(25 / 7) pages
    assert [t.amount for t in client.iter_account_transfers(100, limit=10, order="desc")] == (
        list(range(25, 0, -1))
    )
    # from_/to select by timestamp.
    stamps = [t.timestamp for t in walked]
    windowed = list(client.iter_account_transfers(100, from_=stamps[5], to=stamps[9]))
    assert [t.amount for t in windowed] == [6, 7, 8, 9, 10]

    history = list(client.iter_account_balances(100, limit=4))
    assert len(history) == 25 and all(isinstance(b, sdk.BalanceOut) for b in history)
    assert history[-1].credits_posted == sum(range(1, 26))
    at = client.balance(100, at=history[2].timestamp)
    assert at.credits_posted == 1 + 2 + 3
    with pytest.raises(ValueError):
        client.account_transfers(100, order="sideways")


def test_a_repeated_cursor_stops_the_iterator() -> None:
    body = msgspec.json.encode({"items": [], "next_cursor": "same"})
    transport = RawTransport(200, body, {"content-type": "application/json"})
    with (
        sdk.Client("http://x", transport=transport) as client,
        pytest.raises(sdk.ProtocolError, match="same cursor"),
    ):
        list(client.iter_account_transfers(1))
    assert transport.calls == 2


def test_closed_client_refuses_calls(fake: FakeLedger) -> None:
    client = sdk.Client("http://x", transport=fake.transport())
    client.close()
    client.close()  # idempotent
    with pytest.raises(sdk.ClientClosedError):
        client.create_transfer(transfer(1, BANK, 100, 1))
    with pytest.raises(sdk.ClientClosedError):
        client.get_account(1)


def test_close_sends_what_is_queued(fake: FakeLedger) -> None:
    fake.post_delay_s = 0.02
    client = sdk.Client("http://x", transport=fake.transport(), **FAST)
    client.create_accounts(accounts(1))
    results: list[str] = []
    refused: list[sdk.ClientClosedError] = []

    def work(i: int) -> None:
        try:
            results.append(client.create_transfer(transfer(i, BANK, 100, 1)))
        except sdk.ClientClosedError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 9)]
    for t in threads:
        t.start()
    client.close()
    for t in threads:
        t.join(timeout=30)
    # Calls that got in before close() were sent; later ones were refused; none hung.
    assert len(results) + len(refused) == 8
    assert all(r == "ok" for r in results)
    assert sum(len(p.json()) for p in fake.posts("/v1/transfers")) == len(results)


def test_the_package_docstring_example_runs(
    fake: FakeLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Docs examples are executed by tests: run the example of `formicary.client`'s docstring
    # with its Client pointed at the fake server, where accounts 1 and 7 exist.
    with sdk.Client("http://x", transport=fake.transport()) as setup:
        setup.create_accounts(
            [sdk.AccountIn(id=1, ledger=156, code=1), sdk.AccountIn(id=7, ledger=156, code=1)]
        )

    class FakeClient(sdk.Client):
        def __init__(self, base_url: str) -> None:
            super().__init__(base_url, transport=fake.transport())

    monkeypatch.setattr(sdk, "Client", FakeClient)
    doc = sdk.__doc__ or ""
    example = textwrap.dedent(doc[doc.index("    from formicary.client") :])
    exec(compile(example, "formicary.client.__doc__", "exec"), {})
    assert fake.transfers[9]["amount"] == 500
