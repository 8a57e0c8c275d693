"""Purchases reserve money as pending transfers; the close posts them (the raise goes to the
issuer) or, if the product fails to launch, voids them and every wallet is whole again."""

from __future__ import annotations

from pathlib import Path

import pytest

from formicary.ledger import TransferFlags
from formicary.wealth import (
    FundSource,
    InsufficientFunds,
    InvalidRequest,
    LedgerUnavailable,
    NotDue,
    NotOnSale,
    Payout,
    SoldOut,
    WalletSource,
)
from tests.wealth.wealth_builders import MONEY, beijing, terms, world

CLOSE = beijing(2026, 3, 5, 9, 0)


def test_a_purchase_reserves_and_the_close_posts_it(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        m = w.market
        m.list_product(terms())
        p = m.purchase("p1", "alice", 6_000_000, WalletSource(w.wallet(0)), "r1")
        assert (p.status, p.amount_fen, p.replayed) == ("reserved", 6_000_000, False)
        # Reserved, not moved: the wallet's balance is whole, its available money is not.
        assert w.wallet_balance(0) == 100_000_000
        assert w.available(w.wallet(0)) == 94_000_000
        assert m.remaining_fen("p1") == 94_000_000
        escrow = m.escrow_account_id("p1")
        (legs,) = [t for t in w.ledger.account_transfers(escrow)]
        assert legs.flags & TransferFlags.PENDING and legs.amount == 6_000_000
        m.purchase("p1", "bob", 48_000_000, WalletSource(w.wallet(1)), "r1")

        w.clock.set(CLOSE)
        report = m.close_sale("p1")
        assert (report.launched, report.raised_fen, report.purchases, report.settled) == (
            True,
            54_000_000,
            2,
            2,
        )
        assert w.wallet_balance(0) == 94_000_000 and w.wallet_balance(1) == 52_000_000
        # The raise went on to the issuer; escrow and the quota are empty.
        assert w.balance(m.issuer_account_id("icbc")) == 54_000_000
        books = m.books("p1")
        assert books["escrow_posted_fen"] == books["escrow_pending_fen"] == 0
        assert books["quota_remaining_fen"] == 0 and books["quota_subscribed_fen"] == 54_000_000
        assert [p.status for p in m.purchases(product_id="p1")] == ["posted", "posted"]
        assert m.product("p1").status == "launched"
        kinds = [(n.user_id, n.kind) for n in m.notifications()]
        assert kinds == [("alice", "purchase_confirmed"), ("bob", "purchase_confirmed")]
        assert w.trial_balances_hold()


def test_a_product_under_its_minimum_raise_fails_and_every_wallet_is_whole(
    tmp_path: Path,
) -> None:
    with world(tmp_path, with_fund=True) as w:
        m = w.market
        assert w.fund is not None
        w.fund.subscribe("carol", w.wallet(2), 30_000_000, "s1")
        m.list_product(terms(min_raise_fen=60_000_000))
        m.purchase("p1", "alice", 20_000_000, WalletSource(w.wallet(0)), "r1")
        # 50,000 yuan: the fund's instant (T+0) limit for one redemption.
        m.purchase(
            "p1", "carol", 5_000_000, FundSource(w.fund, "carol"), "r1", payout=Payout(w.wallet(2))
        )
        # Fund shares are reserved like wallet money: pending, still the holder's.
        assert w.fund.shares("carol") == 30_000_000
        w.clock.set(CLOSE)
        report = m.close_sale("p1")
        assert (report.launched, report.raised_fen, report.min_raise_fen) == (
            False,
            25_000_000,
            60_000_000,
        )
        assert w.wallet_balance(0) == w.available(w.wallet(0)) == 100_000_000
        assert w.fund.shares("carol") == 30_000_000
        holder = w.fund.holder_account("carol")
        assert w.available(holder) == 30_000_000
        assert w.fund.reconcile()["difference_fen"] == 0
        assert w.balance(m.issuer_account_id("icbc")) == 0
        assert m.product("p1").status == "failed"
        assert {n.kind for n in m.notifications()} == {"purchase_released"}
        assert w.trial_balances_hold()
        # Nothing is left pending anywhere.
        dp, _, cp, _ = w.ledger.trial_balance(MONEY)
        assert dp == cp == 0


def test_a_fund_funded_purchase_moves_cash_and_shares_together(tmp_path: Path) -> None:
    with world(tmp_path, with_fund=True) as w:
        m = w.market
        assert w.fund is not None
        w.fund.subscribe("carol", w.wallet(2), 8_000_000, "s1")
        m.list_product(terms(min_raise_fen=1_000_000))
        m.purchase(
            "p1", "carol", 5_000_000, FundSource(w.fund, "carol"), "r1", payout=Payout(w.wallet(2))
        )
        with pytest.raises(InsufficientFunds):  # 3,000,000 shares left unreserved
            m.purchase(
                "p1",
                "carol",
                4_000_000,
                FundSource(w.fund, "carol"),
                "r2",
                payout=Payout(w.wallet(2)),
            )
        with pytest.raises(InsufficientFunds, match="holds nothing"):
            m.purchase(
                "p1", "dave", 100_000, FundSource(w.fund, "dave"), "r1", payout=Payout(w.wallet(3))
            )
        w.clock.set(CLOSE)
        assert m.close_sale("p1").launched
        assert w.fund.shares("carol") == 3_000_000
        assert w.fund.reconcile() == {
            "custody_cash_fen": 3_000_000,
            "shares_outstanding": 3_000_000,
            "rounding_shares": 0,
            "difference_fen": 0,
        }


def test_a_retried_purchase_is_applied_once_and_a_reused_request_id_is_refused(
    tmp_path: Path,
) -> None:
    with world(tmp_path) as w:
        m = w.market
        m.list_product(terms())
        wallet = WalletSource(w.wallet(0))
        first = m.purchase("p1", "alice", 1_000_000, wallet, "r1")
        again = m.purchase("p1", "alice", 1_000_000, wallet, "r1")
        assert again.replayed and again.purchase_no == first.purchase_no
        assert m.remaining_fen("p1") == 99_000_000
        with pytest.raises(InvalidRequest, match="different purchase"):
            m.purchase("p1", "alice", 2_000_000, wallet, "r1")
        with pytest.raises(InvalidRequest, match="different purchase"):
            m.purchase("p1", "alice", 1_000_000, WalletSource(w.wallet(1)), "r1")
        # Another user's "r1" is another purchase.
        assert not m.purchase("p1", "bob", 1_000_000, WalletSource(w.wallet(1)), "r1").replayed


def test_a_refused_purchase_leaves_nothing_and_may_be_retried(tmp_path: Path) -> None:
    with world(tmp_path, wallet_fen=500_000) as w:
        m = w.market
        m.list_product(terms())
        with pytest.raises(InsufficientFunds):
            m.purchase("p1", "alice", 600_000, WalletSource(w.wallet(0)), "r1")
        assert m.remaining_fen("p1") == 100_000_000  # the quota leg rolled back with it
        assert m.purchases() == []
        w.fund_account(w.wallet(0), 100_000, 55)
        assert m.purchase("p1", "alice", 600_000, WalletSource(w.wallet(0)), "r1").status == (
            "reserved"
        )


def test_the_minimum_purchase_and_the_last_lot(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        m = w.market
        m.list_product(terms(size_fen=1_000_000, min_purchase_fen=300_000))
        with pytest.raises(InvalidRequest, match="minimum purchase"):
            m.purchase("p1", "alice", 299_999, WalletSource(w.wallet(0)), "r1")
        m.purchase("p1", "alice", 850_000, WalletSource(w.wallet(0)), "r2")
        with pytest.raises(SoldOut, match="150000"):
            m.purchase("p1", "bob", 300_000, WalletSource(w.wallet(1)), "r1")
        # Less than the minimum is allowed only to take exactly what remains.
        with pytest.raises(InvalidRequest, match="all that remains"):
            m.purchase("p1", "bob", 100_000, WalletSource(w.wallet(1)), "r2")
        m.purchase("p1", "bob", 150_000, WalletSource(w.wallet(1)), "r3")
        assert m.remaining_fen("p1") == 0


def test_the_sale_window_is_enforced(tmp_path: Path) -> None:
    with world(tmp_path, when=beijing(2026, 3, 2, 8, 0)) as w:
        m = w.market
        m.list_product(terms())
        with pytest.raises(NotOnSale, match="opens"):
            m.purchase("p1", "alice", 100_000, WalletSource(w.wallet(0)), "r1")
        with pytest.raises(NotDue):
            m.close_sale("p1")
        w.clock.set(beijing(2026, 3, 2, 9, 0))
        m.purchase("p1", "alice", 100_000, WalletSource(w.wallet(0)), "r1")
        w.clock.set(CLOSE)
        with pytest.raises(NotOnSale, match="closed"):
            m.purchase("p1", "alice", 100_000, WalletSource(w.wallet(0)), "r2")
        with pytest.raises(NotDue, match="has not launched"):
            m.mature("p1")


def test_the_close_stops_sales_in_the_ledger(tmp_path: Path) -> None:
    """A purchase that passed the window checks before the close but reaches the ledger after
    the close's sweep is refused by the ledger, not counted in a raise already decided."""
    with world(tmp_path) as w:
        m = w.market
        m.list_product(terms())
        m.purchase("p1", "alice", 60_000_000, WalletSource(w.wallet(0)), "r1")
        stale = m.product("p1")  # what the late buyer read: listed, window open
        w.clock.set(CLOSE)
        m.close_sale("p1")
        w.clock.set(beijing(2026, 3, 4, 9, 0))
        m.product = lambda product_id: stale  # type: ignore[method-assign]
        with pytest.raises((SoldOut, NotOnSale)):
            m.purchase("p1", "bob", 1_000_000, WalletSource(w.wallet(1)), "r1")
        del m.product
        assert m.product("p1").raised_fen == 60_000_000
        assert m.books("p1")["escrow_pending_fen"] == 0
        assert w.available(w.wallet(1)) == 100_000_000
        assert [p.user_id for p in m.purchases()] == ["alice"]


def test_listing_is_idempotent_by_product_id(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        first = w.market.list_product(terms())
        assert w.market.list_product(terms()).product_no == first.product_no
        with pytest.raises(InvalidRequest, match="other terms"):
            w.market.list_product(terms(yield_bp=451))
        second = w.market.list_product(terms("p2"))
        assert second.product_no == first.product_no + 1
        assert w.market.remaining_fen("p2") == 100_000_000


def test_a_ledger_that_is_down_refuses_and_the_request_may_be_retried(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        m = w.market
        m.list_product(terms())
        real = w.ledger.create_transfers

        def down(transfers: object) -> list[str]:
            from formicary.ledger import ServiceUnavailable

            raise ServiceUnavailable("stopped")

        w.ledger.create_transfers = down  # type: ignore[method-assign]
        with pytest.raises(LedgerUnavailable):
            m.purchase("p1", "alice", 100_000, WalletSource(w.wallet(0)), "r1")
        w.ledger.create_transfers = real  # type: ignore[method-assign]
        assert m.purchase("p1", "alice", 100_000, WalletSource(w.wallet(0)), "r1").status == (
            "reserved"
        )


def test_a_product_whose_window_has_passed_is_not_listed(tmp_path: Path) -> None:
    with world(tmp_path, when=CLOSE) as w:
        with pytest.raises(InvalidRequest, match="ended"):
            w.market.list_product(terms())
        assert w.market.products() == []
