"""Crash and resume: a close or maturity run cut short anywhere (an exception, or SIGKILL of
the process) is run again and ends with exactly one posting per purchase; a purchase written
ahead of its ledger call is resolved on start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from formicary.ledger import Transfer, TransferFlags, open_store
from formicary.wealth import MarketConfig, Marketplace, WalletSource, WealthStore
from formicary.wealth.ledger_ids import Code
from tests.wealth.wealth_builders import (
    Clock,
    beijing,
    close_world,
    open_world,
    terms,
    world,
)

CLOSE = beijing(2026, 3, 5, 9, 0)
MATURITY = beijing(2026, 6, 4, 10, 0)
SMALL_BATCHES = MarketConfig(settle_batch_purchases=3)


class Crash(Exception):
    """Stands in for the process dying at this point."""


def _buy(w, count: int, wallets: int = 4) -> None:  # type: ignore[no-untyped-def]
    w.market.list_product(terms(min_raise_fen=100))
    for n in range(count):
        user = f"u{n}"
        w.market.purchase("p1", user, 100_000 + n, WalletSource(w.wallet(n % wallets)), "r")


def _restart(w) -> Marketplace:  # type: ignore[no-untyped-def]
    """A new marketplace process on the same ledger and state file."""
    w.market.store.close()
    market = Marketplace(
        w.ledger, WealthStore(w.path / "wealth.db"), SMALL_BATCHES, clock_ns=w.clock
    )
    market.start()
    w.market = market
    return market


def _posts_by_pending(ledger) -> Counter[int]:  # type: ignore[no-untyped-def]
    flags = int(TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER)
    return Counter(
        t.pending_id
        for t in ledger.submit_query(lambda e: list(e.transfers.values())).result()
        if t.flags & flags
    )


def _crash_after(batches: int):  # type: ignore[no-untyped-def]
    seen = []

    def progress(phase: str, done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == batches:
            raise Crash(f"{phase} {done}/{total}")

    return progress


def test_running_the_close_twice_posts_once(tmp_path: Path) -> None:
    with world(tmp_path, config=SMALL_BATCHES) as w:
        _buy(w, 7)
        w.clock.set(CLOSE)
        first = w.market.close_sale("p1")
        second = w.market.close_sale("p1")
        assert (first.settled, second.settled, second.purchases) == (7, 0, 7)
        posts = _posts_by_pending(w.ledger)
        assert len(posts) == 14 and set(posts.values()) == {1}  # quota and wallet leg each


def test_a_close_cut_short_resumes_with_one_posting_per_purchase(tmp_path: Path) -> None:
    with world(tmp_path, config=SMALL_BATCHES) as w:
        _buy(w, 10)
        w.clock.set(CLOSE)
        with pytest.raises(Crash):
            w.market.close_sale("p1", _crash_after(2))
        assert w.market.product("p1").status == "closing_launch"
        assert len(_posts_by_pending(w.ledger)) == 12  # two batches of three purchases
        # The ledger committed a batch, then the process died before the state file knew.
        real = w.market.store.advance_purchases
        w.market.store.advance_purchases = lambda *a: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
        with pytest.raises(Crash):
            w.market.close_sale("p1")
        w.market.store.advance_purchases = real  # type: ignore[method-assign]
        market = _restart(w)
        report = market.close_sale("p1")
        assert report.launched and report.purchases == 10
        posts = _posts_by_pending(w.ledger)
        assert len(posts) == 20 and set(posts.values()) == {1}
        assert w.balance(market.issuer_account_id("icbc")) == sum(100_000 + n for n in range(10))
        confirmed = [n for n in market.notifications() if n.kind == "purchase_confirmed"]
        assert len(confirmed) == 10  # each notified once, however often the run was redone


def test_a_maturity_cut_short_pays_each_purchase_once(tmp_path: Path) -> None:
    with world(tmp_path, config=SMALL_BATCHES) as w:
        _buy(w, 8)
        w.clock.set(CLOSE)
        w.market.close_sale("p1")
        w.fund_account(w.market.issuer_account_id("icbc"), 10**6, 77)
        before = [w.wallet_balance(n) for n in range(4)]
        w.clock.set(MATURITY)
        with pytest.raises(Crash):
            w.market.mature("p1", _crash_after(1))
        assert w.market.product("p1").status == "maturing"
        market = _restart(w)
        report = market.mature("p1")
        assert report.paid == 5 and market.product("p1").status == "matured"
        owed = [0, 0, 0, 0]
        for n in range(8):
            amount = 100_000 + n
            owed[n % 4] += amount + amount * 450 * 90 // 3_650_000
        assert [w.wallet_balance(n) - before[n] for n in range(4)] == owed
        payouts = Counter(
            (t.user_data_64, t.code)
            for n in range(4)
            for t in w.ledger.account_transfers(w.wallet(n))
            if t.code in (Code.PAYOUT_PRINCIPAL, Code.PAYOUT_INTEREST)
        )
        assert len(payouts) == 16 and set(payouts.values()) == {1}


def test_a_purchase_written_ahead_is_resolved_on_start(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        m = w.market
        m.list_product(terms())
        # Applied by the ledger, but the process died before recording it.
        real = m.store.mark_reserved
        m.store.mark_reserved = lambda *a, **k: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
        with pytest.raises(Crash):
            m.purchase("p1", "alice", 1_000_000, WalletSource(w.wallet(0)), "r1")
        m.store.mark_reserved = real  # type: ignore[method-assign]
        # Written ahead, then the process died before the ledger call.
        create = w.ledger.create_transfers
        w.ledger.create_transfers = lambda *a: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
        with pytest.raises(Crash):
            m.purchase("p1", "bob", 2_000_000, WalletSource(w.wallet(1)), "r1")
        w.ledger.create_transfers = create  # type: ignore[method-assign]
        assert [p.status for p in m.purchases()] == ["submitted", "submitted"]
        market = _restart(w)
        (alice,) = market.purchases()
        assert (alice.user_id, alice.status) == ("alice", "reserved")
        assert market.remaining_fen("p1") == 99_000_000
        # The retry of the applied one is a replay; the lost one may simply be made again.
        assert market.purchase("p1", "alice", 1_000_000, WalletSource(w.wallet(0)), "r1").replayed
        bob = market.purchase("p1", "bob", 2_000_000, WalletSource(w.wallet(1)), "r1")
        assert not bob.replayed and bob.status == "reserved"


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from formicary.wealth import MarketConfig
    from tests.wealth.wealth_builders import Clock, beijing, close_world, open_world

    path, phase = Path(sys.argv[1]), sys.argv[2]
    when = beijing(2026, 3, 5, 9, 0) if phase == "close" else beijing(2026, 6, 4, 10, 0)
    w = open_world(path, Clock(when), issuers=(), config=MarketConfig(settle_batch_purchases=5))

    def progress(name, done, total):
        print(name, done, total, flush=True)
        time.sleep(0.05)  # a window for the parent's SIGKILL to land mid-run

    if phase == "close":
        w.market.close_sale("p1", progress)
    else:
        w.market.mature("p1", progress)
    close_world(w)
    print("done", flush=True)
    """
)


def _run_child(path: Path, phase: str, kill_at: int | None) -> bool:
    """Run the phase in a child process; SIGKILL it once `kill_at` purchases are done.
    True if it was killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), phase],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert child.stdout is not None
    killed = False
    for line in child.stdout:
        words = line.split()
        if kill_at is not None and words[0] in ("close", "pay") and int(words[1]) >= kill_at:
            os.kill(child.pid, signal.SIGKILL)
            killed = True
            break
    child.wait(timeout=60)
    assert killed or child.returncode == 0
    return killed


def test_sigkill_mid_close_and_mid_maturity_then_rerun(tmp_path: Path) -> None:
    purchases = 30
    w = open_world(tmp_path, Clock(beijing(2026, 3, 2, 10, 0)))
    try:
        _buy(w, purchases)
        issuer = w.market.issuer_account_id("icbc")
        w.fund_account(issuer, 10**6, 77)  # the interest, ahead of time
        start = [w.wallet_balance(n) for n in range(4)]
    finally:
        close_world(w)

    assert _run_child(tmp_path, "close", kill_at=10)
    assert not _run_child(tmp_path, "close", kill_at=None)
    assert _run_child(tmp_path, "mature", kill_at=5)
    assert not _run_child(tmp_path, "mature", kill_at=None)

    store = open_store(f"sqlite:///{tmp_path}/ledger.db")
    try:
        log = [r for r in store.load_log() if isinstance(r, Transfer)]
    finally:
        store.close()
    assert len({t.id for t in log}) == len(log)
    finish = TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER
    posts = Counter(t.pending_id for t in log if t.flags & finish)
    assert len(posts) == 2 * purchases and set(posts.values()) == {1}
    payouts = Counter(
        (t.user_data_64, t.code)
        for t in log
        if t.code in (Code.PAYOUT_PRINCIPAL, Code.PAYOUT_INTEREST)
    )
    assert len(payouts) == 2 * purchases and set(payouts.values()) == {1}
    assert sum(t.code == Code.HANDOVER for t in log) == 1
    assert sum(t.code == Code.REPAYMENT for t in log) == 1
    with world(tmp_path, when=MATURITY, issuers=()) as w:
        assert w.market.product("p1").status == "matured"
        owed = [0, 0, 0, 0]
        for n in range(purchases):
            amount = 100_000 + n
            owed[n % 4] += amount * 450 * 90 // 3_650_000
        assert [w.wallet_balance(n) - start[n] for n in range(4)] == owed
        assert w.trial_balances_hold()


def test_matching_cut_short_resumes_and_notifies_each_fill_once(tmp_path: Path) -> None:
    with world(tmp_path, when=beijing(2026, 3, 2, 8, 0)) as w:
        m = w.market
        for n in range(3):
            m.reserve(
                f"u{n}",
                "auto",
                term_min_days=30,
                term_max_days=180,
                min_yield_bp=0,
                amount_fen=1_000_000,
                source=WalletSource(w.wallet(n)),
            )
            w.clock.advance(seconds=1)
        m.list_product(terms())
        w.clock.set(beijing(2026, 3, 2, 9, 0))
        real = m.store.mark_reserved
        calls = []

        def dies_on_the_second(*args: object, **kw: object) -> bool:
            calls.append(args)
            if len(calls) == 2:
                raise Crash("after the ledger took the second fill")
            return real(*args, **kw)  # type: ignore[arg-type]

        m.store.mark_reserved = dies_on_the_second  # type: ignore[method-assign]
        with pytest.raises(Crash):
            m.tick()
        market = _restart(w)
        (report,) = market.tick().matched
        assert [no for no, _ in report.filled] == [3]
        assert [r.filled_fen for r in market.reservations()] == [1_000_000] * 3
        fills = Counter(n.reservation_no for n in market.notifications())
        assert fills == {1: 1, 2: 1, 3: 1}
        assert market.remaining_fen("p1") == 97_000_000
