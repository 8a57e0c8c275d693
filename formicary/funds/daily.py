"""The daily income run: allocate one calendar day's income over every holder, in bulk.

1. Snapshot: with orders paused (`SnapshotGate`), read every holder's shares from the ledger in
   chunks, then take away shares that do not earn on the day (subscribed, earning later) and add
   back shares that still do (redeemed, earning until a later day) from the recent orders.
2. Plan: `allocate_income` (exact, vectorised) splits the income; the per-holder amounts are
   written to `plans/<day>.npy` (fsync, then an atomic rename) and the day is saved as
   `planned` with the file's SHA-256, before anything is posted.
3. Post, all idempotent by id: the cash (MARKET -> CUSTODY, or back on a negative day), one bulk
   transfer of up to 100,000 holders per chunk (ISSUANCE -> holders, or back), and the rounding
   account's move from its carried balance (distributed with the income) to the day's remainder
   (ISSUANCE -> ROUNDING, or back). A run killed anywhere re-runs from its saved plan: parts
   already applied answer `exists`, so every holder gets exactly one posting for the day.
4. Publish: the day's 万份收益 and, with 7 days of history, the 7-day annualised yield.

Days are posted in order: day D needs D-1 posted (the first day excepted), because D's shares
include D-1's reinvested income.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from formicary.funds import ledger_ids as ids
from formicary.funds.fund import FundError, MoneyMarketFund
from formicary.funds.income import AllocationError, Int64Array, allocate_income
from formicary.funds.ledger_ids import Code, TransferKind
from formicary.funds.store import DayRecord
from formicary.funds.yields import SEVEN_DAY_WINDOW_DAYS, seven_day_annualised_yield
from formicary.ledger import BULK_LEGS_MAX, BulkResult, BulkTransfer, Engine, Transfer

__all__ = ["DailyRun", "Progress"]

# Holders per bulk transfer (and per snapshot query, so the ledger serves other work between).
CHUNK_HOLDERS = BULK_LEGS_MAX
# Bulks in flight: the next chunk's legs are built while the ledger commits the previous one.
_IN_FLIGHT = 2

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


class DailyRun:
    """Posts days of income for one fund (see the module docstring)."""

    def __init__(
        self, fund: MoneyMarketFund, plans_dir: str | Path, *, chunk_holders: int = CHUNK_HOLDERS
    ) -> None:
        assert 0 < chunk_holders <= BULK_LEGS_MAX
        self.chunk_holders = chunk_holders
        self.fund = fund
        self.plans_dir = Path(plans_dir)
        self.plans_dir.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------- the run

    def run(self, day: date, income_fen: int, progress: Progress = _no_progress) -> DayRecord:
        """Post `income_fen` (negative on a losing day) as `day`'s income; idempotent."""
        store = self.fund.store
        record = store.day(day)
        if record is not None and record.income_fen != income_fen:
            raise FundError(
                f"{day} was already {record.status} with income {record.income_fen} fen;"
                f" it cannot be posted again with {income_fen}"
            )
        if record is not None and record.status == "posted":
            return record
        last = store.last_day()
        if last is not None and record is None:
            if day <= last.day:
                raise FundError(f"{day} is before the last posted day {last.day}")
            if last.status != "posted" or day != last.day + timedelta(days=1):
                expected = last.day if last.status != "posted" else last.day + timedelta(days=1)
                raise FundError(f"days are posted in order: post {expected} first")
        if record is None:
            amounts, record = self._plan(day, income_fen, progress)
        else:
            amounts = self._load_plan(record)
        self._post(record, amounts, progress)
        record = replace(
            record,
            status="posted",
            posted_ns=self.fund.clock_ns(),
            yield_7d=self._yield_7d(record),
        )
        store.save_day(record)
        return record

    # ----------------------------------------------------------------- snapshot and plan

    def snapshot(self, day: date, progress: Progress = _no_progress) -> Int64Array:
        """Every holder's shares that earn on `day` (fen-shares), indexed by holder index."""
        fund = self.fund
        with fund.gate.snapshot():
            holders = fund.store.holder_count()
            shares = np.empty(holders, dtype=np.int64)
            for start in range(0, holders, self.chunk_holders):
                stop = min(holders, start + self.chunk_holders)
                first, last = fund.holder_base + start, fund.holder_base + stop
                shares[start:stop] = fund.ledger.submit_query(
                    lambda e, a=first, b=last: _share_balances(e, a, b)
                ).result()
                progress("snapshot", stop, holders)
            recent = fund.recent_orders()
        day_number = ids.day_number(day)
        for order in recent:
            if order.holder_index >= holders:
                continue
            if order.code == Code.SUBSCRIPTION and order.earning_day > day_number:
                shares[order.holder_index] -= order.shares  # bought, not earning yet
            elif order.code != Code.SUBSCRIPTION and order.earning_day > day_number:
                shares[order.holder_index] += order.shares  # sold, still earning
        if holders and int(shares.min()) < 0:
            raise FundError("a holder's earning shares came out negative: the order log is torn")
        return shares

    def _plan(self, day: date, income_fen: int, progress: Progress) -> tuple[Int64Array, DayRecord]:
        shares = self.snapshot(day, progress)
        if not shares.any():
            raise FundError(f"no shares earn on {day}: nothing to allocate the income over")
        # The rounding account's balance goes out with the day's income, so that it stays below
        # a fen per holder instead of growing by ~half a fen per holder every day.
        (rounding,) = self.fund.ledger.lookup_accounts([self.fund.rounding])
        carried = rounding.credits_posted - rounding.debits_posted
        try:
            allocation = allocate_income(shares, income_fen, carried_fen=carried)
        except AllocationError as e:
            raise FundError(f"cannot allocate {income_fen} fen on {day}: {e}") from e
        amounts = np.asarray(allocation.per_holder_fen)
        sha = self._write_plan(day, amounts)
        record = DayRecord(
            day=day,
            income_fen=income_fen,
            earning_shares=allocation.total_shares,
            holders=len(amounts),
            paid_holders=int(np.count_nonzero(amounts)),
            carried_fen=carried,
            distributed_fen=allocation.distributed_fen,
            remainder_fen=allocation.remainder_fen,
            wanfen=allocation.wanfen_yuan,
            yield_7d=None,
            chunk_holders=self.chunk_holders,
            plan_sha256=sha,
            status="planned",
            posted_ns=None,
        )
        self.fund.store.save_day(record)
        return amounts, record

    def _plan_path(self, day: date) -> Path:
        return self.plans_dir / f"fund{self.fund.config.fund_no}-{day.isoformat()}.npy"

    def _write_plan(self, day: date, amounts: Int64Array) -> str:
        path = self._plan_path(day)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            np.save(f, amounts, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.plans_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a crash
        finally:
            os.close(dir_fd)
        return _sha256(path)

    def plan_amounts(self, record: DayRecord) -> Int64Array:
        """Every holder's income (fen) of a planned or posted day, by holder index."""
        return self._load_plan(record)

    def _load_plan(self, record: DayRecord) -> Int64Array:
        path = self._plan_path(record.day)
        if not path.exists() or _sha256(path) != record.plan_sha256:
            raise FundError(f"the plan of {record.day} ({path}) is missing or altered")
        amounts: Int64Array = np.load(path, allow_pickle=False)
        return amounts

    def holder_income(self, holder_index: int, days: list[DayRecord]) -> list[tuple[date, int]]:
        """One holder's income (fen) on each of the given posted days, from the plans."""
        out = []
        for record in days:
            amounts = np.load(self._plan_path(record.day), mmap_mode="r", allow_pickle=False)
            out.append(
                (record.day, int(amounts[holder_index]) if holder_index < len(amounts) else 0)
            )
        return out

    # ----------------------------------------------------------------- posting

    def _post(self, record: DayRecord, amounts: Int64Array, progress: Progress) -> None:
        fund = self.fund
        c = fund.config
        no, day_no = c.fund_no, ids.day_number(record.day)
        income = record.income_fen
        gain = income > 0
        # Holders' amounts share the sign of income + carried, which may differ from income's.
        credit_holders = record.distributed_fen > 0
        cash = Transfer(
            id=ids.transfer_id(no, TransferKind.INCOME_CASH, day_no),
            debit_account_id=fund.market if gain else fund.custody,
            credit_account_id=fund.custody if gain else fund.market,
            amount=abs(income),
            ledger=c.money_ledger,
            code=Code.INCOME,
            user_data_32=day_no,
        )
        if income:
            self._apply([cash])
        total = len(amounts)
        # The plan's chunk size, not this run's: a resumed run must name the same bulks.
        size = record.chunk_holders
        pending: list[tuple[int, Future[tuple[str, int]]]] = []
        for chunk, start in enumerate(range(0, total, size)):
            stop = min(total, start + size)
            part = amounts[start:stop]
            paid = np.flatnonzero(part)
            if len(paid):
                legs = (paid + (fund.holder_base + start)).tolist()
                bulk = BulkTransfer(
                    id=ids.transfer_id(
                        no, TransferKind.INCOME_BULK, day_no * ids.CHUNKS_PER_DAY_MAX + chunk
                    ),
                    account_id=fund.issuance,
                    debit_common=credit_holders,
                    ledger=c.share_ledger,
                    code=Code.INCOME,
                    leg_account_ids=legs,
                    leg_amounts=np.abs(part[paid]).tolist(),
                    user_data_32=day_no,
                )
                pending.append((stop, fund.ledger.submit_bulk(bulk)))
            while len(pending) >= _IN_FLIGHT or (pending and stop == total):
                done_upto, future = pending.pop(0)
                result, leg = future.result()
                if result not in (BulkResult.OK, BulkResult.EXISTS):
                    raise FundError(f"income bulk of {record.day} refused: {result} (leg {leg})")
                progress("posting", done_upto, total)
        progress("posting", total, total)
        # Bring the rounding account from its carried balance to the day's remainder.
        remainder = record.remainder_fen - record.carried_fen
        if remainder:
            self._apply(
                [
                    Transfer(
                        id=ids.transfer_id(no, TransferKind.INCOME_REMAINDER, day_no),
                        debit_account_id=fund.issuance if remainder > 0 else fund.rounding,
                        credit_account_id=fund.rounding if remainder > 0 else fund.issuance,
                        amount=abs(remainder),
                        ledger=c.share_ledger,
                        code=Code.INCOME_REMAINDER,
                        user_data_32=day_no,
                    )
                ]
            )

    def _apply(self, transfers: list[Transfer]) -> None:
        results = self.fund.ledger.create_transfers(transfers)
        bad = [r for r in results if r not in ("ok", "exists")]
        if bad:
            raise FundError(f"income posting refused by the ledger: {bad}")

    # ----------------------------------------------------------------- yields

    def _yield_7d(self, record: DayRecord) -> Decimal | None:
        first = record.day - timedelta(days=SEVEN_DAY_WINDOW_DAYS - 1)
        window = {r.day: r.wanfen for r in self.fund.store.days(first, record.day - timedelta(1))}
        window[record.day] = record.wanfen
        if len(window) < SEVEN_DAY_WINDOW_DAYS:
            return None
        return seven_day_annualised_yield([window[d] for d in sorted(window)])


def _share_balances(engine: Engine, first_id: int, stop_id: int) -> Int64Array:
    """Shares of the holder accounts with ids in [first_id, stop_id), on the ledger writer.
    Shares reserved by a pending debit (a purchase funded from the fund, not yet closed) are
    committed elsewhere: they do not earn, and a losing day cannot take them."""
    accounts = engine.accounts
    return np.fromiter(
        (
            a.credits_posted - a.debits_posted - a.debits_pending
            for a in map(accounts.__getitem__, range(first_id, stop_id))
        ),
        dtype=np.int64,
        count=stop_id - first_id,
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
