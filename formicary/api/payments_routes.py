"""HTTP routes of the payments core, under /v1/payments.

Parties and wallets, coupon campaigns, the cashier (orders, quotes, payments), refunds, the T+1
settlement and offline payments (merchant static QR, user payment codes), each a thin layer over
`formicary.payments.Payments`. The core is opened on the first request that needs it (its SQLite
file, its secret, its platform accounts in the ledger, and a recovery pass over whatever a crash
left open), so a server used only as a ledger creates no payments files.

The banks are simulated: the server uses the core's in-memory `FakeBank`, which moves no real
money and says yes to every call (tests script it through `PaymentsHost.bank`).

Refusals are problem+json with the payments error's own stable code (see `_CODES`): 404
`unknown_party`; 400 `invalid_request`, `invalid_card` (and `validation_failed` for input the
wire types refuse); 409 `idempotency_conflict`, `order_already_paid`, `refund_in_progress`,
`invalid_state`, `settlement_too_early`, `ledger_rejected`; 422 `insufficient_funds`,
`merchant_balance_insufficient`, `identity_level_too_low`, `coupon_not_applicable`,
`coupon_exhausted`, `refund_exceeds_payment`, `bank_declined`, `payment_timed_out`,
`code_expired`, `code_replayed`, `code_forged`; 503 `bank_busy` and `service_busy` (with
Retry-After), `service_unavailable`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import msgspec
from litestar import HttpMethod, MediaType, Request, Response, get, post, route
from litestar.datastructures import ResponseHeader
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Example
from litestar.params import Body, HeaderParameter, PathParameter, QueryParameter

from formicary.api.idempotency import IdempotencyCache
from formicary.api.payments_wire import (
    ROW_ID_MAX,
    BatchPaymentsIn,
    BatchPaymentsOut,
    CampaignClosedOut,
    CampaignIn,
    CampaignOut,
    CardIn,
    CardOut,
    CardsOut,
    CardTransferIn,
    CardTransferOut,
    CodePaymentIn,
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
from formicary.api.strict import strict_body
from formicary.ledger import LedgerService, ServiceUnavailable
from formicary.payments import (
    Campaign,
    CampaignKind,
    CardTransfer,
    FakeBank,
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

T = TypeVar("T")

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
        description="Replays the first answer to a retried creation with the same key and body "
        "(header `Idempotent-Replayed: true`) instead of creating a second record; the same key "
        "with a different body is a 422. Kept in memory (24 h, the last 100,000 keys).",
    ),
]
_REPLAYED_HEADER = ResponseHeader(
    name="Idempotent-Replayed",
    description="`true` when this answer replays an earlier one (Idempotency-Key)",
    documentation_only=True,
    required=False,
)
_encoder = msgspec.json.Encoder()


class PaymentsHost:
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
        self._service = service
        self.state_dir = Path(state_dir)
        text = os.environ.get(PAYMENTS_SECRET_ENV) if secret is None else secret
        self._secret = text.encode() if text else None
        if self._secret is not None and len(self._secret) < SECRET_BYTES_MIN:
            raise ValueError(f"{PAYMENTS_SECRET_ENV} must be at least {SECRET_BYTES_MIN} bytes")
        # Simulated banks: every call succeeds unless scripted (see FakeBank).
        self.bank = FakeBank()
        self._lock = threading.Lock()
        self._opened: Payments | None = None
        self._batches: PaymentBatches | None = None

    def open(self, *, recover: bool = True) -> Payments:
        """The payments core, opened (and, with `recover`, set up and recovered) once."""
        with self._lock:
            if self._opened is None:
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
                    payments = Payments(
                        ledger, store, self.bank, secret=secret, clock_ns=ledger.clock_ns
                    )
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
                self._opened = payments
            return self._opened

    async def get(self) -> Payments:
        payments: Payments = await _call(self.open)
        return payments

    def open_batches(self) -> PaymentBatches:
        """The batch interface over the payments core (its own file beside the store)."""
        payments = self.open()
        with self._lock:
            if self._batches is None:
                self._batches = PaymentBatches(payments, self.state_dir / BATCHES_FILE)
            return self._batches

    def close(self) -> None:
        with self._lock:
            if self._batches is not None:
                self._batches.close()
                self._batches = None
            if self._opened is not None:
                self._opened.ctx.store.close()
                self._opened = None


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


async def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking payments call off the event loop; refusals become problems."""
    try:
        return await anyio.to_thread.run_sync(partial(function, *args, **kwargs))
    except PaymentError as error:
        raise _problem(error) from error
    except sqlite3.OperationalError as error:
        # "database is locked": another process (an operator's CLI) holds the payments file.
        raise ServiceUnavailable(f"the payments store is busy: {error}") from None


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


# ----------------------------------------------------------------------------- inputs


def _funding(kind: str, card_id: int | None) -> Funding:
    if kind == "card":
        if card_id is None:
            raise Problem.invalid("card_id", "is required when funding is card")
        return Funding.card(card_id)
    if card_id is not None:
        raise Problem.invalid("card_id", "is only for funding card")
    return Funding.wallet()


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
            return _user_out(await _call(payments.parties.register_user, data.name, level))

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
        with the same `request_id` answers the same top-up (a failed one fails again: use a new
        `request_id` to try again)."""
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
        is voided if the bank refused)."""
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
        an Idempotency-Key to make a retry safe (the core has no key of its own for this)."""

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
    ]
    return [*_options_handlers(handlers), *handlers]


def _options_handlers(handlers: list[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """An explicit OPTIONS handler for each path served by more than one method.

    Why: Litestar 2.25 makes a path's automatic OPTIONS handler when the path's first handler is
    registered, and keeps it (answering with that first handler's methods only) when another
    method joins the path. Registered first, an explicit handler takes the automatic one's place.
    """
    methods: dict[str, set[str]] = {}
    for handler in handlers:
        for path in handler.paths:
            methods.setdefault(path, {"OPTIONS"}).update(handler.http_methods)
    return [_options(path, ", ".join(sorted(m))) for path, m in methods.items() if len(m) > 2]


def _options(path: str, allow: str) -> HTTPRouteHandler:
    @route(path, http_method=[HttpMethod.OPTIONS], include_in_schema=False, status_code=204)
    async def options() -> Response[None]:
        return Response(content=None, status_code=204, headers={"Allow": allow})

    return options
