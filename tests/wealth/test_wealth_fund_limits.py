"""Purchases paid from the money-market fund are instant (T+0) redemptions: they count against
the fund's per-order, per-user-day and fund-day limits, are recorded in the fund's own books
(shares, recent orders, rebuilt from the ledger on start), and a failed launch gives both the
shares and the limits back."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from formicary.funds import (
    DailyRun,
    FundConfig,
    FundStore,
    InstantLimitExceeded,
    MoneyMarketFund,
)
from formicary.funds.ledger_ids import Code as FundCode
from formicary.wealth import (
    FundLimitExceeded,
    FundSource,
    InsufficientFunds,
    Payout,
    ProductTerms,
    SoldOut,
    WalletSource,
)
from tests.wealth.wealth_builders import (
    MONDAY_10AM,
    MarketWorld,
    beijing,
    fund_books_hold,
    fund_of,
    subscribe_holders,
    terms,
    world,
)

# Small limits so that a few purchases reach them: 50 yuan an order, 120 yuan a user and day,
# 300 yuan for the whole fund a day.
LIMITS = FundConfig(
    instant_per_order_fen=5_000,
    instant_per_user_day_fen=12_000,
    instant_fund_day_fen=30_000,
)
MONDAY = MONDAY_10AM.date()
TUESDAY = beijing(2026, 3, 3).date()
# A sale that opens and closes on Monday, so that the close falls on the order day.
SAME_DAY = {
    "sale_open": beijing(2026, 3, 2, 9, 0),
    "sale_close": beijing(2026, 3, 2, 11, 0),
}


def small(product_id: str = "p1", **overrides: Any) -> ProductTerms:
    """A product whose minimum purchase (10 yuan) is below the small limits."""
    return terms(product_id, min_purchase_fen=1_000, **overrides)


def _buy(w: MarketWorld, product: str, user: str, n: int, fen: int, request: str):  # type: ignore[no-untyped-def]
    return w.market.purchase(
        product, user, fen, FundSource(fund_of(w), user), request, payout=Payout(w.wallet(n))
    )


def test_a_purchase_over_the_per_order_limit_is_refused_with_the_reason(tmp_path: Path) -> None:
    with world(tmp_path, with_fund=True, fund_config=LIMITS) as w:
        subscribe_holders(w, ["alice"], 50_000)
        w.market.list_product(small())
        with pytest.raises(FundLimitExceeded, match="at most 5000 fen") as refused:
            _buy(w, "p1", "alice", 0, 5_001, "r1")
        assert isinstance(refused.value, InsufficientFunds)  # a source that cannot pay now
        # Nothing applied, nothing booked, and the request id is free for a smaller order.
        assert w.market.purchases(product_id="p1") == []
        assert w.available(fund_of(w).holder_account("alice")) == 50_000
        assert fund_of(w).instant_usage("alice")["user_used_fen"] == 0
        bought = _buy(w, "p1", "alice", 0, 5_000, "r1")
        assert bought.status == "reserved"
        usage = fund_of(w).instant_usage("alice")
        assert (usage["user_used_fen"], usage["user_left_fen"]) == (5_000, 7_000)
        assert usage["available_fen"] == 5_000
        # A retry of the applied request is answered, not refused and not counted twice.
        assert _buy(w, "p1", "alice", 0, 5_000, "r1").replayed
        assert fund_of(w).instant_usage("alice")["user_used_fen"] == 5_000


def test_the_daily_limits_hold_under_concurrent_purchases(tmp_path: Path) -> None:
    users = ["alice", "bob", "carol", "dave"]
    with world(tmp_path, with_fund=True, fund_config=LIMITS, wallets=4) as w:
        subscribe_holders(w, users, 100_000)
        w.market.list_product(small())
        outcomes: list[tuple[str, int | str]] = []
        lock = threading.Lock()
        start = threading.Barrier(16)

        def buyer(user: str, n: int, t: int) -> None:
            start.wait()
            for k in range(4):
                fen = 3_000 + 500 * ((t + k) % 5)  # 3,000 .. 5,000 fen
                try:
                    _buy(w, "p1", user, n, fen, f"t{t}-{k}")
                    result: int | str = fen
                except FundLimitExceeded as error:
                    result = str(error)
                with lock:
                    outcomes.append((user, result))

        threads = [threading.Thread(target=buyer, args=(users[t % 4], t % 4, t)) for t in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        bought = {
            u: sum(r for who, r in outcomes if who == u and isinstance(r, int)) for u in users
        }
        refusals = [r for _, r in outcomes if isinstance(r, str)]
        assert refusals and all("daily limit" in r or "capacity" in r for r in refusals)
        assert all(fen <= LIMITS.instant_per_user_day_fen for fen in bought.values())
        assert 0 < sum(bought.values()) <= LIMITS.instant_fund_day_fen
        # The fund counted exactly what the ledger holds reserved, per user and in all.
        fund = fund_of(w)
        for user in users:
            assert fund.instant_usage(user)["user_used_fen"] == bought[user]
            (holder,) = w.ledger.lookup_accounts([fund.holder_account(user)])
            assert holder.debits_pending == bought[user]
        assert fund.instant_usage("alice")["fund_used_fen"] == sum(bought.values())
        purchases = w.market.purchases(product_id="p1")
        assert sum(p.amount_fen for p in purchases) == sum(bought.values())
        # The fund's own instant redemptions share the same room.
        k = 0
        while (room := fund.instant_usage("alice")["available_fen"]) > 0:
            fund.redeem("alice", w.wallet(0), room, f"redeem-{k}")
            k += 1
        with pytest.raises(InstantLimitExceeded):
            fund.redeem("alice", w.wallet(0), 1, "one-more")
        with pytest.raises(FundLimitExceeded):
            _buy(w, "p1", "alice", 0, 1_000, "after-the-fund")


def test_the_limits_hold_when_reservations_and_buyers_race(tmp_path: Path) -> None:
    users = [f"u{n}" for n in range(8)]
    config = FundConfig(
        instant_per_order_fen=5_000,
        instant_per_user_day_fen=12_000,
        instant_fund_day_fen=25_000,
    )
    before_open = beijing(2026, 3, 2, 8, 0)
    with world(tmp_path, when=before_open, with_fund=True, fund_config=config, wallets=8) as w:
        subscribe_holders(w, users, 100_000)
        m = w.market
        for n, user in enumerate(users[:4]):  # four reservations of 120 yuan from the fund
            m.reserve(
                user,
                "auto",
                term_min_days=30,
                term_max_days=180,
                min_yield_bp=0,
                amount_fen=12_000,
                source=FundSource(fund_of(w), user),
                payout=Payout(w.wallet(n)),
            )
            w.clock.advance(seconds=1)
        m.list_product(small())
        w.clock.set(MONDAY_10AM)
        start = threading.Barrier(5)
        errors: list[BaseException] = []

        def manual(user: str, n: int) -> None:
            start.wait()
            for k in range(6):
                try:
                    _buy(w, "p1", user, n, 5_000, f"m{k}")
                except (FundLimitExceeded, SoldOut):
                    pass
                except BaseException as error:  # pragma: no cover - reported below
                    errors.append(error)

        def opening() -> None:
            start.wait()
            try:
                m.tick()  # the product's opening: the reservations buy, first come first served
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=opening)]
        threads += [threading.Thread(target=manual, args=(users[4 + k], 4 + k)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        fund = fund_of(w)
        purchases = m.purchases(product_id="p1")
        total = sum(p.amount_fen for p in purchases)
        assert 0 < total <= config.instant_fund_day_fen
        assert fund.instant_usage("u0")["fund_used_fen"] == total
        assert all(p.amount_fen <= config.instant_per_order_fen for p in purchases)
        for user in users:
            mine = sum(p.amount_fen for p in purchases if p.user_id == user)
            assert mine <= config.instant_per_user_day_fen
            assert fund.instant_usage(user)["user_used_fen"] == mine
        # Each reservation bought at most one order's limit, or was told why it could not.
        for n, user in enumerate(users[:4]):
            fills = [p for p in purchases if p.user_id == user]
            assert [p.reservation_no for p in fills] in ([], [n + 1])
            kinds = {x.kind for x in m.notifications(user)}
            if fills:
                assert kinds == {"reservation_partly_filled"}  # 50 of 120 yuan: the rest waits
                assert m.reservation(n + 1).status == "open"
            else:
                assert kinds == {"reservation_skipped"}


def test_a_failed_launch_gives_the_limit_and_the_shares_back(tmp_path: Path) -> None:
    with world(tmp_path, with_fund=True, fund_config=LIMITS) as w:
        subscribe_holders(w, ["alice", "bob"], 50_000)
        m = w.market
        fund = fund_of(w)
        m.list_product(small("fails", min_raise_fen=1_000_000, **SAME_DAY))
        m.list_product(small("later", min_raise_fen=1_000, sale_open=MONDAY_10AM))
        for k in range(3):
            _buy(w, "fails", "alice", 0, 4_000, f"r{k}")
        _buy(w, "fails", "bob", 1, 5_000, "r0")
        with pytest.raises(FundLimitExceeded, match="daily limit"):
            _buy(w, "later", "alice", 0, 1_000, "x")
        assert fund.instant_usage("alice")["user_used_fen"] == 12_000
        assert w.available(fund.holder_account("alice")) == 38_000
        # Like any instant redemption's, the shares earn until the next trading day; after
        # that the shares held by a pending purchase earn nothing.
        run = DailyRun(fund, tmp_path / "plans")
        alice = fund.holder_account("alice") - fund.holder_base
        assert int(run.snapshot(MONDAY)[alice]) == 0  # subscribed Monday: earns from Tuesday
        assert int(run.snapshot(TUESDAY)[alice]) == 38_000

        w.clock.set(beijing(2026, 3, 2, 11, 0))  # the close, still Monday
        report = m.close_sale("fails")
        assert not report.launched and report.settled == 4
        usage = fund.instant_usage("alice")
        assert (usage["user_used_fen"], usage["fund_used_fen"]) == (0, 0)
        assert fund.shares("alice") == w.available(fund.holder_account("alice")) == 50_000
        assert fund.shares("bob") == 50_000
        # Earning again, and not counted twice.
        assert int(run.snapshot(MONDAY)[alice]) == 0
        assert int(run.snapshot(TUESDAY)[alice]) == 50_000
        assert m.release_fund_holds(m.purchases(product_id="fails")) == 0  # idempotent
        # The room is free again the same day.
        _buy(w, "later", "alice", 0, 5_000, "x")
        assert fund.instant_usage("alice")["user_used_fen"] == 5_000

        # A fund restarted on the same ledger rebuilds the same usage (the voided legs out).
        again = MoneyMarketFund(
            w.ledger, FundStore(tmp_path / "fund2.db"), LIMITS, clock_ns=w.clock
        )
        again.store.add_holders(["alice", "bob"])
        again.start()
        assert again.instant_usage("alice")["user_used_fen"] == 5_000
        assert again.instant_usage("bob")["user_used_fen"] == 0
        assert again.instant_usage("alice")["fund_used_fen"] == 5_000
        held = [r for r in again.recent_orders() if r.code == FundCode.REDEMPTION_INSTANT]
        assert [(r.shares, r.order_day) for r in held] == [(5_000, MONDAY)]
        again.store.close()
        w.clock.set(beijing(2026, 3, 5, 9, 0))
        assert m.close_sale("later").launched
        assert fund.shares("alice") == 45_000
        fund_books_hold(w, ["alice", "bob"])


def test_books_reconcile_and_maturity_into_the_fund_adds_shares(tmp_path: Path) -> None:
    with world(tmp_path, with_fund=True, fund_config=LIMITS) as w:
        users = ["alice", "bob"]
        subscribe_holders(w, users, 50_000)
        m = w.market
        fund = fund_of(w)
        m.list_product(small(min_raise_fen=1_000))
        a = m.purchase(
            "p1",
            "alice",
            5_000,
            FundSource(fund, "alice"),
            "r1",
            payout=Payout(w.wallet(0), into_fund=True),
        )
        m.purchase("p1", "bob", 4_000, FundSource(fund, "bob"), "r1", payout=Payout(w.wallet(1)))
        m.purchase("p1", "carol", 3_000, WalletSource(w.wallet(2)), "r1")
        # The purchase is one of the fund's instant redemptions: the holder's statement shows it.
        legs = w.ledger.account_transfers(fund.holder_account("alice"))
        assert [t.code for t in legs] == [FundCode.SUBSCRIPTION, FundCode.REDEMPTION_INSTANT]
        assert legs[1].id == a.source_legs[0]
        assert fund.shares("alice") == 50_000  # pending: still the holder's
        assert fund.reconcile()["difference_fen"] == 0

        w.clock.set(beijing(2026, 3, 5, 9, 0))
        assert m.close_sale("p1").launched
        assert (fund.shares("alice"), fund.shares("bob")) == (45_000, 46_000)
        assert fund.instant_usage("alice", MONDAY)["user_used_fen"] == 5_000  # posted: counted
        fund_books_hold(w, users)

        product = m.product("p1")
        issuer = m.issuer_account_id("icbc")
        owed = sum(product.terms.interest_for(p.amount_fen) for p in m.purchases(product_id="p1"))
        w.fund_account(issuer, owed, 77)
        w.clock.set(beijing(2026, 6, 4, 10, 0))
        report = m.mature("p1")
        assert report.reinvested == 1
        interest = product.terms.interest_for(5_000)
        assert fund.shares("alice") == 45_000 + 5_000 + interest
        assert fund.shares("bob") == 46_000
        assert w.wallet_balance(1) == 100_000_000 - 50_000 + 4_000 + product.terms.interest_for(
            4_000
        )
        assert w.balance(m.escrow_account_id("p1")) == 0
        fund_books_hold(w, users)
