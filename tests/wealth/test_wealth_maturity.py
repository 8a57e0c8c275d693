"""Maturity: the issuer repays principal plus interest (ACT/365, truncated to the fen, per
purchase) and every purchase is paid to its wallet or reinvested in the fund."""

from __future__ import annotations

from pathlib import Path

import pytest

from formicary.wealth import (
    InvalidRequest,
    IssuerShortfall,
    NotDue,
    Payout,
    WalletSource,
    WealthError,
)
from formicary.wealth.ledger_ids import Code
from tests.wealth.wealth_builders import beijing, terms, world

CLOSE = beijing(2026, 3, 5, 9, 0)
MATURITY = beijing(2026, 6, 4, 10, 0)  # value date 6 March + 90 days


def _launch(w, lots: list[tuple[str, int, int]]) -> None:  # type: ignore[no-untyped-def]
    w.market.list_product(terms(min_raise_fen=100_000))
    for user, wallet_no, amount in lots:
        w.market.purchase("p1", user, amount, WalletSource(w.wallet(wallet_no)), "r1")
    w.clock.set(CLOSE)
    assert w.market.close_sale("p1").launched


def test_maturity_pays_principal_and_interest_exactly(tmp_path: Path) -> None:
    # 4.50 % for 90 days, ACT/365, each purchase truncated to the fen on its own:
    #   50,000.00 yuan: 5,000,000 x 450 x 90 / 3,650,000 = 55,479.45 -> 55,479 fen
    #   40,000.00 yuan: 4,000,000 x 450 x 90 / 3,650,000 = 44,383.56 -> 44,383 fen
    #    1,234.56 yuan:   123,456 x 450 x 90 / 3,650,000 =  1,369.84 ->  1,369 fen
    lots = [("alice", 0, 5_000_000), ("bob", 1, 4_000_000), ("carol", 2, 123_456)]
    interest = {"alice": 55_479, "bob": 44_383, "carol": 1_369}
    with world(tmp_path) as w:
        m = w.market
        _launch(w, lots)
        issuer = m.issuer_account_id("icbc")
        assert w.balance(issuer) == 9_123_456  # the raise, handed over at launch
        w.fund_account(issuer, sum(interest.values()), 77)  # the issuer funds the interest
        w.clock.set(MATURITY)
        report = m.mature("p1")
        assert (report.principal_fen, report.interest_fen, report.paid) == (
            9_123_456,
            101_231,
            3,
        )
        for user, wallet_no, amount in lots:
            assert w.wallet_balance(wallet_no) == 100_000_000 + interest[user]
            postings = w.ledger.account_transfers(w.wallet(wallet_no))
            paid = {t.code: t.amount for t in postings if t.code >= Code.PAYOUT_PRINCIPAL}
            assert paid == {Code.PAYOUT_PRINCIPAL: amount, Code.PAYOUT_INTEREST: interest[user]}
        assert w.balance(issuer) == 0  # it repaid exactly what it owed, to the fen
        assert m.books("p1")["escrow_posted_fen"] == 0
        assert [p.interest_fen for p in m.purchases()] == [55_479, 44_383, 1_369]
        assert m.product("p1").status == "matured"
        assert m.product("p1").due_fen == 9_123_456 + 101_231
        matured = [n for n in m.notifications() if n.kind == "purchase_matured"]
        assert [(n.user_id, n.amount_fen) for n in matured] == [
            ("alice", 5_055_479),
            ("bob", 4_044_383),
            ("carol", 124_825),
        ]
        assert w.trial_balances_hold()
        # Again: nothing more is paid.
        assert m.mature("p1").paid == 0
        assert w.wallet_balance(0) == 100_000_000 + interest["alice"]


def test_an_issuer_short_of_money_pays_nothing_until_funded(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        m = w.market
        _launch(w, [("alice", 0, 5_000_000), ("bob", 1, 4_000_000)])
        w.clock.set(MATURITY)
        with pytest.raises(IssuerShortfall, match="owes 9099862"):
            m.mature("p1")
        assert (w.wallet_balance(0), w.wallet_balance(1)) == (95_000_000, 96_000_000)
        assert m.product("p1").status == "launched"
        report = m.tick()
        assert report.shortfalls and report.matured == []
        w.fund_account(m.issuer_account_id("icbc"), 99_862, 77)
        assert m.tick().matured[0].paid == 2
        assert w.wallet_balance(0) == 100_055_479


def test_a_payout_into_the_fund_becomes_shares(tmp_path: Path) -> None:
    with world(tmp_path, with_fund=True) as w:
        m = w.market
        assert w.fund is not None
        m.list_product(terms(min_raise_fen=100_000))
        m.purchase(
            "p1",
            "alice",
            5_000_000,
            WalletSource(w.wallet(0)),
            "r1",
            payout=Payout(w.wallet(0), into_fund=True),
        )
        w.clock.set(CLOSE)
        m.close_sale("p1")
        w.fund_account(m.issuer_account_id("icbc"), 55_479, 77)
        w.clock.set(MATURITY)
        report = m.mature("p1")
        assert (report.reinvested, report.reinvest_failed) == (1, 0)
        assert w.fund.shares("alice") == 5_055_479
        assert w.wallet_balance(0) == 95_000_000  # paid in, then subscribed out
        assert w.fund.reconcile()["difference_fen"] == 0
        assert m.purchases()[0].status == "reinvested"
        assert [n.kind for n in m.notifications()][-2:] == ["purchase_matured", "reinvested"]
        assert w.trial_balances_hold()


def test_maturity_waits_for_its_date_and_a_failed_product_never_matures(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        m = w.market
        _launch(w, [("alice", 0, 60_000_000)])
        m.list_product(terms("p2", sale_open=CLOSE, sale_close=beijing(2026, 3, 6, 9, 0)))
        w.clock.set(beijing(2026, 3, 6, 9, 0))
        assert not m.close_sale("p2").launched
        w.clock.set(beijing(2026, 6, 3, 23, 59))
        with pytest.raises(NotDue, match="2026-06-04"):
            m.mature("p1")
        with pytest.raises(InvalidRequest, match="did not launch"):
            m.mature("p2")
        assert issubclass(IssuerShortfall, WealthError)
