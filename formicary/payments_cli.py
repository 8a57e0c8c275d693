"""`formicary payments ...`: the operator's commands on the files the server uses.

    formicary payments settle --date 2025-11-11      # the T+1 batch of a business day
    formicary payments report --date 2025-11-11      # its report, reconciled against the ledger
    formicary payments merchant-balance --merchant 7
    formicary payments merchant-qr --merchant 7
    formicary payments recover                       # finish what a crash left open
    formicary payments billers --category phone      # the (simulated) utilities
    formicary payments bills --biller 1 --account 13800138000   # a customer's open bills
    formicary payments family --payer 1              # grants (or --member 2), left this month
    formicary payments family-statement --payer 1 --grant 1 --month 2025-11
    formicary payments family-revoke --payer 1 --grant 1        # unused limit goes back

A thin layer over `formicary.payments`, opened exactly as the server opens it (the same
`--database-url` ledger, the same `--payments-dir` with its store and secret). The ledger has one
writer: run these while the server is stopped. The banks are simulated (`FakeBank`): a
settlement's payouts always succeed. Bills, grants and statements show money in yuan (2 decimals,
from int fen); the settlement commands and balances in fen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from formicary.payments import FamilyStatement, Payments, SettlementReport

__all__ = ["app"]

app = typer.Typer(
    help="The payments core: settlement, reports, merchant balances, recovery, bills and family"
    " accounts.",
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
BillerId = Annotated[int, typer.Option("--biller", help="the biller's id", min=1)]
PayerId = Annotated[int, typer.Option("--payer", help="the grant's payer (a user id)", min=1)]
GrantId = Annotated[int, typer.Option("--grant", help="the family grant's id", min=1)]
AsJson = Annotated[bool, typer.Option("--json", help="print the report as one JSON object")]
DEFAULT_PAYMENTS_DIR = Path("formicary-payments")


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/red]")  # text from input is never markup
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


def _yuan(fen: int) -> str:
    """Int fen as yuan with 2 decimals, by integer arithmetic (never a float)."""
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole:,}.{cents:02d}"


def _beijing(ns: int) -> str:
    from formicary.payments.settlement import CST

    return datetime.fromtimestamp(ns // 1_000_000_000, CST).strftime("%Y-%m-%d %H:%M:%S")


def _table(title: str, columns: tuple[str, ...], left: tuple[str, ...]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right")
    return table


@app.command()
def billers(
    category: Annotated[
        str | None,
        typer.Option("--category", help="only this category: electricity, water, gas or phone"),
    ] = None,
    database_url: DatabaseUrl = None,
    payments_dir: PaymentsDir = DEFAULT_PAYMENTS_DIR,
) -> None:
    """The billers: simulated utilities, each settled like a merchant."""
    from formicary.payments import BillerCategory

    kind = None
    if category is not None:
        try:
            kind = BillerCategory(category)
        except ValueError:
            names = ", ".join(str(c) for c in BillerCategory)
            raise _fail(f"a biller category is one of {names}: {category!r}") from None
    with _open(database_url, payments_dir, recover=False) as payments:
        found = payments.bills.billers(kind)
    table = _table("billers", ("biller", "name", "category", "merchant"), ("name", "category"))
    for b in found:
        table.add_row(str(b.id), escape(b.name), str(b.category), str(b.merchant_id))
    console.print(table)
    console.print(f"{len(found)} biller{'' if len(found) == 1 else 's'}")


@app.command()
def bills(
    biller: BillerId,
    account: Annotated[
        str, typer.Option("--account", help="the customer's account number at the biller")
    ],
    database_url: DatabaseUrl = None,
    payments_dir: PaymentsDir = DEFAULT_PAYMENTS_DIR,
) -> None:
    """A customer's open bills at a biller, oldest first (a fully paid bill is not listed)."""
    with _open(database_url, payments_dir, recover=False) as payments:
        found_biller = payments.bills.biller(biller)
        found = payments.bills.lookup(biller, account)
    table = _table(
        f"bills of {account} at {escape(found_biller.name)} ({found_biller.category})",
        ("bill", "period", "due", "amount", "paid", "outstanding"),
        ("period", "due"),
    )
    for b in found:
        table.add_row(
            str(b.id),
            b.period,
            b.due_date,
            _yuan(b.amount_fen),
            _yuan(b.paid_fen),
            _yuan(b.outstanding_fen),
        )
    console.print(table)
    outstanding = sum(b.outstanding_fen for b in found)
    console.print(
        f"{len(found)} open bill{'' if len(found) == 1 else 's'},"
        f" {_yuan(outstanding)} yuan outstanding"
    )


@app.command()
def family(
    payer: Annotated[
        int | None, typer.Option("--payer", help="the grants this user pays for", min=1)
    ] = None,
    member: Annotated[
        int | None, typer.Option("--member", help="the grants this user may spend", min=1)
    ] = None,
    database_url: DatabaseUrl = None,
    payments_dir: PaymentsDir = DEFAULT_PAYMENTS_DIR,
) -> None:
    """A user's family grants: monthly limit, what is left of it this month, state."""
    if (payer is None) == (member is None):
        raise _fail("give exactly one of --payer and --member")
    with _open(database_url, payments_dir, recover=False) as payments:
        if payer is not None:
            payments.parties.user(payer)
            found = payments.family.grants_of_payer(payer)
        else:
            assert member is not None
            payments.parties.user(member)
            found = payments.family.grants_of_member(member)
        remaining = {g.id: payments.family.remaining_fen(g.id) for g in found}
    who = f"paid by user {payer}" if payer is not None else f"of member user {member}"
    table = _table(
        f"family grants {who}",
        ("grant", "payer", "member", "monthly limit", "remaining this month", "state"),
        ("state",),
    )
    for g in found:
        table.add_row(
            str(g.id),
            str(g.payer_id),
            str(g.member_id),
            _yuan(g.monthly_limit_fen),
            _yuan(remaining[g.id]),
            str(g.state),
        )
    console.print(table)
    console.print(f"{len(found)} grant{'' if len(found) == 1 else 's'} (amounts in yuan)")


def _print_statement(st: FamilyStatement) -> None:
    g = st.grant
    table = _table(
        f"family grant {g.id} ({g.state}): user {g.payer_id} pays for user {g.member_id},"
        f" {st.month} ({st.state})",
        (
            "payment",
            "order",
            "merchant",
            "description",
            "completed (Beijing)",
            "amount",
            "coupon",
            "drawn",
            "refunded",
        ),
        ("description", "completed (Beijing)"),
    )
    for line in st.lines:
        table.add_row(
            str(line.payment_id),
            str(line.order_id),
            str(line.merchant_id),
            escape(line.description),
            _beijing(line.completed_ns),
            _yuan(line.amount_fen),
            _yuan(line.coupon_fen),
            _yuan(line.drawn_fen),
            _yuan(line.refunded_fen),
        )
    console.print(table)
    verdict = "[green]reconciled[/green]" if st.reconciled else "[red]NOT reconciled[/red]"
    console.print(
        f"limit {_yuan(st.limit_fen)}, drawn {_yuan(st.drawn_fen)}, refunded"
        f" {_yuan(st.refunded_fen)}, spent {_yuan(st.spent_fen)}, remaining"
        f" {_yuan(st.remaining_fen)}, returned to the payer {_yuan(st.returned_fen)}"
        f" (yuan); ledger spent {_yuan(st.ledger_spent_fen)}: {verdict} with the ledger"
    )


@app.command("family-statement")
def family_statement(
    payer: PayerId,
    grant: GrantId,
    month: Annotated[
        str | None,
        typer.Option("--month", help="YYYY-MM, Beijing time (default: this month)"),
    ] = None,
    database_url: DatabaseUrl = None,
    payments_dir: PaymentsDir = DEFAULT_PAYMENTS_DIR,
) -> None:
    """A month of a family grant for its payer: the member's payments, totals, reconciliation."""
    with _open(database_url, payments_dir, recover=False) as payments:
        st = payments.family.statement(payer, grant, month)
    _print_statement(st)
    if not st.reconciled:
        raise typer.Exit(1)


@app.command("family-revoke")
def family_revoke(
    payer: PayerId,
    grant: GrantId,
    database_url: DatabaseUrl = None,
    payments_dir: PaymentsDir = DEFAULT_PAYMENTS_DIR,
) -> None:
    """Revoke a family grant (its payer's act; idempotent): the unused limit goes back."""
    with _open(database_url, payments_dir, recover=False) as payments:
        before = sum(m.swept_fen for m in payments.family.months(grant))
        revoked = payments.family.revoke(payer, grant)
        after = sum(m.swept_fen for m in payments.family.months(grant))
    console.print(
        f"family grant {revoked.id} of user {revoked.payer_id} for user {revoked.member_id}:"
        f" {revoked.state}; {_yuan(after - before)} yuan of unused limit returned to the"
        " payer's wallet now"
    )
