"""`formicary wealth issuers|issuer-add|whitelist|list-product|buy|reserve|cancel-reservation`:
the operator's write commands, on the files a marketplace left (built here through the domain
API, as in test_wealth_cli_ops.py). Unlike the read commands' tests, these run the CLI on the
builders' hand clock (Monday 2 March 2026, 10:00 Beijing time): the CLI opens its ledger with
`formicary.ledger.LedgerService`, which the fixture replaces by one on that clock, so that a
sale is open when the CLI buys and every date printed is known. Figures are checked to the fen
in the output and in the ledger."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import formicary.ledger
from formicary.ledger import open_store
from formicary.wealth import WealthStore, interest_fen
from formicary.wealth.cli import app
from tests.wealth.wealth_builders import (
    BIG_BANK,
    MONDAY_10AM,
    Clock,
    MarketWorld,
    close_world,
    open_world,
)

runner = CliRunner()
WALLET_FEN = 10_000_000  # 100,000.00 yuan in each wallet
ALICE_SHARES_FEN = 6_000_000  # alice's fund shares, subscribed from wallet 0
# p-9: 90 days at 4.50 %, 1,000,000 yuan, on sale Monday 09:00 to Thursday 09:00.
P9 = [
    "--product",
    "p-9",
    "--issuer",
    "icbc",
    "--name",
    "Fixed 9",
    "--term-days",
    "90",
    "--yield-pct",
    "4.50",
    "--size-yuan",
    "1,000,000",
    "--min-purchase-yuan",
    "1000",
    "--sale-open",
    "2026-03-02 09:00",
    "--sale-close",
    "2026-03-05T09:00",
]


@dataclass
class Market:
    path: Path
    clock: Clock
    wallets: list[int]
    holder_account: int  # alice's fund shares
    service: Callable[..., formicary.ledger.LedgerService]  # the real class

    def args(self) -> list[str]:
        return [
            "--database-url",
            f"sqlite:///{self.path}/ledger.db",
            "--wealth-dir",
            str(self.path),
            "--funds-dir",
            str(self.path),
        ]

    def run(self, *args: str) -> tuple[int, str]:
        result = runner.invoke(app, [*args, *self.args()], env={"COLUMNS": "250"})
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        return result.exit_code, result.output

    def refused(self, *args: str) -> str:
        """The one line of a refusal (exit 1)."""
        code, out = self.run(*args)
        assert code == 1, out
        lines = out.strip().splitlines()
        assert len(lines) == 1, out
        return lines[0]

    def available(self, account_id: int) -> tuple[int, int]:
        """(balance, available) of an account, read from the ledger file."""
        ledger = self.service(open_store(f"sqlite:///{self.path}/ledger.db"), clock_ns=self.clock)
        ledger.start()
        try:
            (a,) = ledger.lookup_accounts([account_id])
        finally:
            ledger.close()
        balance = a.credits_posted - a.debits_posted
        return balance, balance - a.debits_pending


@pytest.fixture
def market(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Market:
    """Four wallets of 100,000.00 yuan; the big bank (icbc) registered; alice holds 60,000.00
    yuan of fund shares, bought from wallet 0. The CLI runs on the same hand clock."""
    clock = Clock(MONDAY_10AM)
    w: MarketWorld = open_world(
        tmp_path, clock, wallets=4, wallet_fen=WALLET_FEN, with_fund=True, issuers=(BIG_BANK,)
    )
    try:
        assert w.fund is not None
        w.fund.subscribe("alice", w.wallet(0), ALICE_SHARES_FEN, "sub-alice")
        holder = w.fund.holder_account("alice")
        wallets = [w.wallet(n) for n in range(4)]
    finally:
        close_world(w)
    real = formicary.ledger.LedgerService
    monkeypatch.setattr(
        formicary.ledger, "LedgerService", lambda store: real(store, clock_ns=clock)
    )
    return Market(tmp_path, clock, wallets, holder, real)


def listed(market: Market, args: list[str] = P9) -> str:
    code, out = market.run("list-product", *args)
    assert code == 0, out
    return out


# ----------------------------------------------------------------- issuers


def test_issuer_add_records_and_vets_each_kind(market: Market) -> None:
    code, out = market.run(
        "issuer-add",
        "--issuer",
        "cmb",
        "--name",
        "China Merchants Bank",
        "--kind",
        "bank",
        "--total-assets-yuan",
        "200,000,000,000.01",
    )
    assert code == 0, out
    (account,) = re.findall(r"settlement account (\d+):", out)
    assert (
        f"issuer cmb (bank) recorded, settlement account {account}: passes rule"
        " bank_total_assets: total assets 200,000,000,000.01 yuan, more than the"
        " 200,000,000,000.00 yuan floor"
    ) in out
    code, out = market.run(
        "issuer-add",
        "--issuer",
        "cpic-pc",
        "--name",
        "CPIC P&C",
        "--kind",
        "pc_insurer",
        "--solvency-ratio-pct",
        "150.01",
    )
    assert code == 0 and "passes rule pc_insurer_solvency: solvency ratio 150.01%" in out, out
    code, out = market.run(
        "issuer-add", "--issuer", "cinda", "--name", "Cinda AMC", "--kind", "asset_manager",
        "--licensed",
    )  # fmt: skip
    assert code == 0 and "passes rule asset_manager_licensed" in out, out

    # The figures are stored exactly (to the fen), and listed with the verdict now.
    store = WealthStore(market.path / "wealth.db")
    try:
        stored = {i.issuer_id: i for _, i in store.issuers()}
    finally:
        store.close()
    assert stored["cmb"].total_assets_fen == 20_000_000_000_001
    assert str(stored["cpic-pc"].solvency_ratio_pct) == "150.01"
    assert stored["cinda"].licensed is True
    code, out = market.run("issuers")
    assert code == 0, out
    cmb = _row(out, "cmb")
    for cell in (
        "China Merchants Bank",
        "bank",
        "total assets 200,000,000,000.01 yuan",
        "no",
        account,
        "passes bank_total_assets",
    ):
        assert f" {cell} " in cmb, (cell, cmb)
    assert " solvency ratio 150.01% " in _row(out, "cpic-pc")
    assert " licensed " in _row(out, "cinda")
    assert " total assets 300,000,000,000.00 yuan " in _row(out, "icbc")
    assert "4 issuers, 4 may list products" in out


@pytest.mark.parametrize(
    ("args", "rule", "reason"),
    [
        (
            ["--kind", "bank", "--total-assets-yuan", "200000000000"],
            "bank_total_assets",
            "total assets 200,000,000,000.00 yuan, not more than the 200,000,000,000.00 yuan floor",
        ),
        (["--kind", "bank"], "bank_total_assets", "a bank must report its total assets"),
        (
            ["--kind", "pc_insurer", "--solvency-ratio-pct", "150"],
            "pc_insurer_solvency",
            "solvency ratio 150%, not more than the 150% floor",
        ),
        (
            ["--kind", "asset_manager"],
            "asset_manager_licensed",
            "an asset management company must hold the regulator's licence",
        ),
        (
            ["--kind", "other"],
            "whitelist",
            "an institution outside the bank, AMC and P&C insurer categories must be whitelisted",
        ),
    ],
)
def test_a_refused_issuer_names_the_rule_and_cannot_list(
    market: Market, args: list[str], rule: str, reason: str
) -> None:
    line = market.refused("issuer-add", "--issuer", "weak", "--name", "Weak Co", *args)
    assert line == f"issuer weak recorded but refused by rule {rule}: {reason}"
    # Recorded (as by the HTTP route), and its products are refused by the same rule.
    code, out = market.run("issuers")
    assert code == 0 and f"fails {rule}" in _row(out, "weak"), out
    line = market.refused("list-product", *_with(P9, "--issuer", "weak"))
    assert line == f"issuer refused by rule {rule}: {reason}"


def test_whitelist_admits_an_issuer_of_kind_other_only(market: Market) -> None:
    market.refused("issuer-add", "--issuer", "ant", "--name", "Ant", "--kind", "other")
    code, out = market.run("whitelist", "--issuer", "ant", "--note", "approved by the board")
    assert code == 0, out
    assert "issuer ant whitelisted: passes rule whitelist: whitelisted by the marketplace" in out
    code, out = market.run("issuers")
    assert " yes " in _row(out, "ant") and " passes whitelist " in _row(out, "ant")
    out = listed(market, _with(P9, "--issuer", "ant"))
    assert "listed p-9: Fixed 9 by ant," in out

    code, out = market.run("whitelist", "--issuer", "ant", "--remove")
    assert code == 0, out
    assert "issuer ant is off the whitelist: refused by rule whitelist:" in out
    line = market.refused("list-product", *_with(P9, "--issuer", "ant", product="p-10"))
    assert line.startswith("issuer refused by rule whitelist:")

    # A small bank stays refused by its own rule, whitelisted or not.
    market.refused(
        "issuer-add", "--issuer", "town", "--name", "Town Bank", "--kind", "bank",
        "--total-assets-yuan", "1000000",
    )  # fmt: skip
    line = market.refused("whitelist", "--issuer", "town")
    assert line == (
        "issuer town whitelisted but still refused by rule bank_total_assets: total assets"
        " 1,000,000.00 yuan, not more than the 200,000,000,000.00 yuan floor"
    )
    assert market.refused("whitelist", "--issuer", "nope") == "no issuer 'nope'"
    assert market.refused("whitelist", "--issuer", "nope", "--remove") == "no issuer 'nope'"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "X", "--kind", "bank"], "missing --issuer ID"),
        (["--issuer", "x", "--kind", "bank"], "missing --name NAME"),
        (["--issuer", "x", "--name", "X", "--kind", "fund"], "unknown kind 'fund': one of bank,"),
        (
            ["--issuer", "x", "--name", "X", "--kind", "bank", "--total-assets-yuan", "1.005"],
            "--total-assets-yuan: not an amount of yuan with at most 2 decimals: '1.005'",
        ),
        (
            ["--issuer", "x", "--name", "X", "--kind", "bank", "--total-assets-yuan", "-1"],
            "--total-assets-yuan: not an amount of yuan",
        ),
        (
            ["--issuer", "x", "--name", "X", "--kind", "pc_insurer", "--solvency-ratio-pct", "9e9"],
            "--solvency-ratio-pct: not a percent (e.g. 180.5): '9e9'",
        ),
        (
            ["--issuer", "bad id", "--name", "X", "--kind", "bank"],
            "issuer id: 1 to 64 of letters, digits",
        ),
    ],
)
def test_issuer_add_bad_input(market: Market, args: list[str], message: str) -> None:
    assert message in market.refused("issuer-add", *args)


# ----------------------------------------------------------------- listing


def test_list_product_prints_its_id_and_terms(market: Market) -> None:
    out = listed(market)
    assert out.splitlines() == [
        "listed p-9: Fixed 9 by icbc, 90 d at 4.50% a year",
        "size 1,000,000.00 yuan, minimum purchase 1,000.00 yuan, launches with 500,000.00 yuan"
        " raised",
        "sale 2026-03-02 09:00 → 2026-03-05 09:00 (Beijing), value date 2026-03-06, maturity"
        " 2026-06-04",
        "sold 0.00 yuan, remaining 1,000,000.00 yuan; status listed",
    ]
    store = WealthStore(market.path / "wealth.db")
    try:
        product = store.product("p-9")
    finally:
        store.close()
    assert product is not None
    t = product.terms
    assert (t.term_days, t.yield_bp, t.size_fen, t.min_purchase_fen) == (
        90,
        450,
        100_000_000,
        100_000,
    )
    assert t.sale_open == MONDAY_10AM.replace(hour=9)
    assert t.sale_close.isoformat() == "2026-03-05T09:00:00+08:00"

    # Idempotent by product id; other terms under the same id are refused.
    code, again = market.run("list-product", *P9)
    assert code == 0 and again.startswith("p-9 was listed already with these terms:"), again
    line = market.refused("list-product", *_with(P9, "--yield-pct", "4.6"))
    assert line == "product 'p-9' was listed with other terms"

    code, out = market.run("products")
    assert code == 0 and " 1,000,000.00 " in _row(out, "p-9") and " 4.50% " in _row(out, "p-9")


def test_list_product_with_a_minimum_raise_value_date_and_offset(market: Market) -> None:
    out = listed(
        market,
        _with(
            P9,
            *("--sale-open", "2026-03-03T01:00:00+00:00"),
            *("--min-raise-yuan", "123,456.78"),
            *("--value-date", "2026-03-09"),
            product="p-11",
        ),
    )
    assert "launches with 123,456.78 yuan raised" in out
    assert "sale 2026-03-03 09:00 → 2026-03-05 09:00 (Beijing), value date 2026-03-09," in out
    assert "maturity 2026-06-07" in out
    store = WealthStore(market.path / "wealth.db")
    try:
        product = store.product("p-11")
    finally:
        store.close()
    assert product is not None and product.terms.min_raise_fen == 12_345_678


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--yield-pct", "4.255"), "--yield-pct: a yield must be a whole number of basis points"),
        (("--yield-pct", "high"), "--yield-pct: not a percentage: 'high'"),
        (("--yield-pct", "24.01"), "yield_bp must be an integer from 1 to 2400, got 2401"),
        (("--size-yuan", "1.001"), "--size-yuan: not an amount of yuan with at most 2 decimals"),
        (("--size-yuan", "0"), "--size-yuan must be at least 0.01 yuan, got 0"),
        (("--size-yuan", "1e6"), "--size-yuan: not an amount of yuan"),
        (("--min-purchase-yuan", "2,000,000"), "min_purchase_fen must be an integer from 100"),
        (("--term-days", "0"), "term_days must be an integer from 1 to 1825, got 0"),
        (("--term-days", "ninety"), "--term-days: not a whole number: 'ninety'"),
        (("--sale-open", "next monday"), "--sale-open: not a date-time (YYYY-MM-DD HH:MM"),
        (("--sale-open", "1999-12-31 09:00"), "--sale-open must be in the years 2000 to 2199"),
        (("--sale-close", "2026-03-02 08:00"), "the sale window must close after it opens"),
        (
            ("--sale-close", "2026-03-02 09:30"),  # the window ended before now (10:00)
            "the sale window of p-9 has ended already",
        ),
        (("--issuer", "nope"), "no issuer 'nope'"),
        (("--product", "p 9"), "not a product id: 'p 9'"),
    ],
)
def test_list_product_bad_input(market: Market, change: tuple[str, str], message: str) -> None:
    assert message in market.refused("list-product", *_with(P9, *change))


def test_list_product_missing_or_bad_options(market: Market) -> None:
    without_name = [a for a in P9 if a not in ("--name", "Fixed 9")]
    assert market.refused("list-product", *without_name) == "missing --name NAME"
    assert (
        market.refused("list-product", *P9, "--value-date", "2026-13-01")
        == "--value-date: not a date (YYYY-MM-DD): '2026-13-01'"
    )
    assert "the value date must be between the close day 2026-03-05 and" in market.refused(
        "list-product", *P9, "--value-date", "2026-03-04"
    )


# ----------------------------------------------------------------- buying


def test_buy_from_a_wallet(market: Market) -> None:
    listed(market)
    wallet = market.wallets[1]
    code, out = market.run(
        "buy", "--product", "p-9", "--user", "bob", "--wallet", str(wallet),
        "--amount-yuan", "1,234.56", "--request-id", "b-1",
    )  # fmt: skip
    assert code == 0, out
    # 123,456 fen × 450 bp × 90 d / (10,000 × 365) = 1,369.85 fen, truncated to 1,369.
    assert interest_fen(123_456, 450, 90) == 1_369
    assert out.splitlines() == [
        f"purchase 1: bob bought 1,234.56 yuan of p-9 from wallet {wallet}; reserved until the"
        " sale closes 2026-03-05 09:00",
        "if it launches: principal 1,234.56 + interest 13.69 = 1,248.25 yuan on 2026-06-04 to"
        f" wallet {wallet}",
        "request id b-1",
    ]
    # Reserved, not moved: the balance is whole, the available balance is not.
    assert market.available(wallet) == (WALLET_FEN, WALLET_FEN - 123_456)

    # A retry answers the same purchase; the same request id for another amount is refused.
    code, again = market.run(
        "buy", "--product", "p-9", "--user", "bob", "--wallet", str(wallet),
        "--amount-yuan", "1234.56", "--request-id", "b-1",
    )  # fmt: skip
    assert code == 0 and again.startswith(
        "purchase 1 (replayed: this request id was applied before): bob bought 1,234.56 yuan"
    ), again
    assert market.available(wallet) == (WALLET_FEN, WALLET_FEN - 123_456)
    line = market.refused(
        "buy", "--product", "p-9", "--user", "bob", "--wallet", str(wallet),
        "--amount-yuan", "1234.57", "--request-id", "b-1",
    )  # fmt: skip
    assert line == "this request id was used for a different purchase"

    # Without --request-id each call is a new purchase; payout into the fund is named.
    code, out = market.run(
        "buy", "--product", "p-9", "--user", "bob", "--wallet", str(wallet),
        "--amount-yuan", "98765.44", "--payout", "fund",
    )  # fmt: skip
    assert code == 0, out
    assert "purchase 2: bob bought 98,765.44 yuan of p-9" in out
    assert f"= 99,861.33 yuan on 2026-06-04 to wallet {wallet}, then into the fund" in out
    assert interest_fen(9_876_544, 450, 90) == 109_589
    assert re.search(r"^request id cli-[0-9a-f]{32}$", out, flags=re.MULTILINE), out
    assert market.available(wallet) == (WALLET_FEN, 0)  # 1,234.56 + 98,765.44 = all of it

    code, out = market.run("books", "--product", "p-9")
    assert code == 0 and "p-9: reconciled with the ledger" in out
    assert " 100,000.00 " in _row(out, "reserved purchases (state file)")
    assert " 100,000.00 " in _row(out, "escrow pending")


def test_buy_from_fund_shares(market: Market) -> None:
    listed(market)
    wallet = market.wallets[0]
    assert market.available(market.holder_account) == (ALICE_SHARES_FEN, ALICE_SHARES_FEN)
    code, out = market.run(
        "buy", "--product", "p-9", "--user", "alice", "--wallet", str(wallet),
        "--amount-yuan", "2000", "--source", "fund", "--fund-no", "1",
    )  # fmt: skip
    assert code == 0, out
    assert "purchase 1: alice bought 2,000.00 yuan of p-9 from the fund shares of alice;" in out
    assert "interest 22.19 = 2,022.19 yuan on 2026-06-04 to wallet" in out
    assert interest_fen(200_000, 450, 90) == 2_219
    shares = ALICE_SHARES_FEN
    assert market.available(market.holder_account) == (shares, shares - 200_000)
    assert market.available(wallet) == (WALLET_FEN - shares, WALLET_FEN - shares)

    # Over the fund's per-order instant limit (50,000 yuan): refused, nothing applied.
    line = market.refused(
        "buy", "--product", "p-9", "--user", "alice", "--wallet", str(wallet),
        "--amount-yuan", "50,000.01", "--source", "fund",
    )  # fmt: skip
    assert line.startswith("fund 1 refuses the instant redemption:") and "5000000 fen" in line
    assert market.available(market.holder_account) == (shares, shares - 200_000)
    line = market.refused(
        "buy", "--product", "p-9", "--user", "alice", "--wallet", str(wallet),
        "--amount-yuan", "2000", "--source", "fund", "--fund-no", "2",
    )  # fmt: skip
    assert line == "fund 2 does not exist (this marketplace uses fund 1)"
    line = market.refused(
        "buy", "--product", "p-9", "--user", "alice", "--wallet", str(wallet),
        "--amount-yuan", "2000", "--source", "fund", "--fund-no", "4096",
    )  # fmt: skip
    assert line == "--fund-no must be 1 to 4095, got 4096"
    # Someone who holds no shares cannot pay from the fund.
    line = market.refused(
        "buy", "--product", "p-9", "--user", "bob", "--wallet", str(market.wallets[1]),
        "--amount-yuan", "2000", "--source", "fund",
    )  # fmt: skip
    assert line == "user 'bob' holds nothing in fund 1"


def test_buy_by_standard_redemption_beyond_the_instant_limit(market: Market) -> None:
    listed(market)
    wallet = market.wallets[0]
    shares = ALICE_SHARES_FEN
    # 55,000.00 yuan is over the fund's per-order instant limit (50,000.00): as an instant
    # redemption it is refused, as a standard (T+1) one it is not limited.
    line = market.refused(
        "buy", "--product", "p-9", "--user", "alice", "--wallet", str(wallet),
        "--amount-yuan", "55,000", "--source", "fund",
    )  # fmt: skip
    assert line.startswith("fund 1 refuses the instant redemption:"), line
    code, out = market.run(
        "buy", "--product", "p-9", "--user", "alice", "--wallet", str(wallet),
        "--amount-yuan", "55,000", "--source", "fund", "--redemption", "standard",
        "--request-id", "s-1",
    )  # fmt: skip
    assert code == 0, out
    # 5,500,000 fen × 450 bp × 90 d / (10,000 × 365) = 61,027.39 fen, truncated to 61,027.
    assert interest_fen(5_500_000, 450, 90) == 61_027
    # (The refused instant attempt took purchase number 1: numbers are never reused.)
    assert out.splitlines() == [
        "purchase 2: alice bought 55,000.00 yuan of p-9 from the fund shares of alice (standard"
        " redemption); reserved until the sale closes 2026-03-05 09:00",
        "if it launches: principal 55,000.00 + interest 610.27 = 55,610.27 yuan on 2026-06-04 to"
        f" wallet {wallet}",
        "request id s-1",
    ]
    # The shares are reserved, not moved; the wallet is untouched until maturity.
    assert market.available(market.holder_account) == (shares, shares - 5_500_000)
    assert market.available(wallet) == (WALLET_FEN - shares, WALLET_FEN - shares)
    store = WealthStore(market.path / "wealth.db")
    try:
        (bought,) = store.purchases(product_id="p-9", user_id="alice", after_no=0, limit=10)
    finally:
        store.close()
    assert (bought.source_kind, bought.source_ref, bought.amount_fen) == (
        "fund_standard",
        "alice",
        5_500_000,
    )
    code, out = market.run("books", "--product", "p-9")
    assert code == 0 and "p-9: reconciled with the ledger" in out, out


def test_a_standard_redemption_arriving_after_the_close_is_refused(market: Market) -> None:
    # On sale Monday 09:00 to Monday 23:00; a standard redemption ordered Monday 10:00 (before
    # the 15:00 cut-off) pays on Tuesday 3 March, after the sale has closed.
    early = _with(P9, "--sale-close", "2026-03-02 23:00", product="p-early")
    listed(market, early)
    wallet = market.wallets[0]
    line = market.refused(
        "buy", "--product", "p-early", "--user", "alice", "--wallet", str(wallet),
        "--amount-yuan", "2000", "--source", "fund", "--redemption", "standard",
    )  # fmt: skip
    assert line.startswith("a standard (T+1) redemption from fund 1 ordered now arrives on"), line
    assert "arrives on 2026-03-03" in line
    assert "the sale closes at 2026-03-02T23:00:00+08:00" in line
    # Nothing applied; an instant redemption of the same product is fine.
    shares = ALICE_SHARES_FEN
    assert market.available(market.holder_account) == (shares, shares)
    code, out = market.run(
        "buy", "--product", "p-early", "--user", "alice", "--wallet", str(wallet),
        "--amount-yuan", "2000", "--source", "fund",
    )  # fmt: skip
    assert code == 0 and "purchase 1: alice bought 2,000.00 yuan of p-early from the fund" in out
    assert "(standard redemption)" not in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--product", "nope"), "no product 'nope'"),
        (("--amount-yuan", "0"), "--amount-yuan must be at least 0.01 yuan, got 0"),
        (("--amount-yuan", "12.345"), "--amount-yuan: not an amount of yuan with at most 2"),
        (("--amount-yuan", "-5"), "--amount-yuan: not an amount of yuan"),
        (("--amount-yuan", "1e3"), "--amount-yuan: not an amount of yuan"),
        (("--amount-yuan", "ten"), "--amount-yuan: not an amount of yuan"),
        (
            ("--amount-yuan", "999.99"),
            "the minimum purchase of p-9 is 100000 fen (less only to take all that remains,"
            " 100000000 fen)",
        ),
        (("--amount-yuan", "1,000,000.01"), "p-9 has a size of 100000000 fen"),
        (
            ("--amount-yuan", "100,000.01"),  # the wallet holds 100,000.00
            "the funding source cannot pay (exceeds_credits on leg 1)",
        ),
        (("--wallet", "abc"), "--wallet: not a ledger account id (decimal digits): 'abc'"),
        (("--wallet", "0"), "the wallet account id must be in 1..2^128-2"),
        (("--source", "card"), "unknown --source 'card': one of wallet, fund"),
        (("--payout", "bank"), "unknown --payout 'bank': one of wallet, fund"),
        (("--fund-no", "1"), "--fund-no names the fund of --source fund"),
        (("--redemption", "standard"), "--redemption names how --source fund redeems"),
        (("--redemption", "t+1"), "unknown --redemption 't+1': one of instant, standard"),
        (("--request-id", "with space"), "request id must be 1 to 128 printable ASCII"),
        (("--user", ""), "a user id is 1 to 128 characters"),
    ],
)
def test_buy_refusals_are_one_line(market: Market, change: tuple[str, str], message: str) -> None:
    listed(market)
    args = ["--product", "p-9", "--user", "bob", "--wallet", str(market.wallets[1])]
    args += ["--amount-yuan", "1000"]
    line = market.refused("buy", *_with(args, *change))
    assert message in line, line
    assert market.available(market.wallets[1]) == (WALLET_FEN, WALLET_FEN)  # nothing applied


def test_buy_before_the_sale_opens_or_without_options(market: Market) -> None:
    listed(market, _with(P9, "--sale-open", "2026-03-03 09:00", product="p-12"))
    line = market.refused(
        "buy", "--product", "p-12", "--user", "bob", "--wallet", str(market.wallets[1]),
        "--amount-yuan", "1000",
    )  # fmt: skip
    assert line == "the sale of p-12 opens at 2026-03-03 09:00:00+08:00"
    assert market.refused("buy", "--user", "bob") == "missing --product ID"
    assert market.refused("buy", "--product", "p-12", "--user", "bob") == (
        "missing --wallet ACCOUNT"
    )
    line = market.refused("buy", "--product", "p-12", "--user", "bob", "--wallet", "1001")
    assert line == "missing --amount-yuan YUAN"


# ----------------------------------------------------------------- reservations


def test_reserve_then_an_opening_fills_it(market: Market) -> None:
    wallet = market.wallets[2]
    code, out = market.run(
        "reserve", "--user", "carol", "--wallet", str(wallet), "--amount-yuan", "30,000",
        "--term-min-days", "60", "--term-max-days", "120", "--min-yield-pct", "4",
        "--request-id", "c-1",
    )  # fmt: skip
    assert code == 0, out
    assert out.splitlines() == [
        f"reservation 1 of carol: 60-120 d at 4.00% or more, up to 30,000.00 yuan from wallet"
        f" {wallet}, paid out to wallet {wallet}",
        "open: bought 0.00 yuan, open 30,000.00 yuan; expires 2026-04-01 10:00 (Beijing)",
        "request id c-1",
    ]
    code, again = market.run(
        "reserve", "--user", "carol", "--wallet", str(wallet), "--amount-yuan", "30000.00",
        "--term-min-days", "60", "--term-max-days", "120", "--min-yield-pct", "4.00",
        "--request-id", "c-1",
    )  # fmt: skip
    assert code == 0 and "reservation 1 (replayed: this request id was applied before)" in again

    # p-9 (90 days, 4.50 %) is on sale as it lists: the reservation buys at once.
    out = listed(market)
    assert "sold 30,000.00 yuan, remaining 970,000.00 yuan; status listed" in out
    assert market.available(wallet) == (WALLET_FEN, WALLET_FEN - 3_000_000)
    code, out = market.run("reservations", "--user", "carol")
    assert code == 0, out
    line = _row(out, "1")
    for cell in ("carol", "60-120 d", "4.00%", "30,000.00", "0.00", "filled"):
        assert f" {cell} " in line, (cell, line)


def test_reserve_from_the_fund_with_a_validity(market: Market) -> None:
    code, out = market.run(
        "reserve", "--user", "alice", "--wallet", str(market.wallets[0]), "--amount-yuan",
        "5000", "--term-min-days", "30", "--term-max-days", "30", "--source", "fund",
        "--payout", "fund", "--valid-days", "7",
    )  # fmt: skip
    assert code == 0, out
    assert (
        "reservation 1 of alice: 30-30 d at 0.00% or more, up to 5,000.00 yuan from the fund"
        f" shares of alice, paid out to wallet {market.wallets[0]}, then into the fund"
    ) in out
    assert "expires 2026-03-09 10:00 (Beijing)" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--term-max-days", "30"), "term_max_days must be an integer from 60 to 1825, got 30"),
        (("--min-yield-pct", "abc"), "--min-yield-pct: not a percentage: 'abc'"),
        (("--amount-yuan", "0.99"), "amount_fen must be an integer from 100 to"),
        (("--amount-yuan", "0.001"), "--amount-yuan: not an amount of yuan"),
        (("--valid-days", "181"), "valid_days must be an integer from 1 to 180, got 181"),
        (("--source", "card"), "unknown --source 'card': one of wallet, fund"),
        (("--redemption", "standard"), "--redemption names how --source fund redeems"),
        (("--wallet", "x1"), "--wallet: not a ledger account id"),
        (("--term-min-days", "6O"), "--term-min-days: not a whole number: '6O'"),
        (("--valid-days", "a week"), "--valid-days: not a whole number: 'a week'"),
    ],
)
def test_reserve_bad_input(market: Market, change: tuple[str, str], message: str) -> None:
    args = ["--user", "carol", "--wallet", str(market.wallets[2]), "--amount-yuan", "1000"]
    args += ["--term-min-days", "60", "--term-max-days", "120", "--valid-days", "30"]
    assert message in market.refused("reserve", *_with(args, *change))
    code, out = market.run("reservations")
    assert code == 0 and "no reservations" in out


def test_reserve_by_standard_redemption_lists_its_source(market: Market) -> None:
    wallet = market.wallets[0]
    code, out = market.run(
        "reserve", "--user", "alice", "--wallet", str(wallet), "--amount-yuan", "55,000",
        "--term-min-days", "60", "--term-max-days", "120", "--source", "fund",
        "--redemption", "standard",
    )  # fmt: skip
    assert code == 0, out
    assert (
        "reservation 1 of alice: 60-120 d at 0.00% or more, up to 55,000.00 yuan from the fund"
        f" shares of alice (standard redemption), paid out to wallet {wallet}"
    ) in out
    # p-9 opens as it lists: the fill is one standard redemption, not capped at the fund's
    # 50,000.00 yuan per-order instant limit.
    out = listed(market)
    assert "sold 55,000.00 yuan, remaining 945,000.00 yuan; status listed" in out
    shares = ALICE_SHARES_FEN
    assert market.available(market.holder_account) == (shares, shares - 5_500_000)
    code, out = market.run("reservations", "--user", "alice")
    assert code == 0, out
    line = _row(out, "1")
    for cell in ("alice", "60-120 d", "55,000.00", "0.00", "fund (standard) alice", "filled"):
        assert f" {cell} " in line, (cell, line)


def test_cancel_reservation(market: Market) -> None:
    for user, n in (("carol", 2), ("dave", 3)):
        code, out = market.run(
            "reserve", "--user", user, "--wallet", str(market.wallets[n]), "--amount-yuan",
            "20000", "--term-min-days", "60", "--term-max-days", "120",
        )  # fmt: skip
        assert code == 0, out
    listed(market)  # each buys 20,000.00 of p-9
    code, out = market.run("cancel-reservation", "--reservation", "1")
    assert code == 0, out
    assert out.strip() == (
        "reservation 1 of carol cancelled: 20,000.00 of 20,000.00 yuan was bought (it stays bought)"
    )
    code, out = market.run("cancel-reservation", "--reservation", "1", "--user", "carol")
    assert code == 0 and "was cancelled already, unchanged: 20,000.00 of 20,000.00" in out
    assert market.available(market.wallets[2]) == (WALLET_FEN, WALLET_FEN - 2_000_000)

    line = market.refused("cancel-reservation", "--reservation", "2", "--user", "carol")
    assert line == "user 'carol' has no reservation 2"
    assert market.refused("cancel-reservation", "--reservation", "99") == "no reservation 99"
    assert market.refused("cancel-reservation") == "missing --reservation NO"
    line = market.refused("cancel-reservation", "--reservation", "0")
    assert line == "--reservation must be 1 to 4611686018427387904, got 0"
    line = market.refused("cancel-reservation", "--reservation", "one")
    assert line == "--reservation: not a whole number: 'one'"
    code, out = market.run("reservations")
    assert " cancelled " in _row(out, "1") and " filled " in _row(out, "2")


def test_what_users_type_is_never_read_as_markup(market: Market) -> None:
    code, out = market.run(
        "reserve", "--user", "[/x][bold]eve", "--wallet", str(market.wallets[3]),
        "--amount-yuan", "1000", "--term-min-days", "1", "--term-max-days", "2",
    )  # fmt: skip
    assert code == 0 and "reservation 1 of [/x][bold]eve:" in out, out
    line = market.refused("cancel-reservation", "--reservation", "1", "--user", "[/y]")
    assert line == "user '[/y]' has no reservation 1"
    code, out = market.run("reservations", "--user", "[/x][bold]eve")
    assert code == 0 and "reservations of [/x][bold]eve" in out


# ----------------------------------------------------------------- helpers


def _with(args: list[str], *changes: str, product: str | None = None) -> list[str]:
    """`args` with each `--option value` pair of `changes` replaced (or added)."""
    out = list(args)
    pairs = list(zip(changes[::2], changes[1::2], strict=True))
    if product is not None:
        pairs.append(("--product", product))
    for option, value in pairs:
        if option in out:
            out[out.index(option) + 1] = value
        else:
            out += [option, value]
    return out


def _row(output: str, first_cell: str) -> str:
    """The table line whose first cell is `first_cell`."""
    (line,) = [
        x
        for x in output.splitlines()
        if x.startswith("│") and x[1:].lstrip().startswith(f"{first_cell} ")
    ]
    return line
