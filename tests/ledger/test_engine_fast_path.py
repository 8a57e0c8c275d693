"""The engine's fast path (runs of plain transfers and linked chains of them) against the same
engine with the fast path switched off: every result, record and balance must be identical."""

from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formicary.ledger.engine import Engine
from formicary.ledger.types import AMOUNT_MAX, Account, AccountFlags, Transfer, TransferFlags
from tests.ledger.test_engine_results import FakeClock

LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
HISTORY = int(AccountFlags.HISTORY)
CLOSED = int(AccountFlags.CLOSED)
ACCOUNTS = 6


class GeneralOnly(Engine):
    """The reference: every event through the general path."""

    def _fast_run(self, *args: object, **kwargs: object) -> int:
        return 0


@st.composite
def plain_transfer(draw: st.DrawFn) -> Transfer:
    # Mostly valid plain transfers, some linked, a few that fail each kind of check.
    flags = draw(st.sampled_from([0, 0, LINKED, LINKED, LINKED | PENDING, PENDING]))
    return Transfer(
        id=draw(st.integers(1, 40)),  # repeats: `exists`, also inside one chain
        debit_account_id=draw(st.integers(1, ACCOUNTS + 1)),  # ACCOUNTS + 1 does not exist
        credit_account_id=draw(st.integers(1, ACCOUNTS)),
        amount=draw(st.sampled_from([0, 1, 5, 50, 400, AMOUNT_MAX])),
        ledger=draw(st.sampled_from([1, 1, 1, 2])),
        code=draw(st.sampled_from([1, 1, 1, 0])),
        flags=flags,
        timeout=draw(st.sampled_from([0, 0, 1])) if flags & PENDING else 0,
    )


def _engine(cls: type[Engine], flags: list[int]) -> Engine:
    engine = cls(FakeClock())
    accounts = [Account(id=i + 1, ledger=1, code=1, flags=f) for i, f in enumerate(flags)]
    assert set(engine.create_accounts(accounts).results) == {"ok"}
    return engine


def _state(engine: Engine) -> tuple[object, ...]:
    return (
        {i: msgspec.structs.astuple(a) for i, a in engine.accounts.items()},
        {i: msgspec.structs.astuple(t) for i, t in engine.transfers.items()},
        dict(engine.pending_status),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flags=st.lists(
        st.sampled_from([0, DMNEC, CMNED, HISTORY, DMNEC | HISTORY, CLOSED]),
        min_size=ACCOUNTS,
        max_size=ACCOUNTS,
    ),
    batches=st.lists(
        st.tuples(
            st.lists(plain_transfer(), min_size=1, max_size=14),
            st.sets(st.integers(0, 13), max_size=3),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_fast_path_gives_what_the_general_path_gives(
    flags: list[int], batches: list[tuple[list[Transfer], set[int]]]
) -> None:
    fast = _engine(Engine, flags)
    general = _engine(GeneralOnly, flags)
    # Fund every account both ways first, so that limits have room to be tested.
    funding = [
        Transfer(
            id=1000 + 2 * i, debit_account_id=j, credit_account_id=i, amount=300, ledger=1, code=1
        )
        for i in range(1, ACCOUNTS + 1)
        for j in [i % ACCOUNTS + 1]
    ]
    for engine in (fast, general):
        for t in funding:
            engine.create_transfers([t])
    for batch, ends in batches:
        request_ends = {e for e in ends if e < len(batch) - 1}
        a = fast.create_transfers(batch, request_ends)
        b = general.create_transfers(batch, request_ends)
        assert a.results == b.results
        assert [msgspec.structs.astuple(t) for t in a.transfers] == [
            msgspec.structs.astuple(t) for t in b.transfers
        ]
        assert a.history == b.history
        assert _state(fast) == _state(general)
