"""`formicary wealth ...`: the fixed-term marketplace's commands (a thin layer over the library).

    formicary wealth simulate                     # a whole marketplace story in a temp dir
    formicary wealth products --status listed     # the products, what was sold, what remains
    formicary wealth books --product p-1          # a product's ledger books, reconciled or not
    formicary wealth reservations --user alice    # auto-reservations (预约)
    formicary wealth tick                         # run what is due now: closes, maturities

The operator commands open the marketplace exactly as the server does (`WealthHost`): the same
`--database-url` ledger, the same `--wealth-dir` state file, and the server's money-market fund
in `--funds-dir`. The ledger has one writer: run them while the server is stopped.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from formicary.wealth import Marketplace, TickReport

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


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/red]", highlight=False)
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
    whose = f" of {user}" if user is not None else ""
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
            r.user_id,
            f"{r.term_min_days}-{r.term_max_days} d",
            f"{yield_percent(r.min_yield_bp)}%",
            _yuan(r.amount_fen),
            _yuan(r.filled_fen),
            _yuan(r.open_fen),
            f"{r.source_kind} {r.source_ref}",
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


def _product_id(value: str | None) -> str:
    if value is None:
        raise _fail("missing --product ID")
    if not _PRODUCT_ID.fullmatch(value):
        raise _fail(f"not a product id: {value!r} (1 to 64 of letters, digits, '_', '.', '-')")
    return value
