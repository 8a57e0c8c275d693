"""The marketplace's exceptions: one tree, one line each. A refusal applies nothing."""

from __future__ import annotations

__all__ = [
    "BooksMismatch",
    "FundLimitExceeded",
    "InsufficientFunds",
    "InvalidRequest",
    "IssuerRefused",
    "IssuerShortfall",
    "LedgerUnavailable",
    "NotDue",
    "NotFound",
    "NotOnSale",
    "SoldOut",
    "StandardRedemptionTooLate",
    "WealthError",
]


class WealthError(Exception):
    """Base of the marketplace's errors: the request was refused and nothing was applied."""


class InvalidRequest(WealthError, ValueError):
    """The request itself is malformed (amounts, ids, terms, a request id reused)."""


class NotFound(WealthError, LookupError):
    """No such issuer, product or reservation."""


class IssuerRefused(WealthError):
    """The issuer fails a vetting rule; `rule` names it (a `VettingRule` value)."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"issuer refused by rule {rule}: {reason}")
        self.rule = rule
        self.reason = reason


class NotOnSale(WealthError):
    """The product is not on sale: its window has not opened, or its sale has closed."""


class SoldOut(WealthError):
    """Less of the product's size remains than the purchase asks for."""


class InsufficientFunds(WealthError):
    """The funding source cannot pay (wallet balance, fund shares, or no fund holding)."""


class FundLimitExceeded(InsufficientFunds):
    """A purchase paid from the money-market fund is over one of the fund's instant (T+0)
    redemption limits: per order, per user and day, or the fund's daily capacity."""


class StandardRedemptionTooLate(WealthError):
    """A purchase paid by a standard (T+1) fund redemption whose cash would arrive after the
    product's sale closes; the message names the arrival day and the close."""


class NotDue(WealthError):
    """Too early: a close before the sale window ends, a maturity before the maturity date."""


class IssuerShortfall(WealthError):
    """The issuer's account cannot repay principal plus interest; nothing was paid."""


class LedgerUnavailable(WealthError):
    """The ledger did not apply the request (busy or down): retry with the same request id."""


class BooksMismatch(WealthError):
    """The marketplace's state file and the ledger disagree: stop and investigate."""
