"""`formicary wealth products|books|reservations|tick`: the operator's commands, run on the files
a marketplace left (built here through the domain API on a hand clock in March 2026). The CLI
opens them as the server does, on the real clock: later than every date below, so `tick` finds
every sale ended and every maturity due. Figures are checked to the fen against the domain."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from formicary.wealth import ProductTerms, ReservationStatus, WalletSource
from formicary.wealth.cli import DEFAULT_FUNDS_DIR, DEFAULT_WEALTH_DIR, app
from tests.wealth.wealth_builders import beijing, terms, world

runner = CliRunner()


@dataclass
class Files:
    path: Path
    products: dict[str, ProductTerms]
    books: dict[str, dict[str, int]]  # the domain's Marketplace.books before any tick
    bought: dict[str, list[int]]  # each product's purchase amounts, fen
    reservations: list[tuple[int, str, int, int, str]]  # no, user, amount, filled, status
    expiring: int  # open or filled reservations (all expire before the real clock's now)

    def args(self) -> list[str]:
        return [
            "--database-url",
            f"sqlite:///{self.path}/ledger.db",
            "--wealth-dir",
            str(self.path),
            "--funds-dir",
            str(self.path),
        ]


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def yuan(fen: int) -> str:
    """The expected display: exact yuan with two decimals and thousands separators."""
    return f"{Decimal(fen) / 100:,.2f}"


def row(output: str, first_cell: str) -> str:
    """The table line whose first cell is `first_cell`."""
    lines = output.splitlines()
    (line,) = [
        x for x in lines if x.startswith("│") and x[1:].lstrip().startswith(f"{first_cell} ")
    ]
    return line


@pytest.fixture
def files(tmp_path: Path) -> Files:
    """p1 (the big bank, on sale) bought by an auto-reservation and two buyers; p2 (an AMC)
    whose sale opens later and is never bought; p3 (an insurer) bought once, whose issuer
    cannot pay the interest; bob's reservation matches nothing."""
    p1 = terms("p1", min_raise_fen=10_000_000)
    p2 = terms(
        "p2",
        issuer_id="huarong",
        term_days=30,
        yield_bp=380,
        size_fen=50_000_000,
        sale_open=beijing(2026, 3, 3, 9, 0),
        sale_close=beijing(2026, 3, 6, 9, 0),
    )
    p3 = terms(
        "p3",
        issuer_id="pingan-pc",
        term_days=10,
        yield_bp=425,
        size_fen=10_000_000,
        min_raise_fen=100_000,
        sale_close=beijing(2026, 3, 4, 9, 0),
    )
    with world(tmp_path, wallets=6, with_fund=True) as w:
        m = w.market
        m.reserve(
            "alice",
            "a1",
            term_min_days=60,
            term_max_days=120,
            min_yield_bp=400,
            amount_fen=3_000_000,
            source=WalletSource(w.wallet(0)),
        )
        w.clock.advance(seconds=1)
        m.reserve(
            "bob",
            "b1",
            term_min_days=1,
            term_max_days=30,
            min_yield_bp=500,
            amount_fen=700_000,
            source=WalletSource(w.wallet(1)),
        )
        for t in (p1, p2, p3):
            m.list_product(t)  # p1 opens at once: alice's reservation buys 30,000.00 yuan
        m.purchase("p1", "carol", 12_345_678, WalletSource(w.wallet(2)), "c1")
        m.purchase("p1", "dave", 100_001, WalletSource(w.wallet(3)), "d1")
        m.purchase("p3", "erin", 5_000_000, WalletSource(w.wallet(4)), "e1")
        # The big bank will hold the interest at maturity (the raise comes back to it at launch).
        w.fund_account(m.issuer_account_id("icbc"), 1_000_000, 77)
        found = m.reservations()
        return Files(
            path=tmp_path,
            products={t.product_id: m.product(t.product_id).terms for t in (p1, p2, p3)},
            books={pid: m.books(pid) for pid in ("p1", "p2", "p3")},
            bought={
                pid: [p.amount_fen for p in m.purchases(product_id=pid)]
                for pid in ("p1", "p2", "p3")
            },
            reservations=[
                (r.reservation_no, r.user_id, r.amount_fen, r.filled_fen, r.status) for r in found
            ],
            expiring=sum(
                r.status in (ReservationStatus.OPEN, ReservationStatus.FILLED) for r in found
            ),
        )


def test_products_shows_each_figure_to_the_fen(files: Files) -> None:
    assert files.bought["p1"] == [3_000_000, 12_345_678, 100_001]  # the reservation first
    code, out = invoke("products", *files.args())
    assert code == 0, out
    for pid, t in files.products.items():
        line = row(out, pid)
        books = files.books[pid]
        assert books["quota_subscribed_fen"] == sum(files.bought[pid])
        assert books["quota_remaining_fen"] == t.size_fen - sum(files.bought[pid])
        for cell in (
            t.issuer_id,
            f"{t.term_days} d",
            f"{Decimal(t.yield_bp) / 100:.2f}%",
            yuan(t.size_fen),
            yuan(books["quota_subscribed_fen"]),
            yuan(books["quota_remaining_fen"]),
            f"{t.sale_open:%Y-%m-%d %H:%M} → {t.sale_close:%Y-%m-%d %H:%M}",
            "listed",
        ):
            assert f" {cell} " in line, (cell, line)
    assert "154,456.79" in row(out, "p1")  # 30,000.00 + 123,456.78 + 1,000.01
    assert "845,543.21" in row(out, "p1")
    assert "3 products" in out


def test_products_filters_by_status(files: Files) -> None:
    code, out = invoke("products", "--status", "launched,matured", *files.args())
    assert code == 0, out
    assert "no products (launched, matured)" in out
    code, out = invoke("products", "--status", "listed", "--status", "failed", *files.args())
    assert code == 0 and "3 products" in out


def test_books_of_a_product_reconciled(files: Files) -> None:
    code, out = invoke("books", "--product", "p1", *files.args())
    assert code == 0, out
    books = files.books["p1"]
    assert books["escrow_pending_fen"] == books["reserved_fen"] == sum(files.bought["p1"])
    for label, key in (
        ("escrow posted", "escrow_posted_fen"),
        ("escrow pending", "escrow_pending_fen"),
        ("quota remaining", "quota_remaining_fen"),
        ("quota subscribed", "quota_subscribed_fen"),
        ("reserved purchases (state file)", "reserved_fen"),
        ("raised (state file)", "raised_fen"),
    ):
        assert row(out, label).split("│")[-2].strip() == yuan(books[key]), label
    assert "p1: reconciled with the ledger" in out


def test_books_that_disagree_exit_1(files: Files) -> None:
    # The state file loses dave's purchase: its 1,000.01 yuan stays pending in the ledger.
    with sqlite3.connect(files.path / "wealth.db") as db:
        db.execute("DELETE FROM purchases WHERE user_id = 'dave'")
    db.close()
    code, out = invoke("books", "--product", "p1", *files.args())
    assert code == 1
    assert yuan(sum(files.bought["p1"]) - 100_001) in row(out, "reserved purchases (state file)")
    assert yuan(sum(files.bought["p1"])) in row(out, "escrow pending")
    assert "p1: NOT reconciled with the ledger" in out


def test_reservations_table_and_user_filter(files: Files) -> None:
    code, out = invoke("reservations", *files.args())
    assert code == 0, out
    assert [(no, user) for no, user, *_ in files.reservations] == [(1, "alice"), (2, "bob")]
    for no, user, amount, filled, status in files.reservations:
        line = row(out, str(no))
        open_fen = amount - filled if status == ReservationStatus.OPEN else 0
        for cell in (user, yuan(amount), yuan(filled), yuan(open_fen), status):
            assert f" {cell} " in line, (cell, line)
    assert " 60-120 d " in row(out, "1") and " 4.00% " in row(out, "1")
    assert "30,000.00" in row(out, "1") and " filled " in row(out, "1")
    assert " 7,000.00 " in row(out, "2") and " open " in row(out, "2")
    assert "2 reservations" in out

    code, out = invoke("reservations", "--user", "bob", *files.args())
    assert code == 0 and "reservations of bob" in out and "alice" not in out
    code, out = invoke("reservations", "--user", "zoe", *files.args())
    assert code == 0 and "no reservations of zoe" in out


def test_tick_closes_and_pays_what_is_due(files: Files) -> None:
    code, out = invoke("tick", *files.args())
    assert code == 0, out
    p1, p3 = files.products["p1"], files.products["p3"]
    principal = sum(files.bought["p1"])
    interest = sum(p1.interest_for(a) for a in files.bought["p1"])  # truncated per purchase
    assert f"expired {files.expiring} reservation(s)" in out
    assert (
        f"closed p1: launched, raised {yuan(principal)} yuan (minimum"
        f" {yuan(p1.launch_min_fen())}); 3 purchase(s), 3 posted by this run"
    ) in out
    assert f"closed p2: failed to launch, raised 0.00 yuan (minimum {yuan(25_000_000)})" in out
    assert f"closed p3: launched, raised {yuan(5_000_000)} yuan" in out
    assert (
        f"matured p1: principal {yuan(principal)} + interest {yuan(interest)} ="
        f" {yuan(principal + interest)} yuan; 3 paid, 0 reinvested, 0 reinvest failed"
    ) in out
    assert "shortfall p3:" in out and "matured p3" not in out
    assert p3.interest_for(5_000_000) > 0

    # Done once: the next tick pays nothing again and only repeats the shortfall.
    code, again = invoke("tick", *files.args())
    assert code == 0, again
    assert "closed" not in again and "matured" not in again and "expired" not in again
    assert "shortfall p3:" in again

    code, out = invoke("products", *files.args())
    assert code == 0
    assert " matured " in row(out, "p1") and " failed " in row(out, "p2")
    assert " launched " in row(out, "p3")
    assert f" {yuan(principal)} " in row(out, "p1") and " 0.00 " in row(out, "p1")
    for pid in ("p1", "p2", "p3"):
        code, out = invoke("books", "--product", pid, *files.args())
        assert code == 0 and f"{pid}: reconciled" in out, out
    code, out = invoke("reservations", *files.args())
    assert out.count(" expired ") == files.expiring


def test_tick_with_nothing_due(tmp_path: Path) -> None:
    with world(tmp_path, with_fund=True):
        pass
    args = ["--database-url", f"sqlite:///{tmp_path}/ledger.db", "--wealth-dir", str(tmp_path)]
    code, out = invoke("tick", *args, "--funds-dir", str(tmp_path))
    assert code == 0 and "nothing was due" in out
    code, out = invoke("products", *args, "--funds-dir", str(tmp_path))
    assert code == 0 and "no products" in out


def test_the_server_environment_and_defaults(files: Files) -> None:
    from formicary.api import funds_routes, wealth_routes

    assert Path(wealth_routes.DEFAULT_WEALTH_DIR) == DEFAULT_WEALTH_DIR
    assert Path(funds_routes.DEFAULT_FUNDS_DIR) == DEFAULT_FUNDS_DIR
    env = {
        "FORMICARY_DATABASE_URL": f"sqlite:///{files.path}/ledger.db",
        "FORMICARY_WEALTH_DIR": str(files.path),
        "FORMICARY_FUNDS_DIR": str(files.path),
    }
    code, out = invoke("products", env=env)
    assert code == 0 and "3 products" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["books", "--product", "nope"], "no product 'nope'"),
        (["books", "--product", "bad id!"], "not a product id: 'bad id!'"),
        (["books"], "missing --product ID"),
        (["products", "--status", "listed,sold"], "unknown status 'sold': one of listed,"),
        (["reservations", "--user", ""], "a user id is 1 to 128 characters"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(files: Files, args: list[str], message: str) -> None:
    code, out = invoke(*args, *files.args())
    assert code == 1
    assert message in out and len(out.strip().splitlines()) == 1, out


def test_missing_files_are_one_line_and_exit_1(files: Files, tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    code, out = invoke("tick", *files.args(), "--wealth-dir", str(empty))
    assert code == 1 and f"no marketplace in {empty} (see --wealth-dir)" in out
    assert not empty.exists()  # nothing created
    missing = tmp_path / "nowhere.db"
    code, out = invoke(
        "books", "--product", "p1", *files.args(), "--database-url", f"sqlite:///{missing}"
    )
    assert code == 1 and f"no ledger at {missing} (see --database-url)" in out
    assert not missing.exists()
    code, out = invoke("products", *files.args(), "--database-url", "mysql://x/y")
    assert code == 1 and "cannot open the ledger mysql://x/y" in out
    assert len(out.strip().splitlines()) == 1


def test_the_real_clock_is_later_than_every_date_here() -> None:
    # `tick` above relies on it: p1 matures on 4 June 2026.
    assert time.time_ns() > 1_780_617_600 * 10**9  # 5 June 2026
