"""`formicary payments billers|bills|family|family-statement|family-revoke`, run as an operator
would on the files a server left. Server and CLI share a fixed clock on Double 11, 2025 (the CLI
an hour later), so that both see the same month; every figure is checked to the fen against
the payments core opened on the same files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from litestar.testing import TestClient
from typer.testing import CliRunner

import formicary.ledger
from formicary.api import create_app
from formicary.api.payments_routes import PaymentsHost
from formicary.ledger import LedgerService, open_store
from formicary.payments import BillerCategory, GrantState, Payments
from formicary.payments.parties import luhn_ok
from formicary.payments_cli import _yuan, app
from tests.payments.world import NS_PER_S, T0_NS, ManualClock, card_number

runner = CliRunner()
PHONE = "13800138000"
METER = "1234567897"  # a 10-digit electricity account passing the Luhn check
BILL_PART_FEN = 1_000  # Ada pays this much of her latest phone bill
LIMIT_FEN = 10_000  # Ada's grant to Bo
OTHER_LIMIT_FEN = 5_000  # Ada's grant to Cy, never used
LUNCH_FEN = 2_500  # Bo's lunch, paid from the grant
REFUND_FEN = 1_000  # ... partly refunded into the grant
CLI_CLOCK = ManualClock(T0_NS + 3600 * NS_PER_S)  # 11:00 Beijing time, the same month


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def cells(output: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first` (exactly one such row)."""
    rows = [
        [c.strip() for c in line.strip().strip("│┃").split("│")]
        for line in output.splitlines()
        if "│" in line
    ]
    (row,) = [r for r in rows if r[0] == first]
    return row


def one_line(output: str) -> str:
    assert "Traceback" not in output and output.strip().count("\n") == 0, output
    return output.strip()


class Files:
    def __init__(self, url: str, payments_dir: Path) -> None:
        self.url = url
        self.payments_dir = payments_dir
        self.common = ("--database-url", url, "--payments-dir", str(payments_dir))

    @contextmanager
    def domain(self) -> Iterator[Payments]:
        """The payments core on the same files, at the CLI's clock (as the CLI opens it)."""
        ledger = LedgerService(open_store(self.url), clock_ns=CLI_CLOCK)
        ledger.start()
        host = PaymentsHost(lambda: ledger, self.payments_dir)
        try:
            yield host.open(recover=False)
        finally:
            host.close()
            ledger.close()


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    """Billers, a partly paid phone bill, and family grants a member used, over HTTP."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    payments_dir = tmp_path / "payments"
    service = LedgerService(open_store(url), clock_ns=ManualClock(T0_NS))
    service.start()
    try:
        with TestClient(create_app(service=service, payments_dir=payments_dir)) as client:

            def call(method: str, path: str, body: object = None) -> dict[str, object]:
                response = client.request(method, f"/v1/payments{path}", json=body)
                assert response.status_code == 200, response.text
                answer: dict[str, object] = response.json()
                return answer

            for name in ("Ada", "Bo", "Cy"):
                call("POST", "/users", {"name": name, "identity_level": "full"})
            call("POST", "/users/1/cards", {"bank_code": "ICBC", "card_number": card_number(1)})
            call(
                "POST", "/users/1/top-ups", {"card_id": 1, "amount_fen": 50_000, "request_id": "t"}
            )
            shop = {
                "name": "Shop",
                "category": "5411",
                "fee_plan": "offline_qr",
                "settlement_bank_code": "CMB",
                "settlement_account_number": "6214830012345678",
            }
            call("POST", "/merchants", shop)
            for name, category in (("State Grid", "electricity"), ("China Mobile", "phone")):
                biller = {
                    "name": name,
                    "category": category,
                    "settlement_bank_code": "CMB",
                    "settlement_account_number": "6214830000000001",
                }
                call("POST", "/billers", biller)
            bills = call("GET", f"/billers/2/bills?account_number={PHONE}")["bills"]
            assert isinstance(bills, list)
            latest = bills[-1]["id"]
            call(
                "POST",
                f"/bills/{latest}/payments",
                {"user_id": 1, "request_id": "b1", "amount_fen": BILL_PART_FEN},
            )
            call(
                "POST",
                "/family/grants",
                {"payer_id": 1, "member_id": 2, "monthly_limit_fen": LIMIT_FEN},
            )
            call(
                "POST",
                "/family/grants",
                {"payer_id": 1, "member_id": 3, "monthly_limit_fen": OTHER_LIMIT_FEN},
            )
            order = {"merchant_id": 1, "amount_fen": LUNCH_FEN, "merchant_order_no": "L"}
            order_id = call("POST", "/orders", order)["id"]
            paid = call("POST", "/family/grants/1/payments", {"member_id": 2, "order_id": order_id})
            call(
                "POST",
                f"/payments/{paid['id']}/refunds",
                {"amount_fen": REFUND_FEN, "request_no": "R"},
            )
    finally:
        service.close()
    real = formicary.ledger.LedgerService
    monkeypatch.setattr(
        formicary.ledger, "LedgerService", lambda store: real(store, clock_ns=CLI_CLOCK)
    )
    return Files(url, payments_dir)


def test_billers_and_bills(files: Files) -> None:
    code, output = invoke("billers", *files.common)
    assert code == 0, output
    assert cells(output, "1") == ["1", "State Grid", "electricity", "2"]
    assert cells(output, "2") == ["2", "China Mobile", "phone", "3"]
    assert "2 billers" in output
    code, output = invoke("billers", "--category", "phone", *files.common)
    assert code == 0 and "1 biller" in output and "State Grid" not in output, output

    code, output = invoke("bills", "--biller", "2", "--account", PHONE, *files.common)
    assert code == 0, output
    with files.domain() as payments:
        expected = payments.bills.lookup(2, PHONE)
        reported = payments.bills.simulator.bills(2, BillerCategory.PHONE, PHONE, 202511)
    assert [b.period for b in expected] == [b.period for b in reported] != []
    for bill, simulated in zip(expected, reported, strict=True):
        assert bill.amount_fen == simulated.amount_fen
        assert cells(output, str(bill.id)) == [
            str(bill.id),
            bill.period,
            bill.due_date,
            _yuan(bill.amount_fen),
            _yuan(bill.paid_fen),
            _yuan(bill.outstanding_fen),
        ]
    latest = expected[-1]
    assert latest.period == "2025-10" and latest.paid_fen == BILL_PART_FEN
    assert latest.outstanding_fen == latest.amount_fen - BILL_PART_FEN
    total = sum(b.outstanding_fen for b in expected)
    assert f"{len(expected)} open bill" in output and f"{_yuan(total)} yuan outstanding" in output

    code, output = invoke("bills", "--biller", "1", "--account", METER, *files.common)
    assert code == 0, output
    with files.domain() as payments:
        meter = payments.bills.lookup(1, METER)
    assert meter and all(b.paid_fen == 0 for b in meter)
    for bill in meter:
        assert cells(output, str(bill.id))[3:] == [
            _yuan(bill.amount_fen),
            "0.00",
            _yuan(bill.amount_fen),
        ]


def test_family_statement_and_revoke(files: Files) -> None:
    remaining_fen = LIMIT_FEN - LUNCH_FEN + REFUND_FEN  # the refund went back into the grant
    code, output = invoke("family", "--payer", "1", *files.common)
    assert code == 0, output
    with files.domain() as payments:
        assert payments.family.remaining_fen(1) == remaining_fen
        assert payments.family.remaining_fen(2) == OTHER_LIMIT_FEN
        wallet_before = payments.parties.wallet_balance(1)
    assert cells(output, "1") == ["1", "1", "2", _yuan(LIMIT_FEN), _yuan(remaining_fen), "active"]
    assert cells(output, "2") == ["2", "1", "3", "50.00", "50.00", "active"]
    assert "2 grants" in output
    code, output = invoke("family", "--member", "2", *files.common)
    assert code == 0 and "1 grant " in output and cells(output, "1")[4] == "85.00", output

    code, output = invoke("family-statement", "--payer", "1", "--grant", "1", *files.common)
    assert code == 0, output
    with files.domain() as payments:
        st = payments.family.statement(1, 1, "2025-11")
    assert st.reconciled and st.state == "open"
    assert (st.drawn_fen, st.refunded_fen, st.spent_fen) == (LUNCH_FEN, REFUND_FEN, 1_500)
    (line,) = st.lines
    assert cells(output, str(line.payment_id))[5:] == ["25.00", "0.00", "25.00", "10.00"]
    assert cells(output, str(line.payment_id))[4] == "2025-11-11 10:00:00"
    assert "2025-11 (open)" in output
    assert (
        "limit 100.00, drawn 25.00, refunded 10.00, spent 15.00, remaining 85.00,"
        " returned to the payer 0.00 (yuan); ledger spent 15.00: reconciled"
    ) in output
    code, output = invoke(
        "family-statement", "--payer", "1", "--grant", "2", "--month", "2025-10", *files.common
    )
    assert code == 0 and "(unused)" in output and "spent 0.00, remaining 0.00" in output, output

    code, output = invoke("family-revoke", "--payer", "1", "--grant", "1", *files.common)
    assert code == 0, output
    assert "family grant 1 of user 1 for user 2: revoked; 85.00 yuan" in output
    with files.domain() as payments:
        assert payments.family.get(1).state == GrantState.REVOKED
        assert payments.parties.wallet_balance(1) == wallet_before + remaining_fen
        st = payments.family.statement(1, 1)
    assert (st.state, st.returned_fen, st.remaining_fen, st.reconciled) == (
        "closed",
        remaining_fen,
        0,
        True,
    )
    code, output = invoke("family-statement", "--payer", "1", "--grant", "1", *files.common)
    assert code == 0 and "2025-11 (closed)" in output, output
    assert "returned to the payer 85.00 (yuan); ledger spent 15.00: reconciled" in output
    code, output = invoke("family", "--payer", "1", *files.common)
    assert code == 0 and cells(output, "1")[4:] == ["0.00", "revoked"], output
    # Idempotent: nothing more to return.
    code, output = invoke("family-revoke", "--payer", "1", "--grant", "1", *files.common)
    assert code == 0 and "revoked; 0.00 yuan" in output, output


def test_errors_are_one_line_and_exit_1(files: Files) -> None:
    bad_meter = next(f"123456789{d}" for d in range(10) if not luhn_ok(f"123456789{d}"))
    common = files.common
    cases = [
        (("billers", "--category", "cable"), "a biller category is one of electricity, water"),
        (("bills", "--biller", "99", "--account", PHONE), "unknown_bill: no biller 99"),
        (("bills", "--biller", "2", "--account", "12345"), "invalid_request: a phone account"),
        (("bills", "--biller", "1", "--account", "12a4567897"), "invalid_request: a electricity"),
        (
            ("bills", "--biller", "1", "--account", bad_meter),
            f"unknown_bill: the electricity utility has no customer {bad_meter}",
        ),
        # Input that looks like rich markup is printed as it is, never parsed.
        (("billers", "--category", "[/red]"), "a biller category is one of"),
        (
            ("bills", "--biller", "2", "--account", "[/x]"),
            "account number matches 1[3-9][0-9]{9}: '[/x]'",
        ),
        (("family",), "give exactly one of --payer and --member"),
        (("family", "--payer", "1", "--member", "2"), "give exactly one of --payer and --member"),
        (("family", "--payer", "99"), "unknown_party: no user 99"),
        (("family", "--member", "99"), "unknown_party: no user 99"),
        (
            ("family-statement", "--payer", "1", "--grant", "99"),
            "unknown_party: no family grant 99",
        ),
        (
            ("family-statement", "--payer", "2", "--grant", "1"),
            "unknown_party: family grant 1 is not user 2's",
        ),
        (
            ("family-statement", "--payer", "1", "--grant", "1", "--month", "2025-13"),
            "invalid_request: a month is YYYY-MM, got '2025-13'",
        ),
        (
            ("family-statement", "--payer", "1", "--grant", "1", "--month", "Nov"),
            "invalid_request: a month is YYYY-MM, got 'Nov'",
        ),
        (("family-revoke", "--payer", "1", "--grant", "99"), "unknown_party: no family grant 99"),
        (
            ("family-revoke", "--payer", "3", "--grant", "1"),
            "unknown_party: family grant 1 is not user 3's",
        ),
    ]
    for args, message in cases:
        code, output = invoke(*args, *common)
        assert code == 1 and message in one_line(output), (args, output)
    # A refused revocation changed nothing.
    with files.domain() as payments:
        assert payments.family.get(1).state == GrantState.ACTIVE
        assert payments.family.remaining_fen(1) == LIMIT_FEN - LUNCH_FEN + REFUND_FEN
