"""Auto-reservations (预约): matching products buy at their opening, first come first served,
with partial fills whose rest stays open; the user is notified, durably."""

from __future__ import annotations

from pathlib import Path

import pytest

from formicary.wealth import (
    FundSource,
    InvalidRequest,
    NotFound,
    Payout,
    WalletSource,
    WealthStore,
)
from tests.wealth.wealth_builders import beijing, close_world, open_world, terms, world

BEFORE_OPEN = beijing(2026, 3, 2, 8, 0)
OPEN = beijing(2026, 3, 2, 9, 0)
CLOSE = beijing(2026, 3, 5, 9, 0)


def _reserve(  # type: ignore[no-untyped-def]
    w, user: str, wallet_no: int, amount: int, request_id: str = "auto", **kw: int
):
    criteria = {"term_min_days": 30, "term_max_days": 180, "min_yield_bp": 400} | kw
    reservation = w.market.reserve(
        user, request_id, amount_fen=amount, source=WalletSource(w.wallet(wallet_no)), **criteria
    )
    w.clock.advance(seconds=1)  # each reservation a second after the last: FCFS order
    return reservation


def test_first_come_first_served_with_partial_fills(tmp_path: Path) -> None:
    with world(tmp_path, when=BEFORE_OPEN, wallets=5) as w:
        m = w.market
        alice = _reserve(w, "alice", 0, 4_000_000)
        bob = _reserve(w, "bob", 1, 5_000_000)
        carol = _reserve(w, "carol", 2, 3_000_000)
        dave = _reserve(w, "dave", 3, 2_000_000, min_yield_bp=500)  # wants more than 4.50 %
        erin = _reserve(w, "erin", 4, 2_000_000, term_max_days=60)  # wants shorter terms
        m.list_product(terms(size_fen=10_000_000))
        assert m.purchases() == []  # the window has not opened: nothing bought yet
        w.clock.set(OPEN)
        (match,) = m.tick().matched
        assert match.filled == [
            (alice.reservation_no, 4_000_000),
            (bob.reservation_no, 5_000_000),
            (carol.reservation_no, 1_000_000),  # what remained: a partial fill
        ]
        assert match.remaining_fen == 0
        assert m.reservation(carol.reservation_no).open_fen == 2_000_000
        assert m.reservation(carol.reservation_no).status == "open"
        assert m.reservation(alice.reservation_no).status == "filled"
        assert m.reservation(dave.reservation_no).filled_fen == 0
        assert m.reservation(erin.reservation_no).filled_fen == 0
        assert [(n.user_id, n.kind, n.amount_fen) for n in m.notifications()] == [
            ("alice", "reservation_filled", 4_000_000),
            ("bob", "reservation_filled", 5_000_000),
            ("carol", "reservation_partly_filled", 1_000_000),
        ]
        # Reservations spend like purchases: pending in the wallet until the close.
        assert w.available(w.wallet(0)) == 96_000_000
        # The next matching product fills carol's rest; the filled ones take nothing more.
        m.list_product(terms("p2", size_fen=10_000_000))
        (p2,) = m.purchases(product_id="p2")
        assert (p2.user_id, p2.amount_fen, p2.reservation_no) == (
            "carol",
            2_000_000,
            carol.reservation_no,
        )
        assert m.reservation(carol.reservation_no).status == "filled"
        assert m.remaining_fen("p2") == 8_000_000
        # Matching runs once per opening.
        assert m.match_reservations("p2").filled == []


def test_a_fill_below_the_minimum_purchase_waits_unless_it_takes_the_last_lot(
    tmp_path: Path,
) -> None:
    with world(tmp_path, when=BEFORE_OPEN) as w:
        m = w.market
        small = _reserve(w, "alice", 0, 200_000)
        big = _reserve(w, "bob", 1, 800_000)
        late = _reserve(w, "carol", 2, 500_000)
        w.clock.set(OPEN)
        m.list_product(terms(size_fen=1_000_000, min_purchase_fen=300_000, min_raise_fen=1))
        # One pass in reservation order: 2,000 yuan is below the 3,000 minimum and is not the
        # whole remainder, so alice waits; bob buys 8,000; carol may buy the last 2,000 (less
        # than the minimum, but all that remains), and 3,000 of hers stays open.
        assert m.reservation(small.reservation_no).filled_fen == 0
        assert m.reservation(big.reservation_no).filled_fen == 800_000
        rest = m.reservation(late.reservation_no)
        assert (rest.filled_fen, rest.open_fen, rest.status) == (200_000, 300_000, "open")
        assert m.remaining_fen("p1") == 0


def test_a_reservation_that_cannot_pay_is_skipped_notified_and_stays_open(
    tmp_path: Path,
) -> None:
    with world(tmp_path, when=BEFORE_OPEN, wallet_fen=1_000_000) as w:
        m = w.market
        poor = _reserve(w, "alice", 0, 5_000_000)
        rich = _reserve(w, "bob", 1, 500_000)
        w.clock.set(OPEN)
        m.list_product(terms())
        assert m.reservation(poor.reservation_no).status == "open"
        assert m.reservation(rich.reservation_no).status == "filled"
        kinds = [(n.user_id, n.kind) for n in m.notifications()]
        assert kinds == [("alice", "reservation_skipped"), ("bob", "reservation_filled")]


def test_a_failed_launch_gives_the_reservation_its_amount_back(tmp_path: Path) -> None:
    with world(tmp_path, when=BEFORE_OPEN) as w:
        m = w.market
        r = _reserve(w, "alice", 0, 3_000_000)
        w.clock.set(OPEN)
        m.list_product(terms(min_raise_fen=90_000_000))
        assert m.reservation(r.reservation_no).status == "filled"
        w.clock.set(CLOSE)
        assert not m.close_sale("p1").launched
        reopened = m.reservation(r.reservation_no)
        assert (reopened.status, reopened.open_fen) == ("open", 3_000_000)
        assert w.available(w.wallet(0)) == 100_000_000
        released = [n for n in m.notifications() if n.kind == "purchase_released"]
        assert "open again" in released[0].message
        m.list_product(terms("p2", sale_open=CLOSE, sale_close=beijing(2026, 3, 8, 9, 0)))
        assert m.reservation(r.reservation_no).status == "filled"


def test_cancelled_and_expired_reservations_buy_nothing(tmp_path: Path) -> None:
    with world(tmp_path, when=BEFORE_OPEN) as w:
        m = w.market
        cancelled = _reserve(w, "alice", 0, 1_000_000)
        brief = w.market.reserve(
            "bob",
            "auto",
            term_min_days=30,
            term_max_days=180,
            min_yield_bp=0,
            amount_fen=1_000_000,
            source=WalletSource(w.wallet(1)),
            valid_days=1,
        )
        with pytest.raises(NotFound):
            m.cancel_reservation("bob", cancelled.reservation_no)
        assert m.cancel_reservation("alice", cancelled.reservation_no).status == "cancelled"
        w.clock.set(beijing(2026, 3, 3, 8, 0))
        m.list_product(
            terms(sale_open=beijing(2026, 3, 3, 9, 0), sale_close=beijing(2026, 3, 6, 9, 0))
        )
        w.clock.set(beijing(2026, 3, 3, 9, 0))
        report = m.tick()
        assert report.expired_reservations == 1 and report.matched[0].filled == []
        assert m.reservation(brief.reservation_no).status == "expired"
        assert [n.kind for n in m.notifications()] == [
            "reservation_cancelled",
            "reservation_expired",
        ]


def test_a_fund_funded_reservation_buys_with_shares_and_reinvests(tmp_path: Path) -> None:
    with world(tmp_path, when=BEFORE_OPEN, with_fund=True) as w:
        m = w.market
        assert w.fund is not None
        w.fund.subscribe("alice", w.wallet(0), 8_000_000, "s1")
        m.reserve(
            "alice",
            "auto",
            term_min_days=30,
            term_max_days=180,
            min_yield_bp=400,
            amount_fen=5_000_000,
            source=FundSource(w.fund, "alice"),
            payout=Payout(w.wallet(0), into_fund=True),
        )
        w.clock.set(OPEN)
        m.list_product(terms(min_raise_fen=100_000))
        w.clock.set(CLOSE)
        m.close_sale("p1")
        assert w.fund.shares("alice") == 3_000_000
        w.fund_account(m.issuer_account_id("icbc"), 55_479, 77)
        w.clock.set(beijing(2026, 6, 4, 10, 0))
        assert m.mature("p1").reinvested == 1
        assert w.fund.shares("alice") == 8_055_479
        assert w.fund.reconcile()["difference_fen"] == 0
        assert w.trial_balances_hold()


def test_reservations_are_idempotent_bounded_and_durable(tmp_path: Path) -> None:
    with world(tmp_path, when=BEFORE_OPEN) as w:
        first = _reserve(w, "alice", 0, 1_000_000)
        again = _reserve(w, "alice", 0, 1_000_000)
        assert again.replayed and again.reservation_no == first.reservation_no
        with pytest.raises(InvalidRequest, match="different reservation"):
            _reserve(w, "alice", 0, 2_000_000)
        with pytest.raises(InvalidRequest):
            w.market.reserve(
                "alice",
                "bad",
                term_min_days=90,
                term_max_days=30,
                min_yield_bp=0,
                amount_fen=1_000_000,
                source=WalletSource(w.wallet(0)),
            )
        for n in range(w.market.config.reservations_per_user_max - 1):
            w.market.reserve(
                "alice",
                f"more-{n}",
                term_min_days=30,
                term_max_days=90,
                min_yield_bp=0,
                amount_fen=100,
                source=WalletSource(w.wallet(0)),
            )
        with pytest.raises(InvalidRequest, match="at most"):
            _reserve(w, "alice", 0, 1_000_000, "one-too-many")
        w.clock.set(OPEN)
        w.market.list_product(terms())
        seen = [(n.seq, n.kind) for n in w.market.notifications("alice")]
        assert seen
    # The outbox is in the state file: a new process reads the same notifications.
    store = WealthStore(tmp_path / "wealth.db")
    try:
        assert [(n.seq, n.kind) for n in store.notifications(user_id="alice")] == seen
    finally:
        store.close()
    w2 = open_world(tmp_path, w.clock, issuers=())
    try:
        assert len(w2.market.reservations("alice")) == w.market.config.reservations_per_user_max
    finally:
        close_world(w2)
