"""Bulk transfers: one result code per check (each rejected bulk changes nothing), equivalence
with the linked chain of plain transfers it stands for, and the durable round trip."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formicary.ledger import LedgerService, open_store
from formicary.ledger.bulk import pack_legs, unpack_legs
from formicary.ledger.engine import Engine
from formicary.ledger.types import (
    AMOUNT_MAX,
    BULK_LEGS_MAX,
    ID_MAX,
    AccountBalance,
    BulkResult,
    BulkTransfer,
    Transfer,
    TransferFlags,
)
from tests.ledger.test_engine_results import (
    CLOSED,
    CMNED,
    DMNEC,
    HISTORY,
    FakeClock,
    acct,
    ok_accounts,
    ok_transfers,
    snapshot,
    xfer,
)

B = BulkResult
LINKED = int(TransferFlags.LINKED)
POOL = 1  # the common account
OTHER_LEDGER = 9


def bulk(id: int = 500, legs: dict[int, int] | None = None, **kw: object) -> BulkTransfer:
    legs = {10: 5, 11: 7} if legs is None else legs
    fields: dict[object, object] = {
        "account_id": POOL,
        "debit_common": True,
        "ledger": 1,
        "code": 1,
        "leg_account_ids": list(legs),
        "leg_amounts": list(legs.values()),
    }
    fields.update(kw)
    return BulkTransfer(id=id, **fields)  # type: ignore[arg-type]


@pytest.fixture
def engine() -> Engine:
    e = Engine(FakeClock())
    ok_accounts(
        e,
        [
            acct(POOL),
            acct(2, flags=DMNEC),  # funded with 100 below
            acct(3, flags=CMNED),  # may receive only what it was debited (100)
            acct(4, ledger=OTHER_LEDGER),
            acct(5),
            acct(10, flags=DMNEC),
            acct(11, flags=DMNEC | HISTORY),
            acct(12, flags=CLOSED),
        ],
    )
    ok_transfers(e, [xfer(1000, POOL, 2, 100), xfer(1001, 3, POOL, 100)])
    return e


def assert_bulk_rejected(engine: Engine, b: BulkTransfer, expected: str, leg: int = -1) -> None:
    before = snapshot(engine)
    bulks_before = dict(engine.bulks)
    outcome = engine.create_bulk(b)
    assert (outcome.results, outcome.failed_leg) == ([expected], leg)
    assert outcome.bulks == [] and outcome.history == []
    assert snapshot(engine) == before and engine.bulks == bulks_before


def test_bulk_ok_credits_every_leg_and_debits_the_common_account_once(engine: Engine) -> None:
    outcome = engine.create_bulk(bulk(legs={10: 5, 11: 7, 5: 3}))
    assert (outcome.results, outcome.failed_leg) == ([B.OK], -1)
    assert engine.accounts[POOL].debits_posted == 100 + 15
    assert [engine.accounts[i].credits_posted for i in (10, 11, 5)] == [5, 7, 3]
    (record,) = outcome.bulks
    assert record.timestamp == engine.last_timestamp and record.legs == 3
    assert unpack_legs(record) == ([10, 11, 5], [5, 7, 3])
    # The history account records its balance at the bulk's timestamp.
    assert outcome.history == [(11, AccountBalance(record.timestamp, 0, 0, 0, 7))]


def test_bulk_debiting_the_legs_credits_the_common_account(engine: Engine) -> None:
    outcome = engine.create_bulk(bulk(legs={2: 60, 5: 40}, debit_common=False))
    assert outcome.results == [B.OK]
    assert engine.accounts[2].debits_posted == 60 and engine.accounts[5].debits_posted == 40
    assert engine.accounts[POOL].credits_posted == 100 + 100


def _header_cases() -> list[tuple[BulkTransfer, str]]:
    return [
        (bulk(timestamp=1), B.TIMESTAMP_MUST_BE_ZERO),
        (bulk(id=0), B.ID_MUST_NOT_BE_ZERO),
        (bulk(id=ID_MAX), B.ID_MUST_NOT_BE_INT_MAX),
        (bulk(account_id=0), B.ACCOUNT_ID_MUST_NOT_BE_ZERO),
        (bulk(account_id=ID_MAX), B.ACCOUNT_ID_MUST_NOT_BE_INT_MAX),
        (bulk(legs={}), B.LEGS_MUST_NOT_BE_EMPTY),
        (bulk(leg_account_ids=[10, 11], leg_amounts=[1]), B.LEG_COUNTS_DIFFER),
        (bulk(ledger=0), B.LEDGER_MUST_NOT_BE_ZERO),
        (bulk(code=0), B.CODE_MUST_NOT_BE_ZERO),
        (bulk(account_id=77), B.ACCOUNT_NOT_FOUND),
        (bulk(ledger=OTHER_LEDGER), B.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS),
        (bulk(account_id=12), B.ACCOUNT_ALREADY_CLOSED),
        # The common account 2 may spend 100: 60 + 50 exceeds it.
        (bulk(account_id=2, legs={10: 60, 11: 50}), B.EXCEEDS_CREDITS),
        # The common account 3 may receive only 100 (what it was debited).
        (bulk(account_id=3, legs={2: 60, 5: 50}, debit_common=False), B.EXCEEDS_DEBITS),
    ]


@pytest.mark.parametrize(("b", "expected"), _header_cases())
def test_bulk_rejected_by_its_header(engine: Engine, b: BulkTransfer, expected: str) -> None:
    assert_bulk_rejected(engine, b, expected)


def test_bulk_with_too_many_legs_is_rejected(engine: Engine) -> None:
    legs = dict.fromkeys(range(100, 100 + BULK_LEGS_MAX + 1), 1)
    assert_bulk_rejected(engine, bulk(legs=legs), B.LEGS_EXCEED_MAX)


def test_bulk_overflowing_the_common_account_is_rejected(engine: Engine) -> None:
    ok_transfers(engine, [xfer(1002, POOL, 5, AMOUNT_MAX - 200)])
    # Each leg fits, the common account's debits (100 + MAX - 200 + 101) do not.
    assert_bulk_rejected(engine, bulk(legs={10: 100, 11: 1}), B.OVERFLOWS)


@pytest.mark.parametrize(
    ("legs", "extra", "expected", "leg"),
    [
        ({10: 1, 0: 1}, {}, B.LEG_ACCOUNT_ID_MUST_BE_VALID, 1),
        ({10: 1, ID_MAX: 1}, {}, B.LEG_ACCOUNT_ID_MUST_BE_VALID, 1),
        ({10: 1, POOL: 1}, {}, B.LEG_ACCOUNTS_MUST_BE_UNIQUE, 1),
        ({10: 1, 11: 0}, {}, B.LEG_AMOUNT_MUST_BE_POSITIVE, 1),
        ({10: -1}, {}, B.LEG_AMOUNT_MUST_BE_POSITIVE, 0),
        ({10: AMOUNT_MAX + 1}, {}, B.LEG_AMOUNT_MUST_BE_POSITIVE, 0),
        ({10: 1, 99: 1}, {}, B.LEG_ACCOUNT_NOT_FOUND, 1),
        ({4: 1}, {}, B.LEG_TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, 0),
        ({10: 1, 12: 1}, {}, B.LEG_ACCOUNT_ALREADY_CLOSED, 1),
        # Crediting 3 (credits must not exceed its debits of 100) by 101.
        ({10: 1, 3: 101}, {}, B.LEG_EXCEEDS_DEBITS, 1),
        # Debiting 2 (debits must not exceed its credits of 100) by 101.
        ({5: 1, 2: 101}, {"debit_common": False}, B.LEG_EXCEEDS_CREDITS, 1),
    ],
)
def test_bulk_rejected_by_a_leg(
    engine: Engine, legs: dict[int, int], extra: dict, expected: str, leg: int
) -> None:
    assert_bulk_rejected(engine, bulk(legs=legs, **extra), expected, leg)


def test_duplicate_leg_accounts_are_rejected(engine: Engine) -> None:
    b = bulk(leg_account_ids=[10, 11, 10], leg_amounts=[1, 1, 1])
    assert_bulk_rejected(engine, b, B.LEG_ACCOUNTS_MUST_BE_UNIQUE, 2)


def test_leg_overflow_is_rejected(engine: Engine) -> None:
    ok_transfers(engine, [xfer(1002, 5, 10, AMOUNT_MAX - 10)])
    assert_bulk_rejected(engine, bulk(legs={11: 1, 10: 11}), B.LEG_OVERFLOWS, 1)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, B.EXISTS),
        ({"account_id": 5}, B.EXISTS_WITH_DIFFERENT_ACCOUNT_ID),
        ({"debit_common": False}, B.EXISTS_WITH_DIFFERENT_DIRECTION),
        ({"leg_amounts": [5, 8]}, B.EXISTS_WITH_DIFFERENT_LEGS),
        ({"leg_account_ids": [11, 10]}, B.EXISTS_WITH_DIFFERENT_LEGS),
        ({"leg_amounts": [5, -8]}, B.EXISTS_WITH_DIFFERENT_LEGS),
        ({"user_data_64": 1}, B.EXISTS_WITH_DIFFERENT_USER_DATA),
        ({"ledger": OTHER_LEDGER}, B.EXISTS_WITH_DIFFERENT_LEDGER),
        ({"code": 2}, B.EXISTS_WITH_DIFFERENT_CODE),
    ],
)
def test_bulk_idempotency(engine: Engine, change: dict, expected: str) -> None:
    first = bulk()
    assert engine.create_bulk(first).results == [B.OK]
    assert_bulk_rejected(engine, msgspec.structs.replace(first, **change), expected)


def test_every_bulk_result_code_has_a_test() -> None:
    covered = {expected for _, expected in _header_cases()} | {
        B.OK,
        B.LEGS_EXCEED_MAX,
        B.OVERFLOWS,
        B.LEG_ACCOUNT_ID_MUST_BE_VALID,
        B.LEG_ACCOUNTS_MUST_BE_UNIQUE,
        B.LEG_AMOUNT_MUST_BE_POSITIVE,
        B.LEG_ACCOUNT_NOT_FOUND,
        B.LEG_TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
        B.LEG_ACCOUNT_ALREADY_CLOSED,
        B.LEG_EXCEEDS_DEBITS,
        B.LEG_EXCEEDS_CREDITS,
        B.LEG_OVERFLOWS,
        B.EXISTS,
        B.EXISTS_WITH_DIFFERENT_ACCOUNT_ID,
        B.EXISTS_WITH_DIFFERENT_DIRECTION,
        B.EXISTS_WITH_DIFFERENT_LEGS,
        B.EXISTS_WITH_DIFFERENT_USER_DATA,
        B.EXISTS_WITH_DIFFERENT_LEDGER,
        B.EXISTS_WITH_DIFFERENT_CODE,
    }
    assert covered == set(BulkResult)


def test_legs_pack_and_unpack_128_bit_ids() -> None:
    ids = [1, 2**64, ID_MAX - 1, 2**127 + 5]
    amounts = [1, AMOUNT_MAX, 3, 4]
    accounts_blob, amounts_blob = pack_legs(ids, amounts)
    assert len(accounts_blob) == 16 * 4 and len(amounts_blob) == 8 * 4
    record = _record_of(accounts_blob, amounts_blob)
    assert unpack_legs(record) == (ids, amounts)


def _record_of(accounts_blob: bytes, amounts_blob: bytes):  # type: ignore[no-untyped-def]
    from formicary.ledger.bulk import BulkRecord

    return BulkRecord(1, 1, True, 1, 1, 0, 0, 0, 1, accounts_blob, amounts_blob)


# ----------------------------------------------------------------- equivalence with a chain

_LEG_IDS = list(range(20, 28))


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[list[int], list[int], dict[int, int], bool]:
    """Leg account flags, their funding, a bulk's legs, and its direction."""
    flags = [draw(st.sampled_from([0, DMNEC, CMNED, CLOSED])) for _ in _LEG_IDS]
    funding = [draw(st.integers(0, 50)) for _ in _LEG_IDS]
    chosen = draw(st.lists(st.sampled_from(_LEG_IDS), min_size=1, max_size=8, unique=True))
    legs = {i: draw(st.integers(1, 60)) for i in chosen}
    return flags, funding, legs, draw(st.booleans())


def _funded_engine(flags: list[int], funding: list[int], pool_flags: int) -> Engine:
    e = Engine(FakeClock())
    ok_accounts(e, [acct(POOL, flags=pool_flags), acct(2), acct(3)])
    ok_accounts(e, [acct(i, flags=f) for i, f in zip(_LEG_IDS, flags, strict=True)])
    # Limited accounts get room on their limited side only; the others get both sides.
    for n, (i, f, amount) in enumerate(zip(_LEG_IDS, flags, funding, strict=True)):
        if amount and not f & (CLOSED | CMNED):
            ok_transfers(e, [xfer(3000 + 2 * n, 2, i, amount)])
        if amount and not f & (CLOSED | DMNEC):
            ok_transfers(e, [xfer(3001 + 2 * n, i, 3, amount)])
    # Room for 100 on the limited side of the pool (or both sides when it is not limited).
    if not pool_flags & CMNED:
        ok_transfers(e, [xfer(2998, 2, POOL, 100)])
    if not pool_flags & DMNEC:
        ok_transfers(e, [xfer(2999, POOL, 3, 100)])
    return e


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_scenario(), st.sampled_from([0, DMNEC, CMNED]))
def test_bulk_is_equivalent_to_the_linked_chain_it_stands_for(
    scenario: tuple[list[int], list[int], dict[int, int], bool], pool_flags: int
) -> None:
    flags, funding, legs, debit_common = scenario
    by_bulk = _funded_engine(flags, funding, pool_flags)
    by_chain = _funded_engine(flags, funding, pool_flags)
    outcome = by_bulk.create_bulk(bulk(legs=legs, debit_common=debit_common))
    chain = [
        Transfer(
            id=9000 + n,
            debit_account_id=POOL if debit_common else i,
            credit_account_id=i if debit_common else POOL,
            amount=amount,
            ledger=1,
            code=1,
            flags=LINKED if n < len(legs) - 1 else 0,
        )
        for n, (i, amount) in enumerate(legs.items())
    ]
    chain_results = by_chain.create_transfers(chain).results
    assert (outcome.results == [B.OK]) == all(r == "ok" for r in chain_results)
    balances = {i: msgspec.structs.astuple(a)[3:8] for i, a in by_bulk.accounts.items()}
    expected = {i: msgspec.structs.astuple(a)[3:8] for i, a in by_chain.accounts.items()}
    assert balances == expected


# ----------------------------------------------------------------- durable, through the service


def test_bulk_is_durable_and_idempotent_across_a_restart(database_url: str) -> None:
    legs = {2**64 + n: n + 1 for n in range(300)}  # 128-bit ids take the split path
    accounts = [acct(POOL), *(acct(i, flags=DMNEC) for i in legs)]
    b = bulk(legs=legs, user_data_128=2**100)
    with LedgerService(open_store(database_url)) as service:
        assert set(service.create_accounts(accounts)) == {"ok"}
        assert service.create_transfers([xfer(1, 2**64, POOL, 1)]) == ["exceeds_credits"]
        assert service.create_bulk(b) == (B.OK, -1)
        assert service.create_transfers([xfer(1, 2**64, POOL, 1)]) == ["ok"]
        # A failed bulk names its leg and is not stored.
        bad = bulk(id=501, legs={2**64: 1, 77: 1})
        assert service.create_bulk(bad) == (B.LEG_ACCOUNT_NOT_FOUND, 1)
        before = {a.id: msgspec.structs.astuple(a) for a in service.lookup_accounts(list(legs))}
    with LedgerService(open_store(database_url)) as service:
        after = {a.id: msgspec.structs.astuple(a) for a in service.lookup_accounts(list(legs))}
        assert after == before
        assert service.lookup_accounts([POOL])[0].debits_posted == sum(legs.values())
        assert service.create_bulk(b) == (B.EXISTS, -1)
        assert service.create_bulk(bad) == (B.LEG_ACCOUNT_NOT_FOUND, 1)
