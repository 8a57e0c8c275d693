"""The asyncio client.

`AsyncClient.create_transfer()` and `create_account()` batch automatically, like the sync
client: concurrent coroutines are coalesced into one POST of up to `batch_max` events, with at
most one request per endpoint in flight. Here the sending is done by a short-lived task that
drains the queue, so a caller being cancelled never abandons a request other callers wait on.
One AsyncClient belongs to one event loop (as its httpx.AsyncClient does).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx
import msgspec

from formicary.api.funds_wire import (
    FundBooksOut,
    FundDayOut,
    FundDaysOut,
    FundHoldingOut,
    FundIncomeOut,
    FundOrderOut,
    PayoutsOut,
)
from formicary.api.payments_wire import (
    BillerOut,
    BillersOut,
    BillOut,
    BillPaymentOut,
    BillsOut,
    CampaignClaimOut,
    CampaignClaimsOut,
    CampaignClosedOut,
    CampaignOut,
    CardOut,
    CardsOut,
    CardTransferOut,
    FamilyGrantOut,
    FamilyGrantsOut,
    FamilyStatementOut,
    MerchantOut,
    MerchantQrOut,
    OrderOut,
    PaymentCodeOut,
    PaymentOut,
    QuoteOut,
    RefundOut,
    RefundsOut,
    SettlementReportOut,
    UserOut,
    WalletOut,
)
from formicary.api.wealth_wire import (
    IssuerOut,
    NotificationOut,
    NotificationsOut,
    ProductBooksOut,
    ProductOut,
    ProductsOut,
    TickOut,
    WealthPurchaseOut,
    WealthPurchasesOut,
    WealthReservationOut,
    WealthReservationsOut,
)
from formicary.api.wire import (
    AccountIn,
    AccountOut,
    BalanceOut,
    BalancePage,
    CreateResultOut,
    TransferIn,
    TransferOut,
    TransferPage,
    TrialBalanceOut,
)
from formicary.client import _common as c
from formicary.client import _funds as f
from formicary.client import _payments as p
from formicary.client import _wealth as w
from formicary.client._errors import (
    BusyError,
    ClientClosedError,
    NetworkError,
    NotFound,
)

__all__ = ["AsyncClient"]


class AsyncClient:
    """An asyncio Formicary client; share one instance between the coroutines of a loop.

    ``async with AsyncClient("http://127.0.0.1:8000") as client: await client.create_transfer(t)``

    Options: `timeout` per attempt (seconds or an httpx.Timeout); `batch_max` events per POST
    (1..8190); `linger_s`, how long an idle auto-batcher waits for company before sending;
    `retries` for 503/429 and network errors, sleeping from `backoff_s` doubling up to
    `backoff_max_s` (with jitter; Retry-After honoured up to that cap); `headers` added to every
    request; `transport`, an httpx transport (tests inject fakes here).
    """

    def __init__(
        self,
        base_url: str = c.DEFAULT_BASE_URL,
        *,
        timeout: float | httpx.Timeout = c.DEFAULT_TIMEOUT_S,
        batch_max: int = c.DEFAULT_BATCH_MAX,
        linger_s: float = c.DEFAULT_LINGER_S,
        retries: int = c.DEFAULT_RETRIES,
        backoff_s: float = c.DEFAULT_BACKOFF_S,
        backoff_max_s: float = c.DEFAULT_BACKOFF_MAX_S,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        c.check_options(batch_max, linger_s, retries)
        self.batch_max = batch_max
        self.retries = retries
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        # One httpx.AsyncClient = one keep-alive connection pool for every coroutine.
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"user-agent": c.USER_AGENT, **(headers or {})},
        )
        self._accounts = _AsyncBatcher(self, "/v1/accounts", batch_max, linger_s)
        self._transfers = _AsyncBatcher(self, "/v1/transfers", batch_max, linger_s)
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Send what is already queued, then close the connections. Idempotent."""
        if self._closed:
            return
        # Drain the batchers first: their queued calls still need the connection pool.
        await self._accounts.close()
        await self._transfers.close()
        self._closed = True
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- writes --------------------------------------------------------------------------------

    async def create_transfer(self, transfer: TransferIn) -> str:
        """Create one transfer, auto-batched with concurrent calls; returns its result code.

        Raises InvalidEventError (a ValueError) for a malformed transfer or one flagged
        `linked`: a chain must be sent whole, as one list, with create_transfers().
        """
        c.check_single(transfer, TransferIn)
        return await self._transfers.submit(c.TRANSFER_CODEC.encode_form(transfer))

    async def create_account(self, account: AccountIn) -> str:
        """Create one account, auto-batched with concurrent calls; returns its result code."""
        c.check_single(account, AccountIn)
        return await self._accounts.submit(c.ACCOUNT_CODEC.encode_form(account))

    async def create_transfers(
        self, transfers: Sequence[TransferIn], *, idempotency_key: str | None = None
    ) -> list[CreateResultOut]:
        """Create transfers in order; one result per transfer (index into `transfers`).

        Lists longer than batch_max go as several requests, cut only between linked chains.
        With an idempotency_key, request i of n > 1 carries "{key}.{i}".
        """
        return await self._create_many(
            "/v1/transfers", transfers, c.TRANSFER_CODEC, idempotency_key
        )

    async def create_accounts(
        self, accounts: Sequence[AccountIn], *, idempotency_key: str | None = None
    ) -> list[CreateResultOut]:
        """Create accounts in order; one result per account (index into `accounts`)."""
        return await self._create_many("/v1/accounts", accounts, c.ACCOUNT_CODEC, idempotency_key)

    async def _create_many(
        self,
        path: str,
        events: Sequence[c.E],
        codec: c.EventCodec[c.E],
        idempotency_key: str | None,
    ) -> list[CreateResultOut]:
        # Encode and plan every chunk before sending anything (see Client._create_many).
        forms = [codec.encode_form(e) for e in events]
        plan = list(c.chunks(forms, self.batch_max))
        results: list[CreateResultOut] = []
        for number, (offset, chunk) in enumerate(plan):
            key = idempotency_key
            if key is not None and len(plan) > 1:
                key = f"{key}.{number}"
            results.extend(await self._post_forms(path, chunk, key, offset))
        return results

    async def _post_forms(
        self,
        path: str,
        forms: Sequence[msgspec.Struct],
        idempotency_key: str | None = None,
        offset: int = 0,
    ) -> list[CreateResultOut]:
        # The key is fixed before the first attempt so every retry of this POST replays it.
        headers = {
            **c.JSON_HEADERS,
            c.IDEMPOTENCY_HEADER: idempotency_key or c.new_idempotency_key(),
        }
        body = c.encode_wire_forms(forms)
        response = await self._request("POST", path, content=body, headers=headers)
        return c.results_of(response, len(forms), offset)

    # -- reads ---------------------------------------------------------------------------------

    async def get_account(self, account_id: int | str) -> AccountOut | None:
        """The account, or None when it does not exist."""
        try:
            response = await self._request("GET", f"/v1/accounts/{c.path_id(account_id)}")
        except NotFound:
            return None
        return c.decode(c.ACCOUNT_DECODER, response)

    async def get_transfer(self, transfer_id: int | str) -> TransferOut | None:
        """The transfer, or None when it does not exist."""
        try:
            response = await self._request("GET", f"/v1/transfers/{c.path_id(transfer_id)}")
        except NotFound:
            return None
        return c.decode(c.TRANSFER_DECODER, response)

    async def account_transfers(
        self,
        account_id: int | str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        from_: int | None = None,
        to: int | None = None,
        order: str | None = None,
    ) -> TransferPage:
        """One page of the account's transfers (items: TransferOut); `from_`/`to` are timestamps."""
        params = c.page_params(limit, cursor, from_, to, order)
        path = f"/v1/accounts/{c.path_id(account_id)}/transfers"
        return c.decode(c.TRANSFER_PAGE_DECODER, await self._request("GET", path, params=params))

    async def iter_account_transfers(
        self,
        account_id: int | str,
        *,
        limit: int | None = None,
        from_: int | None = None,
        to: int | None = None,
        order: str | None = None,
    ) -> AsyncIterator[TransferOut]:
        """Every transfer of the account, fetching page after page (`limit` per page)."""
        cursor: str | None = None
        for pages in range(1, c.PAGES_MAX + 1):
            page = await self.account_transfers(
                account_id, limit=limit, cursor=cursor, from_=from_, to=to, order=order
            )
            for item in page.items:
                yield item
            cursor = c.next_cursor_or_stop(page, cursor, pages)
            if cursor is None:
                return

    async def account_balances(
        self,
        account_id: int | str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        from_: int | None = None,
        to: int | None = None,
        order: str | None = None,
    ) -> BalancePage:
        """One page of the balance history of a `history` account (items: BalanceOut)."""
        params = c.page_params(limit, cursor, from_, to, order)
        path = f"/v1/accounts/{c.path_id(account_id)}/balances"
        return c.decode(c.BALANCE_PAGE_DECODER, await self._request("GET", path, params=params))

    async def iter_account_balances(
        self,
        account_id: int | str,
        *,
        limit: int | None = None,
        from_: int | None = None,
        to: int | None = None,
        order: str | None = None,
    ) -> AsyncIterator[BalanceOut]:
        """The whole balance history of the account, page after page."""
        cursor: str | None = None
        for pages in range(1, c.PAGES_MAX + 1):
            page = await self.account_balances(
                account_id, limit=limit, cursor=cursor, from_=from_, to=to, order=order
            )
            for item in page.items:
                yield item
            cursor = c.next_cursor_or_stop(page, cursor, pages)
            if cursor is None:
                return

    async def balance(self, account_id: int | str, at: int | None = None) -> BalanceOut:
        """The account's balances now, or as of timestamp `at`; NotFound if it does not exist."""
        params = {} if at is None else {"at": str(at)}
        path = f"/v1/accounts/{c.path_id(account_id)}/balance"
        return c.decode(c.BALANCE_DECODER, await self._request("GET", path, params=params))

    async def trial_balance(self, ledger: int) -> TrialBalanceOut:
        """Posted and pending debit and credit totals over all accounts of a ledger."""
        path = f"/v1/ledgers/{c.path_id(ledger, 'ledger')}/trial-balance"
        return c.decode(c.TRIAL_BALANCE_DECODER, await self._request("GET", path))

    async def healthz(self) -> bool:
        """True when the server process answers (no retries: this is a probe)."""
        return await self._probe("/healthz")

    async def readyz(self) -> bool:
        """True when the server is ready to take requests (its store is open)."""
        return await self._probe("/readyz")

    async def _probe(self, path: str) -> bool:
        if self._closed:
            raise ClientClosedError("the client is closed")
        try:
            return (await self._http.get(path)).is_success
        except httpx.TransportError:
            return False

    # -- the money-market fund -----------------------------------------------------------------

    async def fund_subscribe(
        self,
        user_id: str,
        wallet_account_id: int | str,
        amount: int,
        *,
        request_id: str | None = None,
        fund_no: int = 1,
    ) -> FundOrderOut:
        """Buy fund shares from a wallet (fen). Pass `request_id` to make your own retries
        safe; the client's retries reuse the one it sends."""
        return await self._fund(
            f.subscribe(fund_no, user_id, wallet_account_id, amount, request_id)
        )

    async def fund_redeem(
        self,
        user_id: str,
        wallet_account_id: int | str,
        amount: int,
        *,
        instant: bool = True,
        request_id: str | None = None,
        fund_no: int = 1,
    ) -> FundOrderOut:
        """Sell fund shares to a wallet: instantly (T+0, within limits) or standard (T+1)."""
        call = f.redeem(fund_no, user_id, wallet_account_id, amount, request_id, instant)
        return await self._fund(call)

    async def fund_holding(
        self, user_id: str, *, days: int = 30, fund_no: int = 1
    ) -> FundHoldingOut:
        """A holder's shares and daily income over the last `days` posted days (NotFound if
        the user holds nothing)."""
        return await self._fund(f.holding(fund_no, user_id, days))

    async def fund_days(
        self, start: date | None = None, end: date | None = None, *, fund_no: int = 1
    ) -> list[FundDayOut]:
        """Published daily figures (万份收益, 7-day yield), oldest first."""
        answer: FundDaysOut = await self._fund(f.days(fund_no, start, end))
        return answer.days

    async def fund_post_income(
        self, day: date, income_fen: int, *, fund_no: int = 1
    ) -> FundIncomeOut:
        """Post a day's income to every holder (idempotent; days in order)."""
        return await self._fund(f.post_income(fund_no, day, income_fen))

    async def fund_pay_redemptions(self, day: date, *, fund_no: int = 1) -> int:
        """Pay the standard redemptions due by `day`; returns how many were paid now."""
        answer: PayoutsOut = await self._fund(f.pay_redemptions(fund_no, day))
        return answer.paid

    async def fund_books(self, *, fund_no: int = 1) -> FundBooksOut:
        """Custody cash against shares outstanding."""
        return await self._fund(f.books(fund_no))

    async def _fund(self, call: f.FundCall) -> Any:
        headers = c.JSON_HEADERS if call.content is not None else None
        response = await self._request(
            call.method, call.path, params=call.params, content=call.content, headers=headers
        )
        return c.decode(call.decoder, response)

    # -- the fixed-term marketplace -------------------------------------------------------------

    async def wealth_register_issuer(
        self,
        issuer_id: str,
        name: str,
        kind: str,
        *,
        total_assets_fen: int | None = None,
        solvency_ratio_pct: Decimal | str | None = None,
        licensed: bool = False,
    ) -> IssuerOut:
        """Register an issuer (`bank`, `asset_manager`, `pc_insurer`, `other`) or its new
        figures; answers the vetting verdict (a failing issuer's products are refused)."""
        call = w.register_issuer(
            issuer_id, name, kind, total_assets_fen, solvency_ratio_pct, licensed
        )
        return await self._wealth(call)

    async def wealth_list_product(
        self,
        product_id: str,
        issuer_id: str,
        name: str,
        *,
        term_days: int,
        yield_bp: int,
        size_fen: int,
        min_purchase_fen: int,
        sale_open: datetime,
        sale_close: datetime,
        min_raise_fen: int | None = None,
        value_date: date | None = None,
    ) -> ProductOut:
        """List a product (idempotent by `product_id`); Unprocessable `issuer_refused` when its
        issuer fails vetting. A naive sale time is Beijing time."""
        call = w.list_product(
            product_id,
            issuer_id,
            name,
            term_days,
            yield_bp,
            size_fen,
            min_purchase_fen,
            sale_open,
            sale_close,
            min_raise_fen,
            value_date,
        )
        return await self._wealth(call)

    async def wealth_product(self, product_id: str) -> ProductOut:
        """A product, its status and the size that remains."""
        return await self._wealth(w.product(product_id))

    async def wealth_products(self, *, status: str | None = None) -> list[ProductOut]:
        """Every product, or those of one `status` (listed, launched, failed, matured...)."""
        answer: ProductsOut = await self._wealth(w.products(status))
        return answer.products

    async def wealth_product_books(self, product_id: str) -> ProductBooksOut:
        """A product's ledger balances next to the marketplace's figures (`balanced`)."""
        return await self._wealth(w.product_books(product_id))

    async def wealth_purchases(
        self,
        *,
        product_id: str | None = None,
        user_id: str | None = None,
        after_no: int = 0,
        limit: int = 100,
    ) -> WealthPurchasesOut:
        """A page of purchases in purchase order; pass `next_after_no` as `after_no` for the
        next page (None: no more)."""
        return await self._wealth(w.purchases(product_id, user_id, after_no, limit))

    async def wealth_issuer(self, issuer_id: str) -> IssuerOut:
        """An issuer and its vetting verdict now."""
        return await self._wealth(w.issuer(issuer_id))

    async def wealth_whitelist(self, issuer_id: str, *, note: str = "") -> IssuerOut:
        """Whitelist an issuer: admits one of kind `other` (the other kinds keep their rule)."""
        return await self._wealth(w.whitelist(issuer_id, note))

    async def wealth_unwhitelist(self, issuer_id: str) -> IssuerOut:
        """Take an issuer off the whitelist (its listed products stay listed)."""
        return await self._wealth(w.unwhitelist(issuer_id))

    async def wealth_purchase(
        self,
        product_id: str,
        user_id: str,
        wallet_account_id: int | str,
        amount: int,
        *,
        request_id: str | None = None,
        source: str = "wallet",
        fund_no: int | None = None,
        payout: str = "wallet",
        redemption: str = "instant",
    ) -> WealthPurchaseOut:
        """Buy a product (fen; pending until the sale closes). `source="fund"` pays with the
        user's money-market fund shares, an instant redemption within the fund's T+0 limits
        (Unprocessable `instant_limit_exceeded` over one), or with `redemption="standard"` a
        T+1 redemption without them (Unprocessable `standard_redemption_too_late` when the
        sale closes before its cash arrives); the maturity pays the wallet, then into the
        fund if `payout="fund"`. Pass `request_id` to make your own retries safe; the
        client's retries reuse the one it sends."""
        call = w.purchase(
            product_id,
            user_id,
            wallet_account_id,
            amount,
            request_id,
            source,
            fund_no,
            payout,
            redemption,
        )
        return await self._wealth(call)

    async def wealth_reserve(
        self,
        user_id: str,
        wallet_account_id: int | str,
        amount_fen: int,
        *,
        term_min_days: int,
        term_max_days: int,
        min_yield_bp: int = 0,
        valid_days: int | None = None,
        request_id: str | None = None,
        source: str = "wallet",
        fund_no: int | None = None,
        payout: str = "wallet",
        redemption: str = "instant",
    ) -> WealthReservationOut:
        """Auto-reserve (预约): buy matching products as they open, from the wallet or
        (`source="fund"`) the user's fund shares, each fill within the fund's T+0 limits, or
        not capped by them with `redemption="standard"` (T+1 redemptions, only for products
        whose sale closes on or after the day the cash arrives)."""
        call = w.reserve(
            user_id,
            wallet_account_id,
            amount_fen,
            term_min_days,
            term_max_days,
            min_yield_bp,
            valid_days,
            request_id,
            source,
            fund_no,
            payout,
            redemption,
        )
        return await self._wealth(call)

    async def wealth_reservations(
        self, *, user_id: str | None = None
    ) -> list[WealthReservationOut]:
        """Reservations, of one user or all, in reservation order."""
        answer: WealthReservationsOut = await self._wealth(w.reservations(user_id))
        return answer.reservations

    async def wealth_reservation(self, reservation_no: int) -> WealthReservationOut:
        """A reservation: what it has bought and whether it is still open."""
        return await self._wealth(w.reservation(reservation_no))

    async def wealth_cancel_reservation(
        self, reservation_no: int, user_id: str
    ) -> WealthReservationOut:
        """Cancel a reservation of `user_id` (NotFound if it is not theirs); what it bought
        stays bought. Cancelling again answers it unchanged."""
        return await self._wealth(w.cancel_reservation(reservation_no, user_id))

    async def wealth_notifications(
        self, user_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[NotificationOut]:
        """A user's notifications after `after_seq`, oldest first."""
        answer: NotificationsOut = await self._wealth(w.notifications(user_id, after_seq, limit))
        return answer.notifications

    async def wealth_tick(self) -> TickOut:
        """Run what is due: expire reservations, match, close sales, pay maturities."""
        return await self._wealth(w.tick())

    async def _wealth(self, call: w.WealthCall) -> Any:
        headers = c.JSON_HEADERS if call.content is not None else None
        response = await self._request(
            call.method, call.path, params=call.params, content=call.content, headers=headers
        )
        return c.decode(call.decoder, response)

    # -- payments ------------------------------------------------------------------------------

    async def payments_register_user(self, name: str, *, identity_level: str = "basic") -> UserOut:
        """Register a user with an empty wallet; `identity_level` is unverified, basic,
        verified or full (it caps one operation)."""
        return await self._payments(p.register_user(name, identity_level))

    async def payments_user(self, user_id: int) -> UserOut:
        """A user (NotFound if there is none)."""
        return await self._payments(p.user(user_id))

    async def payments_user_wallet(self, user_id: int) -> WalletOut:
        """What the user's wallet can pay now, from the ledger."""
        return await self._payments(p.user_wallet(user_id))

    async def payments_bind_card(self, user_id: int, bank_code: str, card_number: str) -> CardOut:
        """Bind a card to a user (binding it again answers the same card)."""
        return await self._payments(p.bind_card(user_id, bank_code, card_number))

    async def payments_cards(self, user_id: int) -> list[CardOut]:
        """The user's bound cards, oldest first."""
        answer: CardsOut = await self._payments(p.cards(user_id))
        return answer.cards

    async def payments_top_up(
        self, user_id: int, card_id: int, amount_fen: int, *, request_id: str | None = None
    ) -> CardTransferOut:
        """Move money from a bound card into the wallet. Pass `request_id` to make your own
        retries safe; the client's retries reuse the one it sends."""
        return await self._payments(p.top_up(user_id, card_id, amount_fen, request_id))

    async def payments_withdraw(
        self, user_id: int, card_id: int, amount_fen: int, *, request_id: str | None = None
    ) -> CardTransferOut:
        """Move money from the wallet to a bound card (idempotent by `request_id`)."""
        return await self._payments(p.withdraw(user_id, card_id, amount_fen, request_id))

    async def payments_register_merchant(
        self,
        name: str,
        *,
        category: str,
        fee_plan: str,
        settlement_bank_code: str,
        settlement_account_number: str,
    ) -> MerchantOut:
        """Register a merchant: a 4-digit category code, a fee plan (online, offline_qr,
        card_acquiring) and the bank account it is settled to (T+1)."""
        call = p.register_merchant(
            name, category, fee_plan, settlement_bank_code, settlement_account_number
        )
        return await self._payments(call)

    async def payments_merchant(self, merchant_id: int) -> MerchantOut:
        """A merchant (NotFound if there is none)."""
        return await self._payments(p.merchant(merchant_id))

    async def payments_merchant_wallet(self, merchant_id: int) -> WalletOut:
        """What the merchant's wallet holds, not yet settled to its bank."""
        return await self._payments(p.merchant_wallet(merchant_id))

    async def payments_create_campaign(
        self,
        name: str,
        kind: str,
        *,
        discount_fen: int,
        budget_fen: int,
        funder_merchant_id: int | None = None,
        merchant_id: int | None = None,
        min_order_fen: int = 0,
    ) -> CampaignOut:
        """Create and fund a `coupon` or `red_packet` campaign: platform-funded, or funded by
        `funder_merchant_id`'s wallet (and then valid at that merchant only)."""
        call = p.create_campaign(
            name, kind, discount_fen, budget_fen, funder_merchant_id, merchant_id, min_order_fen
        )
        return await self._payments(call)

    async def payments_campaign(self, campaign_id: int) -> CampaignOut:
        """A campaign and the budget it has left (`remaining_fen`)."""
        return await self._payments(p.campaign(campaign_id))

    async def payments_close_campaign(self, campaign_id: int) -> CampaignClosedOut:
        """Stop a campaign's discounts and return what is left to its funder."""
        return await self._payments(p.close_campaign(campaign_id))

    async def payments_claim_red_packet(
        self, campaign_id: int, user_id: int, *, request_id: str | None = None
    ) -> CampaignClaimOut:
        """The user claims one packet of a red packet: its `discount_fen` goes into the
        user's wallet. One claim per user and campaign; idempotent by `request_id` (a fresh one
        when omitted, reused by the client's retries)."""
        return await self._payments(p.claim_red_packet(campaign_id, user_id, request_id))

    async def payments_campaign_claims(
        self, campaign_id: int, *, after_id: int = 0, limit: int = 1000
    ) -> CampaignClaimsOut:
        """A page of a campaign's red-packet claims, oldest first (failed ones too); pass
        `next_after_id` as `after_id` for the next page (None: no more)."""
        return await self._payments(p.campaign_claims(campaign_id, after_id, limit))

    async def payments_claim(self, claim_id: int) -> CampaignClaimOut:
        """A red-packet claim (a failed one with its `failure_code`)."""
        return await self._payments(p.claim(claim_id))

    async def payments_create_order(
        self, merchant_id: int, amount_fen: int, *, merchant_order_no: str, description: str = ""
    ) -> OrderOut:
        """An order to pay; the same `merchant_order_no` answers the same order."""
        call = p.create_order(merchant_id, amount_fen, merchant_order_no, description)
        return await self._payments(call)

    async def payments_order(self, order_id: int) -> OrderOut:
        """An order, with the id of its payment once paid."""
        return await self._payments(p.order(order_id))

    async def payments_quote(self, order_id: int, *, campaign_id: int | None = None) -> QuoteOut:
        """What paying the order would move: coupon, payer's part and merchant fee."""
        return await self._payments(p.quote(order_id, campaign_id))

    async def payments_pay(
        self,
        order_id: int,
        user_id: int,
        *,
        card_id: int | None = None,
        campaign_id: int | None = None,
    ) -> PaymentOut:
        """Pay an order from the user's wallet, or from a bound card (`card_id`); paying a paid
        order again answers its payment."""
        return await self._payments(p.pay(order_id, user_id, card_id, campaign_id))

    async def payments_payment(self, payment_id: int) -> PaymentOut:
        """A payment (NotFound if there is none)."""
        return await self._payments(p.payment(payment_id))

    async def payments_refund(
        self, payment_id: int, amount_fen: int, *, request_no: str | None = None
    ) -> RefundOut:
        """Refund part or all of a payment's order amount (idempotent by `request_no`)."""
        return await self._payments(p.refund(payment_id, amount_fen, request_no))

    async def payments_refunds(self, payment_id: int) -> RefundsOut:
        """The refunds of a payment and how much is refunded."""
        return await self._payments(p.refunds(payment_id))

    async def payments_settle(self, business_date: date) -> SettlementReportOut:
        """Run the T+1 settlement of a business day (re-runnable) and return its report."""
        return await self._payments(p.settle(business_date))

    async def payments_settlement(self, business_date: date) -> SettlementReportOut:
        """The settlement report of a business day."""
        return await self._payments(p.settlement(business_date))

    async def payments_merchant_qr(self, merchant_id: int) -> str:
        """The text of the merchant's static QR code."""
        answer: MerchantQrOut = await self._payments(p.merchant_qr(merchant_id))
        return answer.qr

    async def payments_pay_qr(
        self,
        user_id: int,
        qr: str,
        amount_fen: int,
        *,
        request_id: str | None = None,
        card_id: int | None = None,
        campaign_id: int | None = None,
    ) -> PaymentOut:
        """Pay a merchant's static QR code (idempotent by `request_id`)."""
        call = p.pay_qr(user_id, qr, amount_fen, request_id, card_id, campaign_id)
        return await self._payments(call)

    async def payments_issue_code(self, user_id: int) -> PaymentCodeOut:
        """A one-time payment code for the user's phone to show (valid 60 s)."""
        return await self._payments(p.issue_code(user_id))

    async def payments_pay_with_code(
        self,
        merchant_id: int,
        code: str,
        amount_fen: int,
        *,
        merchant_order_no: str,
        campaign_id: int | None = None,
    ) -> PaymentOut:
        """The merchant scanned the user's payment code: charge the user's wallet."""
        call = p.pay_with_code(merchant_id, code, amount_fen, merchant_order_no, campaign_id)
        return await self._payments(call)

    # -- payments: bills and family accounts

    async def payments_billers(self, *, category: str | None = None) -> list[BillerOut]:
        """The billers (simulated utilities), oldest first; only one `category` (electricity,
        water, gas, phone) if given."""
        answer: BillersOut = await self._payments(p.billers(category))
        return answer.billers

    async def payments_register_biller(
        self,
        name: str,
        category: str,
        *,
        settlement_bank_code: str,
        settlement_account_number: str,
        fee_plan: str = "online",
    ) -> BillerOut:
        """Register a biller (a simulated utility, settled like a merchant); the same name
        answers the same biller."""
        call = p.register_biller(
            name, category, settlement_bank_code, settlement_account_number, fee_plan
        )
        return await self._payments(call)

    async def payments_biller(self, biller_id: int) -> BillerOut:
        """A biller (NotFound if there is none)."""
        return await self._payments(p.biller(biller_id))

    async def payments_lookup_bills(self, biller_id: int, account_number: str) -> list[BillOut]:
        """The customer's open bills at the biller, oldest first ([] when all are paid)."""
        answer: BillsOut = await self._payments(p.lookup_bills(biller_id, account_number))
        return answer.bills

    async def payments_bill(self, bill_id: int) -> BillOut:
        """A bill, with what is paid and what is outstanding."""
        return await self._payments(p.bill(bill_id))

    async def payments_pay_bill(
        self,
        bill_id: int,
        user_id: int,
        *,
        amount_fen: int | None = None,
        request_id: str | None = None,
        card_id: int | None = None,
        grant_id: int | None = None,
    ) -> BillPaymentOut:
        """Pay a bill (all that is outstanding, or `amount_fen`) from the wallet, a bound card
        (`card_id`) or a family grant the user is the member of (`grant_id`); idempotent by
        `request_id`."""
        call = p.pay_bill(bill_id, user_id, amount_fen, request_id, card_id, grant_id)
        return await self._payments(call)

    async def payments_bill_payment(self, bill_payment_id: int) -> BillPaymentOut:
        """A bill payment (a failed one with its `failure_code`)."""
        return await self._payments(p.bill_payment(bill_payment_id))

    async def payments_grant_family(
        self, payer_id: int, member_id: int, monthly_limit_fen: int
    ) -> FamilyGrantOut:
        """Let the member spend up to `monthly_limit_fen` of the payer's money a month; the
        same grant again answers it."""
        return await self._payments(p.grant_family(payer_id, member_id, monthly_limit_fen))

    async def payments_family_grants(
        self, *, payer_id: int | None = None, member_id: int | None = None
    ) -> list[FamilyGrantOut]:
        """The grants a user gives (`payer_id`) or holds (`member_id`), oldest first."""
        answer: FamilyGrantsOut = await self._payments(p.family_grants(payer_id, member_id))
        return answer.grants

    async def payments_family_grant(self, grant_id: int) -> FamilyGrantOut:
        """A family grant, with what is left of this month's limit."""
        return await self._payments(p.family_grant(grant_id))

    async def payments_pay_family(
        self, grant_id: int, member_id: int, order_id: int, *, campaign_id: int | None = None
    ) -> PaymentOut:
        """The member pays an order with the payer's money, within the monthly limit; paying
        a paid order again answers its payment."""
        return await self._payments(p.pay_family(grant_id, member_id, order_id, campaign_id))

    async def payments_family_statement(
        self, grant_id: int, payer_id: int, *, month: str | None = None
    ) -> FamilyStatementOut:
        """The payer's statement of a grant for `month` (YYYY-MM, Beijing time; default this
        month), reconciled against the ledger."""
        return await self._payments(p.family_statement(grant_id, payer_id, month))

    async def payments_revoke_family(self, grant_id: int, payer_id: int) -> FamilyGrantOut:
        """Revoke a grant (its payer only); the unused limit goes back to the payer."""
        return await self._payments(p.revoke_family(grant_id, payer_id))

    async def _payments(self, call: p.PaymentsCall) -> Any:
        headers = p.headers(call)
        response = await self._request(
            call.method, call.path, params=call.params, content=call.content, headers=headers
        )
        return c.decode(call.decoder, response)

    # -- transport -----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send with bounded retries; return a 2xx response or raise the mapped error.

        Retrying a POST is safe: transfers and accounts are idempotent by id (a replayed event
        answers `exists`, never applies twice), and the Idempotency-Key lets the server replay
        its original answer. 503/429 mean nothing was applied; a network error may hide a
        request that was applied, which is exactly the case those two guarantees cover.
        """
        if self._closed:
            raise ClientClosedError("the client is closed")
        for attempt in range(self.retries + 1):
            retry_after_s: float | None = None
            try:
                response = await self._http.request(
                    method, path, params=params, content=content, headers=headers
                )
            except c.RETRY_EXCEPTIONS as exc:
                if attempt >= self.retries:
                    raise NetworkError(f"{method} {path}: {exc!r}") from exc
            else:
                if response.status_code not in c.RETRY_STATUSES:
                    return c.check(response)
                error = c.api_error(response)
                if attempt >= self.retries:
                    raise error
                assert isinstance(error, BusyError)
                retry_after_s = error.retry_after_s
            await asyncio.sleep(
                c.backoff_s(attempt, self._backoff_s, self._backoff_max_s, retry_after_s)
            )
        raise AssertionError("unreachable: the last attempt returns or raises")


class _AsyncBatcher:
    """Group batching for one create endpoint.

    The first call to find the batcher idle starts a drain task: it lingers a moment (so
    coroutines arriving together share the request), then sends up to batch_max queued events
    per request, one request at a time, until the queue is empty; calls that arrive while a
    request is in flight ride in the next one. Each caller awaits its own future.
    """

    def __init__(self, client: AsyncClient, path: str, batch_max: int, linger_s: float) -> None:
        self._client = client
        self._path = path
        self._batch_max = batch_max
        self._linger_s = linger_s
        self._pending: deque[tuple[msgspec.Struct, asyncio.Future[str]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.requests = 0  # POSTs sent (for tests and curiosity)

    async def submit(self, form: msgspec.Struct) -> str:
        if self._closed:
            raise ClientClosedError("the client is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self._pending.append((form, future))
        if self._task is None:
            self._task = loop.create_task(self._drain())
        # Awaiting the future directly: if this caller is cancelled, the future is cancelled
        # too and the drain task skips the event if it has not been sent yet.
        return await future

    async def _drain(self) -> None:
        try:
            if self._linger_s > 0:
                await asyncio.sleep(self._linger_s)
            while self._pending:
                batch: list[tuple[msgspec.Struct, asyncio.Future[str]]] = []
                while self._pending and len(batch) < self._batch_max:
                    form, future = self._pending.popleft()
                    if not future.cancelled():
                        batch.append((form, future))
                if batch:
                    await self._send(batch)
                    # Let the callers just answered run first: most submit their next event
                    # at once, and it should ride in the next request rather than find this
                    # task gone and wait out a fresh linger (measured: 9 -> ~60 events/POST).
                    await asyncio.sleep(0)
        finally:
            # Single-threaded loop: no submit can run between the last emptiness check and
            # here, so a call queued after this point starts a fresh drain task.
            self._task = None
            while self._pending:  # only when the drain itself was cancelled
                _, future = self._pending.popleft()
                if not future.done():
                    future.set_exception(ClientClosedError("the batcher was cancelled"))

    async def _send(self, batch: list[tuple[msgspec.Struct, asyncio.Future[str]]]) -> None:
        self.requests += 1
        try:
            results = await self._client._post_forms(self._path, [form for form, _ in batch])
        except BaseException as exc:
            # Every caller of the batch learns why; nothing may wait forever.
            error = exc if isinstance(exc, Exception) else ClientClosedError("cancelled")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result.result)

    async def close(self) -> None:
        """Refuse new calls, and wait until the calls already queued have been sent."""
        self._closed = True
        task = self._task
        if task is not None:
            await asyncio.shield(task)
