"""Paying at checkout with the money-market fund balance (a one-phase funding source).

The payment's chain becomes: holder shares -> fund ISSUANCE (share ledger), then fund CUSTODY ->
merchant (money), then the coupon and fee legs — one linked chain, so the redemption and the
payment land together or not at all, and the fund's cash still equals its shares outstanding.
`ref` names the holder in the fund (its user id there). A refund returns the payer's part to
CUSTODY in the refund chain and then gives the shares back (idempotent by the refund's id).
"""

from __future__ import annotations

import hashlib

from formicary.funds import FundError, LedgerUnavailable, MoneyMarketFund, UnknownHolder
from formicary.ledger import Transfer
from formicary.payments.bank import OK, Outcome, Reply
from formicary.payments.errors import UnknownParty
from formicary.payments.funding import FundingRequest

__all__ = ["FundFunding"]


class FundFunding:
    """The fund as a `FundingSource` of kind `mmf` (register it with `Payments(sources=...)`)."""

    kind = "mmf"
    two_phase = False

    def __init__(self, fund: MoneyMarketFund) -> None:
        self.fund = fund

    def check(self, user_id: int, ref: str) -> None:
        try:
            self.fund.holder_account(ref)
        except (UnknownHolder, ValueError) as error:
            raise UnknownParty(f"{ref!r} holds nothing in the fund") from error

    def payer_account_id(self, user_id: int, ref: str) -> int:
        return self.fund.custody

    def extra_legs(self, request: FundingRequest, transfer_id: int) -> list[Transfer]:
        return [self.fund.checkout_leg(request.ref, request.amount_fen, transfer_id)]

    def confirm(self, request: FundingRequest) -> Reply:
        return OK  # the shares leave in the payment's own chain

    def cancel(self, request: FundingRequest) -> Reply:
        return OK

    def refund(self, request: FundingRequest) -> Reply:
        transfer_id = _refund_id(request.request_id)
        try:
            self.fund.refund_checkout(request.ref, request.amount_fen, transfer_id)
        except LedgerUnavailable as error:
            return Reply(Outcome.BUSY, str(error))
        except FundError as error:
            # The holder cannot take shares back: the cash goes to the user's wallet instead.
            return Reply(Outcome.DECLINED, str(error))
        return OK


def _refund_id(request_id: str) -> int:
    """A share-ledger transfer id for a refund, in the fund's order-id space (0x46 << 120)."""
    digest = hashlib.blake2b(f"checkout-refund\x1f{request_id}".encode(), digest_size=15).digest()
    return 0x46 << 120 | int.from_bytes(digest, "big")
