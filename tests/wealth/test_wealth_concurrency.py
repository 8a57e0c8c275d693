"""No product is ever oversold, however many threads buy at once (the ledger enforces it, no
lock), and money is conserved from purchase to maturity: every ledger balances and every
wallet ends where the rules say."""

from __future__ import annotations

import tempfile
import threading
from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from formicary.wealth import (
    InsufficientFunds,
    SoldOut,
    WalletSource,
    interest_fen,
)
from tests.wealth.wealth_builders import MONEY, QUOTA, beijing, terms, world

OPEN = beijing(2026, 3, 2, 10, 0)
CLOSE = beijing(2026, 3, 5, 9, 0)
MATURITY = beijing(2026, 6, 4, 10, 0)


def _race(market, attempts, wallets, threads):  # type: ignore[no-untyped-def]
    """Each thread buys its share of the attempts; returns {attempt index: outcome}."""
    outcomes: dict[int, str] = {}
    barrier = threading.Barrier(threads)

    def buyer(worker: int) -> None:
        barrier.wait()  # start together, to contend for the last of the size
        for i in range(worker, len(attempts), threads):
            user, amount = attempts[i]
            try:
                market.purchase("p1", f"u{user}", amount, WalletSource(wallets[user]), f"a{i}")
                outcomes[i] = "ok"
            except SoldOut:
                outcomes[i] = "sold out"
            except InsufficientFunds:
                outcomes[i] = "no money"

    pool = [threading.Thread(target=buyer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert len(outcomes) == len(attempts)
    return outcomes


def test_many_threads_never_oversell(tmp_path: Path) -> None:
    threads, users = 16, 8
    with world(tmp_path, when=OPEN, wallets=users) as w:
        m = w.market
        m.list_product(terms(size_fen=5_000_000, min_purchase_fen=100))
        attempts = [(n % users, 50_000 + 7_919 * n % 200_000) for n in range(320)]
        outcomes = _race(m, attempts, [w.wallet(n) for n in range(users)], threads)
        sold = sum(attempts[i][1] for i, o in outcomes.items() if o == "ok")
        assert "sold out" in outcomes.values()
        assert sold <= 5_000_000
        assert sold == 5_000_000 - m.remaining_fen("p1")
        books = m.books("p1")
        assert books["escrow_pending_fen"] == books["reserved_fen"] == sold
        assert books["quota_subscribed_fen"] == sold


def test_reservations_and_manual_buyers_race_without_overselling(tmp_path: Path) -> None:
    users = 8
    with world(tmp_path, when=beijing(2026, 3, 2, 8, 0), wallets=users) as w:
        m = w.market
        for n in range(users):
            m.reserve(
                f"u{n}",
                "auto",
                term_min_days=30,
                term_max_days=180,
                min_yield_bp=0,
                amount_fen=400_000,
                source=WalletSource(w.wallet(n)),
            )
        m.list_product(terms(size_fen=2_000_000, min_purchase_fen=100))
        w.clock.set(OPEN)
        ticker = threading.Thread(target=m.tick)
        ticker.start()
        attempts = [(n % users, 90_000) for n in range(40)]
        outcomes = _race(m, attempts, [w.wallet(n) for n in range(users)], 4)
        ticker.join()
        manual = sum(attempts[i][1] for i, o in outcomes.items() if o == "ok")
        auto = sum(r.filled_fen for r in m.reservations())
        assert manual + auto == 2_000_000 - m.remaining_fen("p1") <= 2_000_000
        assert auto == sum(p.amount_fen for p in m.purchases() if p.reservation_no is not None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(100, 3_000_000),
    raise_pct=st.integers(1, 100),
    wallet_fen=st.lists(st.integers(0, 2_000_000), min_size=2, max_size=6),
    attempts=st.lists(st.tuples(st.integers(0, 5), st.integers(100, 900_000)), max_size=30),
    threads=st.integers(2, 6),
)
def test_no_oversell_and_money_is_conserved(
    size: int,
    raise_pct: int,
    wallet_fen: list[int],
    attempts: list[tuple[int, int]],
    threads: int,
) -> None:
    users = len(wallet_fen)
    attempts = [(user % users, amount) for user, amount in attempts]
    min_raise = max(1, size * raise_pct // 100)  # the launch threshold: a share of the size
    with (
        tempfile.TemporaryDirectory() as directory,
        world(Path(directory), when=OPEN, wallets=users, wallet_fen=1) as w,
    ):
        m = w.market
        for n, fen in enumerate(wallet_fen):  # each wallet: 1 fen from the builder, plus this
            if fen:
                w.fund_account(w.wallet(n), fen, 500 + n)
        start = {n: w.wallet_balance(n) for n in range(users)}
        m.list_product(terms(size_fen=size, min_purchase_fen=100, min_raise_fen=min_raise))
        outcomes = _race(m, attempts, [w.wallet(n) for n in range(users)], threads)

        bought: dict[int, list[int]] = defaultdict(list)
        for i, outcome in outcomes.items():
            if outcome == "ok":
                bought[attempts[i][0]].append(attempts[i][1])
        sold = sum(sum(v) for v in bought.values())
        # Never oversold, and the ledger's reservations are exactly the accepted purchases.
        assert sold <= size and sold == size - m.remaining_fen("p1")
        assert m.books("p1")["escrow_pending_fen"] == sold
        for n in range(users):
            assert w.available(w.wallet(n)) == start[n] - sum(bought[n]) >= 0

        event(f"sold out: {'sold out' in outcomes.values()}")
        w.clock.set(CLOSE)
        report = m.close_sale("p1")
        event(f"launched: {report.launched}")
        assert report.raised_fen == sold
        assert report.launched == (sold >= min_raise)
        owed = {n: sum(interest_fen(a, 450, 90) for a in bought[n]) for n in range(users)}
        if report.launched:
            issuer = m.issuer_account_id("icbc")
            w.fund_account(issuer, sum(owed.values()) or 1, 99)
            w.clock.set(MATURITY)
            m.mature("p1")
            assert w.balance(issuer) == (0 if sum(owed.values()) else 1)
            for n in range(users):
                assert w.wallet_balance(n) == start[n] + owed[n]
        else:
            for n in range(users):
                assert w.wallet_balance(n) == w.available(w.wallet(n)) == start[n]
        for ledger in (MONEY, QUOTA):
            dp, dpo, cp, cpo = w.ledger.trial_balance(ledger)
            assert dpo == cpo and dp == cp == 0
        assert m.books("p1")["escrow_posted_fen"] == 0
