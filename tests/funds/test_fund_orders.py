"""Subscriptions and redemptions of the money-market fund, on a real ledger (SQLite)."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest

from formicary.funds.fund import (
    FundConfig,
    FundError,
    InstantLimitExceeded,
    InsufficientFunds,
    InsufficientShares,
    InvalidOrder,
    UnknownHolder,
)
from tests.funds.fund_builders import Clock, beijing, open_world, world

MONDAY_10AM = beijing(2026, 3, 2, 10, 0)


def test_subscribe_moves_cash_and_shares_and_the_books_reconcile(tmp_path: Path) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        order = w.fund.subscribe("alice", w.wallet(0), 150_000, "r1")
        assert (order.kind, order.replayed) == ("subscribe", False)
        assert (order.confirm_day, order.earning_day) == (date(2026, 3, 2), date(2026, 3, 3))
        assert w.fund.shares("alice") == 150_000
        assert w.wallet_balance(0) == 100_000_000 - 150_000
        books = w.fund.reconcile()
        assert books["custody_cash_fen"] == books["shares_outstanding"] == 150_000
        assert books["difference_fen"] == 0


def test_a_replayed_request_is_applied_once(tmp_path: Path) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        w.fund.subscribe("alice", w.wallet(0), 150_000, "r1")
        again = w.fund.subscribe("alice", w.wallet(0), 150_000, "r1")
        assert again.replayed
        w.fund.redeem("alice", w.wallet(0), 50_000, "r2")
        assert w.fund.redeem("alice", w.wallet(0), 50_000, "r2").replayed
        assert w.fund.shares("alice") == 100_000
        assert w.wallet_balance(0) == 100_000_000 - 100_000
        # Another user's request id "r1" is another order.
        assert not w.fund.subscribe("bob", w.wallet(1), 100, "r1").replayed


def test_a_request_id_reused_for_another_order_is_refused(tmp_path: Path) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        w.fund.subscribe("alice", w.wallet(0), 150_000, "r1")
        with pytest.raises(InvalidOrder, match="different order"):
            w.fund.subscribe("alice", w.wallet(0), 150_001, "r1")
        assert w.fund.shares("alice") == 150_000


@pytest.mark.parametrize(
    ("amount", "request_id", "wallet", "error"),
    [
        (99, "r", 0, InvalidOrder),  # below the 1-yuan minimum
        (0, "r", 0, InvalidOrder),
        (-5, "r", 0, InvalidOrder),
        (True, "r", 0, InvalidOrder),
        (2**63, "r", 0, InvalidOrder),
        (100, "", 0, InvalidOrder),
        (100, "x" * 129, 0, InvalidOrder),
        (100, "r", 77, InvalidOrder),  # no such wallet account
        (200_000_000, "r", 0, InsufficientFunds),
    ],
)
def test_bad_subscriptions_are_refused_and_change_nothing(
    tmp_path: Path, amount: int, request_id: str, wallet: int, error: type[FundError]
) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        with pytest.raises(error):
            w.fund.subscribe("alice", w.wallet(wallet), amount, request_id)
        assert w.wallet_balance(0) == 100_000_000
        assert w.fund.reconcile()["custody_cash_fen"] == 0


def test_bad_redemptions_are_refused_and_change_nothing(tmp_path: Path) -> None:
    with world(tmp_path, MONDAY_10AM) as w:
        with pytest.raises(UnknownHolder):
            w.fund.redeem("nobody", w.wallet(0), 100, "r")
        w.fund.subscribe("alice", w.wallet(0), 1_000, "r1")
        with pytest.raises(InsufficientShares):
            w.fund.redeem("alice", w.wallet(0), 1_001, "r2")
        with pytest.raises(InsufficientShares):
            w.fund.redeem("alice", w.wallet(0), 1_001, "r3", instant=False)
        assert w.fund.shares("alice") == 1_000
        assert w.fund.reconcile()["difference_fen"] == 0


def test_instant_limits_per_order_per_user_day_and_per_fund_day(tmp_path: Path) -> None:
    config = FundConfig(
        instant_per_order_fen=3_000, instant_per_user_day_fen=5_000, instant_fund_day_fen=8_000
    )
    with world(tmp_path, MONDAY_10AM, config=config) as w:
        for n, user in enumerate(("alice", "bob", "carol")):
            w.fund.subscribe(user, w.wallet(n), 20_000, f"s{n}")
        with pytest.raises(InstantLimitExceeded, match="at most 3000"):
            w.fund.redeem("alice", w.wallet(0), 3_001, "a0")
        w.fund.redeem("alice", w.wallet(0), 3_000, "a1")
        w.fund.redeem("alice", w.wallet(0), 2_000, "a2")
        with pytest.raises(InstantLimitExceeded, match="daily limit"):
            w.fund.redeem("alice", w.wallet(0), 1, "a3")
        w.fund.redeem("bob", w.wallet(1), 3_000, "b1")
        with pytest.raises(InstantLimitExceeded, match="capacity"):
            w.fund.redeem("carol", w.wallet(2), 1, "c1")
        # A refused instant redemption applied nothing; a standard one is not limited.
        assert w.fund.shares("carol") == 20_000
        w.fund.redeem("alice", w.wallet(0), 10_000, "a4", instant=False)
        # The next day the limits start afresh.
        w.clock.set(beijing(2026, 3, 3, 10, 0))
        w.fund.redeem("alice", w.wallet(0), 3_000, "a5")
        assert w.fund.shares("alice") == 20_000 - 3_000 - 2_000 - 10_000 - 3_000


def test_instant_limits_hold_under_concurrency(tmp_path: Path) -> None:
    config = FundConfig(instant_per_user_day_fen=5_000, instant_fund_day_fen=12_000)
    with world(tmp_path, MONDAY_10AM, config=config, wallets=4) as w:
        for n in range(4):
            w.fund.subscribe(f"u{n}", w.wallet(n), 50_000, f"s{n}")
        outcomes: list[str] = []
        lock = threading.Lock()

        def redeem(user: int, k: int) -> None:
            try:
                w.fund.redeem(f"u{user}", w.wallet(user), 1_000, f"r{user}-{k}")
                result = "ok"
            except InstantLimitExceeded:
                result = "limited"
            with lock:
                outcomes.append(result)

        threads = [
            threading.Thread(target=redeem, args=(user, k)) for user in range(4) for k in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # At most 5 per user and 12 in all may pass; the cap is binding, so exactly 12 do.
        assert outcomes.count("ok") == 12
        redeemed = [50_000 - w.fund.shares(f"u{n}") for n in range(4)]
        assert all(r <= 5_000 for r in redeemed) and sum(redeemed) == 12_000
        assert w.fund.reconcile()["difference_fen"] == 0


def test_instant_limits_survive_a_restart(tmp_path: Path) -> None:
    config = FundConfig(instant_per_user_day_fen=5_000)
    w = open_world(tmp_path, Clock(MONDAY_10AM), config=config)
    w.fund.subscribe("alice", w.wallet(0), 50_000, "s")
    w.fund.redeem("alice", w.wallet(0), 5_000, "r1")
    w.fund.store.close()
    w.ledger.close()
    w = open_world(tmp_path, w.clock, config=config, wallets=0)
    try:
        with pytest.raises(InstantLimitExceeded):
            w.fund.redeem("alice", w.wallet(0), 1, "r2")
    finally:
        w.fund.store.close()
        w.ledger.close()


def test_standard_redemption_is_paid_on_its_pay_day_exactly_once(tmp_path: Path) -> None:
    with world(tmp_path, beijing(2026, 3, 6, 16, 0)) as w:  # Friday after the cut-off
        w.fund.subscribe("alice", w.wallet(0), 50_000, "s")
        order = w.fund.redeem("alice", w.wallet(0), 20_000, "r", instant=False)
        assert (order.confirm_day, order.pay_day) == (date(2026, 3, 9), date(2026, 3, 10))
        balance = w.wallet_balance(0)
        assert w.fund.pay_standard_redemptions(date(2026, 3, 9)) == 0
        assert w.fund.pay_standard_redemptions(date(2026, 3, 10)) == 1
        assert w.fund.pay_standard_redemptions(date(2026, 3, 11)) == 0
        assert w.wallet_balance(0) == balance + 20_000
        assert w.fund.reconcile()["difference_fen"] == 0


@pytest.mark.parametrize(
    ("when", "confirm", "earning"),
    [
        (beijing(2026, 3, 2, 14, 59, 59), date(2026, 3, 2), date(2026, 3, 3)),
        (beijing(2026, 3, 2, 15, 0, 0), date(2026, 3, 3), date(2026, 3, 4)),
        (beijing(2026, 3, 6, 15, 30), date(2026, 3, 9), date(2026, 3, 10)),  # Friday late
        (beijing(2026, 3, 7, 11, 0), date(2026, 3, 9), date(2026, 3, 10)),  # Saturday
    ],
)
def test_subscription_confirm_and_earning_days_follow_the_cutoff(
    tmp_path: Path, when: object, confirm: date, earning: date
) -> None:
    with world(tmp_path, when) as w:  # type: ignore[arg-type]
        order = w.fund.subscribe("alice", w.wallet(0), 100, "r")
        assert (order.confirm_day, order.earning_day) == (confirm, earning)


def test_a_retry_later_is_answered_as_the_first_time(tmp_path: Path) -> None:
    config = FundConfig(instant_per_user_day_fen=5_000)
    with world(tmp_path, beijing(2026, 3, 2, 14, 59), config=config) as w:
        first = w.fund.subscribe("alice", w.wallet(0), 50_000, "s")
        redeemed = w.fund.redeem("alice", w.wallet(0), 5_000, "r")
        # After the cut-off, and with the day's instant limit used up by the first attempt.
        w.clock.set(beijing(2026, 3, 2, 16, 0))
        again = w.fund.subscribe("alice", w.wallet(0), 50_000, "s")
        assert again.replayed and again.confirm_day == first.confirm_day == date(2026, 3, 2)
        retried = w.fund.redeem("alice", w.wallet(0), 5_000, "r")
        assert retried.replayed and retried.earning_day == redeemed.earning_day
        assert w.fund.shares("alice") == 45_000
        with pytest.raises(InstantLimitExceeded):
            w.fund.redeem("alice", w.wallet(0), 1, "r-new")
