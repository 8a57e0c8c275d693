"""Funding sources: where a purchase's money comes from, as ledger legs of one linked chain.

A source returns the transfers that move `amount_fen` from it to a destination account on the
money ledger. The marketplace puts them in one `linked` chain after its own quota leg, so the
quota, the source's legs and the money's arrival land together or not at all; it reserves
with `pending` legs and later posts or voids each by its id (the ids are deterministic, so a
retried chain is applied once).

- `WalletSource`: one leg, wallet -> destination (money).
- `FundSource`: the user's money-market fund shares, two legs: holder -> ISSUANCE (share
  ledger: the shares are redeemed) and CUSTODY -> destination (money: the fund's cash leaves
  custody), so the fund's cash and its shares outstanding move together and the fund's books
  (`MoneyMarketFund.reconcile`) stay equal. The legs pass the fund's snapshot gate, so that
  the fund's daily run sees each purchase wholly before or wholly after its snapshot.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Protocol

import msgspec

from formicary.ledger import ID_MAX, Transfer, TransferFlags
from formicary.wealth.errors import InsufficientFunds, InvalidRequest
from formicary.wealth.ledger_ids import source_leg_id

if TYPE_CHECKING:  # the fund is optional: the marketplace works on wallets alone
    from formicary.funds import MoneyMarketFund

__all__ = ["FundSource", "FundingSource", "Payout", "WalletSource"]

_PENDING = int(TransferFlags.PENDING)


class FundingSource(Protocol):
    """A way to pay for a purchase (see the module docstring)."""

    kind: str  # "wallet", "fund": with `ref`, names the source durably (reservations)
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

    def guard(self) -> AbstractContextManager[None]:
        """Held while the chain (and later its posts or voids) is submitted."""
        ...


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

    def guard(self) -> AbstractContextManager[None]:
        return nullcontext()


class FundSource:
    """A user's shares in a `MoneyMarketFund` (NAV 1.00: one fen-share pays one fen).

    Uses only the fund's public attributes: `custody`, `issuance`, `holder_account(user_id)`,
    `config` (ledgers, fund number) and `gate.order()`.
    """

    def __init__(self, fund: MoneyMarketFund, user_id: str) -> None:
        if not isinstance(user_id, str) or not 0 < len(user_id) <= 128:
            raise InvalidRequest("user id must be a string of 1 to 128 characters")
        self.fund = fund
        self.user_id = user_id
        self.kind = "fund"
        self.ref = user_id

    def legs(
        self,
        amount_fen: int,
        destination_account_id: int,
        request_key: str,
        *,
        pending: bool,
        code: int,
    ) -> list[Transfer]:
        from formicary.funds import UnknownHolder

        fund = self.fund
        config = fund.config
        try:
            holder = fund.holder_account(self.user_id)
        except UnknownHolder as error:
            raise InsufficientFunds(str(error)) from error
        source = f"fund{config.fund_no}"
        flags = _PENDING if pending else 0
        return [
            Transfer(
                id=source_leg_id(source, self.user_id, request_key, 0),
                debit_account_id=holder,
                credit_account_id=fund.issuance,
                amount=amount_fen,
                ledger=config.share_ledger,
                code=code,
                flags=flags,
            ),
            Transfer(
                id=source_leg_id(source, self.user_id, request_key, 1),
                debit_account_id=fund.custody,
                credit_account_id=destination_account_id,
                amount=amount_fen,
                ledger=config.money_ledger,
                code=code,
                flags=flags,
            ),
        ]

    def guard(self) -> AbstractContextManager[None]:
        return self.fund.gate.order()


def _check_account(account_id: object, what: str) -> None:
    if not isinstance(account_id, int) or isinstance(account_id, bool):
        raise InvalidRequest(f"the {what} must be a ledger account id (an integer)")
    if not 0 < account_id < ID_MAX:
        raise InvalidRequest(f"the {what} account id must be in 1..2^128-2")
