"""`Payments`: the payments core as one object, over a ledger service, a store and a bank.

    payments = Payments(ledger, PaymentsStore(path), bank, secret=secret)
    payments.setup()                        # platform accounts (idempotent)
    payments.recover()                      # after a restart: finish what a crash left open
    user = payments.parties.register_user("Ada")
    order = payments.cashier.create_order(merchant.id, 8_800, merchant_order_no="A-1")
    payment = payments.cashier.pay(order.id, user.id)

Components (each a small class over the same `Context`): `parties` (users, merchants, cards,
wallets, top-ups, withdrawals), `campaigns` (coupons, red packets), `cashier` (orders,
payments), `refunds`, `settlements` (T+1 batch and report), `offline` (QR and payment codes),
`bills` (simulated utilities, bill lookup and payment), `family` (family grants with a monthly
limit the ledger enforces).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import msgspec

from formicary.ledger import AccountFlags, LedgerService
from formicary.payments.bank import BankGateway
from formicary.payments.bills import Bills
from formicary.payments.campaigns import Campaigns
from formicary.payments.cashier import Cashier
from formicary.payments.chart import FEE_INCOME_ID, MARKETING_ID, AccountCode
from formicary.payments.context import Context, PaymentsConfig
from formicary.payments.errors import PaymentError
from formicary.payments.family import Family
from formicary.payments.funding import CardFunding, FundingSource, WalletFunding
from formicary.payments.ledger_client import LedgerClient
from formicary.payments.offline import Offline
from formicary.payments.parties import Parties
from formicary.payments.refunds import Refunds
from formicary.payments.settlement import Settlements
from formicary.payments.store import PaymentsStore

__all__ = ["Payments", "RecoveryReport"]

log = logging.getLogger("formicary.payments")

# Records resumed per table per recover() call: a bounded pass; call again while it finds work.
RECOVER_ROWS_MAX = 10_000


class RecoveryReport(msgspec.Struct):
    """What a `recover()` pass did: open records it brought to a final state (succeeded or
    failed, the reason recorded), and those still waiting (e.g. for a busy bank)."""

    finished: int = 0
    waiting: int = 0


class Payments:
    """The payments core. Thread-safe: components may be called from many threads at once."""

    def __init__(
        self,
        ledger: LedgerService,
        store: PaymentsStore,
        bank: BankGateway,
        *,
        secret: bytes,
        clock_ns: Callable[[], int] = time.time_ns,
        config: PaymentsConfig | None = None,
        sources: Sequence[FundingSource] = (),
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the payments secret must be at least 32 bytes")
        self.ctx = Context(
            LedgerClient(ledger), store, bank, clock_ns, config or PaymentsConfig(), secret
        )
        self.parties = Parties(self.ctx)
        self.campaigns = Campaigns(self.ctx, self.parties)
        self.cashier = Cashier(self.ctx, self.parties, self.campaigns)
        self.refunds = Refunds(self.ctx, self.cashier)
        self.settlements = Settlements(self.ctx, self.parties)
        self.offline = Offline(self.ctx, self.parties, self.cashier)
        self.family = Family(self.ctx, self.parties, self.cashier)
        self.bills = Bills(self.ctx, self.parties, self.cashier, self.family)
        for source in (WalletFunding(), CardFunding(store, bank), self.family.source, *sources):
            self.ctx.sources[source.kind] = source

    def setup(self) -> None:
        """Create the platform's accounts (fee income, marketing expense); idempotent."""
        self.ctx.ledger.ensure_accounts(
            [
                (FEE_INCOME_ID, AccountCode.FEE_INCOME, AccountFlags.NONE),
                (MARKETING_ID, AccountCode.MARKETING_EXPENSE, AccountFlags.NONE),
            ]
        )

    def recover(self) -> RecoveryReport:
        """Finish every record a crash (or a busy bank) left open: top-ups, withdrawals,
        campaign fundings, red-packet claims, payments, refunds, settlements and bill payments,
        each resumed from its state; then close the family months that have ended (or whose
        grant was revoked), returning their unused limit to the payers. Every step is
        idempotent, so running this twice, or while traffic flows, is safe."""
        self.setup()
        self.parties.ensure_accounts()
        report = RecoveryReport()
        store = self.ctx.store
        open_work: list[tuple[str, Sequence[str], Callable[[int], object]]] = [
            ("card_transfers", ("succeeded", "failed"), self.parties.resume_card_transfer),
            ("campaigns", ("active", "closed", "failed"), self.campaigns.resume),
            ("campaign_claims", ("succeeded", "failed"), self.campaigns.resume_claim),
            ("payments", ("succeeded", "failed"), self.cashier.resume),
            ("refunds", ("succeeded", "failed"), self.refunds.resume),
            ("settlements", ("succeeded", "failed"), self.settlements.resume),
            ("bill_payments", ("succeeded", "failed"), self.bills.resume),
        ]
        for table, final, resume in open_work:
            for row_id in store.open_ids(table, final, RECOVER_ROWS_MAX):
                try:
                    resume(row_id)
                except PaymentError as error:  # the reason is recorded on the row
                    log.info("recovering %s %d: %s", table, row_id, error)
                state = store.scalar(f"SELECT state FROM {table} WHERE id = ?", (row_id,))
                if state in final:
                    report.finished += 1
                else:
                    report.waiting += 1  # e.g. a refund payout or settlement the bank holds
        # Last: payments of a month that has ended are finished (or failed) by now.
        report.finished += self.family.close_ended_months(RECOVER_ROWS_MAX)
        return report
