"""`formicary payments ...` (the typer sub-app), run as an operator would on the files a server
left: the server's clock is fixed on Double 11, 2025; the CLI runs later, on the real clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from litestar.testing import TestClient
from typer.testing import CliRunner

from formicary.api import create_app
from formicary.ledger import LedgerService, open_store
from formicary.payments_cli import app
from tests.payments.world import DAY_T, T0_NS, ManualClock, card_number

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, ...]:
    """A day of business done over HTTP: a shop paid twice (once by card), one refund."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    payments_dir = tmp_path / "payments"
    service = LedgerService(open_store(url), clock_ns=ManualClock(T0_NS))
    service.start()
    try:
        with TestClient(create_app(service=service, payments_dir=payments_dir)) as client:

            def post(path: str, body: object) -> dict[str, object]:
                response = client.post(f"/v1/payments{path}", json=body)
                assert response.status_code == 200, response.text
                answer: dict[str, object] = response.json()
                return answer

            post("/users", {"name": "Ada", "identity_level": "full"})
            post("/users/1/cards", {"bank_code": "ICBC", "card_number": card_number(1)})
            post("/users/1/top-ups", {"card_id": 1, "amount_fen": 50_000, "request_id": "t"})
            merchant = {
                "name": "Shop",
                "category": "5411",
                "fee_plan": "offline_qr",
                "settlement_bank_code": "CMB",
                "settlement_account_number": "6214830012345678",
            }
            post("/merchants", merchant)
            post("/orders", {"merchant_id": 1, "amount_fen": 10_000, "merchant_order_no": "A"})
            post("/orders/1/pay", {"user_id": 1})
            post("/orders", {"merchant_id": 1, "amount_fen": 2_000, "merchant_order_no": "B"})
            post("/orders/2/pay", {"user_id": 1, "funding": "card", "card_id": 1})
            post("/payments/1/refunds", {"amount_fen": 4_000, "request_no": "R"})
            qr = client.get("/v1/payments/merchants/1/qr").json()["qr"]
    finally:
        service.close()
    return qr, "--database-url", url, "--payments-dir", str(payments_dir)


def test_settle_report_and_balances_on_the_servers_files(files: tuple[str, ...]) -> None:
    qr, *common = files
    # 10,000 - 60 + 2,000 - 12 - 4,000 + 24 (fees at 0.6%, the refund's share returned)
    net = 7_952
    code, output = invoke("merchant-balance", "--merchant", "1", *common)
    assert code == 0, output
    assert f"wallet {net:,} fen available; {net:,} fen not yet settled" in output
    code, output = invoke("report", "--date", DAY_T.isoformat(), *common)
    assert code == 0 and "0 merchants" in output, output

    code, output = invoke("settle", "--date", DAY_T.isoformat(), *common)
    assert code == 0, output
    assert f"1 merchant, {net:,} fen settled" in output and "reconciled" in output
    assert "NOT" not in output
    code, output = invoke("report", "--date", DAY_T.isoformat(), "--json", *common)
    assert code == 0, output
    report = json.loads(output)
    assert report["reconciled"] and report["settled_fen"] == net
    (line,) = report["lines"]
    assert (line["merchant_id"], line["payments"], line["refunds"], line["state"]) == (
        1,
        2,
        1,
        "succeeded",
    )
    # Settling again pays nothing twice.
    code, output = invoke("settle", "--date", DAY_T.isoformat(), "--json", *common)
    assert code == 0 and json.loads(output) == report
    code, output = invoke("merchant-balance", "--merchant", "1", *common)
    assert code == 0 and "wallet 0 fen available; 0 fen not yet settled" in output, output

    # The same secret as the server's: the same QR text.
    code, output = invoke("merchant-qr", "--merchant", "1", *common)
    assert (code, output.strip()) == (0, qr)
    code, output = invoke("recover", *common)
    assert code == 0 and "0 records finished, 0 still waiting" in output, output


def test_errors_are_one_line_and_exit_1(files: tuple[str, ...], tmp_path: Path) -> None:
    _, *common = files
    code, output = invoke("settle", "--date", "2199-01-01", *common)
    assert code == 1 and "settlement_too_early" in output, output
    code, output = invoke("settle", "--date", "2262-04-12", *common)
    assert code == 1 and "from 1970-01-01 to 2262-04-11" in output, output
    code, output = invoke("settle", "--date", "2025-13-01", *common)
    assert code == 1 and "not a date" in output, output
    code, output = invoke("merchant-balance", "--merchant", "99", *common)
    assert code == 1 and "unknown_party: no merchant 99" in output, output
    code, output = invoke("report", "--date", "2025-11-11", "--payments-dir", str(tmp_path / "x"))
    assert code == 1 and "no payments store" in output, output
    assert not (tmp_path / "x").exists()
