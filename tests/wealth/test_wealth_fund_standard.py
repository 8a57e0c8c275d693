"""Purchases paid from the money-market fund by a standard (T+1) redemption: no T+0 limit is
booked or checked, the sale must close no earlier than the day the redemption's cash arrives
(the fund's own pay day: next trading day after the order's trade date, cut-off 15:00), and
otherwise they are instant fund purchases: pending legs posted at the close or voided at a
failed launch, shares equal to the ledger, the fund's books reconciled, the order recorded by
the fund as a standard redemption. Also the auto-reservations, the HTTP route and the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

import formicary.client as sdk
from formicary.client import _wealth as sdk_wealth
from formicary.funds import DailyRun, FundStore, MoneyMarketFund
from formicary.funds.ledger_ids import Code as FundCode
from formicary.funds.ledger_ids import day_from_number
from formicary.ledger import TransferFlags
from formicary.wealth import (
    FundSource,
    InvalidRequest,
    Payout,
    Purchase,
    StandardRedemptionTooLate,
    WalletSource,
)
from tests.api import test_wealth_fund_api as http
from tests.api.test_wealth_fund_api import api, clock  # noqa: F401 (the fixtures)
from tests.client.wealth_server import CLOSE, OPEN, seed_fund_and_bank, serve_wealth
from tests.client.wealth_server import Clock as ServedClock
from tests.wealth.test_wealth_fund_limits import LIMITS, small
from tests.wealth.wealth_builders import (
    MONDAY_10AM,
    MarketWorld,
    beijing,
    fund_books_hold,
    fund_of,
    subscribe_holders,
    world,
)

# The HTTP tests reuse the fund API tests' `api` (the app on a ledger of each backend, wallets
# 11-13 of 500,000 yuan, a vetted bank) and `clock` (moved by hand), and their helpers.

# Subscribed on Friday 27 February 2026, so that the shares earn from Monday 2 March.
FRIDAY_BEFORE = beijing(2026, 2, 27, 10, 0)
MONDAY = MONDAY_10AM.date()
TUESDAY = date(2026, 3, 3)
THURSDAY_CLOSE = beijing(2026, 3, 5, 9, 0)  # the default test product's sale close
_PENDING = int(TransferFlags.PENDING)


def _standard(w: MarketWorld, product: str, user: str, n: int, fen: int, request: str) -> Purchase:
    source = FundSource(fund_of(w), user, redemption="standard")
    return w.market.purchase(product, user, fen, source, request, payout=Payout(w.wallet(n)))


def _instant(w: MarketWorld, product: str, user: str, n: int, fen: int, request: str) -> Purchase:
    source = FundSource(fund_of(w), user)
    return w.market.purchase(product, user, fen, source, request, payout=Payout(w.wallet(n)))


def _index(w: MarketWorld, user: str) -> int:
    fund = fund_of(w)
    return fund.holder_account(user) - fund.holder_base


def _standard_orders(fund: MoneyMarketFund, holder: int) -> list[tuple[int, date, date]]:
    """The fund's recent standard redemptions of a holder: (shares, order day, earning stop)."""
    return [
        (r.shares, r.order_day, day_from_number(r.earning_day))
        for r in fund.recent_orders()
        if r.holder_index == holder and r.code == FundCode.REDEMPTION_STANDARD
    ]


def test_a_standard_purchase_over_the_t0_limits_posts_at_the_close_to_the_fen(
    tmp_path: Path,
) -> None:
    with world(tmp_path, when=FRIDAY_BEFORE, with_fund=True, fund_config=LIMITS) as w:
        fund = fund_of(w)
        m = w.market
        subscribe_holders(w, ["alice", "bob"], 50_000)
        alice = _index(w, "alice")
        holder = fund.holder_account("alice")
        assert w.balance(fund.custody) == 100_000
        w.clock.set(MONDAY_10AM)
        m.list_product(small(min_raise_fen=1_000))  # on sale until Thursday 5 March 09:00

        # 200 yuan: over the 50-yuan order and 120-yuan daily T+0 limits, and nothing booked.
        bought = _standard(w, "p1", "alice", 0, 20_000, "r1")
        assert (bought.status, bought.source_kind, bought.source_ref) == (
            "reserved",
            "fund_standard",
            "alice",
        )
        usage = fund.instant_usage("alice")
        assert (usage["user_used_fen"], usage["fund_used_fen"]) == (0, 0)
        # The fund's legs, pending: a standard redemption paying the escrow directly.
        share_leg, cash_leg = w.ledger.lookup_transfers(list(bought.source_legs))
        assert share_leg.code == cash_leg.code == FundCode.REDEMPTION_STANDARD
        assert share_leg.flags & _PENDING and cash_leg.flags & _PENDING
        assert (share_leg.debit_account_id, share_leg.credit_account_id) == (
            holder,
            fund.issuance,
        )
        assert (cash_leg.debit_account_id, cash_leg.credit_account_id) == (
            fund.custody,
            m.escrow_account_id("p1"),
        )
        assert share_leg.amount == cash_leg.amount == 20_000
        assert day_from_number(share_leg.user_data_32) == TUESDAY  # stops earning
        assert day_from_number(cash_leg.user_data_32) == TUESDAY  # the pay day
        # The holder's statement shows it as a standard redemption; reserved, still theirs.
        statement = w.ledger.account_transfers(holder)
        assert [t.code for t in statement] == [
            FundCode.SUBSCRIPTION,
            FundCode.REDEMPTION_STANDARD,
        ]
        assert (fund.shares("alice"), w.available(holder)) == (50_000, 30_000)
        assert fund.reconcile()["difference_fen"] == 0
        # The fund records the order as its standard redemption; its shares earn as an instant
        # purchase's do: through the trade date (and the days before the next trading day),
        # not from the next trading day on.
        assert _standard_orders(fund, alice) == [(20_000, MONDAY, TUESDAY)]
        run = DailyRun(fund, tmp_path / "plans")
        assert int(run.snapshot(MONDAY)[alice]) == 50_000
        assert int(run.snapshot(TUESDAY)[alice]) == 30_000

        # The T+0 room is untouched: an instant purchase beside it books only itself.
        _instant(w, "p1", "alice", 0, 5_000, "r2")
        assert fund.instant_usage("alice")["user_used_fen"] == 5_000
        # A retry is answered; the same request id as an instant purchase is another purchase.
        assert _standard(w, "p1", "alice", 0, 20_000, "r1").replayed
        with pytest.raises(InvalidRequest, match="different purchase"):
            _instant(w, "p1", "alice", 0, 20_000, "r1")
        assert fund.instant_usage("alice")["user_used_fen"] == 5_000

        # A fund restarted on the same ledger rebuilds the order as a standard redemption,
        # outside the T+0 usage.
        again = MoneyMarketFund(
            w.ledger, FundStore(tmp_path / "fund2.db"), LIMITS, clock_ns=w.clock
        )
        again.store.add_holders(["alice", "bob"])
        again.start()
        assert _standard_orders(again, alice) == [(20_000, MONDAY, TUESDAY)]
        assert again.instant_usage("alice")["user_used_fen"] == 5_000
        again.store.close()

        w.clock.set(THURSDAY_CLOSE)
        report = m.close_sale("p1")
        assert (report.launched, report.raised_fen, report.settled) == (True, 25_000, 2)
        assert {p.status for p in m.purchases(product_id="p1")} == {"posted"}
        assert fund.shares("alice") == w.available(holder) == 25_000
        assert w.balance(fund.custody) == 75_000
        assert w.balance(m.escrow_account_id("p1")) == 0
        assert w.balance(m.issuer_account_id("icbc")) == 25_000
        # Its cash went to the escrow: the fund's T+1 payout run has nothing to pay for it.
        assert fund.pay_standard_redemptions(THURSDAY_CLOSE.date()) == 0
        assert w.balance(fund.payable) == 0
        fund_books_hold(w, ["alice", "bob"])

        # Maturity: 4.50 % for 90 days, truncated per purchase: 221 fen on 200 yuan, 55 on 50.
        product = m.product("p1")
        assert (product.terms.interest_for(20_000), product.terms.interest_for(5_000)) == (221, 55)
        w.fund_account(m.issuer_account_id("icbc"), 276, 77)
        w.clock.set(beijing(2026, 6, 4, 10, 0))
        assert m.mature("p1").paid == 2
        assert w.wallet_balance(0) == 100_000_000 - 50_000 + 25_000 + 276
        assert w.balance(m.escrow_account_id("p1")) == 0
        fund_books_hold(w, ["alice", "bob"])


# (order time, a sale close too early, the day the cash arrives, the first close that works)
TOO_EARLY = {
    "same day": (
        beijing(2026, 3, 2, 10, 0),
        beijing(2026, 3, 2, 23, 0),
        date(2026, 3, 3),
        beijing(2026, 3, 3, 9, 0),
    ),
    "over a weekend": (
        beijing(2026, 3, 6, 10, 0),  # Friday
        beijing(2026, 3, 8, 20, 0),  # Sunday
        date(2026, 3, 9),
        beijing(2026, 3, 9, 0, 0),
    ),
    "at the 15:00 cut-off": (
        beijing(2026, 3, 2, 15, 0),  # Monday 15:00 belongs to Tuesday: paid on Wednesday
        beijing(2026, 3, 3, 20, 0),
        date(2026, 3, 4),
        beijing(2026, 3, 4, 9, 0),
    ),
    "over the Labour Day holiday": (
        beijing(2026, 4, 30, 10, 0),  # Thursday; 1-5 May closed
        beijing(2026, 5, 5, 20, 0),
        date(2026, 5, 6),
        beijing(2026, 5, 6, 9, 0),
    ),
    "after the cut-off before a holiday": (
        beijing(2026, 4, 30, 15, 30),  # belongs to Wednesday 6 May: paid on Thursday 7 May
        beijing(2026, 5, 6, 20, 0),
        date(2026, 5, 7),
        beijing(2026, 5, 7, 9, 0),
    ),
}


@pytest.mark.parametrize("case", list(TOO_EARLY))
def test_a_standard_purchase_is_refused_when_the_sale_closes_before_the_cash_arrives(
    tmp_path: Path, case: str
) -> None:
    order, too_early, arrives, first_ok = TOO_EARLY[case]
    with world(tmp_path, when=FRIDAY_BEFORE, with_fund=True, fund_config=LIMITS) as w:
        fund = fund_of(w)
        m = w.market
        subscribe_holders(w, ["alice", "bob"], 50_000)
        w.clock.set(order)
        opens = order.replace(hour=9, minute=0)
        m.list_product(small("early", sale_open=opens, sale_close=too_early, min_raise_fen=1_000))
        m.list_product(small("ok", sale_open=opens, sale_close=first_ok, min_raise_fen=1_000))
        holder = fund.holder_account("alice")

        with pytest.raises(StandardRedemptionTooLate) as refused:
            _standard(w, "early", "alice", 0, 1_000, "r1")
        message = str(refused.value)
        assert f"arrives on {arrives.isoformat()}" in message
        assert f"closes at {too_early.isoformat()}" in message
        # Nothing applied or recorded; an instant purchase of the same product is fine.
        assert m.purchases(product_id="early") == []
        assert w.available(holder) == 50_000
        assert _standard_orders(fund, _index(w, "alice")) == []
        assert _instant(w, "early", "alice", 0, 1_000, "r1").status == "reserved"
        # The day named is the fund's own pay day for a standard redemption placed now.
        probe = fund.redeem("bob", w.wallet(1), 100, "probe", instant=False)
        assert probe.pay_day == arrives == fund.standard_pay_day()

        # A sale that closes on the day the cash arrives takes it.
        bought = _standard(w, "ok", "alice", 0, 30_000, "r1")
        assert bought.status == "reserved"
        # Its shares stop earning on that same day, as any redemption's of that trade date.
        assert _standard_orders(fund, _index(w, "alice")) == [(30_000, order.date(), arrives)]
        w.clock.set(first_ok)
        assert m.close_sale("ok").launched
        assert m.close_sale("early").launched
        assert fund.shares("alice") == 50_000 - 1_000 - 30_000
        fund.pay_standard_redemptions(arrives)  # bob's probe
        assert w.wallet_balance(1) == 100_000_000 - 50_000 + 100
        fund_books_hold(w, ["alice", "bob"])


def test_a_failed_launch_voids_a_standard_purchase_and_gives_the_shares_back(
    tmp_path: Path,
) -> None:
    with world(tmp_path, when=FRIDAY_BEFORE, with_fund=True, fund_config=LIMITS) as w:
        fund = fund_of(w)
        m = w.market
        subscribe_holders(w, ["alice", "bob"], 50_000)
        alice = _index(w, "alice")
        w.clock.set(MONDAY_10AM)
        wednesday = beijing(2026, 3, 4, 9, 0)
        m.list_product(small("fails", min_raise_fen=1_000_000, sale_close=wednesday))
        a = _standard(w, "fails", "alice", 0, 20_000, "r1")
        b = _instant(w, "fails", "bob", 1, 5_000, "r1")
        run = DailyRun(fund, tmp_path / "plans")
        assert int(run.snapshot(MONDAY)[alice]) == 50_000
        assert int(run.snapshot(TUESDAY)[alice]) == 30_000
        assert fund.instant_usage("bob", MONDAY)["user_used_fen"] == 5_000

        w.clock.set(wednesday)
        report = m.close_sale("fails")
        assert (report.launched, report.settled) == (False, 2)
        assert {p.status for p in m.purchases(product_id="fails")} == {"voided"}
        assert fund.shares("alice") == w.available(fund.holder_account("alice")) == 50_000
        assert fund.shares("bob") == w.available(fund.holder_account("bob")) == 50_000
        # The fund forgot both redemptions: the shares earn as if they had never left (not
        # twice), and bob's T+0 room is free again.
        legs = {*a.source_legs, *b.source_legs}
        assert not [r for r in fund.recent_orders() if r.transfer_id in legs]
        assert int(run.snapshot(MONDAY)[alice]) == 50_000
        assert int(run.snapshot(TUESDAY)[alice]) == 50_000
        assert fund.instant_usage("bob", MONDAY)["user_used_fen"] == 0
        assert m.release_fund_holds(m.purchases(product_id="fails")) == 0  # idempotent
        # A restarted fund does not count the voided legs either.
        again = MoneyMarketFund(
            w.ledger, FundStore(tmp_path / "fund2.db"), LIMITS, clock_ns=w.clock
        )
        again.store.add_holders(["alice", "bob"])
        again.start()
        assert not [r for r in again.recent_orders() if r.transfer_id in legs]
        again.store.close()
        assert {n.kind for n in m.notifications("alice")} == {"purchase_released"}
        assert w.balance(m.escrow_account_id("fails")) == 0
        assert w.balance(fund.custody) == 100_000
        fund_books_hold(w, ["alice", "bob"])


def test_a_standard_reservation_fills_beyond_the_t0_limits(tmp_path: Path) -> None:
    with world(tmp_path, when=FRIDAY_BEFORE, with_fund=True, fund_config=LIMITS) as w:
        fund = fund_of(w)
        m = w.market
        subscribe_holders(w, ["alice", "bob"], 100_000)
        w.clock.set(beijing(2026, 3, 2, 8, 0))

        def reserve(user: str, n: int, redemption: str) -> Any:
            return m.reserve(
                user,
                "auto",
                term_min_days=30,
                term_max_days=180,
                min_yield_bp=0,
                amount_fen=40_000,
                source=FundSource(fund, user, redemption=redemption),
                payout=Payout(w.wallet(n)),
            )

        mine = reserve("alice", 0, "standard")
        assert (mine.source_kind, mine.source_ref) == ("fund_standard", "alice")
        assert reserve("alice", 0, "standard").replayed
        with pytest.raises(InvalidRequest, match="different reservation"):
            reserve("alice", 0, "instant")
        w.clock.advance(seconds=1)
        reserve("bob", 1, "instant")
        # The first product to open closes at Monday noon, before a T+1 redemption's cash.
        m.list_product(small("early", sale_close=beijing(2026, 3, 2, 12, 0)))
        m.list_product(small("p1", min_raise_fen=1_000))
        w.clock.set(MONDAY_10AM)
        m.tick()

        early = m.purchases(product_id="early")
        assert [(p.user_id, p.amount_fen) for p in early] == [("bob", 5_000)]
        bought = m.purchases(product_id="p1")
        assert [(p.user_id, p.amount_fen, p.source_kind) for p in bought] == [
            ("alice", 40_000, "fund_standard"),  # all of it in one purchase: no T+0 cap
            ("bob", 5_000, "fund"),  # one instant order's limit
        ]
        assert (m.reservation(1).filled_fen, m.reservation(1).status) == (40_000, "filled")
        assert (m.reservation(2).filled_fen, m.reservation(2).status) == (10_000, "open")
        assert fund.instant_usage("alice")["user_used_fen"] == 0
        notices = m.notifications("alice")
        assert [n.kind for n in notices] == ["reservation_skipped", "reservation_filled"]
        assert "arrives on 2026-03-03" in notices[0].message
        assert m.reservation(1).status == "filled"

        w.clock.set(THURSDAY_CLOSE)
        m.tick()
        assert m.product("early").status == "failed"  # bob's 50 yuan are given back
        assert m.product("p1").status == "launched"
        assert (fund.shares("alice"), fund.shares("bob")) == (60_000, 95_000)
        assert w.balance(m.issuer_account_id("icbc")) == 45_000
        fund_books_hold(w, ["alice", "bob"])


def test_a_reservation_standard_source_is_rebuilt_from_its_stored_kind(tmp_path: Path) -> None:
    with world(tmp_path, with_fund=True) as w:
        source = w.market.source_for("fund_standard", "alice")
        assert isinstance(source, FundSource)
        assert (source.kind, source.redemption, source.capacity_fen()) == (
            "fund_standard",
            "standard",
            None,
        )
        assert w.market.source_for("fund", "alice").capacity_fen() == 5_000_000
        with pytest.raises(InvalidRequest, match="redemption"):
            FundSource(fund_of(w), "alice", redemption="t+1")
        assert WalletSource(w.wallet(0)).kind == "wallet"


# --------------------------------------------------------------------- HTTP


def _standard_body(amount: int, request_id: str, **extra: Any) -> dict[str, Any]:
    return http.from_fund(amount, request_id, redemption="standard", **extra)


def test_the_purchase_route_takes_a_standard_redemption(
    api: TestClient,  # noqa: F811 (the imported fixture)
    clock: http.FixedClock,  # noqa: F811
) -> None:
    http.subscribe(api, "alice", "11", 30_000_000)
    http.subscribe(api, "bob", "12", 10_000_000)
    reservation = {
        "user_id": "bob",
        "request_id": "auto",
        "wallet_account_id": "12",
        "amount_fen": 8_000_000,  # over one instant order's 50,000 yuan
        "term_min_days": 7,
        "term_max_days": 90,
        "source": "fund",
        "redemption": "standard",
    }
    r = api.post("/v1/wealth/reservations", json=reservation)
    assert r.status_code == 200, r.text
    made = r.json()
    assert (made["source_kind"], made["redemption"], made["source_ref"]) == (
        "fund",
        "standard",
        "bob",
    )
    assert api.post("/v1/wealth/products", json=http.product("p1", *http.MONDAY_SALE)).is_success
    early = http.product("early", *http.MONDAY_MORNING_SALE)
    assert api.post("/v1/wealth/products", json=early).is_success
    # Bob's reservation bought all 80,000 yuan at p1's opening, in one standard redemption.
    got = api.get(f"/v1/wealth/reservations/{made['reservation_no']}").json()
    assert (got["filled_fen"], got["status"]) == (8_000_000, "filled")

    path = "/v1/wealth/products/p1/purchases"
    over_the_day = http.PER_DAY + 1_000_000  # 210,000 yuan
    r = api.post(path, json=_standard_body(over_the_day, "s1"))
    assert r.status_code == 200, r.text
    assert (r.json()["source_kind"], r.json()["redemption"], r.json()["status"]) == (
        "fund",
        "standard",
        "reserved",
    )
    r = api.post(path, json=http.from_fund(http.PER_ORDER, "i1"))
    assert (r.status_code, r.json()["redemption"]) == (200, "instant")
    wallet = {**http.from_fund(100_000, "w1"), "source": "wallet"}
    r = api.post(path, json=wallet)
    assert (r.status_code, r.json()["source_kind"], r.json()["redemption"]) == (200, "wallet", None)
    again = api.post(path, json=_standard_body(over_the_day, "s1"))
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    r = api.post(path, json=http.from_fund(over_the_day, "s1"))  # the same id, instant
    assert (r.status_code, r.json()["code"]) == (422, "invalid_wealth_request")

    # The sale closes Monday 11:00; the cash would arrive on Tuesday.
    r = api.post("/v1/wealth/products/early/purchases", json=_standard_body(100_000, "e1"))
    assert (r.status_code, r.json()["code"]) == (422, "standard_redemption_too_late")
    assert "2026-03-03" in r.json()["detail"]
    assert "2026-03-02T11:00:00+08:00" in r.json()["detail"]
    for bad in (
        _standard_body(100_000, "b1") | {"redemption": "t+1"},
        _standard_body(100_000, "b2") | {"redemption": None},
        _standard_body(100_000, "b3") | {"redemption": 1},
    ):
        r = api.post(path, json=bad)
        assert (r.status_code, r.json()["code"]) == (400, "validation_failed"), bad
    r = api.post("/v1/wealth/reservations", json={**reservation, "redemption": "later"})
    assert (r.status_code, r.json()["code"]) == (400, "validation_failed")
    r = api.post(path, json={**wallet, "request_id": "w2", "redemption": "standard"})
    assert (r.status_code, r.json()["code"]) == (422, "invalid_wealth_request")

    listed = api.get("/v1/wealth/purchases", params={"product_id": "p1"}).json()["purchases"]
    assert [(p["request_id"], p["redemption"]) for p in listed] == [
        ("reservation-1", "standard"),
        ("s1", "standard"),
        ("i1", "instant"),
        ("w1", None),
    ]
    schema = api.get("/openapi.json").json()["components"]["schemas"]
    for name in ("WealthPurchaseIn", "WealthReservationIn"):
        field = schema[name]["properties"]["redemption"]
        assert (field["enum"], field["default"]) == (["instant", "standard"], "instant"), name

    clock.at(2026, 3, 3, 10, 0)
    closed = {c["product_id"]: c for c in api.post("/v1/wealth/tick").json()["closed"]}
    assert closed["p1"]["launched"] is True
    assert closed["p1"]["raised_fen"] == 8_000_000 + over_the_day + http.PER_ORDER + 100_000
    assert http.shares(api, "alice") == 30_000_000 - over_the_day - http.PER_ORDER
    assert http.shares(api, "bob") == 10_000_000 - 8_000_000
    assert http.fund_balanced(api)
    books = api.get("/v1/wealth/products/p1/books").json()
    assert (books["escrow_pending_fen"], books["balanced"]) == (0, True)


# --------------------------------------------------------------------- SDK


def test_the_sdk_sends_the_redemption_and_checks_it() -> None:
    call = sdk_wealth.purchase("p1", "alice", 11, 100_000, "r1", "fund", None, "wallet", "standard")
    assert msgspec.json.decode(call.content or b"")["redemption"] == "standard"
    call = sdk_wealth.reserve("alice", 11, 100_000, 7, 90, 0, None, "r1", "fund")
    assert msgspec.json.decode(call.content or b"")["redemption"] == "instant"
    with pytest.raises(ValueError, match="redemption"):
        sdk_wealth.purchase("p1", "alice", 11, 100_000, "r1", "fund", None, "wallet", "t+1")


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with serve_wealth(tmp_path, ServedClock()) as url:
        yield url


def _served_setup(client: sdk.Client) -> None:
    seed_fund_and_bank(client)
    client.wealth_list_product(
        "p1",
        "icbc",
        "30-day note",
        term_days=30,
        yield_bp=425,
        size_fen=50_000_000,
        min_purchase_fen=100_000,
        sale_open=OPEN,
        sale_close=CLOSE,  # Tuesday 09:00: the day a Monday 10:00 standard redemption arrives
    )


def test_both_clients_buy_and_reserve_by_standard_redemption(base_url: str) -> None:
    over_one_order = 6_000_000  # the fund's default instant limit is 5,000,000 fen an order
    with sdk.Client(base_url) as client:
        _served_setup(client)
        bought = client.wealth_purchase(
            "p1", "alice", 11, over_one_order, request_id="b1", source="fund", redemption="standard"
        )
        assert (bought.source_kind, bought.redemption, bought.status) == (
            "fund",
            "standard",
            "reserved",
        )
        with pytest.raises(ValueError):
            client.wealth_purchase("p1", "alice", 11, 100_000, source="fund", redemption="later")

    async def asynchronous() -> sdk.WealthReservationOut:
        async with sdk.AsyncClient(base_url) as client:
            return await client.wealth_reserve(
                "alice",
                11,
                over_one_order,
                term_min_days=7,
                term_max_days=60,
                request_id="auto",
                source="fund",
                redemption="standard",
            )

    reservation = asyncio.run(asynchronous())
    assert (reservation.source_kind, reservation.redemption, reservation.status) == (
        "fund",
        "standard",
        "open",
    )
