"""The money-market fund service: holders, subscriptions, redemptions, and its ledger accounts.

Money and shares move only as ledger transfers, each order one `linked` chain across the money
ledger (fen) and the fund's share ledger (fen-shares; NAV 1.00, so one fen-share is one fen):

| order | chain (debit -> credit) |
|---|---|
| subscribe | user wallet -> CUSTODY (money); ISSUANCE -> holder (shares) |
| instant redemption (T+0) | holder -> ISSUANCE (shares); CUSTODY -> user wallet (money) |
| standard redemption (T+1) | holder -> ISSUANCE; CUSTODY -> PAYABLE, to the wallet on pay day |

So CUSTODY's cash always equals the shares outstanding (ISSUANCE's net debit): `reconcile`.
An order's transfer ids derive from (user, request id): a retried request is applied once, and
the answer says it was already done. The fund's other state is rebuilt from the ledger on start:
the recent orders (which shares do not earn yet, or still earn after leaving) and the day's
instant-redemption totals that the limits count.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import msgspec

from formicary.funds import ledger_ids as ids
from formicary.funds.calendar import BEIJING, CalendarError, TradingCalendar
from formicary.funds.ledger_ids import AccountKind, Code, TransferKind
from formicary.funds.store import FundStore
from formicary.ledger import (
    AMOUNT_MAX,
    BATCH_EVENTS_MAX,
    Account,
    AccountFlags,
    LedgerError,
    LedgerService,
    PendingStatus,
    Transfer,
    TransferFlags,
    TransferResult,
)

__all__ = [
    "FundConfig",
    "FundError",
    "InstantHold",
    "InstantLimitExceeded",
    "InsufficientFunds",
    "InsufficientShares",
    "InvalidOrder",
    "LedgerUnavailable",
    "MoneyMarketFund",
    "Order",
    "SnapshotGate",
    "UnknownHolder",
]

_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST_OR_VOID = int(TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
_NS_PER_DAY = 86_400 * 1_000_000_000
# Orders older than this no longer change which shares earn: the longest exchange closure is
# ~10 days (Spring Festival), so an order's earning start or stop is at most that far ahead.
RECENT_ORDER_DAYS = 30
# How many ledger rows one page of the start-up scan of recent orders reads.
_SCAN_PAGE = 10_000


class FundError(Exception):
    """Base of the fund's errors: the order was refused and nothing was applied."""


class InvalidOrder(FundError):
    """The order itself is malformed (amount, ids)."""


class UnknownHolder(FundError):
    """The user holds no account in this fund."""


class InsufficientFunds(FundError):
    """The wallet cannot pay the subscription."""


class InsufficientShares(FundError):
    """The holder has fewer shares than the redemption asks for."""


class InstantLimitExceeded(FundError):
    """An instant (T+0) redemption is over a per-order, per-day or fund-wide limit."""


class LedgerUnavailable(FundError):
    """The ledger did not apply the order (busy or down): retry with the same request id."""


@dataclass(frozen=True, slots=True)
class FundConfig:
    """One fund's identity and limits (amounts in fen)."""

    fund_no: int = 1
    name: str = "Formicary Money Fund"
    money_ledger: int = 156  # CNY
    share_ledger: int = 900_001
    min_subscription_fen: int = 100  # 1 yuan
    instant_per_order_fen: int = 5_000_000  # 50,000 yuan
    instant_per_user_day_fen: int = 20_000_000  # 200,000 yuan
    # What the fund (or its manager's advance) can pay out instantly in one day, all users.
    instant_fund_day_fen: int = 100_000_000_000  # 1 billion yuan

    def __post_init__(self) -> None:
        if not 0 < self.fund_no <= ids.FUND_NO_MAX:
            raise ValueError(f"fund_no must be in 1..{ids.FUND_NO_MAX}")
        if self.money_ledger == self.share_ledger or min(self.money_ledger, self.share_ledger) < 1:
            raise ValueError("money and share ledgers must be distinct and positive")
        for name in (
            "min_subscription_fen",
            "instant_per_order_fen",
            "instant_per_user_day_fen",
            "instant_fund_day_fen",
        ):
            if not 0 < getattr(self, name) <= AMOUNT_MAX:
                raise ValueError(f"{name} must be in 1..{AMOUNT_MAX}")


class Order(msgspec.Struct, frozen=True):
    """The answer to an order. `replayed` is True when the request id was already applied."""

    request_id: str
    user_id: str
    kind: str  # subscribe | redeem_instant | redeem_standard
    amount_fen: int
    confirm_day: date
    # subscribe: the first day the shares earn; redeem: the first day they no longer earn.
    earning_day: date
    pay_day: date | None  # standard redemptions: the day the cash reaches the wallet
    replayed: bool


@dataclass(frozen=True, slots=True)
class _RecentOrder:
    """What the daily run and the limits need to know of an order applied lately."""

    holder_index: int
    code: int
    shares: int
    earning_day: int  # day number
    order_day: date  # Beijing calendar day the order was placed
    transfer_id: int = 0  # its share leg (names a held redemption when it is given back)


class InstantHold:
    """The hold of a redemption whose legs travel in another product's linked chain: the T+0
    limits an instant one books (`MoneyMarketFund.hold_instant`), or nothing for a standard one
    (`MoneyMarketFund.hold_standard`). Call `applied()` once the ledger applied the chain now:
    the fund then records the order; otherwise what was booked is given back when the hold
    ends."""

    __slots__ = ("_applied", "legs")

    def __init__(self, legs: Sequence[Transfer]) -> None:
        self.legs = list(legs)
        self._applied = False

    def applied(self) -> None:
        self._applied = True


class MoneyMarketFund:
    """One money-market fund on a running `LedgerService` (see the module docstring)."""

    def __init__(
        self,
        ledger: LedgerService,
        store: FundStore,
        config: FundConfig | None = None,
        *,
        calendar: TradingCalendar | None = None,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.config = config or FundConfig()
        self.calendar = calendar or TradingCalendar()
        # The ledger's clock by default: order times and ledger timestamps then agree.
        self._clock_ns = clock_ns or ledger.clock_ns
        no = self.config.fund_no
        self.custody = ids.account_id(no, AccountKind.CUSTODY)
        self.market = ids.account_id(no, AccountKind.MARKET)
        self.payable = ids.account_id(no, AccountKind.REDEMPTIONS_PAYABLE)
        self.issuance = ids.account_id(no, AccountKind.ISSUANCE)
        self.rounding = ids.account_id(no, AccountKind.ROUNDING)
        self.holder_base = ids.holder_base(no)
        # Orders pass this gate while they run; the daily run closes it while it reads the
        # register, so that every order is either wholly in the snapshot or wholly after it.
        self.gate = SnapshotGate()
        self._limits_lock = threading.Lock()
        self._recent: list[_RecentOrder] = []
        # Instant redemptions per (holder, day) and per day, including reservations in flight.
        self._instant_by_user: dict[tuple[int, date], int] = defaultdict(int)
        self._instant_by_day: dict[date, int] = defaultdict(int)

    # ----------------------------------------------------------------- start-up

    def start(self) -> None:
        """Open the fund's ledger accounts (idempotent) and rebuild its in-memory state."""
        c = self.config
        money, shares = c.money_ledger, c.share_ledger
        code = Code.FUND_ACCOUNT
        self._create_accounts(
            [
                Account(id=self.custody, ledger=money, code=code, flags=_DMNEC),
                Account(id=self.market, ledger=money, code=code),
                Account(id=self.payable, ledger=money, code=code, flags=_DMNEC),
                Account(id=self.issuance, ledger=shares, code=code),
                Account(id=self.rounding, ledger=shares, code=code),
            ]
        )
        # A crash between registering a holder and opening its account leaves the account
        # missing: open every registered holder's account that the ledger does not know.
        count = self.store.holder_count()
        known = self.ledger.submit_query(
            lambda e: sum(1 for i in range(count) if self.holder_base + i in e.accounts)
        ).result()
        if known < count:
            self._open_holder_accounts(0, count)
        self._rebuild_recent_orders()

    def _create_accounts(self, accounts: list[Account]) -> None:
        # A few batches in flight: the next is queued while the ledger commits the last.
        in_flight: list[Future[list[str]]] = []
        for start in range(0, len(accounts), BATCH_EVENTS_MAX):
            in_flight.append(
                self.ledger.submit_accounts(accounts[start : start + BATCH_EVENTS_MAX])
            )
            if len(in_flight) >= 4 or start + BATCH_EVENTS_MAX >= len(accounts):
                for future in in_flight:
                    bad = {r for r in future.result() if r not in ("ok", "exists")}
                    if bad:
                        raise FundError(f"cannot open the fund's ledger accounts: {sorted(bad)}")
                in_flight.clear()

    def _open_holder_accounts(self, first: int, stop: int) -> None:
        ledger, code = self.config.share_ledger, Code.HOLDER_SHARES
        self._create_accounts(
            [
                Account(id=self.holder_base + i, ledger=ledger, code=code, flags=_DMNEC)
                for i in range(first, stop)
            ]
        )

    def _rebuild_recent_orders(self) -> None:
        recent: list[_RecentOrder] = []
        voided: set[int] = set()
        for t in self._recent_transfers(self.issuance):
            if t.flags & _POST_OR_VOID:
                # Posting a held redemption changes nothing it counted; voiding gives it back.
                if t.flags & _VOID:
                    voided.add(t.pending_id)
                continue
            if (r := self._recent_of(t)) is not None:
                recent.append(r)
        if voided:
            recent = [r for r in recent if r.transfer_id not in voided]
        with self._limits_lock:
            self._recent = recent
            self._instant_by_user.clear()
            self._instant_by_day.clear()
            for r in recent:
                if r.code == Code.REDEMPTION_INSTANT:
                    self._instant_by_user[(r.holder_index, r.order_day)] += r.shares
                    self._instant_by_day[r.order_day] += r.shares

    def _recent_transfers(self, account_id: int) -> Iterator[Transfer]:
        """The account's transfers of the last RECENT_ORDER_DAYS, oldest first, a page at a time."""
        since = self._clock_ns() - RECENT_ORDER_DAYS * _NS_PER_DAY
        while True:
            page = self.ledger.account_transfers(account_id, timestamp_min=since, limit=_SCAN_PAGE)
            yield from page
            if len(page) < _SCAN_PAGE:
                return
            since = page[-1].timestamp + 1

    def _recent_of(self, t: Transfer) -> _RecentOrder | None:
        if t.code == Code.SUBSCRIPTION:
            holder = t.credit_account_id - self.holder_base
        elif t.code in (Code.REDEMPTION_INSTANT, Code.REDEMPTION_STANDARD):
            holder = t.debit_account_id - self.holder_base
        else:
            return None
        return _RecentOrder(
            holder_index=holder,
            code=t.code,
            shares=t.amount,
            earning_day=t.user_data_32,
            order_day=_beijing_day(t.user_data_64),
            transfer_id=t.id,
        )

    # ----------------------------------------------------------------- holders

    def open_holder(self, user_id: str) -> int:
        """The user's holder index, opening a share account for a new user."""
        _check_user(user_id)
        index = self.store.holder_index(user_id)
        if index is not None:
            return index  # its account was opened with it (or by start() after a crash)
        index = self.store.add_holder(user_id)
        if index >= ids.HOLDERS_MAX:
            raise FundError("the fund is full")
        self._open_holder_accounts(index, index + 1)
        return index

    def open_holders(self, user_ids: Sequence[str]) -> int:
        """Onboard many new users at once (none may hold already); returns the first index."""
        for user_id in user_ids:
            _check_user(user_id)
        first = self.store.add_holders(user_ids)
        self._open_holder_accounts(first, first + len(user_ids))
        return first

    def holder_account(self, user_id: str) -> int:
        index = self.store.holder_index(user_id)
        if index is None:
            raise UnknownHolder(f"user {user_id!r} holds nothing in fund {self.config.fund_no}")
        return self.holder_base + index

    def shares(self, user_id: str) -> int:
        """The user's shares (fen-shares), straight from the ledger."""
        (account,) = self.ledger.lookup_accounts([self.holder_account(user_id)])
        return account.credits_posted - account.debits_posted

    # ----------------------------------------------------------------- orders

    def subscribe(
        self, user_id: str, wallet_account_id: int, amount_fen: int, request_id: str
    ) -> Order:
        """Buy shares with wallet money: confirmed on trading day T (cut-off 15:00), earning
        from the next trading day."""
        c = self.config
        _check_order(amount_fen, request_id, wallet_account_id)
        if amount_fen < c.min_subscription_fen:
            raise InvalidOrder(
                f"the minimum subscription is {c.min_subscription_fen} fen, got {amount_fen}"
            )
        holder = self.open_holder(user_id)
        now = self._clock_ns()
        confirm, earning, _ = self._order_days(now, instant=True, subscription=True)
        money_id = ids.order_transfer_id(
            c.fund_no, TransferKind.SUBSCRIBE_CASH, user_id, request_id
        )
        share_id = ids.order_transfer_id(
            c.fund_no, TransferKind.SUBSCRIBE_SHARES, user_id, request_id
        )
        chain = [
            Transfer(
                id=money_id,
                debit_account_id=wallet_account_id,
                credit_account_id=self.custody,
                amount=amount_fen,
                ledger=c.money_ledger,
                code=Code.SUBSCRIPTION,
                flags=_LINKED,
                user_data_64=now,
                user_data_32=ids.day_number(earning),
            ),
            Transfer(
                id=share_id,
                debit_account_id=self.issuance,
                credit_account_id=self.holder_base + holder,
                amount=amount_fen,
                ledger=c.share_ledger,
                code=Code.SUBSCRIPTION,
                user_data_64=now,
                user_data_32=ids.day_number(earning),
            ),
        ]
        with self.gate.order():
            original_ns = self._submit(chain, {0: InsufficientFunds})
            if original_ns is None:
                self._remember(chain[1], holder)
        replayed = original_ns is not None
        if original_ns is not None:  # answer as the first time: its days follow its own time
            confirm, earning, _ = self._order_days(original_ns, instant=True, subscription=True)
        return Order(request_id, user_id, "subscribe", amount_fen, confirm, earning, None, replayed)

    def redeem(
        self,
        user_id: str,
        wallet_account_id: int,
        amount_fen: int,
        request_id: str,
        *,
        instant: bool = True,
    ) -> Order:
        """Sell shares. Instant (T+0): the cash reaches the wallet now, within the per-order,
        per-user-day and fund-day limits. Standard: the cash is paid on the next trading day."""
        c = self.config
        _check_order(amount_fen, request_id, wallet_account_id)
        holder_account = self.holder_account(user_id)
        holder = holder_account - self.holder_base
        now = self._clock_ns()
        order_day = _beijing(now).date()
        confirm, stop, pay_day = self._order_days(now, instant=instant, subscription=False)
        code = Code.REDEMPTION_INSTANT if instant else Code.REDEMPTION_STANDARD
        share_id = ids.order_transfer_id(c.fund_no, TransferKind.REDEEM_SHARES, user_id, request_id)
        money_id = ids.order_transfer_id(c.fund_no, TransferKind.REDEEM_CASH, user_id, request_id)
        chain = [
            Transfer(
                id=share_id,
                debit_account_id=holder_account,
                credit_account_id=self.issuance,
                amount=amount_fen,
                ledger=c.share_ledger,
                code=code,
                flags=_LINKED,
                user_data_64=now,
                user_data_32=ids.day_number(stop),
            ),
            Transfer(
                id=money_id,
                debit_account_id=self.custody,
                credit_account_id=wallet_account_id if instant else self.payable,
                amount=amount_fen,
                ledger=c.money_ledger,
                code=code,
                # Standard: the wallet to pay and the pay day travel with the cash.
                user_data_128=0 if instant else wallet_account_id,
                user_data_64=now,
                user_data_32=ids.day_number(pay_day or stop),
            ),
        ]
        kind = "redeem_instant" if instant else "redeem_standard"
        with self.gate.order():
            if instant:
                try:
                    self._reserve_instant(holder, order_day, amount_fen)
                except InstantLimitExceeded:
                    # A retry of an order applied before is answered as such, not refused.
                    if not self.ledger.lookup_transfers([share_id]):
                        raise
                    instant_reserved = False
                else:
                    instant_reserved = True
            else:
                instant_reserved = False
            try:
                original_ns = self._submit(chain, {0: InsufficientShares})
            except BaseException:
                if instant_reserved:
                    self._release_instant(holder, order_day, amount_fen)
                raise
            if original_ns is None:
                self._remember(chain[0], holder)
            elif instant_reserved:
                self._release_instant(holder, order_day, amount_fen)  # counted the first time
        replayed = original_ns is not None
        if original_ns is not None:
            confirm, stop, pay_day = self._order_days(
                original_ns, instant=instant, subscription=False
            )
        return Order(request_id, user_id, kind, amount_fen, confirm, stop, pay_day, replayed)

    def _order_days(
        self, now_ns: int, *, instant: bool, subscription: bool
    ) -> tuple[date, date, date | None]:
        """(confirm day T, earning start or stop day, pay day of a standard redemption)."""
        with _calendar_errors():
            confirm = self.calendar.confirmation_day(_beijing(now_ns))
            if subscription:
                return confirm, self.calendar.earning_start_day(confirm), None
            stop = self.calendar.earning_stop_day(confirm)
            return confirm, stop, None if instant else self.calendar.next_trading_day(confirm)

    def _reserve_instant(self, holder: int, day: date, amount_fen: int) -> None:
        c = self.config
        if amount_fen > c.instant_per_order_fen:
            raise InstantLimitExceeded(
                f"an instant redemption may be at most {c.instant_per_order_fen} fen;"
                " redeem the rest as a standard (T+1) redemption"
            )
        with self._limits_lock:
            used = self._instant_by_user[(holder, day)]
            if used + amount_fen > c.instant_per_user_day_fen:
                raise InstantLimitExceeded(
                    f"instant redemptions today would reach {used + amount_fen} fen, over the"
                    f" {c.instant_per_user_day_fen} fen daily limit; use a standard redemption"
                )
            fund_used = self._instant_by_day[day]
            if fund_used + amount_fen > c.instant_fund_day_fen:
                raise InstantLimitExceeded(
                    "the fund's instant-redemption capacity for today is used up;"
                    " use a standard (T+1) redemption"
                )
            self._instant_by_user[(holder, day)] = used + amount_fen
            self._instant_by_day[day] = fund_used + amount_fen

    def _release_instant(self, holder: int, day: date, amount_fen: int) -> None:
        with self._limits_lock:
            self._instant_by_user[(holder, day)] -= amount_fen
            self._instant_by_day[day] -= amount_fen

    def _remember(self, share_leg: Transfer, holder: int) -> None:
        order = _RecentOrder(
            holder_index=holder,
            code=share_leg.code,
            shares=share_leg.amount,
            earning_day=share_leg.user_data_32,
            order_day=_beijing_day(share_leg.user_data_64),
            transfer_id=share_leg.id,
        )
        with self._limits_lock:
            self._recent.append(order)

    def _submit(self, chain: list[Transfer], refusals: dict[int, type[FundError]]) -> int | None:
        """Apply an order's chain. None if it was applied now; the original order time (ns) if
        this request had been applied before (a replayed request)."""
        try:
            results = self.ledger.create_transfers(chain)
        except LedgerError as e:
            raise LedgerUnavailable(f"the ledger did not take the order: {e}") from e
        if all(r == TransferResult.OK for r in results):
            return None
        if results[0].startswith("exists"):
            # The chain was applied before, atomically (the ledger failed the rest of this one
            # as linked_event_failed). It is this order if the money is the same: the order
            # time in user_data differs on every retry.
            (stored,) = self.ledger.lookup_transfers([chain[0].id])
            first = chain[0]
            same = (stored.debit_account_id, stored.credit_account_id, stored.amount) == (
                first.debit_account_id,
                first.credit_account_id,
                first.amount,
            )
            if same and (stored.ledger, stored.code) == (first.ledger, first.code):
                return stored.user_data_64
            raise InvalidOrder("this request id was used for a different order")
        failed = [(i, r) for i, r in enumerate(results) if r != TransferResult.LINKED_EVENT_FAILED]
        index, result = failed[0] if failed else (0, results[0])
        if result in (TransferResult.EXCEEDS_CREDITS, TransferResult.EXCEEDS_DEBITS):
            error = refusals.get(index, FundError)
            raise error(f"refused by the ledger: {result} (leg {index})")
        if result in (
            TransferResult.DEBIT_ACCOUNT_NOT_FOUND,
            TransferResult.CREDIT_ACCOUNT_NOT_FOUND,
            TransferResult.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
            TransferResult.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
            TransferResult.DEBIT_ACCOUNT_ALREADY_CLOSED,
            TransferResult.CREDIT_ACCOUNT_ALREADY_CLOSED,
        ):
            raise InvalidOrder(f"the wallet account cannot take part in this order: {result}")
        raise FundError(f"refused by the ledger: {result} (leg {index})")

    # ----------------------------------------------------------------- redemptions into products

    def redemption_legs(
        self,
        user_id: str,
        amount_fen: int,
        destination_account_id: int,
        *,
        share_leg_id: int,
        cash_leg_id: int,
        pending: bool = True,
        instant: bool = True,
    ) -> list[Transfer]:
        """The two legs of a redemption that pays into another product's linked chain (a
        fixed-term purchase): holder -> ISSUANCE (shares) and CUSTODY -> destination (money),
        without `linked` flags (the caller chains them). As `redeem` writes them, they carry
        the redemption's code (instant, or standard with `instant=False`), the order time
        (`user_data_64`) and the day the shares stop earning (`user_data_32`; a standard
        redemption's cash leg carries its pay day there): the fund counts them as its
        redemptions of the order's day (on start too), and the shares earn until the next
        trading day after the confirmation day, like any redemption's. A standard pair pays
        the destination directly, not REDEMPTIONS_PAYABLE (`pay_standard_redemptions` never
        pays it): the caller must not post the cash before `standard_pay_day(order time)`.

        Submit instant legs only inside `hold_instant(legs)`, which checks and books the T+0
        limits, and standard legs inside `hold_standard(legs)`, which books no limit. A
        pending pair that is later voided is given back through `release_voided`.
        Raises UnknownHolder if the user holds nothing, InvalidOrder for a bad amount or id,
        FundError if the fund's calendar does not cover today."""
        c = self.config
        _check_order(amount_fen, "legs", destination_account_id)
        for leg_id in (share_leg_id, cash_leg_id):
            if not isinstance(leg_id, int) or not 0 < leg_id < 2**128 - 1:
                raise InvalidOrder("leg ids must be ledger transfer ids")
        if share_leg_id == cash_leg_id:
            raise InvalidOrder("the share and cash legs need distinct ids")
        holder_account = self.holder_account(user_id)
        now = self._clock_ns()
        _, stop, pay_day = self._order_days(now, instant=instant, subscription=False)
        code = Code.REDEMPTION_INSTANT if instant else Code.REDEMPTION_STANDARD
        flags = _PENDING if pending else 0
        return [
            Transfer(
                id=share_leg_id,
                debit_account_id=holder_account,
                credit_account_id=self.issuance,
                amount=amount_fen,
                ledger=c.share_ledger,
                code=code,
                flags=flags,
                user_data_64=now,
                user_data_32=ids.day_number(stop),
            ),
            Transfer(
                id=cash_leg_id,
                debit_account_id=self.custody,
                credit_account_id=destination_account_id,
                amount=amount_fen,
                ledger=c.money_ledger,
                code=code,
                flags=flags,
                user_data_64=now,
                user_data_32=ids.day_number(pay_day or stop),
            ),
        ]

    def standard_pay_day(self, order_ns: int | None = None) -> date:
        """The day a standard (T+1) redemption ordered at `order_ns` (default: now) is paid:
        the next trading day after its confirmation day (15:00 Beijing cut-off), as `redeem`
        gives it. Raises FundError if the fund's calendar does not cover that time."""
        now = self._clock_ns() if order_ns is None else order_ns
        _, _, pay_day = self._order_days(now, instant=False, subscription=False)
        assert pay_day is not None
        return pay_day

    @contextmanager
    def hold_instant(self, legs: Sequence[Transfer]) -> Iterator[InstantHold]:
        """Check and book the T+0 limits of `redemption_legs` while their chain is submitted.

        Inside the fund's snapshot gate (so the daily run sees the redemption wholly before or
        after it), the per-order, per-user-day and fund-day limits are reserved, or
        InstantLimitExceeded is raised and nothing is booked. The caller submits the chain in
        the `with` block and calls `hold.applied()` if the ledger applied it now; the order is
        then recorded with the fund's recent orders. Otherwise (refused, an error, or a retried
        chain the ledger had applied before and counted then) the limits are given back."""
        share = self._held_share_leg(legs, Code.REDEMPTION_INSTANT, "hold_instant")
        holder = share.debit_account_id - self.holder_base
        day = _beijing_day(share.user_data_64)
        hold = InstantHold(legs)
        with self.gate.order():
            try:
                self._reserve_instant(holder, day, share.amount)
            except InstantLimitExceeded:
                # A retried chain that was applied before is answered by the ledger, not refused.
                if not self._lookup_existing(share.id):
                    raise
                reserved = False
            else:
                reserved = True
            try:
                yield hold
            finally:
                if reserved:
                    if hold._applied:
                        self._remember(share, holder)
                    else:
                        self._release_instant(holder, day, share.amount)

    @contextmanager
    def hold_standard(self, legs: Sequence[Transfer]) -> Iterator[InstantHold]:
        """Held while the chain of standard `redemption_legs(..., instant=False)` is submitted.

        A standard redemption has no limit, so nothing is booked: the hold only keeps the
        order inside the fund's snapshot gate (the daily run sees it wholly before or after),
        and, when the caller calls `hold.applied()` (the ledger applied the chain now), records
        it with the fund's recent orders as a standard redemption (its shares earn until the
        next trading day after the confirmation day, like any redemption's)."""
        share = self._held_share_leg(legs, Code.REDEMPTION_STANDARD, "hold_standard")
        holder = share.debit_account_id - self.holder_base
        hold = InstantHold(legs)
        with self.gate.order():
            try:
                yield hold
            finally:
                if hold._applied:
                    self._remember(share, holder)

    def release_voided(self, leg_ids: Sequence[int]) -> int:
        """Give back the T+0 limits of held redemptions whose pending legs were voided (a
        fixed-term product that failed to launch; a standard one held none), and forget them
        as orders: their shares are the holder's again and earn as if they had never left.
        Legs that are not voided in the ledger, or not known as held redemptions, are left
        alone, so this is idempotent. Call it inside `gate.order()` together with the voids,
        so that no snapshot sees one without the other. Returns how many redemptions were
        given back."""
        wanted = {i for i in leg_ids if isinstance(i, int)}
        if not wanted:
            return 0
        with self._limits_lock:
            known = {r.transfer_id for r in self._recent if r.transfer_id in wanted}
        if not known:
            return 0
        statuses = self.ledger.submit_query(
            lambda e: {i: e.pending_status.get(i) for i in known}
        ).result()
        voided = {i for i, status in statuses.items() if status == PendingStatus.VOIDED}
        released = 0
        with self._limits_lock:
            kept: list[_RecentOrder] = []
            for r in self._recent:
                if r.transfer_id in voided:
                    voided.discard(r.transfer_id)  # once, should it be listed twice
                    if r.code == Code.REDEMPTION_INSTANT:
                        self._instant_by_user[(r.holder_index, r.order_day)] -= r.shares
                        self._instant_by_day[r.order_day] -= r.shares
                    released += 1
                else:
                    kept.append(r)
            self._recent = kept
        return released

    def instant_usage(self, user_id: str, day: date | None = None) -> dict[str, int]:
        """What instant (T+0) redemption room is used and left on `day` (default: today,
        Beijing time), for the user and for the whole fund, in fen. Includes redemptions
        held in other products' chains (fixed-term purchases) and orders in flight."""
        c = self.config
        day = day or _beijing_day(self._clock_ns())
        index = self.store.holder_index(user_id) if isinstance(user_id, str) else None
        with self._limits_lock:
            user_used = self._instant_by_user.get((index, day), 0) if index is not None else 0
            fund_used = self._instant_by_day.get(day, 0)
        user_left = max(c.instant_per_user_day_fen - user_used, 0)
        fund_left = max(c.instant_fund_day_fen - fund_used, 0)
        return {
            "per_order_fen": c.instant_per_order_fen,
            "user_used_fen": user_used,
            "user_left_fen": user_left,
            "fund_used_fen": fund_used,
            "fund_left_fen": fund_left,
            # The most one instant redemption may take now.
            "available_fen": min(c.instant_per_order_fen, user_left, fund_left),
        }

    def _held_share_leg(self, legs: Sequence[Transfer], code: int, what: str) -> Transfer:
        c = self.config
        shares = [t for t in legs if t.ledger == c.share_ledger]
        cash = [t for t in legs if t.ledger == c.money_ledger]
        ok = len(legs) == 2 and len(shares) == len(cash) == 1
        if ok:
            share, money = shares[0], cash[0]
            holder = share.debit_account_id - self.holder_base
            ok = (
                0 <= holder < ids.HOLDERS_MAX
                and share.credit_account_id == self.issuance
                and money.debit_account_id == self.custody
                and share.code == money.code == code
                and share.amount == money.amount
                and share.flags & _PENDING == money.flags & _PENDING
            )
        if not ok:
            raise InvalidOrder(f"{what} takes the two legs that redemption_legs built")
        return shares[0]

    def _lookup_existing(self, transfer_id: int) -> bool:
        try:
            return bool(self.ledger.lookup_transfers([transfer_id]))
        except LedgerError as e:
            raise LedgerUnavailable(f"the ledger did not answer: {e}") from e

    # ----------------------------------------------------------------- paying at checkout

    def checkout_leg(self, user_id: str, amount_fen: int, transfer_id: int) -> Transfer:
        """The shares leg of a payment made with the fund balance: holder -> ISSUANCE, to go in
        the payment's own linked chain with its cash leg CUSTODY -> merchant (so the
        redemption and the payment are one atomic chain). The shares stop earning at once."""
        _check_order(amount_fen, "checkout", 1)
        return Transfer(
            id=transfer_id,
            debit_account_id=self.holder_account(user_id),
            credit_account_id=self.issuance,
            amount=amount_fen,
            ledger=self.config.share_ledger,
            code=Code.CHECKOUT,
            user_data_64=self._clock_ns(),
        )

    def refund_checkout(self, user_id: str, amount_fen: int, transfer_id: int) -> None:
        """Give back shares for a refunded fund payment (its cash has returned to CUSTODY);
        idempotent by `transfer_id`. Raises LedgerUnavailable when the ledger is busy."""
        _check_order(amount_fen, "refund", 1)
        refund = Transfer(
            id=transfer_id,
            debit_account_id=self.issuance,
            credit_account_id=self.holder_account(user_id),
            amount=amount_fen,
            ledger=self.config.share_ledger,
            code=Code.CHECKOUT_REFUND,
            user_data_64=self._clock_ns(),
        )
        try:
            (result,) = self.ledger.create_transfers([refund])
        except LedgerError as e:
            raise LedgerUnavailable(f"the ledger did not take the refund: {e}") from e
        if result not in (TransferResult.OK, TransferResult.EXISTS):
            raise FundError(f"shares for the refund refused by the ledger: {result}")

    # ----------------------------------------------------------------- standard redemptions

    def pay_standard_redemptions(self, today: date) -> int:
        """Pay every standard redemption whose pay day has come (idempotent); returns how many
        payouts this call made."""
        c = self.config
        today_number = ids.day_number(today)
        due = [
            t
            for t in self._recent_transfers(self.payable)
            if t.code == Code.REDEMPTION_STANDARD
            and t.credit_account_id == self.payable
            and t.user_data_32 <= today_number
        ]
        payouts = [
            Transfer(
                id=ids.order_transfer_id(c.fund_no, TransferKind.REDEMPTION_PAYOUT, "", str(t.id)),
                debit_account_id=self.payable,
                credit_account_id=t.user_data_128,
                amount=t.amount,
                ledger=c.money_ledger,
                code=Code.REDEMPTION_PAYOUT,
                user_data_128=t.id,
            )
            for t in due
        ]
        paid = 0
        for start in range(0, len(payouts), 8190):
            results = self.ledger.create_transfers(payouts[start : start + 8190])
            paid += results.count(TransferResult.OK)
            bad = {r for r in results if r not in (TransferResult.OK, TransferResult.EXISTS)}
            if bad:
                raise FundError(f"standard redemption payouts refused: {sorted(bad)}")
        return paid

    # ----------------------------------------------------------------- books

    def reconcile(self) -> dict[str, int]:
        """Cash in custody against shares outstanding (NAV 1.00: they must be equal)."""
        custody, issuance, rounding = self.ledger.lookup_accounts(
            [self.custody, self.issuance, self.rounding]
        )
        cash = custody.credits_posted - custody.debits_posted
        outstanding = issuance.debits_posted - issuance.credits_posted
        return {
            "custody_cash_fen": cash,
            "shares_outstanding": outstanding,
            "rounding_shares": rounding.credits_posted - rounding.debits_posted,
            "difference_fen": cash - outstanding,
        }

    def recent_orders(self) -> list[_RecentOrder]:
        with self._limits_lock:
            horizon = _beijing(self._clock_ns()).date() - timedelta(days=RECENT_ORDER_DAYS)
            self._recent = [r for r in self._recent if r.order_day >= horizon]
            return list(self._recent)

    def now(self) -> datetime:
        return _beijing(self._clock_ns())

    def clock_ns(self) -> int:
        return self._clock_ns()


class SnapshotGate:
    """Many orders at once, or one snapshot alone: a readers-writer lock where orders are the
    readers. A waiting snapshot stops new orders from entering, so it cannot starve."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._orders = 0
        self._snapshot = False

    @contextmanager
    def order(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._snapshot)
            self._orders += 1
        try:
            yield
        finally:
            with self._cond:
                self._orders -= 1
                self._cond.notify_all()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._snapshot)
            self._snapshot = True
            self._cond.wait_for(lambda: self._orders == 0)
        try:
            yield
        finally:
            with self._cond:
                self._snapshot = False
                self._cond.notify_all()


@contextmanager
def _calendar_errors() -> Iterator[None]:
    try:
        yield
    except CalendarError as error:
        raise FundError(
            f"the fund's trading calendar cannot place this order: {error};"
            " give the fund that year's exchange holidays"
        ) from error


def _beijing(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, BEIJING)


def _beijing_day(ns: int) -> date:
    return _beijing(ns).date()


def _check_user(user_id: str) -> None:
    if not isinstance(user_id, str) or not 0 < len(user_id) <= 128:
        raise InvalidOrder("user id must be a string of 1 to 128 characters")


def _check_order(amount_fen: int, request_id: str, wallet_account_id: int) -> None:
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool):
        raise InvalidOrder("amount must be an integer number of fen")
    if not 0 < amount_fen <= AMOUNT_MAX:
        raise InvalidOrder(f"amount must be 1 to {AMOUNT_MAX} fen, got {amount_fen}")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 128:
        raise InvalidOrder("request id must be a string of 1 to 128 characters")
    if not isinstance(wallet_account_id, int) or not 0 < wallet_account_id < 2**128 - 1:
        raise InvalidOrder("wallet account id must be a ledger account id")
