"""POST /v1/payments/batches: many wallet payments per request, each failing alone."""

from __future__ import annotations

from tests.api.test_payments_api import Api, api  # noqa: F401 (the fixture)


def test_a_batch_pays_each_item_and_a_retry_applies_nothing_again(api: Api) -> None:  # noqa: F811
    rich, _ = api.user(balance_fen=100_000)
    poor, _ = api.user(balance_fen=100)
    merchant = api.merchant()
    body = {
        "batch_key": "b1",
        "items": [[rich, merchant, 1_000, 0], [poor, merchant, 5_000, 0], [rich, 999, 10, 0]],
    }
    answer = api.ok("POST", "/batches", body)
    assert answer["results"] == ["ok", "insufficient_funds", "unknown_party"]
    assert (answer["succeeded"], answer["replayed"]) == (1, False)
    assert api.wallet("user", rich) == 100_000 - 1_000
    again = api.ok("POST", "/batches", body)
    assert again["replayed"] and again["results"] == answer["results"]
    assert api.wallet("user", rich) == 100_000 - 1_000
    api.books()


def test_malformed_batches_are_refused(api: Api) -> None:  # noqa: F811
    for body in (
        {"batch_key": "k", "items": []},
        {"batch_key": "", "items": [[1, 1, 1, 0]]},
        {"batch_key": "k", "items": [[1, 1, 0, 0]]},
        {"batch_key": "k", "items": [[1, 1, "5", 0]]},
        {"batch_key": "k", "items": [{"user_id": 1}]},
    ):
        api.refused("POST", "/batches", body, 400, "validation_failed")
