"""Pins the wealth package's public surface: changing it must be a deliberate edit here."""

from __future__ import annotations

import formicary.wealth

EXPECTED = {
    "BANK_TOTAL_ASSETS_MIN_FEN",
    "DAYS_PER_YEAR",
    "INSURER_SOLVENCY_MIN_PCT",
    "MIN_PURCHASE_FEN_MIN",
    "SALE_WINDOW_DAYS_MAX",
    "SIZE_FEN_MAX",
    "TERM_DAYS_MAX",
    "YIELD_BP_MAX",
    "BooksMismatch",
    "CloseReport",
    "FundLimitExceeded",
    "FundSource",
    "FundingSource",
    "InsufficientFunds",
    "InvalidRequest",
    "Issuer",
    "IssuerKind",
    "IssuerRefused",
    "IssuerShortfall",
    "LedgerUnavailable",
    "MarketConfig",
    "Marketplace",
    "MatchReport",
    "MaturityReport",
    "NotDue",
    "NotFound",
    "NotOnSale",
    "Notification",
    "Payout",
    "Product",
    "ProductStatus",
    "ProductTerms",
    "Progress",
    "Purchase",
    "PurchaseStatus",
    "Reservation",
    "ReservationStatus",
    "SoldOut",
    "StandardRedemptionTooLate",
    "TickReport",
    "Vetting",
    "VettingPolicy",
    "VettingRule",
    "WalletSource",
    "WealthError",
    "WealthStore",
    "WealthStoreError",
    "interest_fen",
    "vet",
    "yield_bp_from_percent",
    "yield_percent",
}


def test_public_names_are_pinned() -> None:
    assert set(formicary.wealth.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(formicary.wealth, name), name


def test_one_exception_tree() -> None:
    w = formicary.wealth
    errors = [
        w.BooksMismatch,
        w.InsufficientFunds,
        w.InvalidRequest,
        w.IssuerRefused,
        w.IssuerShortfall,
        w.LedgerUnavailable,
        w.NotDue,
        w.NotFound,
        w.NotOnSale,
        w.SoldOut,
        w.StandardRedemptionTooLate,
    ]
    for error in errors:
        assert issubclass(error, w.WealthError) and error.__doc__
    # Callers (a future API) map bad input to 4xx with one except clause.
    assert issubclass(w.InvalidRequest, ValueError)
    assert issubclass(w.NotFound, LookupError)


def test_the_docs_name_every_code_and_rule() -> None:
    from pathlib import Path

    from formicary.wealth.ledger_ids import Code

    docs = (Path(__file__).parents[2] / "docs" / "wealth.md").read_text(encoding="utf-8")
    for code in Code:
        if code >= 4100:  # transfer codes appear in the chart of accounts
            assert f"{int(code)}" in docs, code
    for rule in formicary.wealth.VettingRule:
        assert f"`{rule.value}`" in docs, rule
