"""The synchronous, thread-safe client.

`Client.create_transfer()` and `Client.create_account()` batch automatically: concurrent calls
from many threads are coalesced into one POST of up to `batch_max` events ("group batching",
as TigerBeetle's clients do). The rule is simple: at most one request per endpoint is in
flight; calls that arrive meanwhile queue up, and the next request carries all of them. The
more load, the bigger the batches, so throughput grows with concurrency instead of collapsing
into one round trip (and one server commit) per transfer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
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

__all__ = ["Client"]


class Client:
    """A synchronous Formicary client; share one instance between all threads of a process.

    ``with Client("http://127.0.0.1:8000") as client: client.create_transfer(t)``

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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        c.check_options(batch_max, linger_s, retries)
        self.batch_max = batch_max
        self.retries = retries
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        # One httpx.Client = one keep-alive connection pool, shared (thread-safely) by all calls.
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"user-agent": c.USER_AGENT, **(headers or {})},
        )
        self._accounts = _Batcher(self, "/v1/accounts", batch_max, linger_s)
        self._transfers = _Batcher(self, "/v1/transfers", batch_max, linger_s)
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Send what is already queued, then close the connections. Idempotent."""
        if self._closed:
            return
        # Drain the batchers first: their queued calls still need the connection pool.
        self._accounts.close()
        self._transfers.close()
        self._closed = True
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------------

    def create_transfer(self, transfer: TransferIn) -> str:
        """Create one transfer, auto-batched with concurrent calls; returns its result code.

        Raises InvalidEventError (a ValueError) for a malformed transfer or one flagged
        `linked`: a chain must be sent whole, as one list, with create_transfers().
        """
        c.check_single(transfer, TransferIn)
        return self._transfers.submit(c.TRANSFER_CODEC.encode_form(transfer))

    def create_account(self, account: AccountIn) -> str:
        """Create one account, auto-batched with concurrent calls; returns its result code."""
        c.check_single(account, AccountIn)
        return self._accounts.submit(c.ACCOUNT_CODEC.encode_form(account))

    def create_transfers(
        self, transfers: Sequence[TransferIn], *, idempotency_key: str | None = None
    ) -> list[CreateResultOut]:
        """Create transfers in order; one result per transfer (index into `transfers`).

        Lists longer than batch_max go as several requests, cut only between linked chains.
        With an idempotency_key, request i of n > 1 carries "{key}.{i}".
        """
        return self._create_many("/v1/transfers", transfers, c.TRANSFER_CODEC, idempotency_key)

    def create_accounts(
        self, accounts: Sequence[AccountIn], *, idempotency_key: str | None = None
    ) -> list[CreateResultOut]:
        """Create accounts in order; one result per account (index into `accounts`)."""
        return self._create_many("/v1/accounts", accounts, c.ACCOUNT_CODEC, idempotency_key)

    def _create_many(
        self,
        path: str,
        events: Sequence[c.E],
        codec: c.EventCodec[c.E],
        idempotency_key: str | None,
    ) -> list[CreateResultOut]:
        # Encode (and type-check) everything before sending anything, and plan every chunk
        # first, so that a bad event or an over-long chain fails the call with nothing applied.
        forms = [codec.encode_form(e) for e in events]
        plan = list(c.chunks(forms, self.batch_max))
        results: list[CreateResultOut] = []
        for number, (offset, chunk) in enumerate(plan):
            key = idempotency_key
            if key is not None and len(plan) > 1:
                key = f"{key}.{number}"
            results.extend(self._post_forms(path, chunk, key, offset))
        return results

    def _post_forms(
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
        response = self._request("POST", path, content=body, headers=headers)
        return c.results_of(response, len(forms), offset)

    # -- reads ---------------------------------------------------------------------------------

    def get_account(self, account_id: int | str) -> AccountOut | None:
        """The account, or None when it does not exist."""
        try:
            response = self._request("GET", f"/v1/accounts/{c.path_id(account_id)}")
        except NotFound:
            return None
        return c.decode(c.ACCOUNT_DECODER, response)

    def get_transfer(self, transfer_id: int | str) -> TransferOut | None:
        """The transfer, or None when it does not exist."""
        try:
            response = self._request("GET", f"/v1/transfers/{c.path_id(transfer_id)}")
        except NotFound:
            return None
        return c.decode(c.TRANSFER_DECODER, response)

    def account_transfers(
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
        return c.decode(c.TRANSFER_PAGE_DECODER, self._request("GET", path, params=params))

    def iter_account_transfers(
        self,
        account_id: int | str,
        *,
        limit: int | None = None,
        from_: int | None = None,
        to: int | None = None,
        order: str | None = None,
    ) -> Iterator[TransferOut]:
        """Every transfer of the account, fetching page after page (`limit` per page)."""
        cursor: str | None = None
        for pages in range(1, c.PAGES_MAX + 1):
            page = self.account_transfers(
                account_id, limit=limit, cursor=cursor, from_=from_, to=to, order=order
            )
            yield from page.items
            cursor = c.next_cursor_or_stop(page, cursor, pages)
            if cursor is None:
                return

    def account_balances(
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
        return c.decode(c.BALANCE_PAGE_DECODER, self._request("GET", path, params=params))

    def iter_account_balances(
        self,
        account_id: int | str,
        *,
        limit: int | None = None,
        from_: int | None = None,
        to: int | None = None,
        order: str | None = None,
    ) -> Iterator[BalanceOut]:
        """The whole balance history of the account, page after page."""
        cursor: str | None = None
        for pages in range(1, c.PAGES_MAX + 1):
            page = self.account_balances(
                account_id, limit=limit, cursor=cursor, from_=from_, to=to, order=order
            )
            yield from page.items
            cursor = c.next_cursor_or_stop(page, cursor, pages)
            if cursor is None:
                return

    def balance(self, account_id: int | str, at: int | None = None) -> BalanceOut:
        """The account's balances now, or as of timestamp `at`; NotFound if it does not exist."""
        params = {} if at is None else {"at": str(at)}
        path = f"/v1/accounts/{c.path_id(account_id)}/balance"
        return c.decode(c.BALANCE_DECODER, self._request("GET", path, params=params))

    def trial_balance(self, ledger: int) -> TrialBalanceOut:
        """Posted and pending debit and credit totals over all accounts of a ledger."""
        path = f"/v1/ledgers/{c.path_id(ledger, 'ledger')}/trial-balance"
        return c.decode(c.TRIAL_BALANCE_DECODER, self._request("GET", path))

    def healthz(self) -> bool:
        """True when the server process answers (no retries: this is a probe)."""
        return self._probe("/healthz")

    def readyz(self) -> bool:
        """True when the server is ready to take requests (its store is open)."""
        return self._probe("/readyz")

    def _probe(self, path: str) -> bool:
        if self._closed:
            raise ClientClosedError("the client is closed")
        try:
            return self._http.get(path).is_success
        except httpx.TransportError:
            return False

    # -- the money-market fund -----------------------------------------------------------------

    def fund_subscribe(
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
        return self._fund(f.subscribe(fund_no, user_id, wallet_account_id, amount, request_id))

    def fund_redeem(
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
        return self._fund(call)

    def fund_holding(self, user_id: str, *, days: int = 30, fund_no: int = 1) -> FundHoldingOut:
        """A holder's shares and daily income over the last `days` posted days (NotFound if
        the user holds nothing)."""
        return self._fund(f.holding(fund_no, user_id, days))

    def fund_days(
        self, start: date | None = None, end: date | None = None, *, fund_no: int = 1
    ) -> list[FundDayOut]:
        """Published daily figures (万份收益, 7-day yield), oldest first."""
        answer: FundDaysOut = self._fund(f.days(fund_no, start, end))
        return answer.days

    def fund_post_income(self, day: date, income_fen: int, *, fund_no: int = 1) -> FundIncomeOut:
        """Post a day's income to every holder (idempotent; days in order)."""
        return self._fund(f.post_income(fund_no, day, income_fen))

    def fund_pay_redemptions(self, day: date, *, fund_no: int = 1) -> int:
        """Pay the standard redemptions due by `day`; returns how many were paid now."""
        answer: PayoutsOut = self._fund(f.pay_redemptions(fund_no, day))
        return answer.paid

    def fund_books(self, *, fund_no: int = 1) -> FundBooksOut:
        """Custody cash against shares outstanding."""
        return self._fund(f.books(fund_no))

    def _fund(self, call: f.FundCall) -> Any:
        headers = c.JSON_HEADERS if call.content is not None else None
        response = self._request(
            call.method, call.path, params=call.params, content=call.content, headers=headers
        )
        return c.decode(call.decoder, response)

    # -- the fixed-term marketplace -------------------------------------------------------------

    def wealth_register_issuer(
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
        return self._wealth(call)

    def wealth_list_product(
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
        return self._wealth(call)

    def wealth_product(self, product_id: str) -> ProductOut:
        """A product, its status and the size that remains."""
        return self._wealth(w.product(product_id))

    def wealth_products(self, *, status: str | None = None) -> list[ProductOut]:
        """Every product, or those of one `status` (listed, launched, failed, matured...)."""
        answer: ProductsOut = self._wealth(w.products(status))
        return answer.products

    def wealth_product_books(self, product_id: str) -> ProductBooksOut:
        """A product's ledger balances next to the marketplace's figures (`balanced`)."""
        return self._wealth(w.product_books(product_id))

    def wealth_purchases(
        self,
        *,
        product_id: str | None = None,
        user_id: str | None = None,
        after_no: int = 0,
        limit: int = 100,
    ) -> WealthPurchasesOut:
        """A page of purchases in purchase order; pass `next_after_no` as `after_no` for the
        next page (None: no more)."""
        return self._wealth(w.purchases(product_id, user_id, after_no, limit))

    def wealth_issuer(self, issuer_id: str) -> IssuerOut:
        """An issuer and its vetting verdict now."""
        return self._wealth(w.issuer(issuer_id))

    def wealth_whitelist(self, issuer_id: str, *, note: str = "") -> IssuerOut:
        """Whitelist an issuer: admits one of kind `other` (the other kinds keep their rule)."""
        return self._wealth(w.whitelist(issuer_id, note))

    def wealth_unwhitelist(self, issuer_id: str) -> IssuerOut:
        """Take an issuer off the whitelist (its listed products stay listed)."""
        return self._wealth(w.unwhitelist(issuer_id))

    def wealth_purchase(
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
        return self._wealth(call)

    def wealth_reserve(
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
        return self._wealth(call)

    def wealth_reservations(self, *, user_id: str | None = None) -> list[WealthReservationOut]:
        """Reservations, of one user or all, in reservation order."""
        answer: WealthReservationsOut = self._wealth(w.reservations(user_id))
        return answer.reservations

    def wealth_reservation(self, reservation_no: int) -> WealthReservationOut:
        """A reservation: what it has bought and whether it is still open."""
        return self._wealth(w.reservation(reservation_no))

    def wealth_cancel_reservation(self, reservation_no: int, user_id: str) -> WealthReservationOut:
        """Cancel a reservation of `user_id` (NotFound if it is not theirs); what it bought
        stays bought. Cancelling again answers it unchanged."""
        return self._wealth(w.cancel_reservation(reservation_no, user_id))

    def wealth_notifications(
        self, user_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[NotificationOut]:
        """A user's notifications after `after_seq`, oldest first."""
        answer: NotificationsOut = self._wealth(w.notifications(user_id, after_seq, limit))
        return answer.notifications

    def wealth_tick(self) -> TickOut:
        """Run what is due: expire reservations, match, close sales, pay maturities."""
        return self._wealth(w.tick())

    def _wealth(self, call: w.WealthCall) -> Any:
        headers = c.JSON_HEADERS if call.content is not None else None
        response = self._request(
            call.method, call.path, params=call.params, content=call.content, headers=headers
        )
        return c.decode(call.decoder, response)

    # -- payments ------------------------------------------------------------------------------

    def payments_register_user(self, name: str, *, identity_level: str = "basic") -> UserOut:
        """Register a user with an empty wallet; `identity_level` is unverified, basic,
        verified or full (it caps one operation)."""
        return self._payments(p.register_user(name, identity_level))

    def payments_user(self, user_id: int) -> UserOut:
        """A user (NotFound if there is none)."""
        return self._payments(p.user(user_id))

    def payments_user_wallet(self, user_id: int) -> WalletOut:
        """What the user's wallet can pay now, from the ledger."""
        return self._payments(p.user_wallet(user_id))

    def payments_bind_card(self, user_id: int, bank_code: str, card_number: str) -> CardOut:
        """Bind a card to a user (binding it again answers the same card)."""
        return self._payments(p.bind_card(user_id, bank_code, card_number))

    def payments_cards(self, user_id: int) -> list[CardOut]:
        """The user's bound cards, oldest first."""
        answer: CardsOut = self._payments(p.cards(user_id))
        return answer.cards

    def payments_top_up(
        self, user_id: int, card_id: int, amount_fen: int, *, request_id: str | None = None
    ) -> CardTransferOut:
        """Move money from a bound card into the wallet. Pass `request_id` to make your own
        retries safe; the client's retries reuse the one it sends."""
        return self._payments(p.top_up(user_id, card_id, amount_fen, request_id))

    def payments_withdraw(
        self, user_id: int, card_id: int, amount_fen: int, *, request_id: str | None = None
    ) -> CardTransferOut:
        """Move money from the wallet to a bound card (idempotent by `request_id`)."""
        return self._payments(p.withdraw(user_id, card_id, amount_fen, request_id))

    def payments_register_merchant(
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
        return self._payments(call)

    def payments_merchant(self, merchant_id: int) -> MerchantOut:
        """A merchant (NotFound if there is none)."""
        return self._payments(p.merchant(merchant_id))

    def payments_merchant_wallet(self, merchant_id: int) -> WalletOut:
        """What the merchant's wallet holds, not yet settled to its bank."""
        return self._payments(p.merchant_wallet(merchant_id))

    def payments_create_campaign(
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
        return self._payments(call)

    def payments_campaign(self, campaign_id: int) -> CampaignOut:
        """A campaign and the budget it has left (`remaining_fen`)."""
        return self._payments(p.campaign(campaign_id))

    def payments_close_campaign(self, campaign_id: int) -> CampaignClosedOut:
        """Stop a campaign's discounts and return what is left to its funder."""
        return self._payments(p.close_campaign(campaign_id))

    def payments_claim_red_packet(
        self, campaign_id: int, user_id: int, *, request_id: str | None = None
    ) -> CampaignClaimOut:
        """The user claims one packet of a red packet: its `discount_fen` goes into the
        user's wallet. One claim per user and campaign; idempotent by `request_id` (a fresh one
        when omitted, reused by the client's retries)."""
        return self._payments(p.claim_red_packet(campaign_id, user_id, request_id))

    def payments_campaign_claims(
        self, campaign_id: int, *, after_id: int = 0, limit: int = 1000
    ) -> CampaignClaimsOut:
        """A page of a campaign's red-packet claims, oldest first (failed ones too); pass
        `next_after_id` as `after_id` for the next page (None: no more)."""
        return self._payments(p.campaign_claims(campaign_id, after_id, limit))

    def payments_claim(self, claim_id: int) -> CampaignClaimOut:
        """A red-packet claim (a failed one with its `failure_code`)."""
        return self._payments(p.claim(claim_id))

    def payments_create_order(
        self, merchant_id: int, amount_fen: int, *, merchant_order_no: str, description: str = ""
    ) -> OrderOut:
        """An order to pay; the same `merchant_order_no` answers the same order."""
        call = p.create_order(merchant_id, amount_fen, merchant_order_no, description)
        return self._payments(call)

    def payments_order(self, order_id: int) -> OrderOut:
        """An order, with the id of its payment once paid."""
        return self._payments(p.order(order_id))

    def payments_quote(self, order_id: int, *, campaign_id: int | None = None) -> QuoteOut:
        """What paying the order would move: coupon, payer's part and merchant fee."""
        return self._payments(p.quote(order_id, campaign_id))

    def payments_pay(
        self,
        order_id: int,
        user_id: int,
        *,
        card_id: int | None = None,
        campaign_id: int | None = None,
    ) -> PaymentOut:
        """Pay an order from the user's wallet, or from a bound card (`card_id`); paying a paid
        order again answers its payment."""
        return self._payments(p.pay(order_id, user_id, card_id, campaign_id))

    def payments_payment(self, payment_id: int) -> PaymentOut:
        """A payment (NotFound if there is none)."""
        return self._payments(p.payment(payment_id))

    def payments_refund(
        self, payment_id: int, amount_fen: int, *, request_no: str | None = None
    ) -> RefundOut:
        """Refund part or all of a payment's order amount (idempotent by `request_no`)."""
        return self._payments(p.refund(payment_id, amount_fen, request_no))

    def payments_refunds(self, payment_id: int) -> RefundsOut:
        """The refunds of a payment and how much is refunded."""
        return self._payments(p.refunds(payment_id))

    def payments_settle(self, business_date: date) -> SettlementReportOut:
        """Run the T+1 settlement of a business day (re-runnable) and return its report."""
        return self._payments(p.settle(business_date))

    def payments_settlement(self, business_date: date) -> SettlementReportOut:
        """The settlement report of a business day."""
        return self._payments(p.settlement(business_date))

    def payments_merchant_qr(self, merchant_id: int) -> str:
        """The text of the merchant's static QR code."""
        answer: MerchantQrOut = self._payments(p.merchant_qr(merchant_id))
        return answer.qr

    def payments_pay_qr(
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
        return self._payments(call)

    def payments_issue_code(self, user_id: int) -> PaymentCodeOut:
        """A one-time payment code for the user's phone to show (valid 60 s)."""
        return self._payments(p.issue_code(user_id))

    def payments_pay_with_code(
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
        return self._payments(call)

    # -- payments: bills and family accounts

    def payments_billers(self, *, category: str | None = None) -> list[BillerOut]:
        """The billers (simulated utilities), oldest first; only one `category` (electricity,
        water, gas, phone) if given."""
        answer: BillersOut = self._payments(p.billers(category))
        return answer.billers

    def payments_register_biller(
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
        return self._payments(call)

    def payments_biller(self, biller_id: int) -> BillerOut:
        """A biller (NotFound if there is none)."""
        return self._payments(p.biller(biller_id))

    def payments_lookup_bills(self, biller_id: int, account_number: str) -> list[BillOut]:
        """The customer's open bills at the biller, oldest first ([] when all are paid)."""
        answer: BillsOut = self._payments(p.lookup_bills(biller_id, account_number))
        return answer.bills

    def payments_bill(self, bill_id: int) -> BillOut:
        """A bill, with what is paid and what is outstanding."""
        return self._payments(p.bill(bill_id))

    def payments_pay_bill(
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
        return self._payments(call)

    def payments_bill_payment(self, bill_payment_id: int) -> BillPaymentOut:
        """A bill payment (a failed one with its `failure_code`)."""
        return self._payments(p.bill_payment(bill_payment_id))

    def payments_grant_family(
        self, payer_id: int, member_id: int, monthly_limit_fen: int
    ) -> FamilyGrantOut:
        """Let the member spend up to `monthly_limit_fen` of the payer's money a month; the
        same grant again answers it."""
        return self._payments(p.grant_family(payer_id, member_id, monthly_limit_fen))

    def payments_family_grants(
        self, *, payer_id: int | None = None, member_id: int | None = None
    ) -> list[FamilyGrantOut]:
        """The grants a user gives (`payer_id`) or holds (`member_id`), oldest first."""
        answer: FamilyGrantsOut = self._payments(p.family_grants(payer_id, member_id))
        return answer.grants

    def payments_family_grant(self, grant_id: int) -> FamilyGrantOut:
        """A family grant, with what is left of this month's limit."""
        return self._payments(p.family_grant(grant_id))

    def payments_pay_family(
        self, grant_id: int, member_id: int, order_id: int, *, campaign_id: int | None = None
    ) -> PaymentOut:
        """The member pays an order with the payer's money, within the monthly limit; paying
        a paid order again answers its payment."""
        return self._payments(p.pay_family(grant_id, member_id, order_id, campaign_id))

    def payments_family_statement(
        self, grant_id: int, payer_id: int, *, month: str | None = None
    ) -> FamilyStatementOut:
        """The payer's statement of a grant for `month` (YYYY-MM, Beijing time; default this
        month), reconciled against the ledger."""
        return self._payments(p.family_statement(grant_id, payer_id, month))

    def payments_revoke_family(self, grant_id: int, payer_id: int) -> FamilyGrantOut:
        """Revoke a grant (its payer only); the unused limit goes back to the payer."""
        return self._payments(p.revoke_family(grant_id, payer_id))

    def _payments(self, call: p.PaymentsCall) -> Any:
        headers = p.headers(call)
        response = self._request(
            call.method, call.path, params=call.params, content=call.content, headers=headers
        )
        return c.decode(call.decoder, response)

    # -- transport -----------------------------------------------------------------------------

    def _request(
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
                response = self._http.request(
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
            time.sleep(c.backoff_s(attempt, self._backoff_s, self._backoff_max_s, retry_after_s))
        raise AssertionError("unreachable: the last attempt returns or raises")


class _Slot:
    """One auto-batched call: its encoded event, and a lock its thread parks on."""

    __slots__ = ("error", "form", "lead", "lock", "result")

    def __init__(self, form: msgspec.Struct) -> None:
        self.form = form
        # A bare lock is the cheapest one-shot signal in CPython: held from birth, released by
        # whoever answers the call (or promotes it to leader).
        self.lock = threading.Lock()
        self.lock.acquire()
        self.result: str | None = None
        self.error: BaseException | None = None
        self.lead = False

    def outcome(self) -> str:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class _Batcher:
    """Group batching for one create endpoint, without a background thread.

    The first caller to find the batcher idle becomes the *leader*: it lingers a moment (so
    callers arriving together share the request), takes up to batch_max queued events, sends
    them, and answers every caller of that batch. Callers arriving while a request is in
    flight queue and park. When the leader is done and events are queued, it promotes the
    oldest queued caller to lead the next request, so no caller ever does I/O for longer than
    its own request, and at most one request per endpoint is in flight.
    """

    def __init__(self, client: Client, path: str, batch_max: int, linger_s: float) -> None:
        self._client = client
        self._path = path
        self._batch_max = batch_max
        self._linger_s = linger_s
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[_Slot] = deque()
        self._busy = False  # a leader is lingering or sending
        self._closed = False
        self.requests = 0  # POSTs sent (for tests and curiosity)

    def submit(self, form: msgspec.Struct) -> str:
        slot = _Slot(form)
        with self._cond:
            if self._closed:
                raise ClientClosedError("the client is closed")
            self._pending.append(slot)
            lead = not self._busy
            if lead:
                self._busy = True
            elif len(self._pending) >= self._batch_max:
                self._cond.notify()  # a full batch: cut the leader's linger short
        if not lead:
            slot.lock.acquire()  # parked until answered, or promoted to leader
            if not slot.lead:
                return slot.outcome()
        # A leader's own slot is the oldest queued one, so it rides in the batch it sends.
        self._lead(idle=lead)
        return slot.outcome()

    def _lead(self, *, idle: bool) -> None:
        try:
            with self._cond:
                # Linger only when we started from idle: after a request, whatever queued
                # during its round trip is already a batch, and waiting more is pure latency.
                if idle and self._linger_s > 0:
                    self._cond.wait_for(
                        lambda: len(self._pending) >= self._batch_max or self._closed,
                        timeout=self._linger_s,
                    )
                count = min(self._batch_max, len(self._pending))
                batch = [self._pending.popleft() for _ in range(count)]
                self.requests += 1
            self._send(batch)
        finally:
            with self._cond:
                if self._pending:
                    successor = self._pending[0]
                    successor.lead = True
                    successor.lock.release()
                else:
                    self._busy = False
                    self._cond.notify_all()  # close() may be waiting for the drain

    def _send(self, batch: list[_Slot]) -> None:
        try:
            results = self._client._post_forms(self._path, [slot.form for slot in batch])
        except BaseException as exc:
            # Every caller of the batch learns why; nothing may stay parked forever.
            for slot in batch:
                slot.error = exc
                slot.lock.release()
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and friends still stop the leader's thread
            return
        for slot, result in zip(batch, results, strict=True):
            slot.result = result.result
            slot.lock.release()

    def close(self) -> None:
        """Refuse new calls, and wait until the calls already queued have been sent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            # Bounded: every queued request ends within its timeout and retry budget.
            self._cond.wait_for(lambda: not self._busy)
