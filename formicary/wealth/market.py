"""The fixed-term product marketplace: issuers, listings, purchases and reservations.

Money moves only as ledger transfers (the chart of accounts is in `ledger_ids` and
docs/wealth.md); this module keeps the marketplace's own state in a `WealthStore`.

- **No oversell, enforced by the ledger.** Listing a product credits its QUOTA_REMAINING
  account (debits must not exceed credits) with the size. Every purchase is one linked chain:
  a pending QUOTA_REMAINING -> QUOTA_SUBSCRIBED leg for the amount, then the funding source's
  pending legs into the product's ESCROW. The ledger counts pending debits against the limit,
  so however many threads buy at once, the reservations of a product never exceed its size,
  and a purchase that would is refused whole (its money legs roll back with the quota leg).
  No lock is taken for this.
- **Idempotent by request id.** A purchase's transfer ids derive from (product, user, request
  id); its row is written ahead of the ledger call, so a retried request, and a close or a
  maturity run resumed after a crash, finds what was done and never applies it twice.
- **The sale stops in the ledger.** The close run first sweeps what remains of the quota back
  to QUOTA_SIZE (a balancing transfer), so no purchase can land after the close has counted.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

import msgspec

from formicary.ledger import (
    BATCH_EVENTS_MAX,
    Account,
    AccountFlags,
    LedgerError,
    LedgerService,
    Transfer,
    TransferFlags,
    TransferResult,
)
from formicary.wealth import runs
from formicary.wealth.chains import chain_verdict, link, ns_of
from formicary.wealth.errors import (
    BooksMismatch,
    InsufficientFunds,
    InvalidRequest,
    IssuerRefused,
    LedgerUnavailable,
    NotFound,
    NotOnSale,
    SoldOut,
    WealthError,
)
from formicary.wealth.funding import (
    FundingSource,
    FundSource,
    Payout,
    WalletSource,
    fund_redemption,
)
from formicary.wealth.issuers import Issuer, Vetting, VettingPolicy, vet
from formicary.wealth.ledger_ids import (
    SOURCE_LEGS_MAX,
    AccountKind,
    Code,
    PurchaseLeg,
    RunKind,
    account_id,
    purchase_key,
    purchase_transfer_id,
    run_transfer_id,
)
from formicary.wealth.records import (
    CloseReport,
    MatchReport,
    MaturityReport,
    Notification,
    Product,
    ProductStatus,
    Purchase,
    PurchaseStatus,
    Reservation,
    ReservationStatus,
    TickReport,
)
from formicary.wealth.store import NewNotice, WealthStore
from formicary.wealth.terms import (
    BEIJING,
    MIN_PURCHASE_FEN_MIN,
    SIZE_FEN_MAX,
    TERM_DAYS_MAX,
    YIELD_BP_MAX,
    ProductTerms,
)

if TYPE_CHECKING:  # the fund is optional; importing it pulls numpy in
    from formicary.funds import MoneyMarketFund

__all__ = ["MarketConfig", "Marketplace", "Progress"]

Progress = Callable[[str, int, int], None]

_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_PENDING = int(TransferFlags.PENDING)
_NS_PER_DAY = 86_400 * 1_000_000_000
_REQUEST = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
_OK = TransferResult.OK
_EXISTS = TransferResult.EXISTS
_NOT_FOUND = frozenset(
    {
        TransferResult.DEBIT_ACCOUNT_NOT_FOUND,
        TransferResult.CREDIT_ACCOUNT_NOT_FOUND,
        TransferResult.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
        TransferResult.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
        TransferResult.DEBIT_ACCOUNT_ALREADY_CLOSED,
        TransferResult.CREDIT_ACCOUNT_ALREADY_CLOSED,
    }
)


def _no_progress(phase: str, done: int, total: int) -> None:
    """The default progress callback: report nothing."""


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """The marketplace's ledgers and limits."""

    money_ledger: int = 156  # CNY fen, shared with wallets and the fund's cash
    # Units: fen of a product's size. A ledger of its own keeps the quota out of the money
    # ledger's trial balance (it is a limit, not money).
    quota_ledger: int = 900_101
    vetting: VettingPolicy = field(default_factory=VettingPolicy)
    # Purchases per ledger batch in the close and maturity runs: one commit each, and the
    # unit a crashed run redoes (answered `exists`).
    settle_batch_purchases: int = 900  # x (1 + SOURCE_LEGS_MAX) legs <= BATCH_EVENTS_MAX
    # The ledger engine keeps every transfer in memory (~200 bytes): 200k purchases of up to
    # eight transfers each (legs, posts, payouts) is ~320 MB, the most one product may cost.
    purchases_per_product_max: int = 200_000
    reservations_per_user_max: int = 20
    reservation_days_default: int = 30
    reservation_days_max: int = 180
    # Reservations one product's opening looks at; the rest wait for the next product.
    match_reservations_max: int = 10_000
    # Tries per reservation when manual buyers keep taking the remaining size meanwhile.
    match_attempts_max: int = 8

    def __post_init__(self) -> None:
        if self.money_ledger == self.quota_ledger or min(self.money_ledger, self.quota_ledger) < 1:
            raise ValueError("money and quota ledgers must be distinct and positive")
        chain_max = 1 + SOURCE_LEGS_MAX
        if not 0 < self.settle_batch_purchases <= BATCH_EVENTS_MAX // chain_max:
            raise ValueError(f"settle_batch_purchases must be 1..{BATCH_EVENTS_MAX // chain_max}")
        for name in (
            "purchases_per_product_max",
            "reservations_per_user_max",
            "reservation_days_default",
            "reservation_days_max",
            "match_reservations_max",
            "match_attempts_max",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.reservation_days_default > self.reservation_days_max:
            raise ValueError("reservation_days_default must not exceed reservation_days_max")


class Marketplace:
    """The fixed-term marketplace on a running `LedgerService` (see the module docstring).

    Thread-safe. `fund` (optional) is the money-market fund that reservations may draw on and
    maturities may reinvest into. `clock_ns` is wall-clock time (tests move it by hand).
    """

    def __init__(
        self,
        ledger: LedgerService,
        store: WealthStore,
        config: MarketConfig | None = None,
        *,
        fund: MoneyMarketFund | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.config = config or MarketConfig()
        self.fund = fund
        self._clock_ns = clock_ns
        # One run (match, close, maturity) per product at a time, and one matcher overall so
        # that two products opening together cannot both fill the same reservation's rest.
        self._locks_guard = threading.Lock()
        self._run_locks: dict[str, threading.Lock] = {}
        self._match_lock = threading.Lock()

    # ----------------------------------------------------------------- start-up

    def start(self) -> None:
        """Open every known ledger account (idempotent) and settle what a crash left open:
        purchases written ahead whose ledger outcome was never recorded."""
        issuers = self.store.issuers()
        if issuers:
            self._create_accounts([self._issuer_account(number) for number, _ in issuers])
        for product in self.store.products([ProductStatus.LISTED]):
            self._open_product(product)
        self.resolve_submitted()

    def resolve_submitted(self, product_id: str | None = None) -> int:
        """Give each `submitted` purchase the outcome the ledger has for it: reserved if its
        quota leg exists, else forgotten. Call with nothing in flight for these products (at
        start, or after the close's sweep stopped the sale). Returns how many were resolved."""
        resolved = 0
        after = 0
        now = self._clock_ns()
        while True:
            page = self.store.purchases(
                product_id=product_id, statuses=[PurchaseStatus.SUBMITTED], after_no=after
            )
            if not page:
                return resolved
            ids = [_quota_leg_id(p) for p in page]
            found = {t.id for t in self.ledger.lookup_transfers(ids)}
            for p, leg in zip(page, ids, strict=True):
                if leg in found:
                    self.store.mark_reserved(p.purchase_no, self._fill_notices(p), now)
                else:
                    self.store.delete_submitted(p.purchase_no)
                resolved += 1
            after = page[-1].purchase_no

    def _fill_notices(self, p: Purchase) -> list[NewNotice]:
        """The notice a reservation's fill would have written had the process not died."""
        if p.reservation_no is None:
            return []
        reservation = self.store.reservation(p.reservation_no)
        assert reservation is not None
        rest = reservation.open_fen - p.amount_fen  # before this fill is counted
        product = self.product(p.product_id)
        return [runs.fill_notice(product, reservation, p.amount_fen, max(rest, 0))]

    # ----------------------------------------------------------------- issuers

    def register_issuer(self, issuer: Issuer) -> Vetting:
        """Record an issuer (or its new figures) and open its settlement account; returns the
        verdict its products would get now (a failing issuer is recorded, but cannot list)."""
        if not isinstance(issuer, Issuer):
            raise InvalidRequest("register an Issuer")
        number = self.store.upsert_issuer(issuer)
        self._create_accounts([self._issuer_account(number)])
        return self.vet_issuer(issuer.issuer_id)

    def whitelist(self, issuer_id: str, note: str = "") -> None:
        """Admit an institution outside the bank, AMC and P&C insurer categories."""
        self._issuer(issuer_id)
        self.store.set_whitelisted(issuer_id, True, note[:500], self._clock_ns())

    def unwhitelist(self, issuer_id: str) -> None:
        self.store.set_whitelisted(issuer_id, False, "", self._clock_ns())

    def vet_issuer(self, issuer_id: str) -> Vetting:
        _, issuer = self._issuer(issuer_id)
        whitelisted = self.store.is_whitelisted(issuer_id)
        return vet(issuer, whitelisted=whitelisted, policy=self.config.vetting)

    def issuer(self, issuer_id: str) -> Issuer:
        return self._issuer(issuer_id)[1]

    def issuer_account_id(self, issuer_id: str) -> int:
        """The issuer's settlement account (money): it receives the raise at launch and must
        hold principal plus interest at maturity (the issuer funds it from outside)."""
        return account_id(AccountKind.ISSUER, self._issuer(issuer_id)[0])

    def _issuer(self, issuer_id: str) -> tuple[int, Issuer]:
        found = self.store.issuer(issuer_id) if isinstance(issuer_id, str) else None
        if found is None:
            raise NotFound(f"no issuer {issuer_id!r}")
        return found

    def _issuer_account(self, number: int) -> Account:
        return Account(
            id=account_id(AccountKind.ISSUER, number),
            ledger=self.config.money_ledger,
            code=Code.ISSUER_ACCOUNT,
            flags=_DMNEC,
            user_data_64=number,
        )

    # ----------------------------------------------------------------- products

    def list_product(self, terms: ProductTerms) -> Product:
        """List a product (idempotent by product id). Refused with IssuerRefused, naming the
        rule, when its issuer fails vetting. If its sale window is open already, matching
        reservations buy at once."""
        if not isinstance(terms, ProductTerms):
            raise InvalidRequest("list a ProductTerms")
        terms = terms.checked()
        verdict = self.vet_issuer(terms.issuer_id)
        if not verdict.passed:
            raise IssuerRefused(verdict.rule, verdict.reason)
        now = self._clock_ns()
        if now >= ns_of(terms.sale_close) and self.store.product(terms.product_id) is None:
            raise InvalidRequest(f"the sale window of {terms.product_id} has ended already")
        product, new = self.store.insert_product(terms, now)
        if not new and product.terms != terms:
            raise InvalidRequest(f"product {terms.product_id!r} was listed with other terms")
        if product.status == ProductStatus.LISTED:
            self._open_product(product)
            if not product.matched and ns_of(terms.sale_open) <= now < ns_of(terms.sale_close):
                self.match_reservations(terms.product_id)
        return self.product(terms.product_id)

    def product(self, product_id: str) -> Product:
        found = self.store.product(product_id) if isinstance(product_id, str) else None
        if found is None:
            raise NotFound(f"no product {product_id!r}")
        return found

    def products(self, statuses: Sequence[str] | None = None) -> list[Product]:
        return self.store.products(statuses)

    def remaining_fen(self, product_id: str) -> int:
        """What may still be bought (the ledger's QUOTA_REMAINING, pending purchases taken)."""
        product = self.product(product_id)
        remaining = account_id(AccountKind.QUOTA_REMAINING, product.product_no)
        accounts = self.ledger.lookup_accounts([remaining])
        if not accounts:
            return 0
        (a,) = accounts
        return a.credits_posted - a.debits_posted - a.debits_pending

    def escrow_account_id(self, product_id: str) -> int:
        return account_id(AccountKind.ESCROW, self.product(product_id).product_no)

    def _open_product(self, product: Product) -> None:
        """The product's four accounts and the listing transfer of its size (idempotent)."""
        c = self.config
        no = product.product_no
        money, quota = c.money_ledger, c.quota_ledger
        code = Code.PRODUCT_ACCOUNT

        def acct(kind: AccountKind, ledger: int, flags: int = 0) -> Account:
            return Account(
                id=account_id(kind, no), ledger=ledger, code=code, flags=flags, user_data_64=no
            )

        self._create_accounts(
            [
                acct(AccountKind.ESCROW, money, _DMNEC),
                acct(AccountKind.QUOTA_SIZE, quota),
                acct(AccountKind.QUOTA_REMAINING, quota, _DMNEC),
                acct(AccountKind.QUOTA_SUBSCRIBED, quota),
            ]
        )
        listing = Transfer(
            id=run_transfer_id(RunKind.LISTING, no),
            debit_account_id=account_id(AccountKind.QUOTA_SIZE, no),
            credit_account_id=account_id(AccountKind.QUOTA_REMAINING, no),
            amount=product.terms.size_fen,
            ledger=quota,
            code=Code.LISTING,
        )
        self.submit_run_transfers([listing], "listing")

    # ----------------------------------------------------------------- purchases

    def purchase(
        self,
        product_id: str,
        user_id: str,
        amount_fen: int,
        source: FundingSource,
        request_id: str,
        *,
        payout: Payout | None = None,
    ) -> Purchase:
        """Reserve `amount_fen` of a product on sale, paid from `source` (pending until the
        close). At least the product's minimum purchase, unless it takes all that remains.
        `payout` defaults to the wallet a WalletSource pays from. A fund source by standard
        (T+1) redemption is refused with StandardRedemptionTooLate if the sale closes before
        the day the redemption pays. A retried request answers the purchase it made
        (`replayed`); the same request id for another purchase is refused."""
        return self._purchase(product_id, user_id, amount_fen, source, request_id, payout, None)

    def purchases(
        self,
        *,
        product_id: str | None = None,
        user_id: str | None = None,
        after_no: int = 0,
        limit: int = 1_000,
    ) -> list[Purchase]:
        if not 0 < limit <= 10_000:
            raise InvalidRequest("limit must be 1..10000")
        return self.store.purchases(
            product_id=product_id, user_id=user_id, after_no=after_no, limit=limit
        )

    def _purchase(
        self,
        product_id: str,
        user_id: str,
        amount_fen: int,
        source: FundingSource,
        request_id: str,
        payout: Payout | None,
        reservation_no: int | None,
        notices: Sequence[NewNotice] = (),
    ) -> Purchase:
        _check_user(user_id)
        _check_request(request_id)
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool):
            raise InvalidRequest("amount must be an integer number of fen")
        if not 0 < amount_fen <= SIZE_FEN_MAX:
            raise InvalidRequest(f"amount must be 1 to {SIZE_FEN_MAX} fen, got {amount_fen}")
        product = self.product(product_id)
        terms = product.terms
        payout = self._payout_for(source, payout)
        existing = self.store.purchase_by_key(product_id, user_id, request_id)
        if existing is not None:
            return _replay(existing, amount_fen, source, payout)
        now = self._clock_ns()
        if product.status != ProductStatus.LISTED or now >= ns_of(terms.sale_close):
            raise NotOnSale(f"the sale of {product_id} closed at {terms.sale_close}")
        if now < ns_of(terms.sale_open):
            raise NotOnSale(f"the sale of {product_id} opens at {terms.sale_open}")
        if amount_fen > terms.size_fen:
            raise SoldOut(f"{product_id} has a size of {terms.size_fen} fen")
        if amount_fen < terms.min_purchase_fen:
            remaining = self.remaining_fen(product_id)
            # Remaining size only shrinks during the sale, so a purchase of exactly what
            # remained either takes the last lot or finds it gone (the ledger decides).
            if amount_fen != remaining:
                raise InvalidRequest(
                    f"the minimum purchase of {product_id} is {terms.min_purchase_fen} fen"
                    f" (less only to take all that remains, {remaining} fen)"
                )
        key = purchase_key(product_id, user_id, request_id)
        escrow = account_id(AccountKind.ESCROW, product.product_no)
        legs = source.legs(amount_fen, escrow, f"{key:028x}", pending=True, code=Code.PURCHASE)
        _check_legs(legs, escrow, amount_fen, self.config.money_ledger)
        if isinstance(source, FundSource):
            # A standard (T+1) redemption's cash must arrive by the sale's close day.
            source.check_arrival(legs, terms.sale_close)
        quota = Transfer(
            id=purchase_transfer_id(key, PurchaseLeg.QUOTA),
            debit_account_id=account_id(AccountKind.QUOTA_REMAINING, product.product_no),
            credit_account_id=account_id(AccountKind.QUOTA_SUBSCRIBED, product.product_no),
            amount=amount_fen,
            ledger=self.config.quota_ledger,
            code=Code.PURCHASE,
            flags=_PENDING,
        )
        chain = link([quota, *legs])
        number = self.store.insert_purchase(
            product_id=product_id,
            user_id=user_id,
            request_id=request_id,
            amount_fen=amount_fen,
            source_kind=source.kind,
            source_ref=source.ref,
            source_legs=[t.id for t in legs],
            payout=payout,
            reservation_no=reservation_no,
            now_ns=now,
            purchases_max=self.config.purchases_per_product_max,
        )
        if number is None:
            existing = self.store.purchase_by_key(product_id, user_id, request_id)
            if existing is not None:
                return _replay(existing, amount_fen, source, payout)
            raise SoldOut(
                f"{product_id} has reached its cap of"
                f" {self.config.purchases_per_product_max} purchases"
            )
        called = False
        try:
            # The source books what it must count (the fund's T+0 limits) around the call,
            # and gives it back unless the chain was applied now.
            with source.hold(legs) as hold:
                called = True
                results = self.ledger.create_transfers(chain)
                if all(r == _OK for r in results):
                    hold.applied()
        except LedgerError as error:
            # The ledger applied nothing: forget the row so the request id can be retried.
            self.store.delete_submitted(number)
            raise LedgerUnavailable(f"the ledger did not take the purchase: {error}") from error
        except BaseException:
            if not called:  # refused before the ledger call (a fund limit): nothing applied
                self.store.delete_submitted(number)
            raise  # else the row stays `submitted`: the close or start() resolves it
        verdict = chain_verdict(results)
        if verdict is None:
            self.store.mark_reserved(number, notices, self._clock_ns())
            stored = self.store.purchase_by_key(product_id, user_id, request_id)
            assert stored is not None
            return stored
        self.store.delete_submitted(number)
        index, result = verdict
        raise self._refusal(product, index, result)

    def _refusal(self, product: Product, index: int, result: str) -> WealthError:
        pid = product.product_id
        if result in (TransferResult.EXCEEDS_CREDITS, TransferResult.EXCEEDS_DEBITS):
            if index == 0:
                if self._clock_ns() >= ns_of(product.terms.sale_close):
                    return NotOnSale(f"the sale of {pid} has closed")
                return SoldOut(f"only {self.remaining_fen(pid)} fen of {pid} remain")
            return InsufficientFunds(f"the funding source cannot pay ({result} on leg {index})")
        if result.startswith("exists"):
            return InvalidRequest(f"this request id was used for a different purchase ({result})")
        if result in _NOT_FOUND:
            if index == 0:
                return NotOnSale(f"{pid} is not open for purchases yet ({result})")
            return InvalidRequest(f"the funding account cannot take part: {result} (leg {index})")
        return WealthError(f"refused by the ledger: {result} (leg {index})")

    def _payout_for(self, source: FundingSource, payout: Payout | None) -> Payout:
        if payout is None:
            if not isinstance(source, WalletSource):
                raise InvalidRequest("name the payout wallet for a purchase not paid by wallet")
            payout = Payout(source.account_id)
        if not isinstance(payout, Payout):
            raise InvalidRequest("payout must be a Payout")
        if payout.into_fund and self.fund is None:
            raise InvalidRequest("this marketplace has no money-market fund to reinvest into")
        return payout

    def source_for(self, kind: str, ref: str) -> FundingSource:
        """The funding source a stored (kind, ref) names: a wallet, or the fund (by instant
        or standard redemption)."""
        if kind == "wallet" and ref.isdigit():
            return WalletSource(int(ref), ledger=self.config.money_ledger)
        redemption = fund_redemption(kind)
        if redemption is not None:
            if self.fund is None:
                raise InvalidRequest("this marketplace has no money-market fund")
            return FundSource(self.fund, ref, redemption=redemption)
        raise InvalidRequest(f"unknown funding source {kind!r}")

    # ----------------------------------------------------------------- reservations

    def reserve(
        self,
        user_id: str,
        request_id: str,
        *,
        term_min_days: int,
        term_max_days: int,
        min_yield_bp: int,
        amount_fen: int,
        source: FundingSource,
        payout: Payout | None = None,
        valid_days: int | None = None,
    ) -> Reservation:
        """An auto-reservation (预约): whenever a product with a term in [min, max] days and a
        yield of at least `min_yield_bp` opens, buy up to the rest of `amount_fen` from
        `source`, first come first served (see docs/wealth.md). Idempotent by request id."""
        c = self.config
        _check_user(user_id)
        _check_request(request_id)
        _check_int("term_min_days", term_min_days, 1, TERM_DAYS_MAX)
        _check_int("term_max_days", term_max_days, term_min_days, TERM_DAYS_MAX)
        _check_int("min_yield_bp", min_yield_bp, 0, YIELD_BP_MAX)
        _check_int("amount_fen", amount_fen, MIN_PURCHASE_FEN_MIN, SIZE_FEN_MAX)
        days = c.reservation_days_default if valid_days is None else valid_days
        _check_int("valid_days", days, 1, c.reservation_days_max)
        self.source_for(source.kind, source.ref)  # it must be one a later opening can rebuild
        payout = self._payout_for(source, payout)
        now = self._clock_ns()
        reservation, new = self.store.insert_reservation(
            user_id=user_id,
            request_id=request_id,
            term_min_days=term_min_days,
            term_max_days=term_max_days,
            min_yield_bp=min_yield_bp,
            amount_fen=amount_fen,
            source_kind=source.kind,
            source_ref=source.ref,
            payout=payout,
            now_ns=now,
            expires_ns=now + days * _NS_PER_DAY,
            per_user_max=c.reservations_per_user_max,
        )
        if reservation is None:
            raise InvalidRequest(f"at most {c.reservations_per_user_max} open reservations a user")
        if not new:
            asked = (term_min_days, term_max_days, min_yield_bp, amount_fen, source.kind)
            held = (
                reservation.term_min_days,
                reservation.term_max_days,
                reservation.min_yield_bp,
                reservation.amount_fen,
                reservation.source_kind,
            )
            if (
                asked != held
                or source.ref != reservation.source_ref
                or payout != reservation.payout
            ):
                raise InvalidRequest("this request id was used for a different reservation")
            return msgspec.structs.replace(reservation, replayed=True)
        return reservation

    def reservation(self, reservation_no: int) -> Reservation:
        found = self.store.reservation(reservation_no)
        if found is None:
            raise NotFound(f"no reservation {reservation_no}")
        return found

    def reservations(self, user_id: str | None = None) -> list[Reservation]:
        return self.store.reservations(user_id=user_id)

    def cancel_reservation(self, user_id: str, reservation_no: int) -> Reservation:
        """Stop a reservation; what it bought already stays bought."""
        reservation = self.store.reservation(reservation_no)
        if reservation is None or reservation.user_id != user_id:
            raise NotFound(f"user {user_id!r} has no reservation {reservation_no}")
        notice = NewNotice(
            dedupe=f"cancelled:{reservation_no}",
            user_id=user_id,
            kind="reservation_cancelled",
            product_id=None,
            reservation_no=reservation_no,
            amount_fen=reservation.amount_fen - reservation.filled_fen,
            message=f"reservation {reservation_no} cancelled;"
            f" {reservation.filled_fen} of {reservation.amount_fen} fen was bought",
        )
        self.store.end_reservation(
            reservation_no, ReservationStatus.CANCELLED, [notice], self._clock_ns()
        )
        return self.reservation(reservation_no)

    def match_reservations(self, product_id: str) -> MatchReport:
        """Buy a product that is on sale for the reservations that match it, first come first
        served (done at its opening by `list_product` or `tick`; safe to call again)."""
        return runs.match_reservations(self, product_id)

    # ----------------------------------------------------------------- runs

    def close_sale(self, product_id: str, progress: Progress = _no_progress) -> CloseReport:
        """At or after the sale's close: stop the sale, decide launch or failure, and post or
        void every purchase; a launch hands the raise to the issuer. Idempotent, resumable."""
        return runs.close_sale(self, product_id, progress)

    def mature(self, product_id: str, progress: Progress = _no_progress) -> MaturityReport:
        """On or after the maturity date: take principal plus interest from the issuer's
        account and pay every purchase (to its wallet, or on into the fund). Idempotent,
        resumable; IssuerShortfall (nothing paid) if the issuer's account cannot repay."""
        return runs.mature(self, product_id, progress)

    def tick(self) -> TickReport:
        """The scheduler's step: expire reservations, match products that opened, close
        those whose sale ended, pay those that matured."""
        return runs.tick(self)

    # ----------------------------------------------------------------- notifications, books

    def notifications(
        self, user_id: str | None = None, *, after_seq: int = 0, limit: int = 100
    ) -> list[Notification]:
        """The notification outbox, oldest first (a reader keeps the last `seq` it saw)."""
        if not 0 < limit <= 10_000:
            raise InvalidRequest("limit must be 1..10000")
        return self.store.notifications(user_id=user_id, after_seq=after_seq, limit=limit)

    def books(self, product_id: str) -> dict[str, int]:
        """A product's ledger balances next to the state file's figures."""
        product = self.product(product_id)
        no = product.product_no
        escrow, remaining, subscribed = self.ledger.lookup_accounts(
            [
                account_id(AccountKind.ESCROW, no),
                account_id(AccountKind.QUOTA_REMAINING, no),
                account_id(AccountKind.QUOTA_SUBSCRIBED, no),
            ]
        )
        _, reserved = self.store.sum_purchases(product_id, [PurchaseStatus.RESERVED])
        return {
            "escrow_posted_fen": escrow.credits_posted - escrow.debits_posted,
            "escrow_pending_fen": escrow.credits_pending - escrow.debits_pending,
            "quota_remaining_fen": remaining.credits_posted
            - remaining.debits_posted
            - remaining.debits_pending,
            "quota_subscribed_fen": subscribed.credits_posted + subscribed.credits_pending,
            "reserved_fen": reserved,
            "raised_fen": product.raised_fen or 0,
        }

    # ----------------------------------------------------------------- helpers for runs

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock_ns() / 1e9, BEIJING)

    def today(self) -> date:
        return self.now().date()

    def clock_ns(self) -> int:
        return self._clock_ns()

    @contextmanager
    def run_lock(self, product_id: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._run_locks.setdefault(product_id, threading.Lock())
        with lock:
            yield

    @contextmanager
    def match_lock(self) -> Iterator[None]:
        with self._match_lock:
            yield

    def fund_guard(self, purchases: Sequence[Purchase]) -> AbstractContextManager[None]:
        """The fund's snapshot gate when a batch touches fund shares (posts move them)."""
        if self.fund is not None and any(fund_redemption(p.source_kind) for p in purchases):
            return self.fund.gate.order()
        return nullcontext()

    def release_fund_holds(self, purchases: Sequence[Purchase]) -> int:
        """After their legs were voided: give back the fund's T+0 limits that fund-funded
        purchases held, and let the fund forget their redemptions, instant or standard
        (idempotent; the fund checks each leg is voided in the ledger)."""
        if self.fund is None:
            return 0
        legs = [leg for p in purchases if fund_redemption(p.source_kind) for leg in p.source_legs]
        return self.fund.release_voided(legs) if legs else 0

    def submit_run_transfers(
        self, transfers: Sequence[Transfer], what: str, tolerated: Sequence[str] = ()
    ) -> list[str]:
        """Submit a run's own transfers: each must be ok or exists (done before), or one of
        `tolerated`; anything else means the books are not what the run expects."""
        try:
            results = self.ledger.create_transfers(transfers)
        except LedgerError as error:
            raise LedgerUnavailable(f"the ledger did not take the {what}: {error}") from error
        bad = {r for r in results if r not in (_OK, _EXISTS, *tolerated)}
        if bad:
            raise BooksMismatch(f"the ledger refused the {what}: {sorted(bad)}")
        return results

    def _create_accounts(self, accounts: list[Account]) -> None:
        for start in range(0, len(accounts), BATCH_EVENTS_MAX):
            try:
                results = self.ledger.create_accounts(accounts[start : start + BATCH_EVENTS_MAX])
            except LedgerError as error:
                raise LedgerUnavailable(f"cannot open ledger accounts: {error}") from error
            bad = {r for r in results if r not in ("ok", "exists")}
            if bad:
                raise BooksMismatch(f"cannot open the marketplace's accounts: {sorted(bad)}")


def _quota_leg_id(p: Purchase) -> int:
    return purchase_transfer_id(
        purchase_key(p.product_id, p.user_id, p.request_id), PurchaseLeg.QUOTA
    )


def _replay(existing: Purchase, amount_fen: int, source: FundingSource, payout: Payout) -> Purchase:
    same = (
        existing.amount_fen == amount_fen
        and existing.source_kind == source.kind
        and existing.source_ref == source.ref
        and existing.payout == payout
    )
    if not same:
        raise InvalidRequest("this request id was used for a different purchase")
    if existing.status == PurchaseStatus.SUBMITTED:
        # Written ahead and not yet answered by the ledger: another call of this process is
        # still submitting it (a crash's leftovers are resolved by start()).
        raise LedgerUnavailable("this purchase is being submitted; retry with the same id")
    return msgspec.structs.replace(existing, replayed=True)


def _check_legs(legs: Sequence[Transfer], escrow: int, amount_fen: int, money: int) -> None:
    """A source's legs must be pending, within the limit, and deliver the amount to escrow."""
    if not 0 < len(legs) <= SOURCE_LEGS_MAX:
        raise InvalidRequest(f"a funding source gives 1 to {SOURCE_LEGS_MAX} legs")
    if not all(t.flags & _PENDING for t in legs):
        raise InvalidRequest("a funding source's legs must be pending reservations")
    arriving = sum(t.amount for t in legs if t.credit_account_id == escrow and t.ledger == money)
    if arriving != amount_fen:
        raise InvalidRequest("a funding source's legs must deliver the amount to the escrow")


def _check_user(user_id: object) -> None:
    if not isinstance(user_id, str) or not 0 < len(user_id) <= 128:
        raise InvalidRequest("user id must be a string of 1 to 128 characters")


def _check_request(request_id: object) -> None:
    if not isinstance(request_id, str) or not _REQUEST.fullmatch(request_id):
        raise InvalidRequest("request id must be 1 to 128 printable ASCII characters")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be an integer from {low} to {high}, got {value!r}")
