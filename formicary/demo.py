"""`formicary demo`: a small payment platform's busy minute, end to end over the real API.

It starts `formicary serve` on the embedded SQLite default, opens a bank clearing account, a
platform fee account, user and merchant wallets, funds the users from their bank, then runs a
burst of payments from several concurrent clients. Each payment is one linked chain — user to
merchant, merchant to platform fee (0.6%) — so it lands whole or not at all; some users overspend
and are refused, and some card payments are two-phase (reserve, then capture or release).
Finally it prints balances, throughput and the books' conservation check.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from formicary.api.wire import AccountIn, TransferIn
from formicary.client import Client
from formicary.process import ServerProcess

__all__ = ["run_demo"]

CNY = 156
BANK = 1
FEES = 2
USER_BASE = 1_000_000
MERCHANT_BASE = 2_000_000
WALLET_CODE, BANK_CODE, FEE_CODE = 10, 20, 30
TOPUP, PAYMENT, FEE, CARD_PAYMENT = 1, 2, 3, 4
FEE_RATE = Decimal("0.006")  # offline QR plan: 0.6%, rounded half-even to the fen
REQUEST_EVENTS = 1_000
CLIENT_THREADS = 4


def fee_fen(amount_fen: int) -> int:
    return int((Decimal(amount_fen) * FEE_RATE).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def _accounts(users: int, merchants: int) -> list[AccountIn]:
    wallet = ["debits_must_not_exceed_credits"]
    accounts = [
        AccountIn(id=str(BANK), ledger=CNY, code=BANK_CODE),
        AccountIn(id=str(FEES), ledger=CNY, code=FEE_CODE),
    ]
    accounts += [
        AccountIn(id=str(USER_BASE + u), ledger=CNY, code=WALLET_CODE, flags=wallet)
        for u in range(users)
    ]
    accounts += [
        AccountIn(id=str(MERCHANT_BASE + m), ledger=CNY, code=WALLET_CODE, flags=wallet)
        for m in range(merchants)
    ]
    return accounts


def _payment_requests(
    rng: random.Random, users: int, merchants: int, payments: int, first_id: int
) -> list[list[TransferIn]]:
    """Requests of whole payments (chains are never split across requests)."""
    requests: list[list[TransferIn]] = []
    current: list[TransferIn] = []
    next_id = first_id
    for _ in range(payments):
        user = str(USER_BASE + rng.randrange(users))
        merchant = str(MERCHANT_BASE + rng.randrange(merchants))
        amount = rng.choice((350, 990, 1_500, 2_680, 3_800, 12_800, 29_900, 88_800))
        fee = fee_fen(amount)
        legs: list[TransferIn]
        if rng.random() < 0.9:  # wallet payment: user -> merchant, merchant -> platform fee
            legs = [
                TransferIn(
                    id=str(next_id),
                    debit_account_id=user,
                    credit_account_id=merchant,
                    amount=amount,
                    ledger=CNY,
                    code=PAYMENT,
                    flags=["linked"],
                ),
                TransferIn(
                    id=str(next_id + 1),
                    debit_account_id=merchant,
                    credit_account_id=str(FEES),
                    amount=fee,
                    ledger=CNY,
                    code=FEE,
                ),
            ]
            next_id += 2
        else:  # card payment: reserve at the bank, then capture (or release if declined)
            reserve = TransferIn(
                id=str(next_id),
                debit_account_id=str(BANK),
                credit_account_id=merchant,
                amount=amount,
                ledger=CNY,
                code=CARD_PAYMENT,
                flags=["pending"],
                timeout=60,
            )
            captured = rng.random() < 0.95
            finish = TransferIn(
                id=str(next_id + 1),
                amount=0,
                pending_id=str(next_id),
                flags=["post_pending_transfer" if captured else "void_pending_transfer"],
                # Code and accounts may stay 0: a post or void inherits them from the pending.
            )
            legs = [reserve, finish]
            next_id += 2
        if len(current) + len(legs) > REQUEST_EVENTS:
            requests.append(current)
            current = []
        current.extend(legs)
    if current:
        requests.append(current)
    return requests


def run_demo(
    console: Console, database_url: str | None, *, users: int, merchants: int, payments: int
) -> bool:
    """Run the demo; return whether the books balanced."""
    rng = random.Random(2015_11_11)
    with tempfile.TemporaryDirectory(prefix="formicary-demo-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'demo.db'}"
        console.rule("[bold]Formicary demo")
        console.print(f"starting [bold]formicary serve[/bold] on {url}")
        with (
            ServerProcess(url, log_path=Path(tmp) / "serve.log") as server,
            Client(server.base_url) as client,
        ):
            console.print(f"service ready at {server.base_url} (API docs: {server.base_url}/docs)")
            return _run(console, client, rng, users, merchants, payments)


def _run(
    console: Console,
    client: Client,
    rng: random.Random,
    users: int,
    merchants: int,
    payments: int,
) -> bool:
    accounts = _accounts(users, merchants)
    opened = Counter(r.result for r in client.create_accounts(accounts))
    console.print(f"opened {len(accounts):,} accounts: {dict(opened)}")

    topups = [
        TransferIn(
            id=str(i + 1),
            debit_account_id=str(BANK),
            credit_account_id=str(USER_BASE + i),
            amount=rng.randrange(50_000, 2_000_000),
            ledger=CNY,
            code=TOPUP,
        )
        for i in range(users)
    ]
    funded = Counter(r.result for r in client.create_transfers(topups))
    console.print(f"funded {users:,} users from their bank cards: {dict(funded)}")

    requests = _payment_requests(rng, users, merchants, payments, first_id=users + 1)
    events = sum(len(r) for r in requests)
    outcomes: Counter[str] = Counter()
    progress = Progress(
        TextColumn("[bold]payments burst"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    started = time.perf_counter()
    with progress, ThreadPoolExecutor(CLIENT_THREADS) as pool:
        task = progress.add_task("burst", total=events)
        for results in pool.map(client.create_transfers, requests):
            outcomes.update(r.result for r in results)
            progress.advance(task, len(results))
    seconds = time.perf_counter() - started

    table = Table(title="burst results (one row per result code)")
    table.add_column("result")
    table.add_column("events", justify="right")
    for code, count in outcomes.most_common():
        table.add_row(code, f"{count:,}")
    console.print(table)
    if outcomes["exceeds_credits"]:
        console.print(
            "exceeds_credits: the user's wallet could not cover the payment, so the whole chain"
            " was refused (its fee leg answers linked_event_failed) and no money moved"
        )
    console.print(
        f"[bold]{events:,} transfers in {seconds:.2f} s = "
        f"{events / seconds:,.0f} transfers/s[/bold]"
        f" ({CLIENT_THREADS} concurrent clients, {REQUEST_EVENTS:,} events per request)"
    )
    return _check_books(console, client, users, merchants)


def _check_books(console: Console, client: Client, users: int, merchants: int) -> bool:
    bank = client.get_account(str(BANK))
    fees = client.get_account(str(FEES))
    assert bank is not None and fees is not None
    merchant_accounts = [client.get_account(str(MERCHANT_BASE + m)) for m in range(merchants)]
    table = Table(title="top merchants (balance = credits - debits, yuan)")
    table.add_column("merchant")
    table.add_column("balance", justify="right")
    ranked = sorted(
        (a for a in merchant_accounts if a is not None),
        key=lambda a: a.credits_posted - a.debits_posted,
        reverse=True,
    )
    for a in ranked[:5]:
        table.add_row(a.id, yuan(a.credits_posted - a.debits_posted))
    console.print(table)
    console.print(
        f"bank clearing owes users and merchants {yuan(bank.debits_posted - bank.credits_posted)};"
        f" platform fee income {yuan(fees.credits_posted - fees.debits_posted)}"
    )
    trial = client.trial_balance(CNY)
    balanced = trial.balanced and trial.debits_posted == trial.credits_posted
    colour = "green" if balanced else "red"
    console.print(
        f"[{colour}]conservation check: total debits {yuan(trial.debits_posted)} "
        f"== total credits {yuan(trial.credits_posted)}; pending {yuan(trial.debits_pending)}"
        f" == {yuan(trial.credits_pending)}: {'balanced' if balanced else 'NOT BALANCED'}"
        f"[/{colour}]"
    )
    negative = [
        a.id
        for a in merchant_accounts
        if a is not None and a.debits_posted + a.debits_pending > a.credits_posted
    ]
    if negative:
        console.print(f"[red]wallets over their limit: {negative[:5]}[/red]")
    return balanced and not negative
