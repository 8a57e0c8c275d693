"""The engine's fast paths (runs of plain transfers and linked chains of them, in Python and in
C) against the same engine with the fast path switched off: every result, record and balance
must be identical."""

from __future__ import annotations

import os

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formicary.ledger import native
from formicary.ledger.engine import Engine, FastPath
from formicary.ledger.types import (
    AMOUNT_MAX,
    ID_MAX,
    Account,
    AccountFlags,
    Transfer,
    TransferFlags,
)
from tests.ledger.test_engine_results import FakeClock

LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
HISTORY = int(AccountFlags.HISTORY)
CLOSED = int(AccountFlags.CLOSED)
# Small ids and 128-bit ones (the C loop reads ints beyond int64 another way).
ACCOUNT_IDS = [1, 2, 3, 2**64 + 4, 2**127 + 5, ID_MAX - 1]
ACCOUNTS = len(ACCOUNT_IDS)
MISSING = 7
# The C loop is built wherever the package was installed with a compiler (as by scripts/
# bootstrap.sh); FORMICARY_PURE_PYTHON=1 switches it off on purpose.
NATIVE_EXPECTED = os.environ.get("FORMICARY_PURE_PYTHON", "") not in ("1", "true", "yes")


def test_the_compiled_fast_path_is_built() -> None:
    if not NATIVE_EXPECTED:
        pytest.skip("FORMICARY_PURE_PYTHON is set: the compiled loop is switched off on purpose")
    assert native.native_available(), "formicary/ledger/_fastpath.c was not built: pip install -e ."
    assert Engine(lambda: 1).fast_path == "native"


@st.composite
def plain_transfer(draw: st.DrawFn) -> Transfer:
    # Mostly valid plain transfers, some linked, a few that fail each kind of check.
    flags = draw(
        st.sampled_from([0, 0, LINKED, LINKED, LINKED | PENDING, PENDING, TransferFlags.LINKED])
    )
    return Transfer(
        # Repeats: `exists`, also inside one chain; 0 and ID_MAX are refused.
        id=draw(st.one_of(st.integers(1, 40), st.sampled_from([0, 2**63, 2**100, ID_MAX]))),
        debit_account_id=draw(st.sampled_from([*ACCOUNT_IDS, MISSING, 0, ID_MAX])),
        credit_account_id=draw(st.sampled_from(ACCOUNT_IDS)),
        amount=draw(st.sampled_from([0, 1, 5, 50, 400, AMOUNT_MAX, AMOUNT_MAX + 1, -3])),
        ledger=draw(st.sampled_from([1, 1, 1, 2])),
        code=draw(st.sampled_from([1, 1, 1, 0])),
        flags=flags,
        timeout=draw(st.sampled_from([0, 0, 1])) if flags & PENDING else 0,
    )


def _engine(fast_path: FastPath, flags: list[int]) -> Engine:
    engine = Engine(FakeClock(), fast_path=fast_path)
    accounts = [
        Account(id=i, ledger=1, code=1, flags=f) for i, f in zip(ACCOUNT_IDS, flags, strict=True)
    ]
    assert set(engine.create_accounts(accounts).results) == {"ok"}
    return engine


def _state(engine: Engine) -> tuple[object, ...]:
    return (
        {i: msgspec.structs.astuple(a) for i, a in engine.accounts.items()},
        {i: msgspec.structs.astuple(t) for i, t in engine.transfers.items()},
        dict(engine.pending_status),
    )


@pytest.mark.parametrize("fast_path", ["python", "native"])
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
    fast_path: FastPath, flags: list[int], batches: list[tuple[list[Transfer], set[int]]]
) -> None:
    if fast_path == "native" and native.fast_run is None:
        pytest.skip("the compiled loop is not built or is switched off (see the test above)")
    fast = _engine(fast_path, flags)
    assert fast.fast_path == fast_path
    general = _engine("off", flags)
    # Fund every account both ways first, so that limits have room to be tested.
    funding = [
        Transfer(
            id=1000 + i,
            debit_account_id=ACCOUNT_IDS[(i + 1) % ACCOUNTS],
            credit_account_id=account_id,
            amount=300,
            ledger=1,
            code=1,
        )
        for i, account_id in enumerate(ACCOUNT_IDS)
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
