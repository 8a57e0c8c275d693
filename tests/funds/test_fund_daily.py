"""The daily income run on a real ledger: exact books, who earns, idempotency, crash and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formicary.funds.fund import FundError
from formicary.ledger import open_store
from tests.funds.fund_builders import FundWorld, beijing, world

MONDAY_10AM = beijing(2026, 3, 2, 10, 0)
FIRST_DAY = date(2026, 3, 3)  # Monday's subscriptions earn from Tuesday


def holder_shares(w: FundWorld) -> list[int]:
    count = w.fund.store.holder_count()
    accounts = w.ledger.lookup_accounts([w.fund.holder_base + i for i in range(count)])
    return [a.credits_posted - a.debits_posted for a in accounts]


def test_income_is_allocated_exactly_and_reinvested(tmp_path: Path) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        for n, amount in enumerate((100_000, 200_000, 300_001)):
            w.fund.subscribe(f"u{n}", w.wallet(n), amount, "s")
        record = w.run.run(FIRST_DAY, 1_000)
        # 万份收益 = 10,000 * 1,000 fen / 600,001 fen-shares = 16.6666 yuan (half up).
        assert str(record.wanfen) == "16.6666"
        # Each holder: floor(s * 1000 / 600001): 166, 333, 500; remainder 1 fen.
        assert holder_shares(w) == [100_166, 200_333, 300_501]
        assert (record.distributed_fen, record.remainder_fen) == (999, 1)
        assert record.paid_holders == 3 and record.status == "posted"
        books = w.fund.reconcile()
        assert books["difference_fen"] == 0 and books["rounding_shares"] == 1
        assert books["custody_cash_fen"] == 600_001 + 1_000


def test_a_negative_day_reduces_shares(tmp_path: Path) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        w.fund.subscribe("a", w.wallet(0), 100_000, "s")
        w.fund.subscribe("b", w.wallet(1), 50_001, "s")
        record = w.run.run(FIRST_DAY, -301)
        # -301 * 100000 / 150001 = -200.66 -> -200; -301 * 50001 / 150001 = -100.33 -> -100.
        assert holder_shares(w) == [99_800, 49_901]
        assert (record.distributed_fen, record.remainder_fen) == (-300, -1)
        books = w.fund.reconcile()
        assert books["difference_fen"] == 0 and books["rounding_shares"] == -1


def test_who_earns_follows_the_confirm_rules(tmp_path: Path) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        w.fund.subscribe("early", w.wallet(0), 100_000, "s")
        w.fund.subscribe("seller", w.wallet(1), 100_000, "s")
        w.clock.set(beijing(2026, 3, 2, 16, 0))  # after the cut-off: earns from Wednesday
        w.fund.subscribe("late", w.wallet(2), 100_000, "s")
        # Tuesday 10:00: the seller redeems all; the shares still earn Tuesday (stop: Wed).
        w.clock.set(beijing(2026, 3, 3, 10, 0))
        w.fund.redeem("seller", w.wallet(1), 100_000, "r")
        tuesday = w.run.run(date(2026, 3, 3), 2_000)
        assert tuesday.earning_shares == 200_000  # early + seller; late not yet
        assert holder_shares(w) == [101_000, 1_000, 100_000]
        wednesday = w.run.run(date(2026, 3, 4), 2_000)
        assert wednesday.earning_shares == 101_000 + 1_000 + 100_000
        assert w.fund.reconcile()["difference_fen"] == 0


def test_days_are_idempotent_and_posted_in_order(tmp_path: Path) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        w.fund.subscribe("a", w.wallet(0), 100_000, "s")
        first = w.run.run(FIRST_DAY, 500)
        assert w.run.run(FIRST_DAY, 500) == first
        assert holder_shares(w) == [100_500]
        with pytest.raises(FundError, match="cannot be posted again"):
            w.run.run(FIRST_DAY, 501)
        with pytest.raises(FundError, match="post 2026-03-04 first"):
            w.run.run(FIRST_DAY + timedelta(days=2), 500)
        with pytest.raises(FundError, match="before the last posted day"):
            w.run.run(FIRST_DAY - timedelta(days=1), 500)


def test_a_day_with_no_earning_shares_is_refused(tmp_path: Path) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        w.fund.subscribe("a", w.wallet(0), 100_000, "s")
        with pytest.raises(FundError, match="no shares earn on 2026-03-02"):
            w.run.run(date(2026, 3, 2), 500)
        assert w.fund.store.day(date(2026, 3, 2)) is None


def test_seven_day_yield_is_published_from_the_seventh_day(tmp_path: Path) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        w.fund.subscribe("a", w.wallet(0), 10_000_000, "s")
        yields = []
        for n in range(8):
            record = w.run.run(FIRST_DAY + timedelta(days=n), 1_000)
            yields.append(record.yield_7d)
        assert yields[:6] == [None] * 6
        assert yields[6] is not None and yields[7] is not None
        # ~1 yuan per 10,000 a day compounds to ~3.7% a year.
        assert 3 < float(yields[6]) < 4.5
        history = w.run.holder_income(0, w.fund.store.days())
        assert [d for d, _ in history] == [FIRST_DAY + timedelta(days=n) for n in range(8)]
        assert sum(amount for _, amount in history) == holder_shares(w)[0] - 10_000_000


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    holdings=st.lists(st.integers(100, 10**9), min_size=1, max_size=12),
    # Losses stay below the smallest possible fund (100 fen-shares); zero days included.
    incomes=st.lists(st.integers(-50, 10**7), min_size=1, max_size=4),
)
def test_books_balance_to_the_fen_and_shares_equal_the_ledger(
    tmp_path_factory: pytest.TempPathFactory, holdings: list[int], incomes: list[int]
) -> None:
    path = tmp_path_factory.mktemp("fund")
    with world(path, MONDAY_10AM, wallets=len(holdings), wallet_fen=10**9) as w:
        for n, amount in enumerate(holdings):
            w.fund.subscribe(f"u{n}", w.wallet(n), amount, "s")
        expected = list(holdings)
        for k, income in enumerate(incomes):
            record = w.run.run(FIRST_DAY + timedelta(days=k), income)
            assert record.distributed_fen + record.remainder_fen == income + record.carried_fen
            paid = [amount for _, amount in enumerate(w.run.plan_amounts(record).tolist())]
            expected = [e + p for e, p in zip(expected, paid, strict=True)]
        assert holder_shares(w) == expected
        books = w.fund.reconcile()
        assert books["difference_fen"] == 0
        assert books["shares_outstanding"] == sum(expected) + books["rounding_shares"]


_CRASH_CHILD = textwrap.dedent(
    """
    import sys
    from datetime import date
    from pathlib import Path
    from tests.funds.fund_builders import Clock, beijing, open_world

    path = Path(sys.argv[1])
    w = open_world(path, Clock(beijing(2026, 3, 3, 1, 0)), wallets=0, chunk_holders=97)

    def progress(phase, done, total):
        if phase == "posting":
            print(phase, done, total, flush=True)

    w.run.run(date(2026, 3, 3), int(sys.argv[2]), progress)
    print("done", flush=True)
    """
)


def test_a_run_killed_mid_posting_resumes_with_exactly_one_posting_per_holder(
    tmp_path: Path,
) -> None:
    holders, income = 3_000, 12_345_678
    with world(tmp_path, MONDAY_10AM, wallets=1, wallet_fen=10**12) as w:
        w.fund.open_holders([f"u{n}" for n in range(holders)])
        # Seed shares through real subscriptions for a few, bulk-style for the rest: every
        # holder gets shares by subscribing from the one wallet (the wallet pays for all).
        for n in range(holders):
            w.fund.subscribe(f"u{n}", w.wallet(0), 1_000 + n, "s")
        before = holder_shares(w)
    kills = 0
    for attempt in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", _CRASH_CHILD, str(tmp_path), str(income)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        assert child.stdout is not None
        for line in child.stdout:
            # Kill after the second or third bulk of the first attempts.
            started = line.startswith("posting") and int(line.split()[1]) >= 97 * (2 + attempt)
            if started and attempt < 2:
                os.kill(child.pid, signal.SIGKILL)
                kills += 1
                break
        child.wait(timeout=60)
    assert kills == 2 and child.returncode == 0
    with world(tmp_path, beijing(2026, 3, 3, 2, 0), wallets=0) as w:
        record = w.fund.store.day(date(2026, 3, 3))
        assert record is not None and record.status == "posted"
        paid = [amount for _, amount in enumerate(w.run.plan_amounts(record).tolist())]
        after = holder_shares(w)
        assert [a - b for a, b in zip(after, before, strict=True)] == paid
        assert sum(paid) + record.remainder_fen == income + record.carried_fen
        assert w.fund.reconcile()["difference_fen"] == 0
    # Exactly one bulk per chunk in the log, none twice.
    store = open_store(f"sqlite:///{tmp_path}/ledger.db")
    try:
        bulks = [r for r in store.load_log() if r.__class__.__name__ == "BulkRecord"]
    finally:
        store.close()
    assert len(bulks) == -(-holders // 97)
    assert len({b.id for b in bulks}) == len(bulks)


def test_reserved_shares_neither_earn_nor_lose(tmp_path: Path) -> None:
    from formicary.ledger import Transfer, TransferFlags

    with world(tmp_path, MONDAY_10AM) as w:
        w.fund.subscribe("a", w.wallet(0), 100_000, "s")
        w.fund.subscribe("b", w.wallet(1), 100_000, "s")
        # All of a's shares are reserved by a pending debit (as a fund-funded purchase does).
        reserve = Transfer(
            id=77,
            debit_account_id=w.fund.holder_account("a"),
            credit_account_id=w.fund.issuance,
            amount=100_000,
            ledger=w.fund.config.share_ledger,
            code=1,
            flags=int(TransferFlags.PENDING),
        )
        assert w.ledger.create_transfers([reserve]) == ["ok"]
        record = w.run.run(FIRST_DAY, -50)  # a losing day: only b's free shares can take it
        assert record.earning_shares == 100_000
        assert w.run.plan_amounts(record).tolist() == [0, -50]
        assert w.fund.reconcile()["difference_fen"] == 0
