"""The SDK's public surface and its pure helpers (no I/O)."""

from __future__ import annotations

import inspect

import msgspec
import pytest

import formicary.client as sdk
from formicary.client import _common as c

PUBLIC_API = [
    "AccountIn",
    "AccountOut",
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "BalanceOut",
    "BalancePage",
    "BillOut",
    "BillPaymentOut",
    "BillerOut",
    "BusyError",
    "CampaignClaimOut",
    "CampaignClosedOut",
    "CampaignOut",
    "CardOut",
    "CardTransferOut",
    "Client",
    "ClientClosedError",
    "Conflict",
    "CreateResultOut",
    "FamilyGrantOut",
    "FamilyStatementLineOut",
    "FamilyStatementOut",
    "FieldErrorOut",
    "FormicaryError",
    "FundBooksOut",
    "FundDayOut",
    "FundHoldingOut",
    "FundIncomeOut",
    "FundOrderOut",
    "InvalidEventError",
    "IssuerOut",
    "MatchOut",
    "MaturityOut",
    "MerchantOut",
    "NetworkError",
    "NotFound",
    "NotificationOut",
    "OrderOut",
    "PayloadTooLarge",
    "PaymentCodeOut",
    "PaymentOut",
    "ProductOut",
    "ProtocolError",
    "QuoteOut",
    "RefundOut",
    "RefundsOut",
    "SaleCloseOut",
    "ServerError",
    "SettlementLineOut",
    "SettlementReportOut",
    "TickOut",
    "TransferIn",
    "TransferOut",
    "TransferPage",
    "TrialBalanceOut",
    "UserOut",
    "VettingOut",
    "WalletOut",
    "WealthPurchaseOut",
    "WealthReservationOut",
]

CLIENT_METHODS = [
    "account_balances",
    "account_transfers",
    "balance",
    "create_account",
    "create_accounts",
    "create_transfer",
    "create_transfers",
    "fund_books",
    "fund_days",
    "fund_holding",
    "fund_pay_redemptions",
    "fund_post_income",
    "fund_redeem",
    "fund_subscribe",
    "get_account",
    "get_transfer",
    "healthz",
    "iter_account_balances",
    "iter_account_transfers",
    "payments_bill",
    "payments_bill_payment",
    "payments_biller",
    "payments_billers",
    "payments_bind_card",
    "payments_campaign",
    "payments_campaign_claims",
    "payments_cards",
    "payments_claim",
    "payments_claim_red_packet",
    "payments_close_campaign",
    "payments_create_campaign",
    "payments_create_order",
    "payments_family_grant",
    "payments_family_grants",
    "payments_family_statement",
    "payments_grant_family",
    "payments_issue_code",
    "payments_lookup_bills",
    "payments_merchant",
    "payments_merchant_qr",
    "payments_merchant_wallet",
    "payments_order",
    "payments_pay",
    "payments_pay_bill",
    "payments_pay_family",
    "payments_pay_qr",
    "payments_pay_with_code",
    "payments_payment",
    "payments_quote",
    "payments_refund",
    "payments_refunds",
    "payments_register_biller",
    "payments_register_merchant",
    "payments_register_user",
    "payments_revoke_family",
    "payments_settle",
    "payments_settlement",
    "payments_top_up",
    "payments_user",
    "payments_user_wallet",
    "payments_withdraw",
    "readyz",
    "trial_balance",
    "wealth_cancel_reservation",
    "wealth_issuer",
    "wealth_list_product",
    "wealth_notifications",
    "wealth_product",
    "wealth_product_books",
    "wealth_products",
    "wealth_purchase",
    "wealth_purchases",
    "wealth_register_issuer",
    "wealth_reservation",
    "wealth_reservations",
    "wealth_reserve",
    "wealth_tick",
    "wealth_unwhitelist",
    "wealth_whitelist",
]


def test_public_api_is_pinned() -> None:
    # Changing the public surface must be a deliberate act: update this list with it.
    assert sorted(sdk.__all__) == PUBLIC_API
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None


@pytest.mark.parametrize("cls", [sdk.Client, sdk.AsyncClient])
def test_both_clients_offer_the_same_methods(cls: type) -> None:
    public = sorted(
        name for name, _ in inspect.getmembers(cls, inspect.isroutine) if not name.startswith("_")
    )
    closer = "close" if cls is sdk.Client else "aclose"
    assert public == sorted([*CLIENT_METHODS, closer])


def test_one_exception_tree_with_one_line_docstrings() -> None:
    errors = [
        getattr(sdk, n)
        for n in sdk.__all__
        if n.endswith("Error") or n in ("BadRequest", "NotFound", "Conflict", "PayloadTooLarge")
    ]
    assert len(errors) == 12
    for error in errors:
        assert issubclass(error, sdk.FormicaryError), error
        doc = error.__doc__ or ""
        assert doc and "\n" not in doc.strip(), error
    for error in (sdk.BadRequest, sdk.NotFound, sdk.Conflict, sdk.PayloadTooLarge, sdk.BusyError):
        assert issubclass(error, sdk.ApiError)
    # The linked-flag refusal is a ValueError, as a Python caller would expect.
    assert issubclass(sdk.InvalidEventError, ValueError)


def test_api_error_carries_the_problem_fields() -> None:
    error = sdk.BusyError(
        503, code="service_busy", title="busy", detail="queue full", retry_after_s=1.0
    )
    assert (error.status, error.code, error.title, error.detail) == (
        503,
        "service_busy",
        "busy",
        "queue full",
    )
    assert error.retry_after_s == 1.0
    assert "503" in str(error) and "service_busy" in str(error)


def test_ids_are_encoded_as_strings_and_defaults_omitted() -> None:
    transfer = sdk.TransferIn(
        id=2**100, debit_account_id=1, credit_account_id="7", amount=5, ledger=156, code=1
    )
    body = msgspec.json.decode(c.encode_batch([transfer], c.TRANSFER_CODEC))
    assert body == [
        {
            "id": str(2**100),
            "amount": 5,
            "debit_account_id": "1",
            "credit_account_id": "7",
            "ledger": 156,
            "code": 1,
        }
    ]
    # What we send decodes as the server decodes it, to the same values.
    back = msgspec.json.decode(
        c.encode_batch([transfer], c.TRANSFER_CODEC), type=list[sdk.TransferIn]
    )[0]
    assert int(back.id) == 2**100 and back.flags == [] and back.pending_id is None
    account = sdk.AccountIn(id=7, ledger=156, code=1, flags=["history"], user_data_64=2**64 - 1)
    assert msgspec.json.decode(c.encode_batch([account], c.ACCOUNT_CODEC)) == [
        {"id": "7", "ledger": 156, "code": 1, "flags": ["history"], "user_data_64": str(2**64 - 1)}
    ]


def _t(i: int, *flags: str) -> sdk.TransferIn:
    return sdk.TransferIn(
        id=i, debit_account_id=1, credit_account_id=2, amount=1, ledger=1, code=1, flags=list(flags)
    )  # type: ignore[arg-type]


def test_chunks_never_cut_a_linked_chain() -> None:
    events = (
        [_t(i) for i in range(1, 5)]
        + [_t(5, "linked"), _t(6, "linked"), _t(7)]
        + [_t(i) for i in range(8, 12)]
    )
    plan = list(c.chunks(events, 5))
    assert [(offset, len(chunk)) for offset, chunk in plan] == [(0, 4), (4, 5), (9, 2)]
    assert [e for _, chunk in plan for e in chunk] == events
    with pytest.raises(sdk.InvalidEventError, match="linked chain"):
        list(c.chunks([_t(1, "linked")] * 5 + [_t(2)], 5))
    assert list(c.chunks([], 5)) == []


def test_path_ids_cannot_escape_the_path() -> None:
    assert c.path_id(7) == "7" and c.path_id("0042") == "0042"
    for bad in ("../x", "7/transfers", "-1", "", "١٢", -1, True):
        with pytest.raises(ValueError):
            c.path_id(bad)  # type: ignore[arg-type]


def test_backoff_is_bounded_and_honours_retry_after() -> None:
    for attempt in range(30):
        assert 0 <= c.backoff_s(attempt, 0.01, 0.5, None) <= 0.5
    assert c.backoff_s(0, 0.01, 5.0, 2.0) == 2.0
    assert c.backoff_s(0, 0.01, 0.5, 60.0) == 0.5  # a huge Retry-After is capped


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_max": 0}, {"batch_max": 8191}, {"linger_s": -1.0}, {"retries": -1}],
)
def test_options_are_range_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        sdk.Client("http://x", **kwargs)  # type: ignore[arg-type]
