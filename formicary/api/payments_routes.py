"""HTTP routes of the payments core, under /v1/payments.

Parties and wallets, coupon campaigns and red-packet claims, the cashier (orders, quotes,
payments), refunds, the T+1 settlement, offline payments (merchant static QR, user payment
codes), bill payments to (simulated) utilities and family accounts, each a thin layer over
`formicary.payments.Payments`. The core is opened on the first request that needs it (its
SQLite file, its secret, its platform accounts in the ledger, and a recovery pass over whatever
a crash left open), so a server used only as a ledger creates no payments files.

The banks are simulated: the server uses the core's in-memory `FakeBank`, which moves no real
money and says yes to every call (tests script it through `PaymentsHost.bank`).

Refusals are problem+json with the payments error's own stable code (see `_CODES`): 404
`unknown_party`, `unknown_bill`; 400 `invalid_request`, `invalid_card` (and `validation_failed`
for input the wire types refuse); 409 `idempotency_conflict`, `order_already_paid`,
`refund_in_progress`, `invalid_state`, `settlement_too_early`, `ledger_rejected`; 422
`insufficient_funds`, `merchant_balance_insufficient`, `identity_level_too_low`,
`coupon_not_applicable`, `coupon_exhausted`, `refund_exceeds_payment`, `bank_declined`,
`payment_timed_out`, `code_expired`, `code_replayed`, `code_forged`, `bill_overpayment`,
`family_limit_exceeded`, `grant_revoked`; 503 `bank_busy` and `service_busy` (with
Retry-After), `service_unavailable`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.openapi.spec import Example
from litestar.params import Body, HeaderParameter, PathParameter, QueryParameter

from formicary.api.idempotency import IdempotencyCache
from formicary.api.payments_wire import (
    ROW_ID_MAX,
    BatchPaymentsIn,
    BatchPaymentsOut,
    BillerCategoryName,
    BillerIn,
    BillerOut,
    BillersOut,
    BillOut,
    BillPayIn,
    BillPaymentOut,
    BillsOut,
    CampaignClaimIn,
    CampaignClaimOut,
    CampaignClaimsOut,
    CampaignClosedOut,
    CampaignIn,
    CampaignOut,
    CardIn,
    CardOut,
    CardsOut,
    CardTransferIn,
    CardTransferOut,
    CodePaymentIn,
    FamilyGrantIn,
    FamilyGrantOut,
    FamilyGrantsOut,
    FamilyPayIn,
    FamilyRevokeIn,
    FamilyStatementLineOut,
    FamilyStatementOut,
    MerchantIn,
    MerchantOut,
    MerchantQrOut,
    OrderIn,
    OrderOut,
    PayIn,
    PaymentCodeOut,
    PaymentOut,
    QrPaymentIn,
    QuoteOut,
    RefundIn,
    RefundOut,
    RefundsOut,
    SettlementIn,
    SettlementLineOut,
    SettlementReportOut,
    UserIn,
    UserOut,
    WalletOut,
)
from formicary.api.problems import CODES, RETRY_AFTER_S, Problem, problem_responses
from formicary.api.routing import LazyHost, caller, with_options
from formicary.api.strict import strict_body
from formicary.ledger import LedgerService, ServiceUnavailable
from formicary.payments import (
    Bill,
    Biller,
    BillerCategory,
    BillPayment,
    Campaign,
    CampaignKind,
    CardTransfer,
    FakeBank,
    FamilyFunding,
    FamilyGrant,
    FamilyStatement,
    Funding,
    IdentityLevel,
    Merchant,
    Order,
    Payment,
    PaymentError,
    Payments,
    PaymentsStore,
    PaymentState,
    Refund,
    SettlementReport,
    User,
    campaign_budget_id,
    cutoff_ns,
    merchant_wallet_id,
    user_wallet_id,
)
from formicary.payments.batch import BatchItem, PaymentBatches
from formicary.payments.campaigns import CampaignClaim
from formicary.payments.context import TEXT_MAX

__all__ = [
    "DEFAULT_PAYMENTS_DIR",
    "LAST_BUSINESS_DATE",
    "PAYMENTS_DIR_ENV",
    "PAYMENTS_SECRET_ENV",
    "PaymentsHost",
    "payment_routes",
    "report_out",
]

log = logging.getLogger("formicary.api")

PAYMENTS_DIR_ENV = "FORMICARY_PAYMENTS_DIR"
PAYMENTS_SECRET_ENV = "FORMICARY_PAYMENTS_SECRET"
DEFAULT_PAYMENTS_DIR = "formicary-payments"
STORE_FILE = "payments.db"
BATCHES_FILE = "batches.db"
SECRET_FILE = "secret"
# The core's minimum: HMAC keys for payment codes, QR codes and card fingerprints derive from it.
SECRET_BYTES_MIN = 32
# A page of a campaign's red-packet claims (a Double-11 packet has millions).
CLAIMS_PAGE_DEFAULT = 1000
CLAIMS_PAGE_MAX = 10_000

# payments error code -> problem code: the same, except where the API already names the case.
_ALIASES = {"ledger_busy": "service_busy"}
# Codes that mean "nothing was done, retry shortly".
_RETRYABLE = frozenset({"bank_busy", "service_busy"})
_LEVELS = {level.name.lower(): level for level in IdentityLevel}
# Business days whose cut-off (the next midnight, China Standard Time) is a ledger timestamp:
# int64 nanoseconds since the epoch, which end on 2262-04-11.
_DAY_MIN = date(1970, 1, 1)
LAST_BUSINESS_DATE = date(2262, 4, 11)
assert cutoff_ns(LAST_BUSINESS_DATE) <= 2**63 - 1 < cutoff_ns(date(2262, 4, 12))

RowIdPath = Annotated[
    int,
    PathParameter(ge=1, le=ROW_ID_MAX, examples=[Example(value=1)]),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=255,
        description="Makes a retried creation answer the same record instead of a second one. "
        "The key is stored with the record (users and merchants: unique per kind; campaigns: per "
        "funder), so it holds across restarts; the same key with other terms is a 409 "
        "`idempotency_conflict`. Within one process the first answer is also replayed exactly "
        "(header `Idempotent-Replayed: true`; in memory, 24 h, the last 100,000 keys), and the "
        "same key with a different body is a 422 `idempotency_key_reused`.",
    ),
]


def _request_id(key: str | None) -> str | None:
    """The durable request id of an Idempotency-Key: the key itself, or, for a key longer than
    the core keeps (header keys may have 255 characters), a digest of it."""
    if key is None or len(key) <= TEXT_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


_REPLAYED_HEADER = ResponseHeader(
    name="Idempotent-Replayed",
    description="`true` when this answer replays an earlier one (Idempotency-Key)",
    documentation_only=True,
    required=False,
)
_encoder = msgspec.json.Encoder()


class PaymentsHost(LazyHost[Payments]):
    """Opens the payments core on first use and closes it with the app.

    The HMAC secret comes from `secret`, else $FORMICARY_PAYMENTS_SECRET, else a file `secret`
    in the state directory, generated once (mode 0600) and read back on every later start: the
    payment codes a phone mints, the merchants' QR codes and the card fingerprints stay valid
    across restarts only under the same secret.
    """

    def __init__(
        self,
        service: Callable[[], LedgerService],
        state_dir: str | Path,
        *,
        secret: str | None = None,
    ) -> None:
        super().__init__(service, state_dir)
        text = os.environ.get(PAYMENTS_SECRET_ENV) if secret is None else secret
        self._secret = text.encode() if text else None
        if self._secret is not None and len(self._secret) < SECRET_BYTES_MIN:
            raise ValueError(f"{PAYMENTS_SECRET_ENV} must be at least {SECRET_BYTES_MIN} bytes")
        # Simulated banks: every call succeeds unless scripted (see FakeBank).
        self.bank = FakeBank()
        self._batches: PaymentBatches | None = None

    def open(self, *, recover: bool = True) -> Payments:
        """The payments core, opened (and, with `recover`, set up and recovered) once."""
        return self._open_with(partial(self._create, recover=recover))

    def _create(self, *, recover: bool = True) -> Payments:
        ledger = self._service()  # first: no files for a server whose ledger is down
        if not ledger.ready:
            raise ServiceUnavailable("the ledger service is not running")
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            secret = self._secret or _stored_secret(self.state_dir / SECRET_FILE)
            store = PaymentsStore(self.state_dir / STORE_FILE)
        except (OSError, ValueError, sqlite3.Error) as error:
            log.error("cannot open the payments files in %s: %s", self.state_dir, error)
            raise ServiceUnavailable(f"the payments store cannot open: {error}") from None
        try:
            payments = Payments(ledger, store, self.bank, secret=secret, clock_ns=ledger.clock_ns)
            if recover:
                report = payments.recover()  # runs setup() first
                if report.finished or report.waiting:
                    log.info(
                        "payments recovered: %d finished, %d waiting",
                        report.finished,
                        report.waiting,
                    )
        except BaseException:
            store.close()
            raise
        return payments

    async def get(self) -> Payments:
        return await _call(self.open)

    def open_batches(self) -> PaymentBatches:
        """The batch interface over the payments core (its own file beside the store)."""
        payments = self.open()
        with self._lock:
            if self._batches is None:
                self._batches = PaymentBatches(payments, self.state_dir / BATCHES_FILE)
            return self._batches

    def _release(self, opened: Payments) -> None:
        # The batches first: they run on the core's store.
        if self._batches is not None:
            self._batches.close()
            self._batches = None
        opened.ctx.store.close()


def _stored_secret(path: Path) -> bytes:
    """The secret in `path`, created first if absent. Created under a temporary name and linked
    into place, so a crash never leaves a half-written secret and two openers agree on one."""
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(secrets.token_hex(SECRET_BYTES_MIN).encode() + b"\n")
                file.flush()
                os.fsync(file.fileno())
            # Another opener may have won the race: then its secret is the one.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    secret = path.read_bytes().strip()
    if len(secret) < SECRET_BYTES_MIN:
        raise ValueError(f"{path} holds fewer than {SECRET_BYTES_MIN} bytes")
    return secret


def _problem(error: PaymentError) -> Problem:
    """The problem+json answer for a refused payments operation: the error's own code, or the
    nearest base class's (a code added to the core later still answers sensibly)."""
    for kind in type(error).__mro__:
        code = getattr(kind, "code", None)
        if isinstance(code, str):
            code = _ALIASES.get(code, code)
            if code in _CODES:
                headers = {"Retry-After": str(RETRY_AFTER_S)} if code in _RETRYABLE else None
                return Problem(code, str(error), headers=headers)
    return Problem("payment_error", str(error))


# Every code a payments refusal may answer with (each is in problems.CODES).
_CODES = frozenset(
    {
        "unknown_party",
        "unknown_bill",
        "invalid_request",
        "invalid_card",
        "invalid_state",
        "identity_level_too_low",
        "insufficient_funds",
        "bill_overpayment",
        "family_limit_exceeded",
        "grant_revoked",
        "merchant_balance_insufficient",
        "coupon_not_applicable",
        "coupon_exhausted",
        "order_already_paid",
        "idempotency_conflict",
        "refund_exceeds_payment",
        "refund_in_progress",
        "bank_declined",
        "bank_busy",
        "payment_timed_out",
        "payment_code_error",
        "code_expired",
        "code_replayed",
        "code_forged",
        "settlement_too_early",
        "service_busy",
        "ledger_rejected",
        "payment_error",
    }
)


assert CODES.keys() >= _CODES, sorted(_CODES - CODES.keys())


def _refused(error: Exception) -> Problem | None:
    """The answer to an error of a payments call: the core's refusals, and a busy store."""
    if isinstance(error, PaymentError):
        return _problem(error)
    if isinstance(error, sqlite3.OperationalError):
        # "database is locked": another process (an operator's CLI) holds the payments file.
        raise ServiceUnavailable(f"the payments store is busy: {error}") from None
    return None


_call = caller(_refused)


# ----------------------------------------------------------------------------- answers


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        name=user.name,
        identity_level=user.identity_level.name.lower(),
        wallet_account_id=str(user_wallet_id(user.id)),
        created_ns=user.created_ns,
    )


def _merchant_out(merchant: Merchant, rate_bp: int) -> MerchantOut:
    return MerchantOut(
        id=merchant.id,
        name=merchant.name,
        category=merchant.category,
        fee_plan=merchant.fee_plan,
        fee_rate_bp=rate_bp,
        settlement_bank_code=merchant.settlement_bank_code,
        settlement_account_masked=merchant.settlement_account_masked,
        wallet_account_id=str(merchant_wallet_id(merchant.id)),
        created_ns=merchant.created_ns,
    )


def _card_transfer_out(t: CardTransfer) -> CardTransferOut:
    return CardTransferOut(
        id=t.id,
        kind=str(t.kind),
        user_id=t.user_id,
        card_id=t.card_id,
        amount_fen=t.amount_fen,
        request_id=t.request_id,
        state=str(t.state),
        created_ns=t.created_ns,
        completed_ns=t.completed_ns,
    )


def _campaign_out(c: Campaign, remaining_fen: int) -> CampaignOut:
    return CampaignOut(
        id=c.id,
        name=c.name,
        kind=str(c.kind),
        funder_merchant_id=c.funder_merchant_id,
        merchant_id=c.merchant_id,
        discount_fen=c.discount_fen,
        min_order_fen=c.min_order_fen,
        budget_fen=c.budget_fen,
        remaining_fen=remaining_fen,
        state=str(c.state),
        sweeps=c.sweeps,
        budget_account_id=str(campaign_budget_id(c.id)),
        created_ns=c.created_ns,
        funded_ns=c.funded_ns,
    )


def _claim_out(cl: CampaignClaim) -> CampaignClaimOut:
    return CampaignClaimOut(
        id=cl.id,
        campaign_id=cl.campaign_id,
        user_id=cl.user_id,
        request_id=cl.request_id,
        amount_fen=cl.amount_fen,
        state=str(cl.state),
        failure_code=cl.failure_code,
        failure_detail=cl.failure_detail,
        wallet_account_id=str(user_wallet_id(cl.user_id)),
        created_ns=cl.created_ns,
        completed_ns=cl.completed_ns,
    )


def _order_out(order: Order, payment_id: int | None) -> OrderOut:
    return OrderOut(
        id=order.id,
        merchant_id=order.merchant_id,
        merchant_order_no=order.merchant_order_no,
        amount_fen=order.amount_fen,
        description=order.description,
        created_ns=order.created_ns,
        payment_id=payment_id,
    )


def _payment_out(p: Payment, refunded_fen: int) -> PaymentOut:
    return PaymentOut(
        id=p.id,
        order_id=p.order_id,
        user_id=p.user_id,
        merchant_id=p.merchant_id,
        funding=p.funding_kind,
        card_id=int(p.funding_ref) if p.funding_kind == "card" else None,
        campaign_id=p.campaign_id,
        amount_fen=p.amount_fen,
        coupon_fen=p.coupon_fen,
        payer_fen=p.payer_fen,
        fee_fen=p.fee_fen,
        fee_rate_bp=p.fee_rate_bp,
        state=str(p.state),
        refunded_fen=refunded_fen,
        created_ns=p.created_ns,
        completed_ns=p.completed_ns,
    )


def _refund_out(r: Refund) -> RefundOut:
    return RefundOut(
        id=r.id,
        payment_id=r.payment_id,
        request_no=r.request_no,
        amount_fen=r.amount_fen,
        payer_fen=r.payer_fen,
        coupon_fen=r.coupon_fen,
        fee_fen=r.fee_fen,
        state=str(r.state),
        to_wallet=r.to_wallet,
        created_ns=r.created_ns,
        reversed_ns=r.reversed_ns,
        completed_ns=r.completed_ns,
    )


def report_out(report: SettlementReport) -> SettlementReportOut:
    """The wire form of a settlement report (the CLI prints it too)."""
    return SettlementReportOut(
        business_date=report.business_date,
        cutoff_ns=report.cutoff_ns,
        settled_fen=report.settled_fen,
        reconciled=report.reconciled,
        lines=[
            SettlementLineOut(
                merchant_id=line.merchant_id,
                settlement_id=line.settlement_id,
                state=line.state,
                payments=line.payments,
                gross_fen=line.gross_fen,
                fee_fen=line.fee_fen,
                refunds=line.refunds,
                refunded_fen=line.refunded_fen,
                fee_returned_fen=line.fee_returned_fen,
                campaign_fen=line.campaign_fen,
                net_fen=line.net_fen,
                ledger_net_fen=line.ledger_net_fen,
                settled_fen=line.settled_fen,
                reconciled=line.reconciled,
            )
            for line in report.lines
        ],
    )


def _biller_out(b: Biller) -> BillerOut:
    return BillerOut(
        id=b.id,
        name=b.name,
        category=str(b.category),
        merchant_id=b.merchant_id,
        wallet_account_id=str(merchant_wallet_id(b.merchant_id)),
        created_ns=b.created_ns,
    )


def _bill_out(b: Bill) -> BillOut:
    return BillOut(
        id=b.id,
        biller_id=b.biller_id,
        account_number=b.account_number,
        period=b.period,
        amount_fen=b.amount_fen,
        due_date=b.due_date,
        paid_fen=b.paid_fen,
        outstanding_fen=b.outstanding_fen,
    )


def _bill_payment_out(bp: BillPayment) -> BillPaymentOut:
    return BillPaymentOut(
        id=bp.id,
        bill_id=bp.bill_id,
        user_id=bp.user_id,
        request_id=bp.request_id,
        amount_fen=bp.amount_fen,
        funding=bp.funding_kind,
        card_id=int(bp.funding_ref) if bp.funding_kind == "card" else None,
        grant_id=(
            int(bp.funding_ref.split(":")[0]) if bp.funding_kind == FamilyFunding.kind else None
        ),
        order_id=bp.order_id,
        payment_id=bp.payment_id,
        state=str(bp.state),
        failure_code=bp.failure_code,
        failure_detail=bp.failure_detail,
        created_ns=bp.created_ns,
        completed_ns=bp.completed_ns,
    )


def _grant_out(g: FamilyGrant, remaining_fen: int) -> FamilyGrantOut:
    return FamilyGrantOut(
        id=g.id,
        payer_id=g.payer_id,
        member_id=g.member_id,
        monthly_limit_fen=g.monthly_limit_fen,
        state=str(g.state),
        remaining_fen=remaining_fen,
        created_ns=g.created_ns,
        revoked_ns=g.revoked_ns,
    )


def _statement_out(st: FamilyStatement, grant: FamilyGrantOut) -> FamilyStatementOut:
    return FamilyStatementOut(
        grant=grant,
        month=st.month,
        state=st.state,
        limit_fen=st.limit_fen,
        lines=[
            FamilyStatementLineOut(
                payment_id=line.payment_id,
                order_id=line.order_id,
                merchant_id=line.merchant_id,
                description=line.description,
                amount_fen=line.amount_fen,
                coupon_fen=line.coupon_fen,
                drawn_fen=line.drawn_fen,
                refunded_fen=line.refunded_fen,
                completed_ns=line.completed_ns,
            )
            for line in st.lines
        ],
        drawn_fen=st.drawn_fen,
        refunded_fen=st.refunded_fen,
        spent_fen=st.spent_fen,
        remaining_fen=st.remaining_fen,
        returned_fen=st.returned_fen,
        ledger_spent_fen=st.ledger_spent_fen,
        reconciled=st.reconciled,
    )


# ----------------------------------------------------------------------------- inputs


def _funding(kind: str, card_id: int | None) -> Funding:
    if kind == "card":
        if card_id is None:
            raise Problem.invalid("card_id", "is required when funding is card")
        return Funding.card(card_id)
    if card_id is not None:
        raise Problem.invalid("card_id", "is only for funding card")
    return Funding.wallet()


def _check_bill_funding(data: BillPayIn) -> None:
    """Each funding kind names its own source: a card its `card_id`, a family grant its
    `grant_id`, the wallet neither."""
    if data.funding != "card" and data.card_id is not None:
        raise Problem.invalid("card_id", "is only for funding card")
    if data.funding != "family" and data.grant_id is not None:
        raise Problem.invalid("grant_id", "is only for funding family")
    if data.funding == "card" and data.card_id is None:
        raise Problem.invalid("card_id", "is required when funding is card")
    if data.funding == "family" and data.grant_id is None:
        raise Problem.invalid("grant_id", "is required when funding is family")


def _bill_funding(payments: Payments, data: BillPayIn) -> Funding:
    """The funding source of a bill payment (blocking: a family grant is read)."""
    if data.funding != "family":
        return _funding(data.funding, data.card_id)
    assert data.grant_id is not None
    try:
        return payments.family.funding(data.grant_id, data.user_id)
    except PaymentError:
        # A retry of a payment that started while the grant was usable (it was revoked since,
        # or this is another member's request id) is answered by `bills.pay` itself: its terms
        # were fixed when it started.
        earlier = payments.bills.payment_by_request(data.user_id, data.request_id)
        if earlier is None or earlier.funding_kind != FamilyFunding.kind:
            raise
        if earlier.funding_ref.split(":")[0] != str(data.grant_id):
            raise
        return Funding(earlier.funding_kind, earlier.funding_ref)


def _day(value: str, name: str = "business_date") -> date:
    """An ISO business day that settlement can work with (its cut-off is the next midnight)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise Problem.invalid(name, "must be a date YYYY-MM-DD") from None
    if not _DAY_MIN <= day <= LAST_BUSINESS_DATE:
        raise Problem.invalid(name, f"must be from {_DAY_MIN} to {LAST_BUSINESS_DATE}")
    return day


# ----------------------------------------------------------------------------- reads


def _payment(payments: Payments, payment_id: int) -> PaymentOut:
    p = payments.cashier.payment(payment_id)
    return _payment_out(p, payments.refunds.refunded_fen(p.id))


def _order(payments: Payments, order_id: int) -> OrderOut:
    order = payments.cashier.order(order_id)
    paid = [
        p.id for p in payments.cashier.payments_of(order_id) if p.state == PaymentState.SUCCEEDED
    ]
    return _order_out(order, paid[0] if paid else None)


def _campaign(payments: Payments, campaign_id: int) -> CampaignOut:
    campaign = payments.campaigns.get(campaign_id)
    return _campaign_out(campaign, payments.campaigns.remaining_fen(campaign_id))


def _claims(payments: Payments, campaign_id: int, after_id: int, limit: int) -> CampaignClaimsOut:
    payments.campaigns.get(campaign_id)  # an unknown campaign is a 404, not an empty list
    found = payments.campaigns.claims(campaign_id, after_id=after_id, limit=limit)
    return CampaignClaimsOut(
        campaign_id,
        [_claim_out(cl) for cl in found],
        next_after_id=found[-1].id if len(found) == limit else None,
    )


def _merchant(payments: Payments, merchant_id: int) -> MerchantOut:
    merchant = payments.parties.merchant(merchant_id)
    plans = payments.ctx.config.fee_plans
    return _merchant_out(merchant, plans[merchant.fee_plan].rate_bp)


def _user_wallet(payments: Payments, user_id: int) -> WalletOut:
    available = payments.parties.wallet_balance(user_id)
    return WalletOut("user", user_id, str(user_wallet_id(user_id)), available)


def _merchant_wallet(payments: Payments, merchant_id: int) -> WalletOut:
    available = payments.parties.merchant_balance(merchant_id)
    return WalletOut("merchant", merchant_id, str(merchant_wallet_id(merchant_id)), available)


def _grant(payments: Payments, grant_id: int) -> FamilyGrantOut:
    g = payments.family.get(grant_id)
    return _grant_out(g, payments.family.remaining_fen(g.id))


def _grants(payments: Payments, payer_id: int | None, member_id: int | None) -> FamilyGrantsOut:
    if payer_id is None and member_id is None:
        raise Problem.invalid("payer_id", "payer_id or member_id is required")
    for user_id in (payer_id, member_id):
        if user_id is not None:
            payments.parties.user(user_id)
    if payer_id is not None:
        found = payments.family.grants_of_payer(payer_id)
        if member_id is not None:
            found = [g for g in found if g.member_id == member_id]
    else:
        assert member_id is not None
        found = payments.family.grants_of_member(member_id)
    return FamilyGrantsOut([_grant_out(g, payments.family.remaining_fen(g.id)) for g in found])


def _statement(
    payments: Payments, grant_id: int, payer_id: int, month: str | None
) -> FamilyStatementOut:
    st = payments.family.statement(payer_id, grant_id, month)
    return _statement_out(st, _grant_out(st.grant, payments.family.remaining_fen(grant_id)))


def _bills(payments: Payments, biller_id: int, account_number: str) -> BillsOut:
    found = payments.bills.lookup(biller_id, account_number)
    return BillsOut(biller_id, account_number, [_bill_out(b) for b in found])


def _pay_bill(payments: Payments, bill_id: int, data: BillPayIn) -> BillPaymentOut:
    funding = _bill_funding(payments, data)
    bp = payments.bills.pay(
        bill_id, data.user_id, data.amount_fen, request_id=data.request_id, funding=funding
    )
    return _bill_payment_out(bp)


# ----------------------------------------------------------------------------- routes


def payment_routes(host: PaymentsHost, idempotency: IdempotencyCache) -> list[Any]:
    """The payments route handlers, bound to `host`; creations share the app's
    Idempotency-Key cache (under their own route names)."""
    # Every write may meet: bad input 400, an unknown party 404, a conflict 409 (including
    # `ledger_rejected`), a refusal 422, a busy bank or ledger 503.
    write: dict[str, Any] = {
        "status_code": 200,
        "tags": ["payments"],
        "responses": problem_responses(400, 404, 409, 422, 503),
    }
    create: dict[str, Any] = {**write, "response_headers": [_REPLAYED_HEADER]}
    read: dict[str, Any] = {"tags": ["payments"], "responses": problem_responses(400, 404, 503)}

    async def once(
        route: str,
        request: Request[Any, Any, Any],
        key: str | None,
        make: Callable[[], Awaitable[msgspec.Struct]],
    ) -> Response[Any]:
        """Answer a creation, replaying the first answer to a retry with the same key."""
        replayed = False
        if key is None:
            content = _encoder.encode(await make())
        else:

            async def compute() -> list[str]:
                return [_encoder.encode(await make()).decode()]

            body = await request.body()
            answers, replayed = await idempotency.run(f"payments/{route}", key, body, compute)
            content = answers[0].encode()
        return Response(
            content=content,
            media_type=MediaType.JSON,
            status_code=200,
            headers={"Idempotent-Replayed": "true"} if replayed else None,
        )

    # -- parties and wallets

    @post(
        "/v1/payments/users",
        summary="Register a user (with an empty wallet)",
        **create,
        **strict_body(UserIn),
    )
    async def register_user(
        request: Request[Any, Any, Any],
        data: Annotated[UserIn, Body()],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[UserOut]:
        async def make() -> UserOut:
            payments = await host.get()
            level = _LEVELS[data.identity_level]
            user = await _call(
                payments.parties.register_user,
                data.name,
                level,
                request_id=_request_id(idempotency_key),
            )
            return _user_out(user)

        return await once("users", request, idempotency_key, make)

    @get("/v1/payments/users/{user_id:int}", summary="A user", **read)
    async def get_user(user_id: RowIdPath) -> UserOut:
        payments = await host.get()
        return _user_out(await _call(payments.parties.user, user_id))

    @get(
        "/v1/payments/users/{user_id:int}/wallet",
        summary="A user's wallet balance (from the ledger)",
        **read,
    )
    async def get_user_wallet(user_id: RowIdPath) -> WalletOut:
        payments = await host.get()
        return await _call(_user_wallet, payments, user_id)

    @post(
        "/v1/payments/users/{user_id:int}/cards",
        summary="Bind a bank card (binding the same card again answers the same card)",
        **write,
        **strict_body(CardIn),
    )
    async def bind_card(user_id: RowIdPath, data: Annotated[CardIn, Body()]) -> CardOut:
        payments = await host.get()
        card = await _call(payments.parties.bind_card, user_id, data.bank_code, data.card_number)
        return CardOut(card.id, card.user_id, card.bank_code, card.masked_number, card.created_ns)

    @get("/v1/payments/users/{user_id:int}/cards", summary="A user's bound cards", **read)
    async def list_cards(user_id: RowIdPath) -> CardsOut:
        payments = await host.get()

        def read_cards() -> CardsOut:
            payments.parties.user(user_id)
            return CardsOut(
                [
                    CardOut(c.id, c.user_id, c.bank_code, c.masked_number, c.created_ns)
                    for c in payments.parties.cards(user_id)
                ]
            )

        return await _call(read_cards)

    @post(
        "/v1/payments/users/{user_id:int}/top-ups",
        summary="Top up the wallet from a bound card (idempotent by request_id)",
        **write,
        **strict_body(CardTransferIn),
    )
    async def top_up(
        user_id: RowIdPath, data: Annotated[CardTransferIn, Body()]
    ) -> CardTransferOut:
        """The bank collects from the card first, then the ledger credits the wallet. Retrying
        with the same `request_id` answers the same top-up. A busy bank (503 `bank_busy`, with
        Retry-After) moved nothing: retry with the same `request_id`. Any other failure fails
        again: use a new `request_id` to try again."""
        payments = await host.get()
        done = await _call(
            payments.parties.top_up,
            user_id,
            data.card_id,
            data.amount_fen,
            request_id=data.request_id,
        )
        return _card_transfer_out(done)

    @post(
        "/v1/payments/users/{user_id:int}/withdrawals",
        summary="Withdraw from the wallet to a bound card (idempotent by request_id)",
        **write,
        **strict_body(CardTransferIn),
    )
    async def withdraw(
        user_id: RowIdPath, data: Annotated[CardTransferIn, Body()]
    ) -> CardTransferOut:
        """The wallet is reserved first, then the bank pays out, then the reservation posts (or
        is voided if the bank refused). Retrying with the same `request_id` answers the same
        withdrawal. A busy bank (503 `bank_busy`, with Retry-After) paid nothing out and the
        reservation was voided: retry with the same `request_id`. Any other failure fails
        again: use a new `request_id` to try again."""
        payments = await host.get()
        done = await _call(
            payments.parties.withdraw,
            user_id,
            data.card_id,
            data.amount_fen,
            request_id=data.request_id,
        )
        return _card_transfer_out(done)

    @post(
        "/v1/payments/merchants",
        summary="Register a merchant (category, fee plan, settlement bank account)",
        **create,
        **strict_body(MerchantIn),
    )
    async def register_merchant(
        request: Request[Any, Any, Any],
        data: Annotated[MerchantIn, Body()],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[MerchantOut]:
        async def make() -> MerchantOut:
            payments = await host.get()
            merchant = await _call(
                payments.parties.register_merchant,
                data.name,
                category=data.category,
                fee_plan=data.fee_plan,
                settlement_bank_code=data.settlement_bank_code,
                settlement_account_number=data.settlement_account_number,
                request_id=_request_id(idempotency_key),
            )
            return await _call(_merchant, payments, merchant.id)

        return await once("merchants", request, idempotency_key, make)

    @get("/v1/payments/merchants/{merchant_id:int}", summary="A merchant", **read)
    async def get_merchant(merchant_id: RowIdPath) -> MerchantOut:
        payments = await host.get()
        return await _call(_merchant, payments, merchant_id)

    @get(
        "/v1/payments/merchants/{merchant_id:int}/wallet",
        summary="A merchant's wallet balance: what is not yet settled to its bank",
        **read,
    )
    async def get_merchant_wallet(merchant_id: RowIdPath) -> WalletOut:
        payments = await host.get()
        return await _call(_merchant_wallet, payments, merchant_id)

    # -- campaigns

    @post(
        "/v1/payments/campaigns",
        summary="Create and fund a coupon or red-packet campaign",
        **create,
        **strict_body(CampaignIn),
    )
    async def create_campaign(
        request: Request[Any, Any, Any],
        data: Annotated[CampaignIn, Body()],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[CampaignOut]:
        """The budget moves up front into the campaign's own ledger account, which can never go
        negative: the ledger refuses the discount that would overspend it (`coupon_exhausted`).
        A merchant that cannot fund its campaign answers `merchant_balance_insufficient`. Send
        an Idempotency-Key to make a retry safe: it is the campaign's durable request id (per
        funder), so a retry answers the same campaign, funded once, even after a restart."""

        async def make() -> CampaignOut:
            payments = await host.get()
            campaign = await _call(
                payments.campaigns.create,
                data.name,
                CampaignKind(data.kind),
                discount_fen=data.discount_fen,
                budget_fen=data.budget_fen,
                funder_merchant_id=data.funder_merchant_id,
                merchant_id=data.merchant_id,
                min_order_fen=data.min_order_fen,
                request_id=_request_id(idempotency_key),
            )
            return await _call(_campaign, payments, campaign.id)

        return await once("campaigns", request, idempotency_key, make)

    @get(
        "/v1/payments/campaigns/{campaign_id:int}",
        summary="A campaign and the budget it has left",
        **read,
    )
    async def get_campaign(campaign_id: RowIdPath) -> CampaignOut:
        payments = await host.get()
        return await _call(_campaign, payments, campaign_id)

    @post(
        "/v1/payments/campaigns/{campaign_id:int}/close",
        summary="Close a campaign and return what is left to its funder (idempotent)",
        **write,
    )
    async def close_campaign(campaign_id: RowIdPath) -> CampaignClosedOut:
        """Stops new discounts; sweeps the budget left back to the funder. Closing a closed
        campaign sweeps again (whatever refunds brought back since)."""
        payments = await host.get()
        swept = await _call(payments.campaigns.close, campaign_id)
        return CampaignClosedOut(await _call(_campaign, payments, campaign_id), swept)

    @post(
        "/v1/payments/campaigns/{campaign_id:int}/claims",
        summary="A user claims one red packet into the wallet (idempotent by user and request_id)",
        **write,
        **strict_body(CampaignClaimIn),
    )
    async def claim_red_packet(
        campaign_id: RowIdPath, data: Annotated[CampaignClaimIn, Body()]
    ) -> CampaignClaimOut:
        """The campaign's `discount_fen` moves from its budget into the user's wallet, `succeeded`.
        Only an active, platform-funded red packet valid at every merchant can be claimed
        (otherwise 422 `coupon_not_applicable`), once per user (a second claim is 409
        `invalid_state`). The budget's ledger account refuses the claim that would overspend it
        (422 `coupon_exhausted`), however many claims race. The same `request_id` of the same
        user answers the same claim (one the budget could not cover: `coupon_exhausted` again) and
        moves nothing again, even after a restart; for another campaign it is a 409
        `idempotency_conflict`."""
        payments = await host.get()
        claim = await _call(
            payments.campaigns.claim, campaign_id, data.user_id, request_id=data.request_id
        )
        return _claim_out(claim)

    @get(
        "/v1/payments/campaigns/{campaign_id:int}/claims",
        summary="A page of a campaign's red-packet claims, oldest first (failed ones too)",
        **read,
    )
    async def list_claims(
        campaign_id: RowIdPath,
        after_id: Annotated[
            int,
            QueryParameter(
                ge=0, le=2**62, required=False, description="the last claim `id` already read"
            ),
        ] = 0,
        limit: Annotated[
            int, QueryParameter(ge=1, le=CLAIMS_PAGE_MAX, required=False)
        ] = CLAIMS_PAGE_DEFAULT,
    ) -> CampaignClaimsOut:
        """A page of claims: pass `next_after_id` as `after_id` for the next (null: no more)."""
        payments = await host.get()
        return await _call(_claims, payments, campaign_id, after_id, limit)

    @get(
        "/v1/payments/claims/{claim_id:int}",
        summary="A red-packet claim (a failed one with its failure code)",
        **read,
    )
    async def get_claim(claim_id: RowIdPath) -> CampaignClaimOut:
        payments = await host.get()
        return _claim_out(await _call(payments.campaigns.get_claim, claim_id))

    # -- the cashier

    @post(
        "/v1/payments/orders",
        summary="Create an order (idempotent by the merchant's order number)",
        **write,
        **strict_body(OrderIn),
    )
    async def create_order(data: Annotated[OrderIn, Body()]) -> OrderOut:
        """The same `merchant_order_no` of the same merchant answers the same order; with another
        amount it is a 409 `idempotency_conflict`."""
        payments = await host.get()
        order = await _call(
            payments.cashier.create_order,
            data.merchant_id,
            data.amount_fen,
            merchant_order_no=data.merchant_order_no,
            description=data.description,
        )
        return await _call(_order, payments, order.id)

    @get(
        "/v1/payments/orders/{order_id:int}", summary="An order (and its payment, if paid)", **read
    )
    async def get_order(order_id: RowIdPath) -> OrderOut:
        payments = await host.get()
        return await _call(_order, payments, order_id)

    @get(
        "/v1/payments/orders/{order_id:int}/quote",
        summary="What paying the order would move: coupon, payer's part, merchant fee",
        tags=["payments"],
        responses=problem_responses(400, 404, 422, 503),
    )
    async def quote(
        order_id: RowIdPath,
        campaign_id: Annotated[
            int | None,
            QueryParameter(ge=1, le=ROW_ID_MAX, required=False, description="a campaign to apply"),
        ] = None,
    ) -> QuoteOut:
        payments = await host.get()
        q = await _call(payments.cashier.quote, order_id, campaign_id)
        return QuoteOut(
            order_id=order_id,
            campaign_id=campaign_id,
            amount_fen=q.amount_fen,
            coupon_fen=q.coupon_fen,
            payer_fen=q.payer_fen,
            fee_fen=q.fee_fen,
            fee_rate_bp=q.fee_rate_bp,
        )

    @post(
        "/v1/payments/orders/{order_id:int}/pay",
        summary="Pay an order from the wallet or a bound card (idempotent per order)",
        **write,
        **strict_body(PayIn),
    )
    async def pay(order_id: RowIdPath, data: Annotated[PayIn, Body()]) -> PaymentOut:
        """User, merchant, campaign budget and platform fee move in one atomic ledger chain. A
        card is two-phase: reserved in the ledger, authorized and captured at the bank, then
        posted. Paying a paid order again (same user) answers its payment; another user gets
        409 `order_already_paid`. A refused attempt (insufficient funds, bank declined or busy)
        moves nothing, and the order can be paid again."""
        payments = await host.get()
        funding = _funding(data.funding, data.card_id)
        p = await _call(
            payments.cashier.pay, order_id, data.user_id, funding, campaign_id=data.campaign_id
        )
        return await _call(_payment, payments, p.id)

    @get("/v1/payments/payments/{payment_id:int}", summary="A payment", **read)
    async def get_payment(payment_id: RowIdPath) -> PaymentOut:
        payments = await host.get()
        return await _call(_payment, payments, payment_id)

    # -- refunds

    @post(
        "/v1/payments/payments/{payment_id:int}/refunds",
        summary="Refund a payment in full or in part (idempotent by request_no)",
        **write,
        **strict_body(RefundIn),
    )
    async def refund(payment_id: RowIdPath, data: Annotated[RefundIn, Body()]) -> RefundOut:
        """`amount_fen` is of the order amount; all refunds of a payment never exceed it. Coupon
        and fee go back pro rata (cumulatively, so they add up exactly). The state is
        `succeeded`, or `reversed` while a card payout waits for a busy bank (it is retried)."""
        payments = await host.get()
        r = await _call(
            payments.refunds.refund, payment_id, data.amount_fen, request_no=data.request_no
        )
        return _refund_out(r)

    @get(
        "/v1/payments/payments/{payment_id:int}/refunds",
        summary="The refunds of a payment",
        **read,
    )
    async def list_refunds(payment_id: RowIdPath) -> RefundsOut:
        payments = await host.get()

        def read_refunds() -> RefundsOut:
            payments.cashier.payment(payment_id)
            return RefundsOut(
                payment_id=payment_id,
                refunded_fen=payments.refunds.refunded_fen(payment_id),
                refunds=[_refund_out(r) for r in payments.refunds.refunds_of(payment_id)],
            )

        return await _call(read_refunds)

    # -- settlement

    @post(
        "/v1/payments/settlements",
        summary="Run the T+1 merchant settlement of a business day (re-runnable)",
        **write,
        **strict_body(SettlementIn),
    )
    async def run_settlement(data: Annotated[SettlementIn, Body()]) -> SettlementReportOut:
        """Settles each merchant's net of the day (China Standard Time) to its bank account and
        answers the report, which reconciles every line against the ledger to the fen. Refused
        (409 `settlement_too_early`) before the day has ended. Running it again resumes what a
        busy bank left open and answers the same report."""
        day = _day(data.business_date)
        payments = await host.get()
        return report_out(await _call(payments.settlements.run, day))

    @get(
        "/v1/payments/settlements/{business_date:str}",
        summary="The settlement report of a business day",
        tags=["payments"],
        responses=problem_responses(400, 503),
    )
    async def get_settlement(
        business_date: Annotated[
            str,
            PathParameter(
                min_length=10,
                max_length=10,
                pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                description="YYYY-MM-DD",
                examples=[Example(value="2025-11-11")],
            ),
        ],
    ) -> SettlementReportOut:
        day = _day(business_date)
        payments = await host.get()
        return report_out(await _call(payments.settlements.report, day))

    # -- offline

    @get(
        "/v1/payments/merchants/{merchant_id:int}/qr",
        summary="The text of a merchant's static QR code (print it at the till)",
        **read,
    )
    async def merchant_qr(merchant_id: RowIdPath) -> MerchantQrOut:
        payments = await host.get()
        return MerchantQrOut(merchant_id, await _call(payments.offline.merchant_qr, merchant_id))

    @post(
        "/v1/payments/qr-payments",
        summary="Pay a merchant's static QR: the user scanned it and typed the amount",
        **write,
        **strict_body(QrPaymentIn),
    )
    async def pay_merchant_qr(data: Annotated[QrPaymentIn, Body()]) -> PaymentOut:
        """Idempotent by (user, `request_id`). A QR the platform never issued is 422
        `code_forged`."""
        payments = await host.get()
        funding = _funding(data.funding, data.card_id)
        p = await _call(
            payments.offline.pay_merchant_qr,
            data.user_id,
            data.qr,
            data.amount_fen,
            request_id=data.request_id,
            funding=funding,
            campaign_id=data.campaign_id,
        )
        return await _call(_payment, payments, p.id)

    @post(
        "/v1/payments/users/{user_id:int}/payment-codes",
        summary="Issue a one-time payment code for the user's phone to show",
        **write,
    )
    async def issue_payment_code(user_id: RowIdPath) -> PaymentCodeOut:
        """Signed (HMAC) and bound to the user; valid once, for 60 s."""
        payments = await host.get()
        code = await _call(payments.offline.issue_code, user_id)
        claims = payments.offline.codes.verify(code, payments.ctx.clock_ns())
        return PaymentCodeOut(
            user_id=user_id,
            code=code,
            issued_ns=claims.issued_ns,
            expires_ns=claims.issued_ns + payments.offline.codes.ttl_ns,
        )

    @post(
        "/v1/payments/merchants/{merchant_id:int}/code-payments",
        summary="The merchant scanned a user's payment code: charge the user's wallet",
        **write,
        **strict_body(CodePaymentIn),
    )
    async def pay_with_code(
        merchant_id: RowIdPath, data: Annotated[CodePaymentIn, Body()]
    ) -> PaymentOut:
        """Refused with 422 `code_expired`, `code_replayed` or `code_forged`. The code is spent
        before the payment runs: if the payment then fails, the user shows a new code. The same
        merchant retrying the same `merchant_order_no` with the same code gets the same
        payment."""
        payments = await host.get()
        p = await _call(
            payments.offline.pay_with_code,
            merchant_id,
            data.code,
            data.amount_fen,
            merchant_order_no=data.merchant_order_no,
            campaign_id=data.campaign_id,
        )
        return await _call(_payment, payments, p.id)

    @post(
        "/v1/payments/batches",
        summary="Pay many wallet payments at once (idempotent by batch_key)",
        **write,
        **strict_body(BatchPaymentsIn),
    )
    async def pay_batch(data: Annotated[BatchPaymentsIn, Body()]) -> BatchPaymentsOut:
        """Each item is its own linked chain (wallet -> merchant, coupon, fee) and fails alone
        with its code; the batch's intent is durable before any chain reaches the ledger."""
        batches = await _call(host.open_batches)
        items = [
            BatchItem(i.user_id, i.merchant_id, i.amount_fen, i.campaign_id) for i in data.items
        ]
        report = await _call(batches.pay, data.batch_key, items)
        return BatchPaymentsOut(
            batch_no=report.batch_no,
            batch_key=report.batch_key,
            succeeded=report.succeeded,
            failed=report.failed,
            results=report.results,
            replayed=report.replayed,
        )

    # -- bills

    @get("/v1/payments/billers", summary="The billers (simulated utilities)", **read)
    async def list_billers(
        category: Annotated[
            BillerCategoryName | None,
            QueryParameter(required=False, description="only the billers of this category"),
        ] = None,
    ) -> BillersOut:
        payments = await host.get()
        kind = None if category is None else BillerCategory(category)
        found = await _call(payments.bills.billers, kind)
        return BillersOut([_biller_out(b) for b in found])

    @post(
        "/v1/payments/billers",
        summary="Register a biller: a simulated utility, settled like a merchant (by name)",
        **write,
        **strict_body(BillerIn),
    )
    async def register_biller(data: Annotated[BillerIn, Body()]) -> BillerOut:
        """The biller is a merchant (MCC 4900, or 4814 for phone) whose wallet is its settlement
        account. Idempotent by name: the same name answers the same biller; with another
        category it is a 409 `idempotency_conflict`."""
        payments = await host.get()
        biller = await _call(
            payments.bills.register_biller,
            data.name,
            BillerCategory(data.category),
            settlement_bank_code=data.settlement_bank_code,
            settlement_account_number=data.settlement_account_number,
            fee_plan=data.fee_plan,
        )
        return _biller_out(biller)

    @get("/v1/payments/billers/{biller_id:int}", summary="A biller", **read)
    async def get_biller(biller_id: RowIdPath) -> BillerOut:
        payments = await host.get()
        return _biller_out(await _call(payments.bills.biller, biller_id))

    @get(
        "/v1/payments/billers/{biller_id:int}/bills",
        summary="Look up a customer's open bills by account number",
        **read,
    )
    async def lookup_bills(
        biller_id: RowIdPath,
        account_number: Annotated[
            str,
            QueryParameter(
                min_length=1,
                max_length=32,
                description="the customer's account number at the utility: electricity and gas"
                " 10 digits, water 8-12 (each ending in a Luhn check digit), phone a mainland"
                " mobile number",
                examples=[Example(value="13800138000")],
            ),
        ],
    ) -> BillsOut:
        """The simulated utility reports the last 3 billed months (Beijing time): the latest
        always, older ones unless already paid at its counter. Only bills with something
        outstanding are listed, oldest first. A malformed number is 400 `invalid_request`; a
        well-formed one that is no customer (a wrong check digit) is 404 `unknown_bill`."""
        payments = await host.get()
        return await _call(_bills, payments, biller_id, account_number)

    @get("/v1/payments/bills/{bill_id:int}", summary="A bill and what it has outstanding", **read)
    async def get_bill(bill_id: RowIdPath) -> BillOut:
        payments = await host.get()
        return _bill_out(await _call(payments.bills.bill, bill_id))

    @post(
        "/v1/payments/bills/{bill_id:int}/payments",
        summary="Pay a bill, in full or in part (idempotent by user and request_id)",
        **write,
        **strict_body(BillPayIn),
    )
    async def pay_bill(bill_id: RowIdPath, data: Annotated[BillPayIn, Body()]) -> BillPaymentOut:
        """Without `amount_fen`, all that is outstanding. More than is outstanding (anything, once
        paid) is 422 `bill_overpayment`; payments in flight count as taken, so racing payments
        never add up to more than the bill. The payer pays the bill amount only (the biller pays
        the fee). `funding: family` with `grant_id` pays with the grant's payer's money, within
        this month's limit (422 `family_limit_exceeded` beyond it). The same `request_id` of the
        same user answers the same bill payment; with other terms it is a 409
        `idempotency_conflict`."""
        _check_bill_funding(data)
        payments = await host.get()
        return await _call(_pay_bill, payments, bill_id, data)

    @get(
        "/v1/payments/bill-payments/{bill_payment_id:int}",
        summary="A bill payment (a failed one with its failure code)",
        **read,
    )
    async def get_bill_payment(bill_payment_id: RowIdPath) -> BillPaymentOut:
        payments = await host.get()
        return _bill_payment_out(await _call(payments.bills.payment, bill_payment_id))

    # -- family accounts

    @post(
        "/v1/payments/family/grants",
        summary="Grant a family member a monthly limit of the payer's money",
        **write,
        **strict_body(FamilyGrantIn),
    )
    async def grant_family(data: Annotated[FamilyGrantIn, Body()]) -> FamilyGrantOut:
        """One active grant per (payer, member): granting the same limit again answers it;
        another limit is 409 `invalid_state` (revoke, then grant anew). The limit is capped by
        the payer's identity level (422 `identity_level_too_low`). Nothing moves yet: the
        month's limit is set aside from the payer's wallet at the member's first payment."""
        payments = await host.get()
        g = await _call(
            payments.family.grant, data.payer_id, data.member_id, data.monthly_limit_fen
        )
        return await _call(_grant, payments, g.id)

    @get(
        "/v1/payments/family/grants",
        summary="The family grants a user gives (payer_id) or holds (member_id)",
        **read,
    )
    async def list_family_grants(
        payer_id: Annotated[
            int | None,
            QueryParameter(ge=1, le=ROW_ID_MAX, required=False, description="the grants given"),
        ] = None,
        member_id: Annotated[
            int | None,
            QueryParameter(ge=1, le=ROW_ID_MAX, required=False, description="the grants held"),
        ] = None,
    ) -> FamilyGrantsOut:
        """At least one of `payer_id` and `member_id`; both: that payer's grants to that
        member. Oldest first, revoked ones too."""
        payments = await host.get()
        return await _call(_grants, payments, payer_id, member_id)

    @get(
        "/v1/payments/family/grants/{grant_id:int}",
        summary="A family grant and what is left of this month's limit",
        **read,
    )
    async def get_family_grant(grant_id: RowIdPath) -> FamilyGrantOut:
        payments = await host.get()
        return await _call(_grant, payments, grant_id)

    @post(
        "/v1/payments/family/grants/{grant_id:int}/payments",
        summary="The member pays an order with the payer's money (idempotent per order)",
        **write,
        **strict_body(FamilyPayIn),
    )
    async def pay_family(grant_id: RowIdPath, data: Annotated[FamilyPayIn, Body()]) -> PaymentOut:
        """The grant's month account pays (funding `family`): the ledger refuses the payment
        that would take it below zero, so the member never spends more than the monthly limit
        however many payments race (422 `family_limit_exceeded`). A revoked grant is 422
        `grant_revoked`; a payer whose wallet cannot set the month's limit aside is 422
        `insufficient_funds`; a user who is not the grant's member is 404 `unknown_party`.
        Paying a paid order again answers its payment, even after a revocation."""
        payments = await host.get()
        p = await _call(
            payments.family.pay,
            data.order_id,
            data.member_id,
            grant_id,
            campaign_id=data.campaign_id,
        )
        return await _call(_payment, payments, p.id)

    @get(
        "/v1/payments/family/grants/{grant_id:int}/statement",
        summary="The payer's monthly statement of a grant, reconciled against the ledger",
        **read,
    )
    async def family_statement(
        grant_id: RowIdPath,
        payer_id: Annotated[
            int,
            QueryParameter(ge=1, le=ROW_ID_MAX, description="the grant's payer"),
        ],
        month: Annotated[
            str | None,
            QueryParameter(
                required=False,
                min_length=7,
                max_length=7,
                pattern=r"^[0-9]{4}-[0-9]{2}$",
                description="YYYY-MM in Beijing time; default this month",
                examples=[Example(value="2025-11")],
            ),
        ] = None,
    ) -> FamilyStatementOut:
        """Only for the grant's payer (another user: 404 `unknown_party`). A month the member did
        not use is `unused` with no lines."""
        payments = await host.get()
        return await _call(_statement, payments, grant_id, payer_id, month)

    @post(
        "/v1/payments/family/grants/{grant_id:int}/revoke",
        summary="Revoke a grant and return the unused limit to the payer (idempotent)",
        **write,
        **strict_body(FamilyRevokeIn),
    )
    async def revoke_family(
        grant_id: RowIdPath, data: Annotated[FamilyRevokeIn, Body()]
    ) -> FamilyGrantOut:
        """Every new payment with the grant is then 422 `grant_revoked`; what is left of the
        month's limit is swept back to the payer's wallet. Only the payer may revoke (another
        user: 404 `unknown_party`)."""
        payments = await host.get()
        await _call(payments.family.revoke, data.payer_id, grant_id)
        return await _call(_grant, payments, grant_id)

    handlers = [
        pay_batch,
        register_user,
        get_user,
        get_user_wallet,
        bind_card,
        list_cards,
        top_up,
        withdraw,
        register_merchant,
        get_merchant,
        get_merchant_wallet,
        create_campaign,
        get_campaign,
        close_campaign,
        claim_red_packet,
        list_claims,
        get_claim,
        create_order,
        get_order,
        quote,
        pay,
        get_payment,
        refund,
        list_refunds,
        run_settlement,
        get_settlement,
        merchant_qr,
        pay_merchant_qr,
        issue_payment_code,
        pay_with_code,
        list_billers,
        register_biller,
        get_biller,
        lookup_bills,
        get_bill,
        pay_bill,
        get_bill_payment,
        grant_family,
        list_family_grants,
        get_family_grant,
        pay_family,
        family_statement,
        revoke_family,
    ]
    return with_options(handlers)
