"""Pins the payments package's public surface and the shape of its exception tree."""

from __future__ import annotations

import inspect

import formicary.payments
from formicary.payments import PaymentError
from formicary.payments.errors import error_for

EXPECTED = {
    "Bills",
    "Family",
    "Campaigns",
    "Cashier",
    "Offline",
    "Parties",
    "Refunds",
    "Settlements",
    "CNY",
    "FEE_INCOME_ID",
    "FEE_PLANS",
    "MARKETING_ID",
    "AccountCode",
    "BankAccountRef",
    "BankBusy",
    "BankDeclined",
    "BankGateway",
    "Bill",
    "BillOverpayment",
    "BillPayment",
    "BillPaymentState",
    "BillSimulator",
    "Biller",
    "BillerCategory",
    "Campaign",
    "CampaignKind",
    "CampaignState",
    "Card",
    "CardFunding",
    "CardTransfer",
    "CardTransferKind",
    "CardTransferState",
    "CodeClaims",
    "CodeExpired",
    "CodeForged",
    "CodeReplayed",
    "CouponExhausted",
    "CouponNotApplicable",
    "FakeBank",
    "FamilyFunding",
    "FamilyGrant",
    "FamilyLimitExceeded",
    "FamilyMonth",
    "FamilyStatement",
    "FamilyStatementLine",
    "FeePlan",
    "Funding",
    "FundingRequest",
    "FundingSource",
    "GrantRevoked",
    "GrantState",
    "IdempotencyConflict",
    "IdentityLevel",
    "IdentityLevelTooLow",
    "InsufficientFunds",
    "InvalidCard",
    "InvalidRequest",
    "InvalidState",
    "LedgerBusy",
    "LedgerRejected",
    "Merchant",
    "MonthState",
    "MerchantBalanceInsufficient",
    "Order",
    "OrderAlreadyPaid",
    "Outcome",
    "Payment",
    "PaymentCodeError",
    "PaymentCodes",
    "PaymentError",
    "PaymentState",
    "PaymentTimedOut",
    "Payments",
    "PaymentsConfig",
    "PaymentsStore",
    "Quote",
    "RecoveryReport",
    "Refund",
    "RefundExceedsPayment",
    "RefundInProgress",
    "RefundState",
    "Reply",
    "Settlement",
    "SettlementLine",
    "SettlementReport",
    "SettlementState",
    "SettlementTooEarly",
    "TransferCode",
    "UnknownBill",
    "UnknownParty",
    "User",
    "WalletFunding",
    "bank_clearing_id",
    "bp_of",
    "campaign_budget_id",
    "cutoff_ns",
    "family_grant_account_id",
    "merchant_wallet_id",
    "pro_rata",
    "user_wallet_id",
}


def test_public_names_are_pinned() -> None:
    assert set(formicary.payments.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(formicary.payments, name), name


def _errors() -> list[type[PaymentError]]:
    return [
        obj
        for name in formicary.payments.__all__
        if inspect.isclass(obj := getattr(formicary.payments, name)) and issubclass(obj, Exception)
    ]


def test_every_error_is_a_payment_error_with_a_one_line_docstring_and_a_unique_code() -> None:
    errors = _errors()
    assert len(errors) >= 20
    codes = set()
    for error in errors:
        assert issubclass(error, PaymentError), error
        doc = error.__doc__ or ""
        assert doc and "\n" not in doc.strip(), error
        codes.add(error.code)
    assert len(codes) == len(errors)


def test_a_stored_error_code_rebuilds_the_same_error() -> None:
    for error in _errors():
        rebuilt = error_for(error.code, "detail")
        assert type(rebuilt) is error
        assert str(rebuilt) == "detail"
