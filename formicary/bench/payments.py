"""`formicary bench payments`: three-leg payments per second, durable on SQLite.

(a) in process, through the payments batch interface (`PaymentBatches.pay`): each payment is a
linked chain user -> merchant, coupon budget -> merchant, merchant -> platform fee, and every
batch's intent row is durable before its chains reach the ledger.

Setup (not timed): users and merchants registered through the payments core, wallets topped up
from cards (a simulated bank), one platform red-packet campaign with a budget large enough for
every payment. Afterwards the books are checked: the ledger's trial balance, and the sum of the
merchants' wallets equals what the payments say they should hold.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from formicary.ledger import LedgerService, open_store
from formicary.payments import CNY, CampaignKind, FakeBank, IdentityLevel, Payments, PaymentsStore
from formicary.payments.batch import BatchItem, PaymentBatches
from formicary.payments.money import FEE_PLANS, bp_of

__all__ = [
    "TARGET_HTTP_PAYMENTS_PER_S",
    "TARGET_PAYMENTS_PER_S",
    "run_payments_bench",
    "run_payments_http_bench",
]

# Alipay's 2015 Double-11 peak, the target for (a); (b) is over HTTP in batches.
TARGET_PAYMENTS_PER_S = 85_900
TARGET_HTTP_PAYMENTS_PER_S = 30_000
HTTP_CLIENTS = 4
_SECRET = b"formicary-bench-secret-not-for-production"
_COUPON_FEN = 100
_TOP_UP_FEN = 20_000_000  # the most a FULL-level user may move at once

Progress = Callable[[str, int, int], None]


def run_payments_bench(
    *,
    payments: int,
    users: int,
    merchants: int,
    batch_items: int,
    progress: Progress,
    workdir: str | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="formicary-bench-payments-", dir=workdir) as tmp:
        path = Path(tmp)
        ledger = LedgerService(open_store(f"sqlite:///{path}/ledger.db"))
        ledger.start()
        store = PaymentsStore(path / "payments.db")
        core = Payments(ledger, store, FakeBank(), secret=_SECRET)
        batches = PaymentBatches(core, path / "batches.db")
        try:
            core.setup()
            user_ids, merchant_ids, campaign_id = _setup(core, users, merchants, progress)
            rnd = random.Random(11)
            items = [
                BatchItem(
                    user_id=rnd.choice(user_ids),
                    merchant_id=rnd.choice(merchant_ids),
                    amount_fen=rnd.randrange(500, 50_000),
                    campaign_id=campaign_id,
                )
                for _ in range(payments)
            ]
            latencies: list[float] = []
            succeeded = 0
            started = time.perf_counter()
            for n, start in enumerate(range(0, payments, batch_items)):
                chunk = items[start : start + batch_items]
                t0 = time.perf_counter()
                report = batches.pay(f"bench-{n}", chunk)
                latencies.append(time.perf_counter() - t0)
                succeeded += report.succeeded
                progress("payments", start + len(chunk), payments)
            seconds = time.perf_counter() - started
            expected = _expected_merchant_total(core, items)
            held = sum(core.parties.merchant_balance(m) for m in merchant_ids)
            dp, dpo, cp, cpo = ledger.trial_balance(CNY)
            balanced = dpo == cpo and dp == cp and held == expected
        finally:
            batches.close()
            store.close()
            ledger.close()
    latencies.sort()
    rate = succeeded / seconds
    return {
        "machine": {"cores": os.cpu_count()},
        "scenario": "a",
        "payments": payments,
        "succeeded": succeeded,
        "transfers": 3 * succeeded,
        "seconds": round(seconds, 2),
        "payments_per_s": round(rate),
        "transfers_per_s": round(3 * rate),
        "batch_items": batch_items,
        "batch_latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1),
        "batch_latency_ms_p99": round(
            latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1
        ),
        "books_balanced": balanced,
        "target_payments_per_s": TARGET_PAYMENTS_PER_S,
        "met_target": balanced and succeeded == payments and rate >= TARGET_PAYMENTS_PER_S,
    }


def _setup(
    core: Payments, users: int, merchants: int, progress: Progress
) -> tuple[list[int], list[int], int]:
    user_ids = []
    for n in range(users):
        user = core.parties.register_user(f"user-{n}", IdentityLevel.FULL)
        card = core.parties.bind_card(user.id, "ICBC", _card_number(n))
        core.parties.top_up(user.id, card.id, _TOP_UP_FEN, request_id=f"seed-{n}")
        user_ids.append(user.id)
        if n % 500 == 0:
            progress("users", n, users)
    merchant_ids = [
        core.parties.register_merchant(
            f"merchant-{n}",
            category="5411",
            fee_plan="offline_qr",
            settlement_bank_code="CMB",
            settlement_account_number=f"6225{n:012d}",
        ).id
        for n in range(merchants)
    ]
    campaign = core.campaigns.create(
        "double-11 red packets",
        CampaignKind.RED_PACKET,
        discount_fen=_COUPON_FEN,
        budget_fen=10**12,
    )
    return user_ids, merchant_ids, campaign.id


def _expected_merchant_total(core: Payments, items: list[BatchItem]) -> int:
    """What the merchants should hold: each payment's amount less its fee (platform coupon)."""
    rate = FEE_PLANS["offline_qr"].rate_bp
    return sum(i.amount_fen - bp_of(i.amount_fen, rate) for i in items)


def _card_number(n: int) -> str:
    from formicary.payments.parties import luhn_ok

    body = f"622202{n:012d}"
    return next(body + str(d) for d in range(10) if luhn_ok(body + str(d)))


def run_payments_http_bench(
    *,
    payments: int,
    users: int,
    merchants: int,
    batch_items: int,
    progress: Progress,
    workdir: str | None = None,
) -> dict[str, Any]:
    """(b): the same payments as `POST /v1/payments/batches` requests to a real `formicary
    serve` child (SQLite durable), from HTTP_CLIENTS client threads at once."""
    import threading

    import httpx

    from formicary.process import ServerProcess

    with tempfile.TemporaryDirectory(prefix="formicary-bench-payments-http-", dir=workdir) as tmp:
        env = {
            "FORMICARY_PAYMENTS_DIR": f"{tmp}/payments",
            "FORMICARY_FUNDS_DIR": f"{tmp}/funds",
        }
        with (
            ServerProcess(f"sqlite:///{tmp}/ledger.db", env=env) as server,
            httpx.Client(base_url=f"{server.base_url}/v1/payments", timeout=120) as http,
        ):

            def ok(path: str, body: object) -> Any:
                response = http.post(path, json=body)
                assert response.status_code == 200, response.text
                return response.json()

            user_ids = []
            for n in range(users):
                user = ok("/users", {"name": f"user-{n}", "identity_level": "full"})
                card = ok(
                    f"/users/{user['id']}/cards",
                    {"bank_code": "ICBC", "card_number": _card_number(n)},
                )
                ok(
                    f"/users/{user['id']}/top-ups",
                    {"card_id": card["id"], "amount_fen": _TOP_UP_FEN, "request_id": f"s{n}"},
                )
                user_ids.append(user["id"])
                if n % 100 == 0:
                    progress("users", n, users)
            merchant_ids = [
                ok(
                    "/merchants",
                    {
                        "name": f"merchant-{n}",
                        "category": "5411",
                        "fee_plan": "offline_qr",
                        "settlement_bank_code": "CMB",
                        "settlement_account_number": f"6225{n:012d}",
                    },
                )["id"]
                for n in range(merchants)
            ]
            campaign = ok(
                "/campaigns",
                {
                    "name": "red packets",
                    "kind": "red_packet",
                    "discount_fen": _COUPON_FEN,
                    "budget_fen": 10**12,
                },
            )["id"]
            rnd = random.Random(12)
            bodies = []
            for start in range(0, payments, batch_items):
                count = min(batch_items, payments - start)
                items = [
                    [
                        rnd.choice(user_ids),
                        rnd.choice(merchant_ids),
                        rnd.randrange(500, 50_000),
                        campaign,
                    ]
                    for _ in range(count)
                ]
                bodies.append({"batch_key": f"http-{start}", "items": items})
            latencies: list[float] = []
            succeeded = [0]
            lock = threading.Lock()
            queue = list(reversed(bodies))

            def client() -> None:
                with httpx.Client(base_url=f"{server.base_url}/v1/payments", timeout=300) as own:
                    while True:
                        with lock:
                            if not queue:
                                return
                            body = queue.pop()
                        t0 = time.perf_counter()
                        response = own.post("/batches", json=body)
                        elapsed = time.perf_counter() - t0
                        assert response.status_code == 200, response.text
                        with lock:
                            latencies.append(elapsed)
                            succeeded[0] += response.json()["succeeded"]
                            progress("payments", succeeded[0], payments)

            started = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(HTTP_CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - started
            books = httpx.get(f"{server.base_url}/v1/ledgers/{CNY}/trial-balance").json()
            balanced = books["debits_posted"] == books["credits_posted"]
    latencies.sort()
    rate = succeeded[0] / seconds
    return {
        "machine": {"cores": os.cpu_count()},
        "scenario": "b",
        "payments": payments,
        "succeeded": succeeded[0],
        "seconds": round(seconds, 2),
        "payments_per_s": round(rate),
        "transfers_per_s": round(3 * rate),
        "batch_items": batch_items,
        "clients": HTTP_CLIENTS,
        "request_latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1),
        "request_latency_ms_p99": round(latencies[int((len(latencies) - 1) * 0.99)] * 1000, 1),
        "books_balanced": balanced,
        "target_payments_per_s": TARGET_HTTP_PAYMENTS_PER_S,
        "met_target": balanced and succeeded[0] == payments and rate >= TARGET_HTTP_PAYMENTS_PER_S,
    }
