"""`formicary wealth ...`: the fixed-term marketplace's commands (a thin layer over the library).

    formicary wealth simulate                     # a whole marketplace story in a temp dir
    formicary wealth products --status listed     # the products, what was sold, what remains
    formicary wealth books --product p-1          # a product's ledger books, reconciled or not
    formicary wealth reservations --user alice    # auto-reservations (预约)
    formicary wealth tick                         # run what is due now: closes, maturities
    formicary wealth issuers                      # issuers, their figures and vetting verdict
    formicary wealth issuer-add --issuer icbc --name ICBC --kind bank --total-assets-yuan ...
    formicary wealth whitelist --issuer x [--remove]
    formicary wealth list-product --product p-1 --issuer icbc ...   # prints the product id
    formicary wealth buy --product p-1 --user alice --wallet 1000 --amount-yuan 1000.00
    formicary wealth buy ... --source fund --redemption standard   # a T+1 fund redemption
    formicary wealth reserve --user alice --wallet 1000 --amount-yuan ... --term-min-days ...
    formicary wealth cancel-reservation --reservation 1

The operator commands open the marketplace exactly as the server does (`WealthHost`): the same
`--database-url` ledger, the same `--wealth-dir` state file, and the server's money-market fund
in `--funds-dir`. The ledger has one writer: run them while the server is stopped. The write
commands make the same domain calls as the HTTP routes (formicary/api/wealth_routes.py), so
they apply the same rules; money is typed in yuan (at most two decimals) and becomes int fen
through Decimal, never a float.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from formicary.wealth import Issuer, Marketplace, Payout, TickReport, Vetting
    from formicary.wealth.funding import FundingSource

__all__ = ["app"]

app = typer.Typer(
    help="The fixed-term product marketplace: issuers, products, reservations.",
    no_args_is_help=True,
)
console = Console()

# The server's defaults (formicary/api/wealth_routes.py, funds_routes.py), kept here so that
# `formicary --help` need not import the HTTP layer; a test checks they agree.
DEFAULT_WEALTH_DIR = Path("formicary-wealth")
DEFAULT_FUNDS_DIR = Path("formicary-funds")
STORE_FILE = "wealth.db"
_PRODUCT_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_USER_ID_MAX = 128
# Yuan as typed: digits (or groups of three separated by commas), at most two decimals.
_YUAN = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,20})(?:\.[0-9]{1,2})?")
# A decimal percent, as the HTTP route takes a solvency ratio (wealth_wire.Percent).
_PERCENT = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")
_INTEGER = re.compile(r"-?[0-9]{1,20}")
_SOURCES = ("wallet", "fund")
_REDEMPTIONS = ("instant", "standard")
_T = TypeVar("_T")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="FORMICARY_DATABASE_URL",
        help="the ledger: sqlite:///path.db (default, as `formicary serve`) or postgresql://...",
        show_default=False,
    ),
]
WealthDir = Annotated[
    Path,
    typer.Option(
        "--wealth-dir",
        envvar="FORMICARY_WEALTH_DIR",
        help="the marketplace's state file (wealth.db)",
    ),
]
FundsDir = Annotated[
    Path,
    typer.Option(
        "--funds-dir",
        envvar="FORMICARY_FUNDS_DIR",
        help="the money-market fund the server opens with the marketplace",
    ),
]

Wallet = Annotated[
    str | None,
    typer.Option(
        "--wallet",
        help="the user's wallet account id: it pays (unless --source fund) and is paid out",
        show_default=False,
    ),
]
FundNo = Annotated[
    str | None,
    typer.Option(
        "--fund-no",
        help="the money-market fund of --source fund (default: the server's)",
        metavar="NO",
        show_default=False,
    ),
]
SourceOption = Annotated[
    str, typer.Option("--source", help="wallet, or fund: the user's money-market fund shares")
]
PayoutOption = Annotated[
    str, typer.Option("--payout", help="wallet, or fund: the maturity goes on into the fund")
]
RequestId = Annotated[
    str | None,
    typer.Option(
        "--request-id",
        help="makes a retry safe: the same id answers what the first try made"
        " (default: a new one, printed)",
        show_default=False,
    ),
]
Redemption = Annotated[
    str,
    typer.Option(
        "--redemption",
        help="how --source fund redeems: instant (T+0, within the fund's limits) or standard"
        " (T+1, no limit; the sale must close no earlier than the day its cash arrives)",
    ),
]


def _fail(message: str) -> typer.Exit:
    # Escaped: a message may quote what the user typed, which must not be read as markup.
    console.print(f"[red]{escape(message)}[/red]", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _yuan(fen: int) -> str:
    """Fen as yuan with two decimals, from the integer (no float)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def _when(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


@contextmanager
def _open(database_url: str | None, wealth_dir: Path, funds_dir: Path) -> Iterator[Marketplace]:
    """The marketplace on the server's files, opened by the server's own host (the fund first,
    then the state file, the ledger accounts and the recovery of what a crash left open).
    Refusals become one red line and exit 1."""
    from formicary.api.funds_routes import FundHost
    from formicary.api.wealth_routes import WealthHost
    from formicary.funds import FundError
    from formicary.ledger import DEFAULT_DATABASE_URL, LedgerService, open_store
    from formicary.wealth import WealthError

    if not (wealth_dir / STORE_FILE).is_file():
        raise _fail(f"no marketplace in {wealth_dir} (see --wealth-dir)")
    url = database_url or DEFAULT_DATABASE_URL
    sqlite_file = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if sqlite_file and not Path(sqlite_file).is_file():
        # A wrong URL must not open a new, empty ledger under the marketplace's products.
        raise _fail(f"no ledger at {sqlite_file} (see --database-url)")
    try:
        store = open_store(url)
    except Exception as error:  # the CLI boundary: any cause becomes one readable line
        raise _fail(f"cannot open the ledger {url}: {error}") from error
    ledger = LedgerService(store)
    try:
        ledger.start()
    except Exception as error:
        store.close()
        raise _fail(f"cannot open the ledger {url}: {error}") from error
    funds = FundHost(lambda: ledger, funds_dir)
    wealth = WealthHost(lambda: ledger, wealth_dir, fund=lambda: funds._open()[0])
    try:
        try:
            market = wealth._open()
        except Exception as error:
            raise _fail(f"cannot open the marketplace in {wealth_dir}: {error}") from error
        try:
            yield market
        except (WealthError, FundError) as error:
            raise _fail(str(error)) from error
    finally:
        wealth.close()
        funds.close()
        ledger.close()


@app.callback()
def _group() -> None:
    """The fixed-term product marketplace: a simulation, and the operator's commands on the
    server's files (run those while the server is stopped)."""


@app.command("simulate")
def simulate_command(
    out_dir: Annotated[
        Path | None,
        typer.Option(help="a new (or empty) directory for the run's files; default: a temp dir"),
    ] = None,
    users: Annotated[int, typer.Option(help="users (4..1000)")] = 40,
    threads: Annotated[int, typer.Option(help="threads of concurrent buyers (1..32)")] = 4,
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
) -> None:
    """Run a small marketplace from listing to maturity and print what happened."""
    from formicary.wealth.errors import WealthError
    from formicary.wealth.simulate import simulate
    from formicary.wealth.terms import yield_percent

    directory = out_dir or Path(tempfile.mkdtemp(prefix="formicary-wealth-"))
    try:
        result = simulate(
            directory,
            users=users,
            threads=threads,
            seed=seed,
            say=lambda line: console.print(f"• {line}", highlight=False),
        )
    except (ValueError, WealthError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error

    table = Table(title="products")
    for name in ("product", "issuer", "term", "yield %", "size (yuan)", "raised (yuan)", "status"):
        table.add_column(name, justify="right")
    for p in result.products:
        t = p.terms
        table.add_row(
            p.product_id,
            t.issuer_id,
            f"{t.term_days} d",
            str(yield_percent(t.yield_bp)),
            f"{t.size_fen / 100:,.2f}",
            "-" if p.raised_fen is None else f"{p.raised_fen / 100:,.2f}",
            p.status,
        )
    console.print(table)
    console.print(
        "notifications: "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(result.notifications.items()))
    )
    for ledger, (dpo, cpo, dp, cp) in sorted(result.trial_balances.items()):
        state = "[green]balanced[/green]" if (dpo, dp) == (cpo, cp) else "[red]OFF[/red]"
        console.print(f"ledger {ledger}: debits {dpo:,} = credits {cpo:,} (pending {dp}) {state}")
    books = result.fund_books
    console.print(
        f"fund: custody {books['custody_cash_fen']:,} fen = shares outstanding"
        f" {books['shares_outstanding']:,}"
        + (" [green]balanced[/green]" if books["difference_fen"] == 0 else " [red]OFF[/red]")
    )
    console.print(f"files: {directory}")
    if not result.balanced:
        raise typer.Exit(1)


@app.command("products")
def products_command(
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="only these statuses (repeat, or comma-separated): listed, closing_launch,"
            " closing_fail, launched, failed, maturing, matured",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """The products: term, yield, size, sold, what remains, sale window and status."""
    from formicary.wealth import ProductStatus, yield_percent

    known = [v for k, v in vars(ProductStatus).items() if k.isupper()]
    wanted: list[str] | None = None
    if status:
        wanted = [s.strip() for text in status for s in text.split(",")]
        for s in wanted:
            if s not in known:
                raise _fail(f"unknown status {s!r}: one of {', '.join(known)}")
    with _open(database_url, wealth_dir, funds_dir) as market:
        rows = []
        for p in market.products(wanted):
            books = market.books(p.product_id)
            t = p.terms
            rows.append(
                (
                    t.product_id,
                    t.issuer_id,
                    f"{t.term_days} d",
                    f"{yield_percent(t.yield_bp)}%",
                    _yuan(t.size_fen),
                    _yuan(books["quota_subscribed_fen"]),
                    _yuan(books["quota_remaining_fen"]),
                    f"{_when(t.sale_open)} → {_when(t.sale_close)}",
                    p.status,
                )
            )
    which = f" ({', '.join(wanted)})" if wanted else ""
    if not rows:
        console.print(f"no products{which}", highlight=False)
        return
    table = Table(title=f"products{which}")
    for name in (
        "product",
        "issuer",
        "term",
        "yield",
        "size (yuan)",
        "sold (yuan)",
        "remaining (yuan)",
        "sale window (Beijing)",
        "status",
    ):
        table.add_column(
            name, justify="left" if name in ("product", "issuer", "status") else "right"
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"{len(rows)} product{'' if len(rows) == 1 else 's'}", highlight=False)


@app.command("books")
def books_command(
    product: Annotated[
        str | None, typer.Option("--product", help="the product id", show_default=False)
    ] = None,
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """A product's ledger books next to the state file's figures, reconciled or not.

    The same check as GET /v1/wealth/products/{id}/books; exit 1 when they do not reconcile.
    """
    from formicary.api.wealth_routes import _books_out

    product_id = _product_id(product)
    with _open(database_url, wealth_dir, funds_dir) as market:
        books = _books_out(market, product_id)
    table = Table(title=f"books of {product_id} ({books.status})")
    table.add_column("figure")
    table.add_column("yuan", justify="right")
    for label, fen in (
        ("escrow posted", books.escrow_posted_fen),
        ("escrow pending", books.escrow_pending_fen),
        ("quota remaining", books.quota_remaining_fen),
        ("quota subscribed", books.quota_subscribed_fen),
        ("reserved purchases (state file)", books.reserved_fen),
        ("raised (state file)", books.raised_fen),
    ):
        table.add_row(label, _yuan(fen))
    console.print(table)
    if books.balanced:
        console.print(f"{product_id}: [green]reconciled[/green] with the ledger", highlight=False)
        return
    console.print(f"{product_id}: [red]NOT reconciled[/red] with the ledger", highlight=False)
    raise typer.Exit(1)


@app.command("reservations")
def reservations_command(
    user: Annotated[
        str | None, typer.Option("--user", help="only this user's", show_default=False)
    ] = None,
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """The auto-reservations (预约), oldest first: what each wants, bought, has open."""
    from formicary.wealth import yield_percent
    from formicary.wealth.store import PAGE_ROWS_MAX
    from formicary.wealth.terms import BEIJING

    if user is not None and not 0 < len(user) <= _USER_ID_MAX:
        raise _fail(f"a user id is 1 to {_USER_ID_MAX} characters")
    with _open(database_url, wealth_dir, funds_dir) as market:
        found = market.reservations(user)
        now_ns = market.clock_ns()
    whose = f" of {escape(user)}" if user is not None else ""
    if not found:
        console.print(f"no reservations{whose}", highlight=False)
        return
    table = Table(title=f"reservations{whose}")
    for name in (
        "no",
        "user",
        "term",
        "min yield",
        "amount (yuan)",
        "filled (yuan)",
        "open (yuan)",
        "source",
        "payout",
        "expires (Beijing)",
        "status",
    ):
        table.add_column(name, justify="left" if name in ("user", "source", "status") else "right")
    for r in found:
        expires = datetime.fromtimestamp(r.expires_ns // 10**9, BEIJING)
        table.add_row(
            str(r.reservation_no),
            escape(r.user_id),
            f"{r.term_min_days}-{r.term_max_days} d",
            f"{yield_percent(r.min_yield_bp)}%",
            _yuan(r.amount_fen),
            _yuan(r.filled_fen),
            _yuan(r.open_fen),
            escape(f"{_source_kind(r.source_kind)} {r.source_ref}"),
            f"{r.payout.wallet_account_id}" + (" → fund" if r.payout.into_fund else ""),
            _when(expires) + (" (past)" if r.expires_ns <= now_ns else ""),
            r.status,
        )
    console.print(table)
    more = f" (the first {PAGE_ROWS_MAX:,})" if len(found) >= PAGE_ROWS_MAX else ""
    console.print(
        f"{len(found)} reservation{'' if len(found) == 1 else 's'}{more}", highlight=False
    )


@app.command("tick")
def tick_command(
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """Run what is due now: expiries, matching, sale closes, maturities.

    As POST /v1/wealth/tick: expire reservations, match products that opened, close sales that
    ended (launch or void), pay maturities. Idempotent, resumable.
    """
    # Marketplace.tick() takes no progress callback: a spinner while it runs.
    with _open(database_url, wealth_dir, funds_dir) as market, console.status("running..."):
        report = market.tick()
    _print_tick(report)


def _print_tick(report: TickReport) -> None:
    say = lambda line: console.print(line, highlight=False)  # noqa: E731
    if report.expired_reservations:
        say(f"expired {report.expired_reservations} reservation(s)")
    for m in report.matched:
        bought = sum(fen for _, fen in m.filled)
        say(
            f"matched {m.product_id}: {len(m.filled)} reservation(s) bought {_yuan(bought)} yuan;"
            f" {_yuan(m.remaining_fen)} yuan remains"
        )
    for c in report.closed:
        outcome = "[green]launched[/green]" if c.launched else "[yellow]failed to launch[/yellow]"
        say(
            f"closed {c.product_id}: {outcome}, raised {_yuan(c.raised_fen)} yuan"
            f" (minimum {_yuan(c.min_raise_fen)}); {c.purchases} purchase(s),"
            f" {c.settled} {'posted' if c.launched else 'voided'} by this run"
        )
    for m in report.matured:
        say(
            f"matured {m.product_id}: principal {_yuan(m.principal_fen)} + interest"
            f" {_yuan(m.interest_fen)} = {_yuan(m.principal_fen + m.interest_fen)} yuan;"
            f" {m.paid} paid, {m.reinvested} reinvested, {m.reinvest_failed} reinvest failed"
        )
    for text in report.shortfalls:
        say(f"[red]shortfall[/red] {text}")
    if not (
        report.expired_reservations
        or report.matched
        or report.closed
        or report.matured
        or report.shortfalls
    ):
        say("nothing was due")


# ----------------------------------------------------------------- issuers, listing, buying


@app.command("issuers")
def issuers_command(
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """The issuers: their figures, settlement account, whitelisting and vetting verdict now."""
    from formicary.api.wealth_routes import _issuer_out

    with _open(database_url, wealth_dir, funds_dir) as market:
        found = [(i, _issuer_out(market, i.issuer_id)) for _, i in market.store.issuers()]
    if not found:
        _say("no issuers")
        return
    table = Table(title="issuers")
    for name in ("issuer", "name", "kind", "figures", "whitelisted", "account", "vetting", "why"):
        table.add_column(name, justify="right" if name == "account" else "left")
    for issuer, out in found:
        verdict = out.vetting
        table.add_row(
            issuer.issuer_id,
            escape(issuer.name),
            out.kind,
            _figures(issuer),
            "yes" if out.whitelisted else "no",
            out.account_id,
            ("[green]passes[/green] " if verdict.passed else "[red]fails[/red] ") + verdict.rule,
            verdict.reason,
        )
    console.print(table)
    passed = sum(out.vetting.passed for _, out in found)
    _say(f"{len(found)} issuer{'' if len(found) == 1 else 's'}, {passed} may list products")


@app.command("issuer-add")
def issuer_add_command(
    issuer: Annotated[
        str | None,
        typer.Option("--issuer", help="the issuer id (letters, digits, '_', '.', '-')"),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="its name")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="bank, asset_manager, pc_insurer or other")
    ] = None,
    total_assets_yuan: Annotated[
        str | None,
        typer.Option(
            "--total-assets-yuan",
            help="a bank's total assets in yuan (rule bank_total_assets: more than 200 billion)",
        ),
    ] = None,
    solvency_ratio_pct: Annotated[
        str | None,
        typer.Option(
            "--solvency-ratio-pct",
            help="a P&C insurer's solvency ratio in percent, e.g. 180.5"
            " (rule pc_insurer_solvency: more than 150)",
        ),
    ] = None,
    licensed: Annotated[
        bool,
        typer.Option(
            "--licensed",
            help="an asset management company holds the regulator's licence"
            " (rule asset_manager_licensed)",
        ),
    ] = False,
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """Register an issuer (or its new figures) and print its vetting verdict.

    As POST /v1/wealth/issuers: the issuer is recorded either way (so that `whitelist` can admit
    one of kind other), but one that fails the rule of its kind cannot list products: the rule
    is named and the command exits 1. Registering again replaces every figure.
    """
    from formicary.wealth import Issuer, IssuerKind

    issuer_id = _required(issuer, "--issuer ID")
    issuer_name = _required(name, "--name NAME")
    kinds = [k.value for k in IssuerKind]
    kind_value = _required(kind, "--kind KIND")
    if kind_value not in kinds:
        raise _fail(f"unknown kind {kind_value!r}: one of {', '.join(kinds)}")
    assets = None
    if total_assets_yuan is not None:
        assets = _fen(total_assets_yuan, "--total-assets-yuan", minimum=0)
    ratio = None
    if solvency_ratio_pct is not None:
        if not _PERCENT.fullmatch(solvency_ratio_pct):
            raise _fail(f"--solvency-ratio-pct: not a percent (e.g. 180.5): {solvency_ratio_pct!r}")
        ratio = Decimal(solvency_ratio_pct)
    with _open(database_url, wealth_dir, funds_dir) as market:
        verdict = market.register_issuer(
            Issuer(
                issuer_id=issuer_id,
                name=issuer_name,
                kind=IssuerKind(kind_value),
                total_assets_fen=assets,
                solvency_ratio_pct=ratio,
                licensed=licensed,
            )
        )
        account = market.issuer_account_id(issuer_id)
    if not verdict.passed:
        raise _fail(f"issuer {issuer_id} recorded but {_verdict(verdict)}")
    _say(
        f"issuer {issuer_id} ({kind_value}) recorded, settlement account {account}:"
        f" {_verdict(verdict)}"
    )


@app.command("whitelist")
def whitelist_command(
    issuer: Annotated[str | None, typer.Option("--issuer", help="the issuer id")] = None,
    note: Annotated[str, typer.Option("--note", help="why (at most 500 characters)")] = "",
    remove: Annotated[bool, typer.Option("--remove", help="take it off the whitelist")] = False,
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """Whitelist an issuer (the rule of kind other), or take it off with --remove.

    As POST and DELETE /v1/wealth/issuers/{id}/whitelist, idempotent. A bank, AMC or P&C insurer
    is still judged by its own rule: whitelisting one that fails it exits 1, naming the rule.
    Taking an issuer off keeps its listed products listed; new ones are refused.
    """
    issuer_id = _required(issuer, "--issuer ID")
    if len(note) > 500:
        raise _fail("--note: at most 500 characters")
    with _open(database_url, wealth_dir, funds_dir) as market:
        if remove:
            market.issuer(issuer_id)  # an unknown issuer is refused, as by the HTTP route
            market.unwhitelist(issuer_id)
        else:
            market.whitelist(issuer_id, note)
        verdict = market.vet_issuer(issuer_id)
    if remove:
        done = f"issuer {issuer_id} is off the whitelist"
    elif verdict.passed:
        done = f"issuer {issuer_id} whitelisted"
    else:
        raise _fail(f"issuer {issuer_id} whitelisted but still {_verdict(verdict)}")
    _say(f"{done}: {_verdict(verdict)}")


@app.command("list-product")
def list_product_command(
    product: Annotated[
        str | None,
        typer.Option("--product", help="the new product's id (letters, digits, '_', '.', '-')"),
    ] = None,
    issuer: Annotated[str | None, typer.Option("--issuer", help="the issuer id")] = None,
    name: Annotated[str | None, typer.Option("--name", help="the product's name")] = None,
    term_days: Annotated[
        str | None,
        typer.Option("--term-days", help="the term in calendar days (1..1825)", metavar="DAYS"),
    ] = None,
    yield_pct: Annotated[
        str | None,
        typer.Option("--yield-pct", help="the expected annual yield in percent, e.g. 4.25"),
    ] = None,
    size_yuan: Annotated[str | None, typer.Option("--size-yuan", help="the size, yuan")] = None,
    min_purchase_yuan: Annotated[
        str | None, typer.Option("--min-purchase-yuan", help="the minimum purchase, yuan")
    ] = None,
    sale_open: Annotated[
        str | None,
        typer.Option(
            "--sale-open",
            help="the sale opens: YYYY-MM-DD HH:MM, Beijing time unless an offset is given",
        ),
    ] = None,
    sale_close: Annotated[
        str | None,
        typer.Option("--sale-close", help="the sale closes (at most 90 days after it opens)"),
    ] = None,
    min_raise_yuan: Annotated[
        str | None,
        typer.Option(
            "--min-raise-yuan",
            help="it launches if at least this much was bought (default: half the size)",
            show_default=False,
        ),
    ] = None,
    value_date: Annotated[
        str | None,
        typer.Option(
            "--value-date",
            help="YYYY-MM-DD, interest runs from it (default: the day after the close)",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """List a product and print its id (idempotent by product id).

    As POST /v1/wealth/products: the same checks, and the issuer must pass vetting (else the
    rule is named, exit 1). If the sale is open already, matching auto-reservations buy at once.
    """
    from formicary.wealth import NotFound, ProductTerms, yield_percent

    product_id = _product_id(product)
    terms = ProductTerms(
        product_id=product_id,
        issuer_id=_required(issuer, "--issuer ID"),
        name=_required(name, "--name NAME"),
        term_days=_int(_required(term_days, "--term-days DAYS"), "--term-days"),
        yield_bp=_bp(_required(yield_pct, "--yield-pct PERCENT"), "--yield-pct"),
        size_fen=_fen(_required(size_yuan, "--size-yuan YUAN"), "--size-yuan"),
        min_purchase_fen=_fen(
            _required(min_purchase_yuan, "--min-purchase-yuan YUAN"), "--min-purchase-yuan"
        ),
        sale_open=_sale_time(_required(sale_open, "--sale-open TIME"), "--sale-open"),
        sale_close=_sale_time(_required(sale_close, "--sale-close TIME"), "--sale-close"),
        min_raise_fen=None if min_raise_yuan is None else _fen(min_raise_yuan, "--min-raise-yuan"),
        value_date=None if value_date is None else _day(value_date, "--value-date"),
    )
    with _open(database_url, wealth_dir, funds_dir) as market:
        try:
            market.product(product_id)
            again = True
        except NotFound:
            again = False
        listed = market.list_product(terms)
        books = market.books(product_id)
    t = listed.terms
    first = f"{product_id} was listed already with these terms" if again else f"listed {product_id}"
    _say(
        f"{first}: {escape(t.name)} by {t.issuer_id},"
        f" {t.term_days} d at {yield_percent(t.yield_bp)}% a year"
    )
    _say(
        f"size {_yuan(t.size_fen)} yuan, minimum purchase {_yuan(t.min_purchase_fen)} yuan,"
        f" launches with {_yuan(t.launch_min_fen())} yuan raised"
    )
    _say(
        f"sale {_when(t.sale_open)} → {_when(t.sale_close)} (Beijing), value date"
        f" {t.value_day()}, maturity {t.maturity_day()}"
    )
    _say(
        f"sold {_yuan(books['quota_subscribed_fen'])} yuan, remaining"
        f" {_yuan(books['quota_remaining_fen'])} yuan; status {listed.status}"
    )


@app.command("buy")
def buy_command(
    product: Annotated[str | None, typer.Option("--product", help="the product id")] = None,
    user: Annotated[str | None, typer.Option("--user", help="the buyer's user id")] = None,
    wallet: Wallet = None,
    amount_yuan: Annotated[
        str | None, typer.Option("--amount-yuan", help="the amount, yuan (e.g. 1234.56)")
    ] = None,
    source: SourceOption = "wallet",
    payout: PayoutOption = "wallet",
    fund_no: FundNo = None,
    redemption: Redemption = "instant",
    request_id: RequestId = None,
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """Buy a product on sale for a user and print the purchase (pending until the close).

    As POST /v1/wealth/products/{id}/purchases: at least the minimum purchase unless it takes
    all that remains; paid from --wallet, or (--source fund) by an instant redemption of the
    user's fund shares within the fund's T+0 limits, or with --redemption standard by a
    standard (T+1) redemption without them, refused when the sale closes before the day its
    cash arrives.
    """
    product_id = _product_id(product)
    user_id = _user(user)
    wallet_id = _wallet(wallet)
    amount = _fen(_required(amount_yuan, "--amount-yuan YUAN"), "--amount-yuan")
    funding = _Funding.parse(source, payout, fund_no, redemption)
    request = _request_id(request_id)
    with _open(database_url, wealth_dir, funds_dir) as market:
        bought = market.purchase(
            product_id,
            user_id,
            amount,
            funding.source(market, user_id, wallet_id),
            request,
            payout=funding.payout(market, wallet_id),
        )
        t = market.product(product_id).terms
    interest = t.interest_for(bought.amount_fen)
    replayed = " (replayed: this request id was applied before)" if bought.replayed else ""
    _say(
        f"purchase {bought.purchase_no}{replayed}: {escape(user_id)} bought"
        f" {_yuan(bought.amount_fen)} yuan of {product_id} from"
        f" {_source_text(bought.source_kind, bought.source_ref)};"
        f" {bought.status} until the sale closes {_when(t.sale_close)}"
    )
    _say(
        f"if it launches: principal {_yuan(bought.amount_fen)} + interest {_yuan(interest)} ="
        f" {_yuan(bought.amount_fen + interest)} yuan on {t.maturity_day()} to"
        f" {_payout_text(bought.payout)}"
    )
    _say(f"request id {escape(request)}")


@app.command("reserve")
def reserve_command(
    user: Annotated[str | None, typer.Option("--user", help="the user id")] = None,
    wallet: Wallet = None,
    amount_yuan: Annotated[
        str | None, typer.Option("--amount-yuan", help="buy up to this much in all, yuan")
    ] = None,
    term_min_days: Annotated[
        str | None,
        typer.Option("--term-min-days", help="the shortest term wanted, days", metavar="DAYS"),
    ] = None,
    term_max_days: Annotated[
        str | None,
        typer.Option("--term-max-days", help="the longest term wanted, days", metavar="DAYS"),
    ] = None,
    min_yield_pct: Annotated[
        str, typer.Option("--min-yield-pct", help="the lowest yield wanted, percent")
    ] = "0",
    valid_days: Annotated[
        str | None,
        typer.Option(
            "--valid-days",
            metavar="DAYS",
            help="how long it stays open (default 30, at most 180)",
            show_default=False,
        ),
    ] = None,
    source: SourceOption = "wallet",
    payout: PayoutOption = "wallet",
    fund_no: FundNo = None,
    redemption: Redemption = "instant",
    request_id: RequestId = None,
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """Create an auto-reservation (预约) and print it.

    As POST /v1/wealth/reservations: every product that opens from now on with a term in
    [--term-min-days, --term-max-days] and at least --min-yield-pct buys up to the rest of
    --amount-yuan, first come first served. Products on sale already are not matched. With
    --source fund each fill is within the fund's T+0 limits, or with --redemption standard a
    T+1 redemption without them that skips products whose sale closes before its cash arrives.
    """
    from formicary.wealth import yield_percent
    from formicary.wealth.terms import BEIJING

    user_id = _user(user)
    wallet_id = _wallet(wallet)
    amount = _fen(_required(amount_yuan, "--amount-yuan YUAN"), "--amount-yuan")
    shortest = _int(_required(term_min_days, "--term-min-days DAYS"), "--term-min-days")
    longest = _int(_required(term_max_days, "--term-max-days DAYS"), "--term-max-days")
    days = None if valid_days is None else _int(valid_days, "--valid-days")
    min_yield = _bp(min_yield_pct, "--min-yield-pct")
    funding = _Funding.parse(source, payout, fund_no, redemption)
    request = _request_id(request_id)
    with _open(database_url, wealth_dir, funds_dir) as market:
        made = market.reserve(
            user_id,
            request,
            term_min_days=shortest,
            term_max_days=longest,
            min_yield_bp=min_yield,
            amount_fen=amount,
            source=funding.source(market, user_id, wallet_id),
            payout=funding.payout(market, wallet_id),
            valid_days=days,
        )
    expires = datetime.fromtimestamp(made.expires_ns // 10**9, BEIJING)
    replayed = " (replayed: this request id was applied before)" if made.replayed else ""
    _say(
        f"reservation {made.reservation_no}{replayed} of {escape(user_id)}:"
        f" {made.term_min_days}-{made.term_max_days} d at {yield_percent(made.min_yield_bp)}% or"
        f" more, up to {_yuan(made.amount_fen)} yuan from"
        f" {_source_text(made.source_kind, made.source_ref)}, paid out to"
        f" {_payout_text(made.payout)}"
    )
    _say(
        f"{made.status}: bought {_yuan(made.filled_fen)} yuan, open {_yuan(made.open_fen)} yuan;"
        f" expires {_when(expires)} (Beijing)"
    )
    _say(f"request id {escape(request)}")


@app.command("cancel-reservation")
def cancel_reservation_command(
    reservation: Annotated[
        str | None, typer.Option("--reservation", help="the reservation number", metavar="NO")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="its owner, checked (default: whoever owns it)"),
    ] = None,
    database_url: DatabaseUrl = None,
    wealth_dir: WealthDir = DEFAULT_WEALTH_DIR,
    funds_dir: FundsDir = DEFAULT_FUNDS_DIR,
) -> None:
    """Cancel an auto-reservation; what it bought stays bought.

    As POST /v1/wealth/reservations/{no}/cancel (the user is notified). One expired or
    cancelled already is left unchanged.
    """
    from formicary.wealth import ReservationStatus

    number = _int(_required(reservation, "--reservation NO"), "--reservation", low=1, high=2**62)
    if user is not None:
        _user(user)
    with _open(database_url, wealth_dir, funds_dir) as market:
        before = market.reservation(number)
        owner = before.user_id if user is None else user
        after = market.cancel_reservation(owner, number)
    bought = f"{_yuan(after.filled_fen)} of {_yuan(after.amount_fen)} yuan was bought"
    ended = (ReservationStatus.CANCELLED, ReservationStatus.EXPIRED)
    if before.status in ended:
        outcome = f"was {before.status} already, unchanged: {bought}"
    else:
        outcome = f"cancelled: {bought}" + (" (it stays bought)" if after.filled_fen else "")
    _say(f"reservation {number} of {escape(owner)} {outcome}")


def _say(line: str) -> None:
    """One line of output: never wrapped by rich (the terminal wraps it, a pipe keeps it)."""
    console.print(line, highlight=False, soft_wrap=True)


def _required(value: _T | None, flag: str) -> _T:
    if value is None:
        raise _fail(f"missing {flag}")
    return value


def _user(value: str | None) -> str:
    user = _required(value, "--user USER")
    if not 0 < len(user) <= _USER_ID_MAX:
        raise _fail(f"a user id is 1 to {_USER_ID_MAX} characters")
    return user


def _wallet(value: str | None) -> int:
    """A wallet's ledger account id, as the HTTP route reads `wallet_account_id`."""
    from formicary.api.wire import InvalidField, parse_id

    text = _required(value, "--wallet ACCOUNT")
    if not (text.isascii() and text.isdigit()):
        raise _fail(f"--wallet: not a ledger account id (decimal digits): {text!r}")
    try:
        return parse_id(text, "--wallet")
    except InvalidField as error:
        raise _fail(str(error)) from error


def _int(text: str, flag: str, *, low: int | None = None, high: int | None = None) -> int:
    """A whole number as typed; the domain checks its range unless `low`/`high` are given."""
    value = text.strip()
    if not _INTEGER.fullmatch(value):
        raise _fail(f"{flag}: not a whole number: {text!r}")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise _fail(f"{flag} must be {low} to {high}, got {number}")
    return number


class _Funding(NamedTuple):
    """--source, --payout, --fund-no and --redemption of buy and reserve, checked."""

    source_kind: str
    payout_kind: str
    fund_no: int | None
    redemption: str

    @classmethod
    def parse(cls, source: str, payout: str, fund_no: str | None, redemption: str) -> _Funding:
        source_kind = _choice(source, "--source")
        return cls(
            source_kind,
            _choice(payout, "--payout"),
            _fund_no(fund_no, source_kind),
            _redemption(redemption, source_kind),
        )

    def source(self, market: Marketplace, user_id: str, wallet_id: int) -> FundingSource:
        from formicary.wealth.funding import funding_source

        return funding_source(
            market, self.source_kind, self.fund_no, user_id, wallet_id, self.redemption
        )

    def payout(self, market: Marketplace, wallet_id: int) -> Payout:
        from formicary.wealth.funding import payout_for

        return payout_for(market, self.payout_kind, self.fund_no, wallet_id)


def _request_id(given: str | None) -> str:
    """The caller's request id, or a new one (printed, so that a retry can reuse it)."""
    return f"cli-{uuid.uuid4().hex}" if given is None else given


def _fund_no(text: str | None, source: str) -> int | None:
    """--fund-no names the fund a purchase is paid from (as the HTTP route's `fund_no`)."""
    if text is None:
        return None
    if source != "fund":
        raise _fail("--fund-no names the fund of --source fund")
    return _int(text, "--fund-no", low=1, high=4095)


def _redemption(value: str, source: str) -> str:
    """--redemption names how --source fund redeems (as the HTTP route's `redemption`)."""
    if value not in _REDEMPTIONS:
        raise _fail(f"unknown --redemption {value!r}: one of {', '.join(_REDEMPTIONS)}")
    if value != "instant" and source != "fund":
        raise _fail("--redemption names how --source fund redeems")
    return value


def _fen(text: str, flag: str, *, minimum: int = 1) -> int:
    """Yuan as typed (1234.56 or 1,234.56; at most two decimals) as int fen, by Decimal."""
    value = text.strip()
    if not _YUAN.fullmatch(value):
        raise _fail(f"{flag}: not an amount of yuan with at most 2 decimals: {text!r}")
    fen = int(Decimal(value.replace(",", "")) * 100)
    if fen < minimum:
        raise _fail(f"{flag} must be at least {_yuan(minimum)} yuan, got {text}")
    return fen


def _bp(text: str, flag: str) -> int:
    """A percent as typed (4.25) as basis points, by the domain's own conversion."""
    from formicary.wealth import WealthError, yield_bp_from_percent

    try:
        return yield_bp_from_percent(text.strip())
    except WealthError as error:
        raise _fail(f"{flag}: {error}") from error


def _choice(value: str, flag: str) -> str:
    if value not in _SOURCES:
        raise _fail(f"unknown {flag} {value!r}: one of {', '.join(_SOURCES)}")
    return value


def _sale_time(text: str, flag: str) -> datetime:
    """An ISO date-time; without an offset it is Beijing time (ProductTerms reads it so)."""
    from formicary.api.wealth_routes import _YEAR_MAX, _YEAR_MIN

    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise _fail(
            f"{flag}: not a date-time (YYYY-MM-DD HH:MM, Beijing time unless an offset"
            f" follows): {text!r}"
        ) from error
    if not _YEAR_MIN <= value.year <= _YEAR_MAX:
        raise _fail(f"{flag} must be in the years {_YEAR_MIN} to {_YEAR_MAX}")
    return value


def _day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as error:
        raise _fail(f"{flag}: not a date (YYYY-MM-DD): {text!r}") from error


def _figures(issuer: Issuer) -> str:
    """The figures vetting reads, those the issuer reported."""
    parts = []
    if issuer.total_assets_fen is not None:
        parts.append(f"total assets {_yuan(issuer.total_assets_fen)} yuan")
    if issuer.solvency_ratio_pct is not None:
        parts.append(f"solvency ratio {issuer.solvency_ratio_pct}%")
    if issuer.licensed or issuer.kind == "asset_manager":
        parts.append("licensed" if issuer.licensed else "not licensed")
    return ", ".join(parts) or "-"


def _verdict(verdict: Vetting) -> str:
    how = "passes" if verdict.passed else "refused by"
    return f"{how} rule {verdict.rule}: {verdict.reason}"


def _source_text(kind: str, ref: str) -> str:
    if kind == "wallet":
        return f"wallet {ref}"
    standard = " (standard redemption)" if _is_standard(kind) else ""
    return f"the fund shares of {escape(ref)}{standard}"


def _source_kind(kind: str) -> str:
    """A stored source kind as listed: a standard fund source (`fund_standard`) is
    `fund (standard)`."""
    return "fund (standard)" if _is_standard(kind) else kind


def _is_standard(kind: str) -> bool:
    from formicary.wealth.funding import fund_redemption

    return fund_redemption(kind) == "standard"


def _payout_text(payout: Payout) -> str:
    into = ", then into the fund" if payout.into_fund else ""
    return f"wallet {payout.wallet_account_id}{into}"


def _product_id(value: str | None) -> str:
    if value is None:
        raise _fail("missing --product ID")
    if not _PRODUCT_ID.fullmatch(value):
        raise _fail(f"not a product id: {value!r} (1 to 64 of letters, digits, '_', '.', '-')")
    return value
