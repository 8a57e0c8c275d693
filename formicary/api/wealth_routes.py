"""HTTP routes of the fixed-term product marketplace, under /v1/wealth.

The marketplace is opened on the first request that needs it (its state file and its ledger
accounts), on the server's ledger and clock, with the server's money-market fund when the app
gives one (`WealthHost(fund=...)`): purchases and reservations are paid from a wallet or from
the user's fund shares (an instant redemption within the fund's T+0 limits, or a standard T+1
one without them), and maturities pay back to the wallet or on into the fund. Answers are 200,
or problem+json: 404 `not_found` (no such issuer, product, reservation or fund), 422
`issuer_refused` (naming the vetting rule), `sold_out`, `not_on_sale`, `insufficient_funds`,
`instant_limit_exceeded` (over a fund T+0 limit, named), `standard_redemption_too_late` (a
standard redemption's cash would arrive after the sale closes), `invalid_wealth_request`, 409
`wealth_conflict` (too early, the issuer cannot repay, the books disagree), 503 when the ledger
is busy or down.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import anyio
from litestar import delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Example
from litestar.params import Body, PathParameter, QueryParameter

from formicary.api.problems import Problem, problem_responses
from formicary.api.routing import LazyHost, caller, wallet_account_id, with_options
from formicary.api.strict import strict_body
from formicary.api.wealth_wire import (
    IssuerIn,
    IssuerOut,
    MatchOut,
    MaturityOut,
    NotificationOut,
    NotificationsOut,
    ProductBooksOut,
    ProductIn,
    ProductOut,
    ProductsOut,
    ReservationCancelIn,
    SaleCloseOut,
    TickOut,
    VettingOut,
    WealthPurchaseIn,
    WealthPurchaseOut,
    WealthPurchasesOut,
    WealthReservationIn,
    WealthReservationOut,
    WealthReservationsOut,
    WhitelistIn,
)
from formicary.funds import (
    FundError,
    InstantLimitExceeded,
    InvalidOrder,
    MoneyMarketFund,
    UnknownHolder,
)
from formicary.funds import LedgerUnavailable as FundLedgerUnavailable
from formicary.ledger import LedgerService, ServiceUnavailable
from formicary.wealth import (
    FundLimitExceeded,
    InsufficientFunds,
    InvalidRequest,
    Issuer,
    IssuerKind,
    IssuerRefused,
    LedgerUnavailable,
    Marketplace,
    NotFound,
    NotOnSale,
    Product,
    ProductStatus,
    ProductTerms,
    Purchase,
    Reservation,
    SoldOut,
    StandardRedemptionTooLate,
    WealthError,
    WealthStore,
    yield_percent,
)
from formicary.wealth.funding import fund_redemption, funding_source, payout_for
from formicary.wealth.terms import BEIJING

__all__ = ["DEFAULT_WEALTH_DIR", "WEALTH_DIR_ENV", "WealthHost", "wealth_routes"]

WEALTH_DIR_ENV = "FORMICARY_WEALTH_DIR"
DEFAULT_WEALTH_DIR = "formicary-wealth"
NOTIFICATIONS_DEFAULT = 100
NOTIFICATIONS_MAX = 1_000
PURCHASES_DEFAULT = 100
PURCHASES_MAX = 1_000
# Sale times must fit the state file's and the ledger's nanosecond integers (int64: year 2262).
_YEAR_MIN, _YEAR_MAX = 2000, 2199

WealthIdPath = Annotated[
    str,
    PathParameter(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
        description="product id",
        examples=[Example(value="p-1")],
    ),
]


IssuerIdPath = Annotated[
    str,
    PathParameter(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
        description="issuer id",
        examples=[Example(value="icbc")],
    ),
]
ReservationNoPath = Annotated[
    int,
    PathParameter(ge=1, le=2**62, description="reservation number", examples=[Example(value=1)]),
]
UserIdQuery = Annotated[
    str | None, QueryParameter(min_length=1, max_length=128, required=False, description="user id")
]


class WealthHost(LazyHost[Marketplace]):
    """Opens the marketplace on first use and closes it with the app. `fund`, when given,
    opens the money-market fund the marketplace may draw on and reinvest into (the server's
    fund: its FundHost opens it once, for both)."""

    def __init__(
        self,
        service: Callable[[], LedgerService],
        state_dir: str | Path,
        *,
        fund: Callable[[], MoneyMarketFund] | None = None,
    ) -> None:
        super().__init__(service, state_dir)
        self._fund = fund

    def _create(self) -> Marketplace:
        # The fund first: the marketplace's close and maturity runs need it.
        fund = None if self._fund is None else self._fund()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        store = WealthStore(self.state_dir / "wealth.db")
        try:
            ledger = self._service()
            market = Marketplace(ledger, store, fund=fund, clock_ns=ledger.clock_ns)
            market.start()
        except BaseException:
            store.close()
            raise
        return market

    def _release(self, opened: Marketplace) -> None:
        opened.store.close()

    async def get(self) -> Marketplace:
        try:
            return await anyio.to_thread.run_sync(self._open)
        except WealthError as error:
            raise _problem(error) from error
        except FundError as error:
            raise ServiceUnavailable(f"the money-market fund cannot open: {error}") from error


def _problem(error: WealthError) -> Problem:
    """The problem+json answer for a refused marketplace operation."""
    if isinstance(error, LedgerUnavailable):
        raise ServiceUnavailable(str(error)) from error
    for kind, code in (
        (NotFound, "not_found"),
        (IssuerRefused, "issuer_refused"),
        (SoldOut, "sold_out"),
        (NotOnSale, "not_on_sale"),
        (FundLimitExceeded, "instant_limit_exceeded"),
        (StandardRedemptionTooLate, "standard_redemption_too_late"),
        (InsufficientFunds, "insufficient_funds"),
        (InvalidRequest, "invalid_wealth_request"),
    ):
        if isinstance(error, kind):
            return Problem(code, str(error))
    return Problem("wealth_conflict", str(error))


def _fund_problem(error: FundError) -> Problem:
    """A refusal of the fund itself (reached through a reinvestment or a fund-funded order)."""
    if isinstance(error, FundLedgerUnavailable):
        raise ServiceUnavailable(str(error)) from error
    if isinstance(error, UnknownHolder):
        return Problem("insufficient_funds", str(error))
    if isinstance(error, InstantLimitExceeded):
        return Problem("instant_limit_exceeded", str(error))
    if isinstance(error, InvalidOrder):
        return Problem("invalid_wealth_request", str(error))
    return Problem("wealth_conflict", f"the money-market fund refused: {error}")


def _refused(error: Exception) -> Problem | None:
    """The answer to an error of a marketplace call: the marketplace's refusals and the fund's
    (reached through it); anything else is raised."""
    if isinstance(error, WealthError):
        return _problem(error)
    if isinstance(error, FundError):
        return _fund_problem(error)
    return None


_call = caller(_refused)


def _sale_time(value: datetime, name: str) -> datetime:
    if not _YEAR_MIN <= value.year <= _YEAR_MAX:
        raise Problem.invalid(name, f"must be in the years {_YEAR_MIN} to {_YEAR_MAX}")
    return value


def _iso_ns(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, BEIJING).isoformat()


def _product_out(market: Marketplace, product: Product) -> ProductOut:
    t = product.terms
    return ProductOut(
        product_id=t.product_id,
        product_no=product.product_no,
        issuer_id=t.issuer_id,
        name=t.name,
        status=product.status,
        term_days=t.term_days,
        yield_bp=t.yield_bp,
        yield_percent=str(yield_percent(t.yield_bp)),
        size_fen=t.size_fen,
        min_purchase_fen=t.min_purchase_fen,
        min_raise_fen=t.launch_min_fen(),
        remaining_fen=market.remaining_fen(t.product_id),
        sale_open=t.sale_open.isoformat(),
        sale_close=t.sale_close.isoformat(),
        value_date=t.value_day().isoformat(),
        maturity_date=t.maturity_day().isoformat(),
        raised_fen=product.raised_fen,
        due_fen=product.due_fen,
        escrow_account_id=str(market.escrow_account_id(t.product_id)),
    )


def _source_out(kind: str) -> tuple[str, str | None]:
    """The wire's (source_kind, redemption) of a stored source kind: a standard fund source
    is stored as `fund_standard` and answered as `fund` with `redemption: "standard"`."""
    redemption = fund_redemption(kind)
    return ("fund" if redemption else kind), redemption


def _purchase_out(p: Purchase) -> WealthPurchaseOut:
    source_kind, redemption = _source_out(p.source_kind)
    return WealthPurchaseOut(
        purchase_no=p.purchase_no,
        product_id=p.product_id,
        user_id=p.user_id,
        request_id=p.request_id,
        amount_fen=p.amount_fen,
        status=p.status,
        payout_account_id=str(p.payout.wallet_account_id),
        reservation_no=p.reservation_no,
        interest_fen=p.interest_fen,
        replayed=p.replayed,
        source_kind=source_kind,
        source_ref=p.source_ref,
        payout_into_fund=p.payout.into_fund,
        redemption=redemption,
    )


def _reservation_out(r: Reservation) -> WealthReservationOut:
    source_kind, redemption = _source_out(r.source_kind)
    return WealthReservationOut(
        reservation_no=r.reservation_no,
        user_id=r.user_id,
        request_id=r.request_id,
        term_min_days=r.term_min_days,
        term_max_days=r.term_max_days,
        min_yield_bp=r.min_yield_bp,
        amount_fen=r.amount_fen,
        filled_fen=r.filled_fen,
        status=r.status,
        expires_at=_iso_ns(r.expires_ns),
        replayed=r.replayed,
        source_kind=source_kind,
        source_ref=r.source_ref,
        payout_account_id=str(r.payout.wallet_account_id),
        payout_into_fund=r.payout.into_fund,
        redemption=redemption,
    )


def _issuer_out(market: Marketplace, issuer_id: str) -> IssuerOut:
    issuer = market.issuer(issuer_id)
    verdict = market.vet_issuer(issuer_id)
    return IssuerOut(
        issuer_id=issuer.issuer_id,
        name=issuer.name,
        kind=str(issuer.kind),
        account_id=str(market.issuer_account_id(issuer.issuer_id)),
        vetting=VettingOut(passed=verdict.passed, rule=str(verdict.rule), reason=verdict.reason),
        whitelisted=market.store.is_whitelisted(issuer_id),
    )


def _books_out(market: Marketplace, product_id: str) -> ProductBooksOut:
    product = market.product(product_id)
    books = market.books(product_id)
    on_sale = product.status == ProductStatus.LISTED
    if on_sale:
        # Every reserved purchase is pending in escrow and in the quota, nothing more.
        balanced = books["reserved_fen"] == books["escrow_pending_fen"]
    else:
        balanced = books["escrow_pending_fen"] == 0 or product.status in (
            ProductStatus.CLOSING_LAUNCH,
            ProductStatus.CLOSING_FAIL,
        )
    return ProductBooksOut(
        product_id=product_id,
        status=product.status,
        escrow_posted_fen=books["escrow_posted_fen"],
        escrow_pending_fen=books["escrow_pending_fen"],
        quota_remaining_fen=books["quota_remaining_fen"],
        quota_subscribed_fen=books["quota_subscribed_fen"],
        reserved_fen=books["reserved_fen"],
        raised_fen=books["raised_fen"],
        balanced=balanced,
    )


def wealth_routes(host: WealthHost) -> list[HTTPRouteHandler]:
    """The marketplace's route handlers, bound to `host`."""
    tags = ["wealth"]

    @post(
        "/v1/wealth/issuers",
        **strict_body(IssuerIn),
        summary="Register an issuer (or its new figures) and vet it",
        status_code=200,
        tags=tags,
        responses=problem_responses(400, 409, 422, 503),
    )
    async def register_issuer(data: Annotated[IssuerIn, Body()]) -> IssuerOut:
        """Answers the vetting verdict: the rule of the issuer's kind and why it passes or
        fails. A failing issuer is recorded, but its products are refused (`issuer_refused`)."""
        market = await host.get()
        ratio = None if data.solvency_ratio_pct is None else Decimal(data.solvency_ratio_pct)

        def register() -> IssuerOut:
            issuer = Issuer(
                issuer_id=data.issuer_id,
                name=data.name,
                kind=IssuerKind(data.kind),
                total_assets_fen=data.total_assets_fen,
                solvency_ratio_pct=ratio,
                licensed=data.licensed,
            )
            market.register_issuer(issuer)
            return _issuer_out(market, issuer.issuer_id)

        result: IssuerOut = await _call(register)
        return result

    @get(
        "/v1/wealth/issuers/{issuer_id:str}",
        summary="An issuer and its vetting verdict now",
        tags=tags,
        responses=problem_responses(400, 404, 409, 503),
    )
    async def get_issuer(issuer_id: IssuerIdPath) -> IssuerOut:
        market = await host.get()
        result: IssuerOut = await _call(_issuer_out, market, issuer_id)
        return result

    @post(
        "/v1/wealth/issuers/{issuer_id:str}/whitelist",
        **strict_body(WhitelistIn),
        summary="Whitelist an issuer (admits an institution of kind `other`)",
        status_code=200,
        tags=tags,
        responses=problem_responses(400, 404, 409, 422, 503),
    )
    async def whitelist(issuer_id: IssuerIdPath, data: Annotated[WhitelistIn, Body()]) -> IssuerOut:
        """The whitelist is the rule of kind `other`; a bank, AMC or P&C insurer is still judged
        by its own rule (a whitelisted small bank stays refused). Idempotent."""
        market = await host.get()

        def admit() -> IssuerOut:
            market.whitelist(issuer_id, data.note)
            return _issuer_out(market, issuer_id)

        result: IssuerOut = await _call(admit)
        return result

    @delete(
        "/v1/wealth/issuers/{issuer_id:str}/whitelist",
        summary="Take an issuer off the whitelist",
        status_code=200,
        tags=tags,
        responses=problem_responses(400, 404, 409, 503),
    )
    async def unwhitelist(issuer_id: IssuerIdPath) -> IssuerOut:
        """Its products already listed stay listed; new ones are refused (`issuer_refused`,
        rule `whitelist`) if its kind is `other`. Idempotent."""
        market = await host.get()

        def remove() -> IssuerOut:
            market.issuer(issuer_id)  # 404 for an unknown issuer
            market.unwhitelist(issuer_id)
            return _issuer_out(market, issuer_id)

        result: IssuerOut = await _call(remove)
        return result

    @post(
        "/v1/wealth/products",
        **strict_body(ProductIn),
        summary="List a product (idempotent by product id)",
        status_code=200,
        tags=tags,
        responses=problem_responses(400, 404, 409, 422, 503),
    )
    async def list_product(data: Annotated[ProductIn, Body()]) -> ProductOut:
        """Refused with `issuer_refused`, naming the rule, when the issuer fails vetting. If
        the sale window is open already, matching reservations buy at once."""
        market = await host.get()
        terms = ProductTerms(
            product_id=data.product_id,
            issuer_id=data.issuer_id,
            name=data.name,
            term_days=data.term_days,
            yield_bp=data.yield_bp,
            size_fen=data.size_fen,
            min_purchase_fen=data.min_purchase_fen,
            sale_open=_sale_time(data.sale_open, "sale_open"),
            sale_close=_sale_time(data.sale_close, "sale_close"),
            min_raise_fen=data.min_raise_fen,
            value_date=data.value_date,
        )

        def listing() -> ProductOut:
            return _product_out(market, market.list_product(terms))

        result: ProductOut = await _call(listing)
        return result

    @get(
        "/v1/wealth/products",
        summary="Every product, optionally of one status",
        tags=tags,
        responses=problem_responses(400, 409, 503),
    )
    async def list_products(
        status: Annotated[
            str | None,
            QueryParameter(
                required=False,
                pattern="^(listed|closing_launch|closing_fail|launched|failed|maturing|matured)$",
                description="only products of this status",
            ),
        ] = None,
    ) -> ProductsOut:
        market = await host.get()

        def read() -> ProductsOut:
            found = market.products(None if status is None else [status])
            return ProductsOut(products=[_product_out(market, p) for p in found])

        result: ProductsOut = await _call(read)
        return result

    @get(
        "/v1/wealth/products/{product_id:str}/books",
        summary="A product's ledger balances next to the marketplace's figures",
        tags=tags,
        responses=problem_responses(400, 404, 409, 503),
    )
    async def product_books(product_id: WealthIdPath) -> ProductBooksOut:
        """Escrow posted and pending, the quota that remains and was taken, the purchases the
        state file holds reserved and the amount raised; `balanced` says whether they agree."""
        market = await host.get()
        result: ProductBooksOut = await _call(_books_out, market, product_id)
        return result

    @get(
        "/v1/wealth/products/{product_id:str}",
        summary="A product, its status and the size that remains",
        tags=tags,
        responses=problem_responses(400, 404, 409, 503),
    )
    async def get_product(product_id: WealthIdPath) -> ProductOut:
        market = await host.get()

        def read() -> ProductOut:
            return _product_out(market, market.product(product_id))

        result: ProductOut = await _call(read)
        return result

    @post(
        "/v1/wealth/products/{product_id:str}/purchases",
        **strict_body(WealthPurchaseIn),
        summary="Buy a product from a wallet or the fund (pending until the sale closes)",
        status_code=200,
        tags=tags,
        responses=problem_responses(400, 404, 409, 422, 503),
    )
    async def purchase(
        product_id: WealthIdPath, data: Annotated[WealthPurchaseIn, Body()]
    ) -> WealthPurchaseOut:
        """At least the minimum purchase, unless it takes all that remains. Paid from the
        wallet, or (`source: "fund"`) by an instant redemption of the user's fund shares,
        refused with `instant_limit_exceeded` over the fund's per-order, per-user-day or
        fund-day T+0 limit; or with `redemption: "standard"` by a standard (T+1) redemption
        without those limits, refused with `standard_redemption_too_late` when the sale closes
        before the day its cash arrives. Retrying with the same `request_id` applies once
        (`replayed`)."""
        market = await host.get()
        wallet = wallet_account_id(data.wallet_account_id)

        def buy() -> Purchase:
            source = funding_source(
                market, data.source, data.fund_no, data.user_id, wallet, data.redemption
            )
            payout = payout_for(market, data.payout, data.fund_no, wallet)
            return market.purchase(
                product_id, data.user_id, data.amount, source, data.request_id, payout=payout
            )

        return _purchase_out(await _call(buy))

    @get(
        "/v1/wealth/purchases",
        summary="Purchases, of a product and/or a user, in purchase order",
        tags=tags,
        responses=problem_responses(400, 409, 503),
    )
    async def list_purchases(
        product_id: Annotated[
            str | None,
            QueryParameter(
                required=False,
                min_length=1,
                max_length=64,
                pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
                description="only this product's purchases",
            ),
        ] = None,
        user_id: UserIdQuery = None,
        after_no: Annotated[
            int,
            QueryParameter(
                ge=0, le=2**62, required=False, description="the last `purchase_no` already read"
            ),
        ] = 0,
        limit: Annotated[
            int, QueryParameter(ge=1, le=PURCHASES_MAX, required=False)
        ] = PURCHASES_DEFAULT,
    ) -> WealthPurchasesOut:
        market = await host.get()
        found: list[Purchase] = await _call(
            market.purchases,
            product_id=product_id,
            user_id=user_id,
            after_no=after_no,
            limit=limit,
        )
        return WealthPurchasesOut(
            purchases=[_purchase_out(p) for p in found],
            next_after_no=found[-1].purchase_no if len(found) == limit else None,
        )

    @post(
        "/v1/wealth/reservations",
        **strict_body(WealthReservationIn),
        summary="Auto-reserve (预约) matching products as they open",
        status_code=200,
        tags=tags,
        responses=problem_responses(400, 409, 422, 503),
    )
    async def reserve(data: Annotated[WealthReservationIn, Body()]) -> WealthReservationOut:
        """Whenever a product with a term in [min, max] days and at least `min_yield_bp` opens,
        buy up to the rest of `amount_fen` from the wallet or the user's fund shares (each fill
        at most what the fund's T+0 limits leave; not capped with `redemption: "standard"`,
        which skips products whose sale closes before its cash arrives), first come first
        served. Idempotent by `request_id`."""
        market = await host.get()
        wallet = wallet_account_id(data.wallet_account_id)

        def make() -> Reservation:
            return market.reserve(
                data.user_id,
                data.request_id,
                term_min_days=data.term_min_days,
                term_max_days=data.term_max_days,
                min_yield_bp=data.min_yield_bp,
                amount_fen=data.amount_fen,
                source=funding_source(
                    market, data.source, data.fund_no, data.user_id, wallet, data.redemption
                ),
                payout=payout_for(market, data.payout, data.fund_no, wallet),
                valid_days=data.valid_days,
            )

        return _reservation_out(await _call(make))

    @get(
        "/v1/wealth/reservations",
        summary="Reservations, of one user or all, in reservation order",
        tags=tags,
        responses=problem_responses(400, 409, 503),
    )
    async def list_reservations(user_id: UserIdQuery = None) -> WealthReservationsOut:
        market = await host.get()
        found: list[Reservation] = await _call(market.reservations, user_id)
        return WealthReservationsOut(reservations=[_reservation_out(r) for r in found])

    @get(
        "/v1/wealth/reservations/{reservation_no:int}",
        summary="A reservation: what it has bought and whether it is still open",
        tags=tags,
        responses=problem_responses(400, 404, 409, 503),
    )
    async def get_reservation(reservation_no: ReservationNoPath) -> WealthReservationOut:
        market = await host.get()
        return _reservation_out(await _call(market.reservation, reservation_no))

    @post(
        "/v1/wealth/reservations/{reservation_no:int}/cancel",
        **strict_body(ReservationCancelIn),
        summary="Cancel a reservation (what it bought stays bought)",
        status_code=200,
        tags=tags,
        responses=problem_responses(400, 404, 409, 422, 503),
    )
    async def cancel_reservation(
        reservation_no: ReservationNoPath, data: Annotated[ReservationCancelIn, Body()]
    ) -> WealthReservationOut:
        """`user_id` must own it (else `not_found`). An open or filled reservation becomes
        `cancelled` (the user is notified); one expired or cancelled already is answered
        unchanged."""
        market = await host.get()
        return _reservation_out(
            await _call(market.cancel_reservation, data.user_id, reservation_no)
        )

    @get(
        "/v1/wealth/users/{user_id:str}/notifications",
        summary="A user's notifications, oldest first",
        tags=tags,
        responses=problem_responses(400, 409, 503),
    )
    async def notifications(
        user_id: Annotated[
            str, PathParameter(min_length=1, max_length=128, examples=[Example(value="u-1")])
        ],
        after_seq: Annotated[
            int,
            QueryParameter(
                ge=0, le=2**62, description="the last `seq` already read", required=False
            ),
        ] = 0,
        limit: Annotated[
            int, QueryParameter(ge=1, le=NOTIFICATIONS_MAX, required=False)
        ] = NOTIFICATIONS_DEFAULT,
    ) -> NotificationsOut:
        market = await host.get()
        found = await _call(market.notifications, user_id, after_seq=after_seq, limit=limit)
        return NotificationsOut(
            user_id=user_id,
            notifications=[
                NotificationOut(
                    seq=n.seq,
                    kind=n.kind,
                    product_id=n.product_id,
                    reservation_no=n.reservation_no,
                    amount_fen=n.amount_fen,
                    message=n.message,
                    created_at=_iso_ns(n.created_ns),
                )
                for n in found
            ],
        )

    @post(
        "/v1/wealth/tick",
        summary="Run what is due: expire reservations, match, close sales, pay maturities",
        status_code=200,
        tags=tags,
        responses=problem_responses(409, 503),
    )
    async def tick() -> TickOut:
        """The scheduler's step, idempotent and resumable: call it every minute or so. An issuer
        that cannot repay yet is listed in `shortfalls` (nothing of it was paid)."""
        market = await host.get()
        report = await _call(market.tick)
        return TickOut(
            matched=[
                MatchOut(
                    product_id=m.product_id,
                    filled=[[no, fen] for no, fen in m.filled],
                    remaining_fen=m.remaining_fen,
                )
                for m in report.matched
            ],
            closed=[
                SaleCloseOut(
                    product_id=c.product_id,
                    launched=c.launched,
                    raised_fen=c.raised_fen,
                    min_raise_fen=c.min_raise_fen,
                    purchases=c.purchases,
                    settled=c.settled,
                )
                for c in report.closed
            ],
            matured=[
                MaturityOut(
                    product_id=m.product_id,
                    principal_fen=m.principal_fen,
                    interest_fen=m.interest_fen,
                    paid=m.paid,
                    reinvested=m.reinvested,
                    reinvest_failed=m.reinvest_failed,
                )
                for m in report.matured
            ],
            shortfalls=list(report.shortfalls),
            expired_reservations=report.expired_reservations,
        )

    handlers = [
        register_issuer,
        get_issuer,
        whitelist,
        unwhitelist,
        list_product,
        list_products,
        get_product,
        product_books,
        purchase,
        list_purchases,
        reserve,
        list_reservations,
        get_reservation,
        cancel_reservation,
        notifications,
        tick,
    ]
    return with_options(handlers)
