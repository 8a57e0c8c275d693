"""The marketplace's runs: matching reservations at an opening, the close, the maturity, tick.

Every run is idempotent and resumable. Its transfers have deterministic ids (a redone batch is
answered `exists`), its decisions are saved before it acts on them (the close's launch-or-fail
and raised amount, the maturity's amount due), and each purchase's row advances only after
its batch is committed in the ledger; a run killed anywhere is simply run again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from formicary.ledger import LedgerError, Transfer, TransferFlags, TransferResult
from formicary.wealth.chains import chain_verdict, link, ns_of
from formicary.wealth.errors import (
    BooksMismatch,
    InsufficientFunds,
    InvalidRequest,
    IssuerShortfall,
    LedgerUnavailable,
    NotDue,
    NotOnSale,
    SoldOut,
    StandardRedemptionTooLate,
)
from formicary.wealth.ledger_ids import (
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
    Product,
    ProductStatus,
    Purchase,
    PurchaseStatus,
    Reservation,
    ReservationStatus,
    TickReport,
)
from formicary.wealth.store import NewNotice
from formicary.wealth.terms import yield_percent

if TYPE_CHECKING:
    from formicary.wealth.market import Marketplace, Progress

__all__ = ["close_sale", "fill_notice", "match_reservations", "mature", "tick"]

_POST = int(TransferFlags.POST_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
_BALANCING_DEBIT = int(TransferFlags.BALANCING_DEBIT)
_SETTLED = (
    PurchaseStatus.POSTED,
    PurchaseStatus.VOIDED,
    PurchaseStatus.PAID,
    PurchaseStatus.REINVEST_DUE,
    PurchaseStatus.REINVESTED,
    PurchaseStatus.REINVEST_FAILED,
)


# --------------------------------------------------------------------- matching


def match_reservations(market: Marketplace, product_id: str) -> MatchReport:
    with market.run_lock(product_id), market.match_lock():
        product = market.product(product_id)
        terms = product.terms
        if product.status != ProductStatus.LISTED:
            return MatchReport(product_id, [], [], 0)
        if product.matched:  # once per opening
            return MatchReport(product_id, [], [], market.remaining_fen(product_id))
        now = market.clock_ns()
        if now < ns_of(terms.sale_open):
            raise NotDue(f"the sale of {product_id} opens at {terms.sale_open}")
        filled: list[tuple[int, int]] = []
        skipped: list[tuple[int, str]] = []
        if now < ns_of(terms.sale_close):
            candidates = market.store.matching_reservations(
                terms.term_days, terms.yield_bp, now, market.config.match_reservations_max
            )
            for reservation in candidates:
                if market.remaining_fen(product_id) == 0:
                    break
                bought, why = _fill(market, product, reservation)
                if bought:
                    filled.append((reservation.reservation_no, bought))
                else:
                    skipped.append((reservation.reservation_no, why))
        market.store.update_product(product_id, [ProductStatus.LISTED], matched=True)
        return MatchReport(product_id, filled, skipped, market.remaining_fen(product_id))


def _fill(market: Marketplace, product: Product, reservation: Reservation) -> tuple[int, str]:
    """Buy what the reservation still wants of the product, up to what remains; (fen bought,
    or 0 and why not). The rest of a partly filled reservation stays open."""
    pid = product.product_id
    terms = product.terms
    no = reservation.reservation_no
    request_id = f"reservation-{no}"
    if market.store.purchase_by_key(pid, reservation.user_id, request_id) is not None:
        return 0, "bought by an earlier run of this opening"
    for _attempt in range(market.config.match_attempts_max):
        current = market.store.reservation(no)
        assert current is not None
        open_fen = current.open_fen
        remaining = market.remaining_fen(pid)
        if open_fen == 0:
            return 0, "nothing open"
        if remaining == 0:
            return 0, "sold out"
        try:
            source = market.source_for(current.source_kind, current.source_ref)
        except InvalidRequest as error:
            _skip(market, product, current, min(open_fen, remaining), str(error))
            return 0, str(error)
        capacity = source.capacity_fen()
        fill = min(open_fen, remaining)
        if capacity is not None and capacity < fill:
            # The fund's T+0 limits cap what one purchase may redeem now: buy up to them
            # (the rest stays open), unless that is below the minimum purchase.
            if capacity < terms.min_purchase_fen and capacity != remaining:
                _skip(
                    market,
                    product,
                    current,
                    fill,
                    f"the funding source can pay at most {capacity} fen now"
                    f" (the fund's instant-redemption limits), under the minimum purchase"
                    f" {terms.min_purchase_fen}",
                )
                return 0, f"funding source capacity {capacity} fen"
            fill = capacity
        if fill < terms.min_purchase_fen and fill != remaining:
            return 0, f"{open_fen} fen open is below the minimum purchase {terms.min_purchase_fen}"
        notice = fill_notice(product, current, fill, open_fen - fill)
        try:
            market._purchase(
                pid, current.user_id, fill, source, request_id, current.payout, no, [notice]
            )
        except SoldOut:
            continue  # manual buyers took some meanwhile: look again
        except NotOnSale as error:
            return 0, str(error)
        except (InsufficientFunds, InvalidRequest, StandardRedemptionTooLate) as error:
            _skip(market, product, current, fill, str(error))
            return 0, str(error)
        return fill, ""
    return 0, "other buyers kept taking the remaining size"


def _skip(
    market: Marketplace, product: Product, reservation: Reservation, fill: int, why: str
) -> None:
    """Tell the user the reservation could not buy this product (it stays open)."""
    pid = product.product_id
    no = reservation.reservation_no
    skip = NewNotice(
        f"skip:{no}:{pid}",
        reservation.user_id,
        "reservation_skipped",
        pid,
        no,
        fill,
        f"reservation {no} could not buy {product.terms.name} ({pid}): {why}; it stays open",
    )
    market.store.notify([skip], market.clock_ns())


def fill_notice(product: Product, r: Reservation, fill_fen: int, rest_fen: int) -> NewNotice:
    terms = product.terms
    pid = product.product_id
    no = r.reservation_no
    bought = (
        f"reservation {no} bought {_yuan(fill_fen)} yuan of {terms.name} ({pid},"
        f" {terms.term_days} days at {yield_percent(terms.yield_bp)}%)"
    )
    if rest_fen:
        kind = "reservation_partly_filled"
        message = f"{bought}; {_yuan(rest_fen)} yuan stays reserved"
    else:
        kind = "reservation_filled"
        message = f"{bought}: filled"
    return NewNotice(f"fill:{no}:{pid}", r.user_id, kind, pid, no, fill_fen, message)


# --------------------------------------------------------------------- close


def close_sale(market: Marketplace, product_id: str, progress: Progress) -> CloseReport:
    store = market.store
    with market.run_lock(product_id):
        product = market.product(product_id)
        terms = product.terms
        no = product.product_no
        settled = 0
        if product.status == ProductStatus.LISTED:
            if market.clock_ns() < ns_of(terms.sale_close):
                raise NotDue(f"the sale of {product_id} closes at {terms.sale_close}")
            _stop_sale(market, product)
            # After the sweep no purchase can land: every written-ahead one has its outcome.
            market.resolve_submitted(product_id)
            _, raised = store.sum_purchases(product_id, [PurchaseStatus.RESERVED])
            _check_reserved(market, product, raised)
            launch = raised >= terms.launch_min_fen()
            status = ProductStatus.CLOSING_LAUNCH if launch else ProductStatus.CLOSING_FAIL
            store.update_product(
                product_id, [ProductStatus.LISTED], status=status, raised_fen=raised, matched=True
            )
            product = market.product(product_id)
        if product.status in (ProductStatus.CLOSING_LAUNCH, ProductStatus.CLOSING_FAIL):
            launch = product.status == ProductStatus.CLOSING_LAUNCH
            settled = _settle(market, product, launch, progress)
            raised = product.raised_fen or 0
            if launch and raised:
                handover = Transfer(
                    id=run_transfer_id(RunKind.HANDOVER, no),
                    debit_account_id=account_id(AccountKind.ESCROW, no),
                    credit_account_id=market.issuer_account_id(terms.issuer_id),
                    amount=raised,
                    ledger=market.config.money_ledger,
                    code=Code.HANDOVER,
                )
                market.submit_run_transfers([handover], "handover of the raise")
            final = ProductStatus.LAUNCHED if launch else ProductStatus.FAILED
            store.update_product(product_id, [product.status], status=final)
            product = market.product(product_id)
        count, _ = store.sum_purchases(product_id, _SETTLED)
        return CloseReport(
            product_id=product_id,
            launched=product.status
            in (ProductStatus.LAUNCHED, ProductStatus.MATURING, ProductStatus.MATURED),
            raised_fen=product.raised_fen or 0,
            min_raise_fen=terms.launch_min_fen(),
            purchases=count,
            settled=settled,
        )


def _stop_sale(market: Marketplace, product: Product) -> None:
    """Sweep what remains of the quota back to QUOTA_SIZE: a balancing transfer moves all that
    is available, so from here on every purchase fails in the ledger (`exceeds_credits` when
    nothing remained: sold out, nothing to sweep)."""
    no = product.product_no
    sweep = Transfer(
        id=run_transfer_id(RunKind.SWEEP, no),
        debit_account_id=account_id(AccountKind.QUOTA_REMAINING, no),
        credit_account_id=account_id(AccountKind.QUOTA_SIZE, no),
        amount=product.terms.size_fen,
        ledger=market.config.quota_ledger,
        code=Code.SWEEP,
        flags=_BALANCING_DEBIT,
    )
    market.submit_run_transfers([sweep], "close sweep", tolerated=[TransferResult.EXCEEDS_CREDITS])


def _check_reserved(market: Marketplace, product: Product, reserved_fen: int) -> None:
    """The state file's reserved purchases must be exactly the ledger's pending ones."""
    no = product.product_no
    escrow, remaining = market.ledger.lookup_accounts(
        [account_id(AccountKind.ESCROW, no), account_id(AccountKind.QUOTA_REMAINING, no)]
    )
    available = remaining.credits_posted - remaining.debits_posted - remaining.debits_pending
    if (escrow.credits_pending, remaining.debits_pending, available) != (
        reserved_fen,
        reserved_fen,
        0,
    ):
        raise BooksMismatch(
            f"{product.product_id}: the state file holds {reserved_fen} fen reserved, the ledger"
            f" {escrow.credits_pending} pending in escrow, {remaining.debits_pending} in quota,"
            f" {available} still available"
        )


def _settle(market: Marketplace, product: Product, launch: bool, progress: Progress) -> int:
    """Post (launch) or void (failure) every reserved purchase, a batch per commit. The quota
    leg is posted either way: the quota a failed sale took stays taken, so QUOTA_REMAINING
    never regains room after the sweep and no late purchase can slip in."""
    store = market.store
    pid = product.product_id
    total, _ = store.sum_purchases(pid, [PurchaseStatus.RESERVED])
    done = settled = 0
    batch = market.config.settle_batch_purchases
    while page := store.purchases(product_id=pid, statuses=[PurchaseStatus.RESERVED], limit=batch):
        chains = [_settle_chain(p, launch) for p in page]
        with market.fund_guard(page):
            results = _submit_chains(market, chains, "close")
            _check_chains(page, chains, results)
            if not launch:
                # Voided fund redemptions give the fund's T+0 limits back, under the same
                # gate as the voids (the fund's snapshot sees both or neither).
                market.release_fund_holds(page)
        notices = [_settle_notice(product, p, launch) for p in page]
        new = PurchaseStatus.POSTED if launch else PurchaseStatus.VOIDED
        settled += store.advance_purchases(
            [(p.purchase_no, PurchaseStatus.RESERVED, new, None) for p in page],
            notices,
            market.clock_ns(),
        )
        done += len(page)
        progress("close", done, total)
    return settled


def _settle_chain(p: Purchase, launch: bool) -> list[Transfer]:
    key = purchase_key(p.product_id, p.user_id, p.request_id)
    quota = purchase_transfer_id(key, PurchaseLeg.QUOTA)
    chain = [_finish(purchase_transfer_id(key, PurchaseLeg.POST_QUOTA), quota, _POST)]
    for i, leg in enumerate(p.source_legs):
        if launch:
            chain.append(
                _finish(purchase_transfer_id(key, PurchaseLeg.POST_SOURCE + i), leg, _POST)
            )
        else:
            chain.append(
                _finish(purchase_transfer_id(key, PurchaseLeg.VOID_SOURCE + i), leg, _VOID)
            )
    return link(chain)


def _finish(transfer_id: int, pending_id: int, flag: int) -> Transfer:
    """Post or void a whole pending transfer (amount 0: all of it; accounts, ledger and code
    come from the pending one)."""
    return Transfer(
        id=transfer_id,
        debit_account_id=0,
        credit_account_id=0,
        amount=0,
        ledger=0,
        code=0,
        flags=flag,
        pending_id=pending_id,
    )


def _settle_notice(product: Product, p: Purchase, launch: bool) -> NewNotice:
    terms = product.terms
    if launch:
        message = (
            f"{terms.name} ({product.product_id}) launched: your {_yuan(p.amount_fen)} yuan earns"
            f" {yield_percent(terms.yield_bp)}% from {terms.value_day()} to"
            f" {terms.maturity_day()}; interest at maturity"
            f" {_yuan(terms.interest_for(p.amount_fen))} yuan"
        )
        return NewNotice(
            f"confirmed:{p.purchase_no}",
            p.user_id,
            "purchase_confirmed",
            product.product_id,
            p.reservation_no,
            p.amount_fen,
            message,
        )
    message = (
        f"{terms.name} ({product.product_id}) did not launch: {_yuan(product.raised_fen or 0)}"
        f" yuan was raised, below the {_yuan(terms.launch_min_fen())} yuan minimum;"
        f" your {_yuan(p.amount_fen)} yuan is released"
        + ("; your reservation is open again for it" if p.reservation_no is not None else "")
    )
    return NewNotice(
        f"released:{p.purchase_no}",
        p.user_id,
        "purchase_released",
        product.product_id,
        p.reservation_no,
        p.amount_fen,
        message,
    )


# --------------------------------------------------------------------- maturity


def mature(market: Marketplace, product_id: str, progress: Progress) -> MaturityReport:
    store = market.store
    with market.run_lock(product_id):
        product = market.product(product_id)
        terms = product.terms
        no = product.product_no
        if product.status == ProductStatus.FAILED:
            raise InvalidRequest(f"{product_id} did not launch: nothing matures")
        if product.status in (
            ProductStatus.LISTED,
            ProductStatus.CLOSING_LAUNCH,
            ProductStatus.CLOSING_FAIL,
        ):
            raise NotDue(f"{product_id} has not launched yet")
        paid = 0
        if product.status == ProductStatus.LAUNCHED:
            if market.today() < terms.maturity_day():
                raise NotDue(f"{product_id} matures on {terms.maturity_day()}")
            principal, interest = _owed(market, product)
            due = principal + interest
            _repay(market, product, due)
            store.update_product(
                product_id, [ProductStatus.LAUNCHED], status=ProductStatus.MATURING, due_fen=due
            )
            product = market.product(product_id)
        if product.status == ProductStatus.MATURING:
            paid = _pay(market, product, progress)
            _reinvest(market, product, progress)
            (escrow,) = market.ledger.lookup_accounts([account_id(AccountKind.ESCROW, no)])
            left = escrow.credits_posted - escrow.debits_posted
            if left != 0 or escrow.credits_pending or escrow.debits_pending:
                raise BooksMismatch(f"{product_id}: escrow holds {left} fen after paying out")
            store.update_product(product_id, [ProductStatus.MATURING], status=ProductStatus.MATURED)
        principal_paid, interest_paid = _paid(market, product)
        reinvested, _ = store.sum_purchases(product_id, [PurchaseStatus.REINVESTED])
        failed, _ = store.sum_purchases(product_id, [PurchaseStatus.REINVEST_FAILED])
        return MaturityReport(product_id, principal_paid, interest_paid, paid, reinvested, failed)


def _owed(market: Marketplace, product: Product) -> tuple[int, int]:
    """(principal, interest) owed on the product's posted purchases (each purchase's interest
    truncated to the fen on its own)."""
    principal = interest = 0
    after = 0
    while page := market.store.purchases(
        product_id=product.product_id, statuses=[PurchaseStatus.POSTED], after_no=after
    ):
        for p in page:
            principal += p.amount_fen
            interest += product.terms.interest_for(p.amount_fen)
        after = page[-1].purchase_no
    if principal != product.raised_fen:
        raise BooksMismatch(
            f"{product.product_id}: {principal} fen posted, but {product.raised_fen} was raised"
        )
    return principal, interest


def _paid(market: Marketplace, product: Product) -> tuple[int, int]:
    principal = interest = 0
    after = 0
    statuses = [
        PurchaseStatus.PAID,
        PurchaseStatus.REINVEST_DUE,
        PurchaseStatus.REINVESTED,
        PurchaseStatus.REINVEST_FAILED,
    ]
    while page := market.store.purchases(
        product_id=product.product_id, statuses=statuses, after_no=after
    ):
        for p in page:
            principal += p.amount_fen
            interest += p.interest_fen or 0
        after = page[-1].purchase_no
    return principal, interest


def _repay(market: Marketplace, product: Product, due_fen: int) -> None:
    """ISSUER -> ESCROW, principal plus interest, all or nothing."""
    if due_fen == 0:
        return
    issuer = market.issuer_account_id(product.terms.issuer_id)
    repayment = Transfer(
        id=run_transfer_id(RunKind.REPAYMENT, product.product_no),
        debit_account_id=issuer,
        credit_account_id=account_id(AccountKind.ESCROW, product.product_no),
        amount=due_fen,
        ledger=market.config.money_ledger,
        code=Code.REPAYMENT,
    )
    results = market.submit_run_transfers(
        [repayment], "repayment", tolerated=[TransferResult.EXCEEDS_CREDITS]
    )
    if results[0] == TransferResult.EXCEEDS_CREDITS:
        (account,) = market.ledger.lookup_accounts([issuer])
        held = account.credits_posted - account.debits_posted - account.debits_pending
        raise IssuerShortfall(
            f"{product.terms.issuer_id} owes {due_fen} fen for {product.product_id} but its"
            f" account holds {held}; nothing was paid, run the maturity again once it is funded"
        )


def _pay(market: Marketplace, product: Product, progress: Progress) -> int:
    """ESCROW -> payout wallet: principal and interest, one linked chain per purchase."""
    store = market.store
    pid = product.product_id
    terms = product.terms
    money = market.config.money_ledger
    escrow = account_id(AccountKind.ESCROW, product.product_no)
    total, _ = store.sum_purchases(pid, [PurchaseStatus.POSTED])
    done = paid = 0
    batch = market.config.settle_batch_purchases
    while page := store.purchases(product_id=pid, statuses=[PurchaseStatus.POSTED], limit=batch):
        chains = []
        changes = []
        notices = []
        for p in page:
            key = purchase_key(p.product_id, p.user_id, p.request_id)
            interest = terms.interest_for(p.amount_fen)
            wallet = p.payout.wallet_account_id
            chain = [
                Transfer(
                    id=purchase_transfer_id(key, PurchaseLeg.PRINCIPAL),
                    debit_account_id=escrow,
                    credit_account_id=wallet,
                    amount=p.amount_fen,
                    ledger=money,
                    code=Code.PAYOUT_PRINCIPAL,
                    user_data_64=p.purchase_no,
                )
            ]
            if interest:
                chain.append(
                    Transfer(
                        id=purchase_transfer_id(key, PurchaseLeg.INTEREST),
                        debit_account_id=escrow,
                        credit_account_id=wallet,
                        amount=interest,
                        ledger=money,
                        code=Code.PAYOUT_INTEREST,
                        user_data_64=p.purchase_no,
                    )
                )
            chains.append(link(chain))
            new = PurchaseStatus.REINVEST_DUE if p.payout.into_fund else PurchaseStatus.PAID
            changes.append((p.purchase_no, PurchaseStatus.POSTED, new, interest))
            notices.append(
                NewNotice(
                    f"matured:{p.purchase_no}",
                    p.user_id,
                    "purchase_matured",
                    pid,
                    p.reservation_no,
                    p.amount_fen + interest,
                    f"{terms.name} ({pid}) matured: {_yuan(p.amount_fen)} yuan principal and"
                    f" {_yuan(interest)} yuan interest paid to your wallet"
                    + (", to be reinvested in the money-market fund" if p.payout.into_fund else ""),
                )
            )
        results = _submit_chains(market, chains, "maturity payouts")
        _check_chains(page, chains, results)
        paid += store.advance_purchases(changes, notices, market.clock_ns())
        done += len(page)
        progress("pay", done, total)
    return paid


def _reinvest(market: Marketplace, product: Product, progress: Progress) -> None:
    """Subscribe each `into_fund` payout into the user's fund holding, from the wallet it was
    just paid to (`MoneyMarketFund.subscribe`, idempotent by its request id): the fund's own
    rules apply (confirmation day, earning from the next trading day, its snapshot gate)."""
    from formicary.funds import FundError
    from formicary.funds import LedgerUnavailable as FundLedgerUnavailable

    store = market.store
    pid = product.product_id
    statuses = [PurchaseStatus.REINVEST_DUE]
    total, _ = store.sum_purchases(pid, statuses)
    done = 0
    while page := store.purchases(product_id=pid, statuses=statuses):
        for p in page:
            fund = market.fund
            if fund is None:
                raise InvalidRequest(f"{pid}: payouts are due into the fund, but none is open")
            amount = p.amount_fen + (p.interest_fen or 0)
            request_id = f"wealth-{product.product_no}-{p.purchase_no}"
            try:
                fund.subscribe(p.user_id, p.payout.wallet_account_id, amount, request_id)
            except FundLedgerUnavailable as error:
                raise LedgerUnavailable(
                    f"the fund did not take the reinvestment: {error}"
                ) from error
            except (FundError, ValueError) as error:
                # The money stays in the wallet (it was paid there first); say so.
                notice = NewNotice(
                    f"reinvest:{p.purchase_no}",
                    p.user_id,
                    "reinvest_failed",
                    pid,
                    p.reservation_no,
                    amount,
                    f"{_yuan(amount)} yuan from {pid} stays in your wallet: the fund refused"
                    f" the subscription ({error})",
                )
                new = PurchaseStatus.REINVEST_FAILED
            else:
                notice = NewNotice(
                    f"reinvest:{p.purchase_no}",
                    p.user_id,
                    "reinvested",
                    pid,
                    p.reservation_no,
                    amount,
                    f"{_yuan(amount)} yuan from {pid} was reinvested in the money-market fund",
                )
                new = PurchaseStatus.REINVESTED
            store.advance_purchases(
                [(p.purchase_no, PurchaseStatus.REINVEST_DUE, new, None)],
                [notice],
                market.clock_ns(),
            )
            done += 1
            progress("reinvest", done, total)


# --------------------------------------------------------------------- chains


def _submit_chains(market: Marketplace, chains: list[list[Transfer]], what: str) -> list[str]:
    events = [t for chain in chains for t in chain]
    try:
        return market.ledger.create_transfers(events)
    except LedgerError as error:
        raise LedgerUnavailable(f"the ledger did not take the {what}: {error}") from error


def _check_chains(page: list[Purchase], chains: list[list[Transfer]], results: list[str]) -> None:
    """Every chain must be applied now or before; anything else is a broken book."""
    start = 0
    for p, chain in zip(page, chains, strict=True):
        verdict = chain_verdict(results[start : start + len(chain)])
        start += len(chain)
        if verdict is not None:
            index, result = verdict
            raise BooksMismatch(
                f"purchase {p.purchase_no}: the ledger refused leg {index}: {result}"
            )


# --------------------------------------------------------------------- tick


def tick(market: Marketplace) -> TickReport:
    store = market.store
    now = market.clock_ns()
    expired = 0
    for r in store.due_to_expire(now, market.config.match_reservations_max):
        notice = NewNotice(
            f"expired:{r.reservation_no}",
            r.user_id,
            "reservation_expired",
            None,
            r.reservation_no,
            r.amount_fen - r.filled_fen,
            f"reservation {r.reservation_no} expired; {_yuan(r.filled_fen)} of"
            f" {_yuan(r.amount_fen)} yuan was bought",
        )
        expired += store.end_reservation(r.reservation_no, ReservationStatus.EXPIRED, [notice], now)
    matched: list[MatchReport] = []
    closed: list[CloseReport] = []
    matured: list[MaturityReport] = []
    shortfalls: list[str] = []
    for product in store.products([ProductStatus.LISTED]):
        terms = product.terms
        if not product.matched and ns_of(terms.sale_open) <= now < ns_of(terms.sale_close):
            matched.append(match_reservations(market, product.product_id))
        if now >= ns_of(terms.sale_close):
            closed.append(close_sale(market, product.product_id, _quiet))
    for product in store.products([ProductStatus.CLOSING_LAUNCH, ProductStatus.CLOSING_FAIL]):
        closed.append(close_sale(market, product.product_id, _quiet))
    today = market.today()
    for product in store.products([ProductStatus.LAUNCHED, ProductStatus.MATURING]):
        if today >= product.terms.maturity_day():
            try:
                matured.append(mature(market, product.product_id, _quiet))
            except IssuerShortfall as error:
                shortfalls.append(f"{product.product_id}: {error}")
    return TickReport(matched, closed, matured, shortfalls, expired)


def _quiet(phase: str, done: int, total: int) -> None:
    """No progress output from the scheduler's runs."""


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100:,}.{fen % 100:02d}"
