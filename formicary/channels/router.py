"""Failover routing over funding options: card at bank A, card at bank B, ..., the wallet.

`Router.route(request, options)` tries the options in order. A card option goes through its
bank's channel; the router moves on to the next option only when the channel guarantees that
nothing was applied (THROTTLED, BREAKER_OPEN, UNAVAILABLE). An answer from a bank — approved,
declined, or failed/timed out (outcome unknown until retried) — is final: trying another bank
after a timeout could charge the customer twice. A wallet option ends the route with WALLET:
the payments layer then moves the money in the ledger. When every option was refused, the
answer is RETRY_LATER ("bank busy, retry") with the soonest retry-after among them; nothing was
applied anywhere and nothing is lost.

Each option is sent under its own idempotency id, `<request id>#<option index>`, so two cards
at the same bank never collide; that id is also the authorization id for a later capture or
void (`Routed.request`). The router remembers final routes by request id (bounded, oldest
forgotten first): repeating a route re-asks the same bank with the same id — a timed-out call
then learns its real outcome — instead of trying another bank. Capture and void belong to the
bank that holds the authorization: send them with `router.channel(name).submit(...)`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import NamedTuple

import msgspec

from formicary.channels.channel import Channel, ChannelResult, ChannelStatus
from formicary.channels.clock import Clock
from formicary.channels.errors import InvalidRule
from formicary.channels.messages import BankReply, BankRequest, Operation, Reason

__all__ = [
    "OPTIONS_MAX",
    "Attempt",
    "CardOption",
    "FundingOption",
    "RouteStatus",
    "Routed",
    "Router",
    "WalletOption",
]

OPTIONS_MAX = 8  # a checkout shows a handful of funding sources
CHANNELS_MAX = 10_000
REMEMBERED_MAX = 1_000_000


class CardOption(msgspec.Struct, frozen=True):
    channel: str  # the bank's channel name
    card_id: str

    def __post_init__(self) -> None:
        if not (self.channel and self.card_id):
            raise InvalidRule("a card option needs a channel and a card_id")


class WalletOption(msgspec.Struct, frozen=True):
    wallet_id: str


FundingOption = CardOption | WalletOption


class RouteStatus(StrEnum):
    SUCCEEDED = "succeeded"  # a bank approved (option_index says which)
    DECLINED = "declined"  # the first bank to answer declined: final
    FAILED = "failed"  # the bank erred or timed out: repeat the route to learn the outcome
    WALLET = "wallet"  # no card was used; pay from the wallet option
    RETRY_LATER = "retry_later"  # bank busy, retry after retry_after_ns; nothing applied


class Attempt(msgspec.Struct, frozen=True):
    option_index: int
    result: ChannelResult


class Routed(msgspec.Struct, frozen=True):
    status: RouteStatus
    reason: Reason
    option_index: int | None = None  # the option used (None for RETRY_LATER)
    request: BankRequest | None = None  # what was sent to that bank (its id: authorization id)
    reply: BankReply | None = None
    attempts: tuple[Attempt, ...] = ()
    retry_after_ns: int = 0
    replayed: bool = False  # a repeat of a route the router remembered


class _Remembered(NamedTuple):
    request: BankRequest  # as first routed: a repeat must be identical
    option_index: int
    channel: str | None  # None: the wallet was chosen
    sent: BankRequest | None  # what that bank got (under the option's idempotency id)


_FALL_THROUGH = frozenset(
    {ChannelStatus.THROTTLED, ChannelStatus.BREAKER_OPEN, ChannelStatus.UNAVAILABLE}
)
_ROUTE_STATUS = {
    ChannelStatus.SUCCEEDED: RouteStatus.SUCCEEDED,
    ChannelStatus.DECLINED: RouteStatus.DECLINED,
    ChannelStatus.FAILED: RouteStatus.FAILED,
}


class Router:
    """Routes requests over channels by name; counts route outcomes."""

    def __init__(
        self, channels: Iterable[Channel], *, clock: Clock, remembered_max: int = 100_000
    ) -> None:
        self.clock = clock
        self._channels = {channel.name: channel for channel in channels}
        assert 0 < len(self._channels) <= CHANNELS_MAX, len(self._channels)
        assert 0 < remembered_max <= REMEMBERED_MAX, remembered_max
        self._remembered_max = remembered_max
        # request id -> the request as first routed, and where it went (kept small: a few
        # references per route, however many attempts it took)
        self._remembered: OrderedDict[str, _Remembered] = OrderedDict()
        self.totals: dict[RouteStatus, int] = dict.fromkeys(RouteStatus, 0)

    @property
    def channels(self) -> tuple[Channel, ...]:
        return tuple(self._channels.values())

    def channel(self, name: str) -> Channel:
        return self._channels[name]

    def advance(self) -> None:
        """Deliver every answer due by the clock's time, on every channel (call it once per
        simulated second, and at the end, before reading the channels' counters)."""
        for channel in self._channels.values():
            channel.advance()

    def route(self, request: BankRequest, options: Sequence[FundingOption]) -> Routed:
        """Try `options` in order for an authorize, collect or payout `request` (its card_id is
        replaced by each card option's). Misuse (no options, an unknown channel, a capture or
        void) raises ValueError; everything else is an answer."""
        if request.operation in (Operation.CAPTURE, Operation.VOID):
            raise ValueError("capture and void go to the authorizing bank: use channel(name)")
        if not 0 < len(options) <= OPTIONS_MAX:
            raise ValueError(f"a route needs 1..{OPTIONS_MAX} funding options")
        for option in options:
            if isinstance(option, CardOption) and option.channel not in self._channels:
                raise ValueError(f"no channel named {option.channel!r}")
        remembered = self._remembered.get(request.idempotency_id)
        if remembered is not None:
            routed = self._repeat(request, remembered)
        else:
            routed = self._first(request, options)
        self.totals[routed.status] += 1
        return routed

    def _first(self, request: BankRequest, options: Sequence[FundingOption]) -> Routed:
        attempts: list[Attempt] = []
        for index, option in enumerate(options):
            if isinstance(option, WalletOption):
                self._remember(_Remembered(request, index, None, None))
                return Routed(RouteStatus.WALLET, Reason.WALLET, index, attempts=tuple(attempts))
            sent = msgspec.structs.replace(
                request,
                idempotency_id=f"{request.idempotency_id}#{index}",
                card_id=option.card_id,
            )
            result = self._channels[option.channel].submit(sent)
            attempts.append(Attempt(index, result))
            if result.status in _FALL_THROUGH:
                continue
            self._remember(_Remembered(request, index, option.channel, sent))
            return Routed(
                _ROUTE_STATUS[result.status],
                result.reason,
                index,
                sent,
                result.reply,
                tuple(attempts),
            )
        return self._retry_later(attempts)

    def _repeat(self, request: BankRequest, first: _Remembered) -> Routed:
        """A route seen before: same answer, same bank, never a second bank."""
        if request != first.request:
            return Routed(RouteStatus.DECLINED, Reason.IDEMPOTENCY_CONFLICT, replayed=True)
        if first.channel is None or first.sent is None:  # the wallet was chosen
            return Routed(RouteStatus.WALLET, Reason.WALLET, first.option_index, replayed=True)
        result = self._channels[first.channel].submit(first.sent)
        attempt = Attempt(first.option_index, result)
        if result.status in _FALL_THROUGH:  # that bank cannot answer now: ask it again later
            later = self._retry_later([attempt])
            return msgspec.structs.replace(later, option_index=first.option_index, replayed=True)
        return Routed(
            _ROUTE_STATUS[result.status],
            result.reason,
            first.option_index,
            first.sent,
            result.reply,
            (attempt,),
            replayed=True,
        )

    @staticmethod
    def _retry_later(attempts: list[Attempt]) -> Routed:
        retry_after_ns = min((a.result.retry_after_ns for a in attempts), default=1)
        return Routed(
            RouteStatus.RETRY_LATER,
            Reason.NO_OPTION_LEFT,
            attempts=tuple(attempts),
            retry_after_ns=max(1, retry_after_ns),
        )

    def _remember(self, remembered: _Remembered) -> None:
        self._remembered[remembered.request.idempotency_id] = remembered
        if len(self._remembered) > self._remembered_max:
            self._remembered.popitem(last=False)
