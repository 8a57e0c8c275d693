"""Synthetic payment workloads for benchmarks: wallets funded from a bank, then random payments.

Deterministic for a given seed, so two runs (or two stores) apply exactly the same events.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from formicary.ledger.types import BATCH_EVENTS_MAX, Account, AccountFlags, Transfer

__all__ = ["BANK_ACCOUNT_ID", "LEDGER_CNY", "Workload"]

LEDGER_CNY = 156
BANK_ACCOUNT_ID = 1
WALLET_CODE = 10
BANK_CODE = 20
TOPUP_CODE = 1
PAYMENT_CODE = 2
# Each wallet starts with 1,000,000.00 CNY so random payments of up to 100.00 rarely bounce.
TOPUP_FEN = 100_000_000
PAYMENT_FEN_MAX = 10_000


class Workload:
    """`accounts` wallets (ids 2..accounts+1) plus one bank clearing account (id 1)."""

    def __init__(self, accounts: int, *, seed: int = 11) -> None:
        assert accounts >= 2
        self.accounts = accounts
        self.seed = seed
        self._next_transfer_id = 1

    def account_batches(self) -> Iterator[list[Account]]:
        bank = Account(id=BANK_ACCOUNT_ID, ledger=LEDGER_CNY, code=BANK_CODE)
        wallet_flags = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        batch: list[Account] = [bank]
        for wallet_id in range(2, self.accounts + 2):
            batch.append(
                Account(id=wallet_id, ledger=LEDGER_CNY, code=WALLET_CODE, flags=wallet_flags)
            )
            if len(batch) == BATCH_EVENTS_MAX:
                yield batch
                batch = []
        if batch:
            yield batch

    def topup_batches(self) -> Iterator[list[Transfer]]:
        """One top-up per wallet from the bank clearing account."""
        batch: list[Transfer] = []
        for wallet_id in range(2, self.accounts + 2):
            batch.append(self._transfer(BANK_ACCOUNT_ID, wallet_id, TOPUP_FEN, TOPUP_CODE))
            if len(batch) == BATCH_EVENTS_MAX:
                yield batch
                batch = []
        if batch:
            yield batch

    def payment_batches(self, transfers: int, batch_size: int) -> list[list[Transfer]]:
        """`transfers` random wallet-to-wallet payments, cut into batches of `batch_size`."""
        assert 0 < batch_size <= BATCH_EVENTS_MAX
        rng = random.Random(self.seed)
        randrange = rng.randrange
        first, stop = 2, self.accounts + 2
        batches: list[list[Transfer]] = []
        batch: list[Transfer] = []
        for _ in range(transfers):
            debit = randrange(first, stop)
            credit = randrange(first, stop - 1)
            if credit >= debit:
                credit += 1  # uniform over the other wallets
            batch.append(self._transfer(debit, credit, randrange(1, PAYMENT_FEN_MAX), PAYMENT_CODE))
            if len(batch) == batch_size:
                batches.append(batch)
                batch = []
        if batch:
            batches.append(batch)
        return batches

    def _transfer(self, debit: int, credit: int, amount: int, code: int) -> Transfer:
        transfer_id = self._next_transfer_id
        self._next_transfer_id += 1
        return Transfer(
            id=transfer_id,
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            ledger=LEDGER_CNY,
            code=code,
        )
