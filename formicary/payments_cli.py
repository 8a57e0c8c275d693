"""`formicary payments ...`: the operator's commands on the files the server uses.

    formicary payments settle --date 2025-11-11      # the T+1 batch of a business day
    formicary payments report --date 2025-11-11      # its report, reconciled against the ledger
    formicary payments merchant-balance --merchant 7
    formicary payments merchant-qr --merchant 7
    formicary payments recover                       # finish what a crash left open

A thin layer over `formicary.payments`, opened exactly as the server opens it (the same
`--database-url` ledger, the same `--payments-dir` with its store and secret). The ledger has one
writer: run these while the server is stopped. The banks are simulated (`FakeBank`): a
settlement's payouts always succeed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from formicary.payments import Payments, SettlementReport

__all__ = ["app"]

app = typer.Typer(
    help="The payments core: settlement, reports, merchant balances, recovery.",
    no_args_is_help=True,
)
console = Console()

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="FORMICARY_DATABASE_URL",
        help="the ledger: sqlite:///path.db (default) or postgresql://...;"
        " env FORMICARY_DATABASE_URL",
        show_default=False,
    ),
]
PaymentsDir = Annotated[
    Path,
    typer.Option(
        "--payments-dir",
        envvar="FORMICARY_PAYMENTS_DIR",
        help="the payments core's own files (store and secret); env FORMICARY_PAYMENTS_DIR",
    ),
]
BusinessDate = Annotated[
    str, typer.Option("--date", help="the business day (China Standard Time), YYYY-MM-DD")
]
MerchantId = Annotated[int, typer.Option("--merchant", help="the merchant's id", min=1)]
AsJson = Annotated[bool, typer.Option("--json", help="print the report as one JSON object")]
DEFAULT_PAYMENTS_DIR = Path("formicary-payments")


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/red]")
    return typer.Exit(1)


@contextmanager
def _open(database_url: str | None, payments_dir: Path, *, recover: bool) -> Iterator[Payments]:
    """The payments core on the server's files; refusals become one red line and exit 1."""
    from formicary.api.payments_routes import STORE_FILE, PaymentsHost
    from formicary.ledger import DEFAULT_DATABASE_URL, LedgerService, open_store
    from formicary.payments import PaymentError

    if not (payments_dir / STORE_FILE).exists():
        raise _fail(f"no payments store in {payments_dir} (see --payments-dir)")
    url = database_url or DEFAULT_DATABASE_URL
    try:
        ledger = LedgerService(open_store(url))
        ledger.start()
    except Exception as error:  # the CLI boundary: any cause becomes one readable line
        raise _fail(f"cannot open the ledger {url}: {error}") from error
    host = PaymentsHost(lambda: ledger, payments_dir)
    try:
        try:
            payments = host.open(recover=recover)
        except Exception as error:
            raise _fail(f"cannot open the payments core in {payments_dir}: {error}") from error
        try:
            yield payments
        except PaymentError as error:
            raise _fail(f"{error.code}: {error}") from error
    finally:
        host.close()
        ledger.close()


def _day(text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError as error:
        raise _fail(f"not a date (YYYY-MM-DD): {text!r}") from error
    from formicary.api.payments_routes import LAST_BUSINESS_DATE

    if not date(1970, 1, 1) <= day <= LAST_BUSINESS_DATE:
        raise _fail(f"a business day is from 1970-01-01 to {LAST_BUSINESS_DATE}")
    return day


def _print_report(report: SettlementReport, as_json: bool) -> None:
    if as_json:
        import msgspec

        from formicary.api.payments_routes import report_out

        typer.echo(msgspec.json.encode(report_out(report)).decode())
        return
    table = Table(title=f"settlement of {report.business_date} (T+1)")
    for column in (
        "merchant",
        "state",
        "payments",
        "gross",
        "fee",
        "refunds",
        "refunded",
        "fee back",
        "campaigns",
        "net",
        "ledger net",
        "settled",
    ):
        table.add_column(column, justify="left" if column == "state" else "right")
    for line in report.lines:
        table.add_row(
            str(line.merchant_id),
            line.state,
            f"{line.payments:,}",
            f"{line.gross_fen:,}",
            f"{line.fee_fen:,}",
            f"{line.refunds:,}",
            f"{line.refunded_fen:,}",
            f"{line.fee_returned_fen:,}",
            f"{line.campaign_fen:,}",
            f"{line.net_fen:,}",
            f"{line.ledger_net_fen:,}",
            f"{line.settled_fen:,}",
        )
    console.print(table)
    verdict = "[green]reconciled[/green]" if report.reconciled else "[red]NOT reconciled[/red]"
    console.print(
        f"{len(report.lines)} merchant{'' if len(report.lines) == 1 else 's'},"
        f" {report.settled_fen:,} fen settled (amounts in fen);"
        f" {verdict} with the ledger"
    )


@app.command()
def settle(
    day: BusinessDate,
    database_url: DatabaseUrl = None,
    payments_dir: PaymentsDir = DEFAULT_PAYMENTS_DIR,
    as_json: AsJson = False,
) -> None:
    """Run the T+1 settlement of a business day (re-runnable: resumes what was left open)."""
    when = _day(day)
    with _open(database_url, payments_dir, recover=True) as payments:
        report = payments.settlements.run(when)
    _print_report(report, as_json)
    if not report.reconciled:
        raise typer.Exit(1)


@app.command()
def report(
    day: BusinessDate,
    database_url: DatabaseUrl = None,
    payments_dir: PaymentsDir = DEFAULT_PAYMENTS_DIR,
    as_json: AsJson = False,
) -> None:
    """Print the settlement report of a business day, reconciled against the ledger."""
    when = _day(day)
    with _open(database_url, payments_dir, recover=False) as payments:
        found = payments.settlements.report(when)
    _print_report(found, as_json)
    if not found.reconciled:
        raise typer.Exit(1)


@app.command("merchant-balance")
def merchant_balance(
    merchant: MerchantId,
    database_url: DatabaseUrl = None,
    payments_dir: PaymentsDir = DEFAULT_PAYMENTS_DIR,
) -> None:
    """A merchant's wallet (from the ledger) and what is not yet settled to its bank."""
    with _open(database_url, payments_dir, recover=False) as payments:
        found = payments.parties.merchant(merchant)
        available = payments.parties.merchant_balance(merchant)
        unsettled = payments.settlements.unsettled_fen(merchant)
    console.print(
        f"merchant {found.id} {found.name!r} (plan {found.fee_plan}, settles to"
        f" {found.settlement_bank_code} {found.settlement_account_masked}):"
        f" wallet {available:,} fen available; {unsettled:,} fen not yet settled"
    )


@app.command("merchant-qr")
def merchant_qr(
    merchant: MerchantId,
    database_url: DatabaseUrl = None,
    payments_dir: PaymentsDir = DEFAULT_PAYMENTS_DIR,
) -> None:
    """Print the text of a merchant's static QR code (to print at the till)."""
    with _open(database_url, payments_dir, recover=False) as payments:
        text = payments.offline.merchant_qr(merchant)
    typer.echo(text)


@app.command()
def recover(
    database_url: DatabaseUrl = None,
    payments_dir: PaymentsDir = DEFAULT_PAYMENTS_DIR,
) -> None:
    """Finish what a crash or a busy bank left open (the server does this when it opens)."""
    with _open(database_url, payments_dir, recover=False) as payments:
        done = payments.recover()
    console.print(f"{done.finished:,} records finished, {done.waiting:,} still waiting")
