"""HTTP routes of the money-market fund, under /v1/funds/{fund_no}.

The fund is opened on the first request that needs it (its state files and its ledger accounts),
so a server used only as a ledger creates nothing for it. Orders answer 200 with the order, or
problem+json: 404 `not_found` (no such fund or holder), 422 `invalid_order`,
`insufficient_funds`, `insufficient_shares`, `instant_limit_exceeded`, 409 `fund_conflict` (a
day out of order, or posted with another income), 503 when the ledger is busy or down.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import anyio
from litestar import get, post
from litestar.params import Body, PathParameter, QueryParameter

from formicary.api.funds_wire import (
    FundBooksOut,
    FundDayOut,
    FundDaysOut,
    FundHoldingOut,
    FundIncomeIn,
    FundIncomeOut,
    FundOrderOut,
    IncomeLineOut,
    PayoutsIn,
    PayoutsOut,
    RedemptionIn,
    SubscriptionIn,
)
from formicary.api.problems import Problem, problem_responses
from formicary.api.routing import LazyHost, caller, wallet_account_id
from formicary.api.strict import strict_body
from formicary.funds import (
    DailyRun,
    DayRecord,
    FundError,
    FundStore,
    InstantLimitExceeded,
    InsufficientFunds,
    InsufficientShares,
    InvalidOrder,
    LedgerUnavailable,
    MoneyMarketFund,
    Order,
    UnknownHolder,
)
from formicary.ledger import ServiceUnavailable

__all__ = ["FUNDS_DIR_ENV", "FundHost", "fund_routes"]

FUNDS_DIR_ENV = "FORMICARY_FUNDS_DIR"
DEFAULT_FUNDS_DIR = "formicary-funds"
# Days of income a holding answer lists by default, and at most.
INCOME_DAYS_DEFAULT = 30
INCOME_DAYS_MAX = 366

FundNo = Annotated[int, PathParameter(ge=1, le=4095, description="the fund's number")]


class FundHost(LazyHost[tuple[MoneyMarketFund, DailyRun]]):
    """Opens the fund on first use and closes it with the app."""

    def _create(self) -> tuple[MoneyMarketFund, DailyRun]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        store = FundStore(self.state_dir / "fund.db")
        try:
            fund = MoneyMarketFund(self._service(), store)
            fund.start()
        except BaseException:
            store.close()
            raise
        return fund, DailyRun(fund, self.state_dir / "plans")

    def _release(self, opened: tuple[MoneyMarketFund, DailyRun]) -> None:
        opened[0].store.close()

    async def get(self, fund_no: int) -> tuple[MoneyMarketFund, DailyRun]:
        fund, run = await anyio.to_thread.run_sync(self._open)
        if fund_no != fund.config.fund_no:
            raise Problem("not_found", f"fund {fund_no} does not exist")
        return fund, run


def _problem(error: FundError) -> Problem:
    """The problem+json answer for a refused fund operation."""
    if isinstance(error, UnknownHolder):
        return Problem("not_found", str(error))
    if isinstance(error, LedgerUnavailable):
        raise ServiceUnavailable(str(error)) from error
    for kind, code in (
        (InsufficientFunds, "insufficient_funds"),
        (InsufficientShares, "insufficient_shares"),
        (InstantLimitExceeded, "instant_limit_exceeded"),
        (InvalidOrder, "invalid_order"),
    ):
        if isinstance(error, kind):
            return Problem(code, str(error))
    return Problem("fund_conflict", str(error))


def _refused(error: Exception) -> Problem | None:
    """The answer to an error of a fund call: fund refusals only, anything else is raised."""
    return _problem(error) if isinstance(error, FundError) else None


_call = caller(_refused)


def _order_out(order: Order) -> FundOrderOut:
    return FundOrderOut(
        request_id=order.request_id,
        user_id=order.user_id,
        kind=order.kind,
        amount=order.amount_fen,
        confirm_day=order.confirm_day.isoformat(),
        earning_day=order.earning_day.isoformat(),
        pay_day=None if order.pay_day is None else order.pay_day.isoformat(),
        replayed=order.replayed,
    )


def _day_out(record: DayRecord) -> FundDayOut:
    return FundDayOut(
        day=record.day.isoformat(),
        status=record.status,
        income_fen=record.income_fen,
        earning_shares=record.earning_shares,
        holders=record.holders,
        paid_holders=record.paid_holders,
        carried_fen=record.carried_fen,
        distributed_fen=record.distributed_fen,
        remainder_fen=record.remainder_fen,
        wanfen_yuan=str(record.wanfen),
        yield_7d_percent=None if record.yield_7d is None else str(record.yield_7d),
    )


def _date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Problem.invalid(name, "must be a date YYYY-MM-DD") from None


def fund_routes(host: FundHost) -> list[Any]:
    """The fund's route handlers, bound to `host`."""
    order_route: dict[str, Any] = {
        "status_code": 200,
        "tags": ["funds"],
        "responses": problem_responses(400, 404, 422, 503),
    }

    @post(
        "/v1/funds/{fund_no:int}/subscriptions",
        summary="Subscribe (buy shares)",
        **order_route,
        **strict_body(SubscriptionIn),
    )
    async def subscribe(fund_no: FundNo, data: Annotated[SubscriptionIn, Body()]) -> FundOrderOut:
        """Wallet money -> shares at NAV 1.00; confirmed on trading day T (cut-off 15:00 Beijing),
        earning from the next trading day. Retrying with the same `request_id` applies once."""
        fund, _ = await host.get(fund_no)
        wallet = wallet_account_id(data.wallet_account_id)
        order = await _call(fund.subscribe, data.user_id, wallet, data.amount, data.request_id)
        return _order_out(order)

    @post(
        "/v1/funds/{fund_no:int}/redemptions",
        summary="Redeem (sell shares)",
        **order_route,
        **strict_body(RedemptionIn),
    )
    async def redeem(fund_no: FundNo, data: Annotated[RedemptionIn, Body()]) -> FundOrderOut:
        """Shares -> wallet money: instantly within the per-order, per-day and fund limits, or
        the standard way (cash on the next trading day). Retrying with the same `request_id`
        applies once."""
        fund, _ = await host.get(fund_no)
        wallet = wallet_account_id(data.wallet_account_id)
        order = await _call(
            fund.redeem,
            data.user_id,
            wallet,
            data.amount,
            data.request_id,
            instant=data.instant,
        )
        return _order_out(order)

    @get(
        "/v1/funds/{fund_no:int}/holders/{user_id:str}",
        summary="A holder's shares and recent daily income",
        tags=["funds"],
        responses=problem_responses(400, 404, 503),
    )
    async def holding(
        fund_no: FundNo,
        user_id: Annotated[str, PathParameter(min_length=1, max_length=128)],
        days: Annotated[
            int,
            QueryParameter(
                ge=1, le=INCOME_DAYS_MAX, description="posted days to list", required=False
            ),
        ] = INCOME_DAYS_DEFAULT,
    ) -> FundHoldingOut:
        fund, run = await host.get(fund_no)

        def read() -> FundHoldingOut:
            account = fund.holder_account(user_id)
            posted = [d for d in fund.store.days() if d.status == "posted"][-days:]
            income = run.holder_income(account - fund.holder_base, posted)
            return FundHoldingOut(
                user_id=user_id,
                account_id=str(account),
                shares=fund.shares(user_id),
                income=[
                    IncomeLineOut(day=day.isoformat(), income_fen=amount, wanfen_yuan=str(r.wanfen))
                    for (day, amount), r in zip(income, posted, strict=True)
                ],
            )

        result: FundHoldingOut = await _call(read)
        return result

    @get(
        "/v1/funds/{fund_no:int}/days",
        summary="Published daily figures: 万份收益 and 7-day yield",
        tags=["funds"],
        responses=problem_responses(400, 404, 503),
    )
    async def days(
        fund_no: FundNo,
        first: Annotated[
            str | None, QueryParameter(name="from", description="YYYY-MM-DD", required=False)
        ] = None,
        last: Annotated[
            str | None, QueryParameter(name="to", description="YYYY-MM-DD", required=False)
        ] = None,
    ) -> FundDaysOut:
        fund, _ = await host.get(fund_no)
        start = None if first is None else _date(first, "from")
        end = None if last is None else _date(last, "to")
        records = await _call(fund.store.days, start, end)
        return FundDaysOut(days=[_day_out(r) for r in records])

    @post(
        "/v1/funds/{fund_no:int}/days/{day:str}/income",
        summary="Post a day's income to every holder (the manager's daily run)",
        status_code=200,
        tags=["funds"],
        responses=problem_responses(400, 404, 409, 503),
        **strict_body(FundIncomeIn),
    )
    async def post_income(
        fund_no: FundNo,
        day: Annotated[str, PathParameter(min_length=10, max_length=10, description="YYYY-MM-DD")],
        data: Annotated[FundIncomeIn, Body()],
    ) -> FundIncomeOut:
        """Idempotent: posting a posted day again answers it unchanged; a different income for
        it is 409. Days are posted in order. Takes ~1 s per million holders."""
        fund, run = await host.get(fund_no)
        record = await _call(run.run, _date(day, "day"), data.income_fen)
        books = await _call(fund.reconcile)
        return FundIncomeOut(
            day=_day_out(record),
            custody_cash_fen=books["custody_cash_fen"],
            shares_outstanding=books["shares_outstanding"],
            balanced=books["difference_fen"] == 0,
        )

    @post(
        "/v1/funds/{fund_no:int}/payouts",
        summary="Pay the standard redemptions due by a day (idempotent)",
        status_code=200,
        tags=["funds"],
        responses=problem_responses(400, 404, 409, 503),
        **strict_body(PayoutsIn),
    )
    async def payouts(fund_no: FundNo, data: Annotated[PayoutsIn, Body()]) -> PayoutsOut:
        fund, _ = await host.get(fund_no)
        paid = await _call(fund.pay_standard_redemptions, _date(data.day, "day"))
        return PayoutsOut(paid=paid)

    @get(
        "/v1/funds/{fund_no:int}/books",
        summary="Custody cash against shares outstanding (equal at NAV 1.00)",
        tags=["funds"],
        responses=problem_responses(400, 404, 503),
    )
    async def books(fund_no: FundNo) -> FundBooksOut:
        fund, _ = await host.get(fund_no)
        figures = await _call(fund.reconcile)
        return FundBooksOut(**figures, balanced=figures["difference_fen"] == 0)

    return [subscribe, redeem, holding, days, post_income, payouts, books]
