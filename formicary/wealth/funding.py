"""Funding sources: where a purchase's money comes from, as ledger legs of one linked chain.

A source returns the transfers that move `amount_fen` from it to a destination account on the
money ledger. The marketplace puts them in one `linked` chain after its own quota leg, so the
quota, the source's legs and the money's arrival land together or not at all; it reserves
with `pending` legs and later posts or voids each by its id (the ids are deterministic, so a
retried chain is applied once).

- `WalletSource`: one leg, wallet -> destination (money).
- `FundSource`: the user's money-market fund shares, redeemed into the chain: the fund builds
  the two legs (`MoneyMarketFund.redemption_legs`: holder -> ISSUANCE on the share ledger,
  CUSTODY -> destination on the money ledger), so the fund's cash and its shares outstanding
  move together and its books (`MoneyMarketFund.reconcile`) stay equal.
  - `redemption="instant"` (the default, kind "fund"): the purchase is one of the fund's
    instant (T+0) redemptions: `hold()` books the fund's T+0 limits (per order, per user and
    day, the fund's daily capacity) while the chain is submitted, inside the fund's snapshot
    gate, and gives them back if the chain is refused; a purchase voided at a failed launch
    gives them back too (`MoneyMarketFund.release_voided`, called by the close).
  - `redemption="standard"` (kind "fund_standard"): one of the fund's standard (T+1)
    redemptions: no limit is booked or checked (`MoneyMarketFund.hold_standard`), but the
    cash only arrives on the fund's pay day for the order (`MoneyMarketFund.standard_pay_day`),
    so `check_arrival` refuses a purchase whose sale closes on an earlier day
    (StandardRedemptionTooLate). A voided one is forgotten by the fund the same way.

`funding_source` and `payout_for` build a purchase's or reservation's source and payout from
what a caller names (a kind, an optional fund number, the user, the wallet, the redemption),
as the HTTP routes and the CLI take them, with the marketplace's errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import msgspec

from formicary.ledger import ID_MAX, Transfer, TransferFlags
from formicary.wealth.errors import (
    FundLimitExceeded,
    InsufficientFunds,
    InvalidRequest,
    LedgerUnavailable,
    NotFound,
    StandardRedemptionTooLate,
    WealthError,
)
from formicary.wealth.ledger_ids import source_leg_id
from formicary.wealth.terms import beijing

if TYPE_CHECKING:  # the fund is optional: the marketplace works on wallets alone
    from formicary.funds import MoneyMarketFund
    from formicary.wealth.market import Marketplace

__all__ = [
    "FundSource",
    "FundingSource",
    "Payout",
    "SourceHold",
    "WalletSource",
    "fund_redemption",
    "funding_source",
    "payout_for",
]

_PENDING = int(TransferFlags.PENDING)
# A fund source's kind names its redemption, so that the purchases and reservations that
# store (kind, ref) rebuild the same source: "fund" (instant, the original kind) or
# "fund_standard".
_FUND_KINDS = {"instant": "fund", "standard": "fund_standard"}


def fund_redemption(kind: str) -> str | None:
    """The redemption ("instant" or "standard") a stored source kind pays by, or None for a
    source that is not the fund (a wallet)."""
    for redemption, fund_kind in _FUND_KINDS.items():
        if kind == fund_kind:
            return redemption
    return None


class FundingSource(Protocol):
    """A way to pay for a purchase (see the module docstring)."""

    kind: str  # "wallet", "fund", "fund_standard": with `ref`, names it durably
    ref: str

    def legs(
        self,
        amount_fen: int,
        destination_account_id: int,
        request_key: str,
        *,
        pending: bool,
        code: int,
    ) -> list[Transfer]:
        """The transfers (without `linked` flags; the caller chains them) that move
        `amount_fen` from this source to the destination (money ledger). Ids derive from
        `request_key`, unique per purchase; raise InsufficientFunds if the source cannot
        take part at all (e.g. the user holds nothing in the fund)."""
        ...

    def hold(self, legs: Sequence[Transfer]) -> AbstractContextManager[SourceHold]:
        """Held while the chain with `legs` is submitted: books what the source must count
        (the fund's instant-redemption limits) or raises a WealthError (e.g.
        FundLimitExceeded). The caller calls `applied()` on what it yields when the ledger
        applied the chain now; otherwise the booking is given back as the hold ends."""
        ...

    def capacity_fen(self) -> int | None:
        """The most one purchase from this source may take now (None: no limit but the
        balance, which the ledger checks). Auto-reservations fill up to it."""
        ...


class SourceHold(Protocol):
    def applied(self) -> None:
        """The chain was applied now: keep what the hold booked."""
        ...


class _NoHold:
    def applied(self) -> None:
        """Nothing was booked."""


class Payout(msgspec.Struct, frozen=True):
    """Where principal and interest go at maturity: the wallet, then (if `into_fund`) a fund
    subscription from that wallet."""

    wallet_account_id: int
    into_fund: bool = False

    def __post_init__(self) -> None:
        _check_account(self.wallet_account_id, "payout wallet")


class WalletSource:
    """A ledger account on the money ledger, given by the caller (a user's wallet)."""

    def __init__(self, account_id: int, *, ledger: int = 156) -> None:
        _check_account(account_id, "wallet")
        self.account_id = account_id
        self.ledger = ledger
        self.kind = "wallet"
        self.ref = str(account_id)

    def legs(
        self,
        amount_fen: int,
        destination_account_id: int,
        request_key: str,
        *,
        pending: bool,
        code: int,
    ) -> list[Transfer]:
        return [
            Transfer(
                id=source_leg_id(self.kind, self.ref, request_key, 0),
                debit_account_id=self.account_id,
                credit_account_id=destination_account_id,
                amount=amount_fen,
                ledger=self.ledger,
                code=code,
                flags=_PENDING if pending else 0,
            )
        ]

    def hold(self, legs: Sequence[Transfer]) -> AbstractContextManager[SourceHold]:
        return nullcontext(_NoHold())

    def capacity_fen(self) -> int | None:
        return None


class FundSource:
    """A user's shares in a `MoneyMarketFund` (NAV 1.00: one fen-share pays one fen), spent
    as an instant (T+0) redemption within the fund's limits, or with `redemption="standard"`
    as a standard (T+1) redemption without them (see the module docstring)."""

    def __init__(self, fund: MoneyMarketFund, user_id: str, *, redemption: str = "instant") -> None:
        if not isinstance(user_id, str) or not 0 < len(user_id) <= 128:
            raise InvalidRequest("user id must be a string of 1 to 128 characters")
        if redemption not in _FUND_KINDS:
            raise InvalidRequest(f"redemption must be 'instant' or 'standard', got {redemption!r}")
        self.fund = fund
        self.user_id = user_id
        self.redemption = redemption
        self.kind = _FUND_KINDS[redemption]
        self.ref = user_id

    @property
    def instant(self) -> bool:
        return self.redemption == "instant"

    def legs(
        self,
        amount_fen: int,
        destination_account_id: int,
        request_key: str,
        *,
        pending: bool,
        code: int,
    ) -> list[Transfer]:
        """The fund's two redemption legs (they carry the fund's instant- or standard-
        redemption code, not `code`, so that the fund counts them as its orders, and an
        instant one against its limits, on start too)."""
        from formicary.funds import FundError, UnknownHolder

        fund = self.fund
        source = f"fund{fund.config.fund_no}"
        try:
            return fund.redemption_legs(
                self.user_id,
                amount_fen,
                destination_account_id,
                share_leg_id=source_leg_id(source, self.user_id, request_key, 0),
                cash_leg_id=source_leg_id(source, self.user_id, request_key, 1),
                pending=pending,
                instant=self.instant,
            )
        except UnknownHolder as error:
            raise InsufficientFunds(str(error)) from error
        except FundError as error:
            raise InvalidRequest(str(error)) from error

    @contextmanager
    def hold(self, legs: Sequence[Transfer]) -> Iterator[SourceHold]:
        from formicary.funds import FundError, InstantLimitExceeded
        from formicary.funds import LedgerUnavailable as FundLedgerUnavailable

        fund = self.fund
        with ExitStack() as stack:
            try:
                held = fund.hold_instant(legs) if self.instant else fund.hold_standard(legs)
                hold = stack.enter_context(held)
            except InstantLimitExceeded as error:
                raise FundLimitExceeded(
                    f"fund {self.fund.config.fund_no} refuses the instant redemption: {error}"
                ) from error
            except FundLedgerUnavailable as error:
                raise LedgerUnavailable(str(error)) from error
            except FundError as error:
                raise WealthError(str(error)) from error
            yield hold

    def capacity_fen(self) -> int | None:
        if not self.instant:
            return None  # a standard redemption has no limit: only the shares, in the ledger
        return self.fund.instant_usage(self.user_id)["available_fen"]

    def check_arrival(self, legs: Sequence[Transfer], sale_close: datetime) -> None:
        """A standard redemption's cash arrives on the fund's pay day for the order (the next
        trading day after its confirmation day, cut-off 15:00 Beijing time): refuse with
        StandardRedemptionTooLate, before anything is applied, a purchase whose sale closes
        (Beijing date) before that day. An instant redemption's cash is there at once."""
        if self.instant:
            return
        from formicary.funds import FundError

        fund = self.fund
        share_ledger = fund.config.share_ledger
        order_ns = next((t.user_data_64 for t in legs if t.ledger == share_ledger), None)
        if order_ns is None:
            raise InvalidRequest("check_arrival takes the legs this source built")
        try:
            arrives = fund.standard_pay_day(order_ns)
        except FundError as error:
            raise InvalidRequest(str(error)) from error
        closes = beijing(sale_close)
        if closes.date() < arrives:
            raise StandardRedemptionTooLate(
                f"a standard (T+1) redemption from fund {fund.config.fund_no} ordered now"
                f" arrives on {arrives}, but the sale closes at {closes.isoformat()}, before"
                " that day; buy a product whose sale closes later, or pay by instant"
                " redemption or from the wallet"
            )


def funding_source(
    market: Marketplace,
    kind: str,
    fund_no: int | None,
    user_id: str,
    wallet: int,
    redemption: str = "instant",
) -> FundingSource:
    """The funding source a request names: `kind` "wallet" pays from `wallet`; "fund" from
    the user's shares in the marketplace's fund (`fund_no`, when given, must name it),
    redeemed instantly (T+0) or by a standard (T+1) redemption. `fund_no` and a `redemption`
    other than "instant" only go with "fund" (InvalidRequest); an unknown fund is NotFound."""
    if kind == "wallet":
        if fund_no is not None:
            raise InvalidRequest("fund_no names the fund of a purchase with source `fund`")
        if redemption != "instant":
            raise InvalidRequest("redemption names how a purchase with source `fund` redeems")
        return WalletSource(wallet, ledger=market.config.money_ledger)
    if kind != "fund":
        raise InvalidRequest(f"unknown funding source {kind!r}: wallet or fund")
    return FundSource(_market_fund(market, fund_no), user_id, redemption=redemption)


def payout_for(market: Marketplace, kind: str, fund_no: int | None, wallet: int) -> Payout:
    """Where a request's maturity goes: `kind` "wallet" to `wallet`; "fund" to `wallet`, then
    on into the marketplace's fund (which `fund_no`, when given, must name)."""
    if kind not in ("wallet", "fund"):
        raise InvalidRequest(f"unknown payout {kind!r}: wallet or fund")
    if kind == "fund":
        _market_fund(market, fund_no)
    return Payout(wallet, into_fund=kind == "fund")


def _market_fund(market: Marketplace, fund_no: int | None) -> MoneyMarketFund:
    fund = market.fund
    if fund is None:
        raise InvalidRequest("this server's marketplace has no money-market fund")
    if fund_no is not None and fund_no != fund.config.fund_no:
        raise NotFound(
            f"fund {fund_no} does not exist (this marketplace uses fund {fund.config.fund_no})"
        )
    return fund


def _check_account(account_id: object, what: str) -> None:
    if not isinstance(account_id, int) or isinstance(account_id, bool):
        raise InvalidRequest(f"the {what} must be a ledger account id (an integer)")
    if not 0 < account_id < ID_MAX:
        raise InvalidRequest(f"the {what} account id must be in 1..2^128-2")
