"""One focused test per result code of the ledger engine, plus the behaviours around them.

Every rejected event is also checked to change nothing: balances, flags, stored transfers, pending
statuses and the records of the outcome stay as they were (`assert_rejected`).
"""

from __future__ import annotations

import msgspec
import pytest

from formicary.ledger.engine import Engine, Expiration, PendingStatus
from formicary.ledger.types import (
    AMOUNT_MAX,
    ID_MAX,
    NS_PER_S,
    Account,
    AccountBalance,
    AccountFlags,
    AccountResult,
    Transfer,
    TransferFlags,
    TransferResult,
)

A = AccountResult
R = TransferResult
F = TransferFlags
DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
HISTORY = int(AccountFlags.HISTORY)
CLOSED = int(AccountFlags.CLOSED)
LINKED = int(F.LINKED)
PENDING = int(F.PENDING)
POST = int(F.POST_PENDING_TRANSFER)
VOID = int(F.VOID_PENDING_TRANSFER)
BAL_DR = int(F.BALANCING_DEBIT)
BAL_CR = int(F.BALANCING_CREDIT)
CLOSE_DR = int(F.CLOSING_DEBIT)
CLOSE_CR = int(F.CLOSING_CREDIT)

T0_NS = 1_700_000_000 * NS_PER_S


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, ns: int = T0_NS) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: int = 0, ns: int = 0) -> None:
        self.ns += seconds * NS_PER_S + ns


def acct(id: int, ledger: int = 1, code: int = 1, flags: int = 0, **kw: int) -> Account:
    return Account(id=id, ledger=ledger, code=code, flags=flags, **kw)


def xfer(
    id: int,
    dr: int = 1,
    cr: int = 2,
    amount: int = 10,
    ledger: int = 1,
    code: int = 1,
    flags: int = 0,
    **kw: int,
) -> Transfer:
    return Transfer(
        id=id,
        debit_account_id=dr,
        credit_account_id=cr,
        amount=amount,
        ledger=ledger,
        code=code,
        flags=flags,
        **kw,
    )


def post(id: int, pending_id: int, amount: int = 0, flags: int = POST, **kw: int) -> Transfer:
    """A post (or, with flags=VOID, a void) that leaves accounts, ledger and code to the pending."""
    fields = {"dr": 0, "cr": 0, "ledger": 0, "code": 0, **kw}
    return xfer(id, amount=amount, flags=flags, pending_id=pending_id, **fields)


def void(id: int, pending_id: int, amount: int = 0, flags: int = VOID, **kw: int) -> Transfer:
    return post(id, pending_id, amount, flags=flags, **kw)


def snapshot(engine: Engine) -> tuple[dict, dict, dict]:
    """Everything a rejected event must leave untouched."""
    return (
        {i: msgspec.structs.astuple(a) for i, a in engine.accounts.items()},
        {i: msgspec.structs.astuple(t) for i, t in engine.transfers.items()},
        dict(engine.pending_status),
    )


def balances(engine: Engine, account_id: int) -> tuple[int, int, int, int]:
    a = engine.accounts[account_id]
    return a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted


def ok_accounts(engine: Engine, batch: list[Account]) -> None:
    outcome = engine.create_accounts(batch)
    assert outcome.results == [A.OK] * len(batch)


def ok_transfers(engine: Engine, batch: list[Transfer]) -> None:
    outcome = engine.create_transfers(batch)
    assert outcome.results == [R.OK] * len(batch)


def assert_rejected(engine: Engine, batch: list[Transfer], expected: list[str]) -> None:
    """The batch gets exactly `expected` (no `ok` in it) and changes nothing at all."""
    assert R.OK not in expected
    before = snapshot(engine)
    outcome = engine.create_transfers(batch)
    assert outcome.results == expected
    assert outcome.transfers == []
    assert outcome.history == []
    assert outcome.expirations == []
    assert snapshot(engine) == before


def assert_accounts_rejected(engine: Engine, batch: list[Account], expected: list[str]) -> None:
    assert A.OK not in expected
    before = snapshot(engine)
    outcome = engine.create_accounts(batch)
    assert outcome.results == expected
    assert outcome.accounts == []
    assert snapshot(engine) == before


# Accounts of the fixture: 3 may spend only what it was credited (100), 4 may receive only
# what it was debited (100), 5 and 8 are on another ledger, 6 keeps a balance history.
PENDING_ID = 100  # pending 1 -> 2, amount 50, no timeout
PENDING_TIMEOUT_ID = 101  # pending 1 -> 2, amount 20, timeout 3600 s
POSTED_PENDING_ID = 102  # pending 1 -> 2, amount 30, posted in full by 1005
VOIDED_PENDING_ID = 103  # pending 1 -> 2, amount 40, voided by 1006


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> Engine:
    e = Engine(clock)
    ok_accounts(
        e,
        [
            acct(1),
            acct(2),
            acct(3, flags=DMNEC),
            acct(4, flags=CMNED),
            acct(5, ledger=2),
            acct(6, flags=HISTORY),
            acct(7),
            acct(8, ledger=2),
        ],
    )
    ok_transfers(
        e,
        [
            xfer(1001, dr=1, cr=3, amount=100),
            xfer(1002, dr=4, cr=2, amount=100),
            xfer(1004, amount=5, user_data_128=7, user_data_64=8, user_data_32=9),
            xfer(PENDING_ID, amount=50, flags=PENDING),
            xfer(PENDING_TIMEOUT_ID, amount=20, flags=PENDING, timeout=3600),
            xfer(POSTED_PENDING_ID, amount=30, flags=PENDING),
            xfer(VOIDED_PENDING_ID, amount=40, flags=PENDING),
            post(1005, POSTED_PENDING_ID),
            void(1006, VOIDED_PENDING_ID),
        ],
    )
    return e


# ===================================================================================== accounts


def test_create_account_ok(engine: Engine) -> None:
    a = acct(
        20,
        ledger=156,
        code=7,
        flags=DMNEC | HISTORY,
        user_data_128=1,
        user_data_64=2,
        user_data_32=3,
    )
    outcome = engine.create_accounts([a])
    assert outcome.results == [A.OK]
    (created,) = outcome.accounts
    assert created.timestamp > 0
    assert msgspec.structs.replace(created, timestamp=0) == a
    assert engine.lookup_accounts([20]) == [created]


EXISTING_ACCOUNT = acct(30, code=3, flags=DMNEC, user_data_128=1, user_data_64=2, user_data_32=3)


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        pytest.param(acct(20, timestamp=1), A.TIMESTAMP_MUST_BE_ZERO, id="timestamp"),
        pytest.param(acct(20, flags=1 << 0), A.RESERVED_FLAG, id="reserved_flag_bit0"),
        pytest.param(acct(20, flags=1 << 4), A.RESERVED_FLAG, id="reserved_flag_bit4"),
        pytest.param(acct(20, flags=1 << 15), A.RESERVED_FLAG, id="reserved_flag_bit15"),
        pytest.param(acct(0), A.ID_MUST_NOT_BE_ZERO, id="id_zero"),
        pytest.param(acct(ID_MAX), A.ID_MUST_NOT_BE_INT_MAX, id="id_max"),
        pytest.param(acct(20, flags=DMNEC | CMNED), A.FLAGS_ARE_MUTUALLY_EXCLUSIVE, id="limits"),
        pytest.param(acct(20, debits_pending=1), A.DEBITS_PENDING_MUST_BE_ZERO, id="dp"),
        pytest.param(acct(20, debits_posted=1), A.DEBITS_POSTED_MUST_BE_ZERO, id="dpo"),
        pytest.param(acct(20, credits_pending=1), A.CREDITS_PENDING_MUST_BE_ZERO, id="cp"),
        pytest.param(acct(20, credits_posted=1), A.CREDITS_POSTED_MUST_BE_ZERO, id="cpo"),
        pytest.param(acct(20, ledger=0), A.LEDGER_MUST_NOT_BE_ZERO, id="ledger"),
        pytest.param(acct(20, code=0), A.CODE_MUST_NOT_BE_ZERO, id="code"),
        # Validation comes first; the first failing check wins.
        pytest.param(acct(0, ledger=0, code=0), A.ID_MUST_NOT_BE_ZERO, id="first_check_wins"),
        pytest.param(
            msgspec.structs.replace(EXISTING_ACCOUNT, flags=0),
            A.EXISTS_WITH_DIFFERENT_FLAGS,
            id="exists_flags",
        ),
        pytest.param(
            msgspec.structs.replace(EXISTING_ACCOUNT, user_data_128=9),
            A.EXISTS_WITH_DIFFERENT_USER_DATA_128,
            id="exists_ud128",
        ),
        pytest.param(
            msgspec.structs.replace(EXISTING_ACCOUNT, user_data_64=9),
            A.EXISTS_WITH_DIFFERENT_USER_DATA_64,
            id="exists_ud64",
        ),
        pytest.param(
            msgspec.structs.replace(EXISTING_ACCOUNT, user_data_32=9),
            A.EXISTS_WITH_DIFFERENT_USER_DATA_32,
            id="exists_ud32",
        ),
        pytest.param(
            msgspec.structs.replace(EXISTING_ACCOUNT, ledger=2),
            A.EXISTS_WITH_DIFFERENT_LEDGER,
            id="exists_ledger",
        ),
        pytest.param(
            msgspec.structs.replace(EXISTING_ACCOUNT, code=4),
            A.EXISTS_WITH_DIFFERENT_CODE,
            id="exists_code",
        ),
        pytest.param(EXISTING_ACCOUNT, A.EXISTS, id="exists"),
    ],
)
def test_create_account_rejected(engine: Engine, account: Account, expected: str) -> None:
    ok_accounts(engine, [EXISTING_ACCOUNT])
    assert_accounts_rejected(engine, [account], [expected])


def test_account_exists_in_same_batch_and_failures_do_not_stop_the_batch(engine: Engine) -> None:
    outcome = engine.create_accounts([acct(40), acct(0), acct(40), acct(41)])
    assert outcome.results == [A.OK, A.ID_MUST_NOT_BE_ZERO, A.EXISTS, A.OK]
    assert [a.id for a in outcome.accounts] == [40, 41]


def test_account_exists_ignores_closed_flag_set_by_a_closing_transfer(engine: Engine) -> None:
    ok_transfers(engine, [xfer(60, dr=7, cr=2, flags=PENDING | CLOSE_DR)])
    assert engine.accounts[7].flags & CLOSED
    # The client re-sends its original creation: still `exists`.
    assert_accounts_rejected(engine, [acct(7)], [A.EXISTS])


def test_account_created_closed_rejects_transfers(engine: Engine) -> None:
    ok_accounts(engine, [acct(20, flags=CLOSED)])
    assert_rejected(engine, [xfer(60, dr=20, cr=2)], [R.DEBIT_ACCOUNT_ALREADY_CLOSED])
    assert_rejected(engine, [xfer(60, dr=2, cr=20)], [R.CREDIT_ACCOUNT_ALREADY_CLOSED])


# ===================================================================================== transfers


def test_transfer_ok_posts_and_stores(engine: Engine) -> None:
    before_1, before_2 = balances(engine, 1), balances(engine, 2)
    outcome = engine.create_transfers([xfer(60, amount=7, user_data_64=5)])
    assert outcome.results == [R.OK]
    (stored,) = outcome.transfers
    assert stored.timestamp > 0 and stored.amount == 7 and stored.user_data_64 == 5
    assert engine.lookup_transfers([60]) == [stored]
    assert balances(engine, 1) == (before_1[0], before_1[1] + 7, before_1[2], before_1[3])
    assert balances(engine, 2) == (before_2[0], before_2[1], before_2[2], before_2[3] + 7)


BASE = {"id": 60, "dr": 1, "cr": 2, "amount": 10, "ledger": 1, "code": 1}


def _t(**kw: int) -> Transfer:
    return xfer(**{**BASE, **kw})


@pytest.mark.parametrize(
    ("transfer", "expected"),
    [
        pytest.param(_t(timestamp=5), R.TIMESTAMP_MUST_BE_ZERO, id="timestamp"),
        pytest.param(_t(flags=1 << 8), R.RESERVED_FLAG, id="reserved_flag"),
        pytest.param(_t(flags=1 << 15 | PENDING), R.RESERVED_FLAG, id="reserved_flag_high"),
        pytest.param(_t(id=0), R.ID_MUST_NOT_BE_ZERO, id="id_zero"),
        pytest.param(_t(id=ID_MAX), R.ID_MUST_NOT_BE_INT_MAX, id="id_max"),
        pytest.param(
            post(60, PENDING_ID, flags=POST | VOID), R.FLAGS_ARE_MUTUALLY_EXCLUSIVE, id="post_void"
        ),
        pytest.param(
            post(60, PENDING_ID, flags=POST | PENDING),
            R.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
            id="post_pending",
        ),
        pytest.param(
            post(60, PENDING_ID, flags=VOID | PENDING),
            R.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
            id="void_pending",
        ),
        pytest.param(
            post(60, PENDING_ID, flags=POST | BAL_DR), R.FLAGS_ARE_MUTUALLY_EXCLUSIVE, id="post_bal"
        ),
        pytest.param(
            post(60, PENDING_ID, flags=VOID | BAL_CR), R.FLAGS_ARE_MUTUALLY_EXCLUSIVE, id="void_bal"
        ),
        pytest.param(
            post(60, PENDING_ID, flags=POST | CLOSE_DR),
            R.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
            id="post_closing",
        ),
        pytest.param(
            post(60, PENDING_ID, flags=VOID | CLOSE_CR),
            R.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
            id="void_closing",
        ),
        pytest.param(_t(dr=0), R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO, id="dr_zero"),
        pytest.param(_t(dr=ID_MAX), R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX, id="dr_max"),
        pytest.param(_t(cr=0), R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO, id="cr_zero"),
        pytest.param(_t(cr=ID_MAX), R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX, id="cr_max"),
        pytest.param(_t(cr=1), R.ACCOUNTS_MUST_BE_DIFFERENT, id="same_accounts"),
        pytest.param(_t(pending_id=PENDING_ID), R.PENDING_ID_MUST_BE_ZERO, id="pending_id_set"),
        pytest.param(post(60, 0), R.PENDING_ID_MUST_NOT_BE_ZERO, id="post_pending_id_zero"),
        pytest.param(void(60, 0), R.PENDING_ID_MUST_NOT_BE_ZERO, id="void_pending_id_zero"),
        pytest.param(post(60, ID_MAX), R.PENDING_ID_MUST_NOT_BE_INT_MAX, id="pending_id_max"),
        pytest.param(post(60, 60), R.PENDING_ID_MUST_BE_DIFFERENT, id="pending_id_is_own_id"),
        pytest.param(_t(timeout=1), R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER, id="timeout_posted"),
        pytest.param(
            post(60, PENDING_ID, timeout=1),
            R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
            id="timeout_on_post",
        ),
        pytest.param(_t(flags=CLOSE_DR), R.CLOSING_TRANSFER_MUST_BE_PENDING, id="closing_dr"),
        pytest.param(_t(flags=CLOSE_CR), R.CLOSING_TRANSFER_MUST_BE_PENDING, id="closing_cr"),
        pytest.param(_t(amount=0), R.AMOUNT_MUST_NOT_BE_ZERO, id="amount_zero"),
        pytest.param(_t(amount=0, flags=PENDING), R.AMOUNT_MUST_NOT_BE_ZERO, id="pending_zero"),
        pytest.param(_t(amount=0, flags=BAL_DR), R.AMOUNT_MUST_NOT_BE_ZERO, id="balancing_zero"),
        pytest.param(_t(amount=-1), R.AMOUNT_MUST_NOT_BE_ZERO, id="amount_negative"),
        pytest.param(post(60, PENDING_ID, amount=-1), R.AMOUNT_MUST_NOT_BE_ZERO, id="post_neg"),
        pytest.param(_t(ledger=0), R.LEDGER_MUST_NOT_BE_ZERO, id="ledger_zero"),
        pytest.param(_t(code=0), R.CODE_MUST_NOT_BE_ZERO, id="code_zero"),
        pytest.param(_t(dr=99), R.DEBIT_ACCOUNT_NOT_FOUND, id="dr_not_found"),
        pytest.param(_t(cr=99), R.CREDIT_ACCOUNT_NOT_FOUND, id="cr_not_found"),
        pytest.param(_t(dr=99, cr=98), R.DEBIT_ACCOUNT_NOT_FOUND, id="both_not_found"),
        pytest.param(_t(cr=5), R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER, id="ledgers_differ"),
        pytest.param(
            _t(ledger=2), R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, id="wrong_ledger"
        ),
        pytest.param(_t(dr=3, amount=101), R.EXCEEDS_CREDITS, id="exceeds_credits"),
        pytest.param(
            _t(dr=3, amount=101, flags=PENDING), R.EXCEEDS_CREDITS, id="exceeds_credits_pending"
        ),
        pytest.param(_t(cr=4, amount=101), R.EXCEEDS_DEBITS, id="exceeds_debits"),
        pytest.param(
            _t(cr=4, amount=101, flags=PENDING), R.EXCEEDS_DEBITS, id="exceeds_debits_pending"
        ),
        pytest.param(_t(amount=AMOUNT_MAX + 1), R.OVERFLOWS_DEBITS_POSTED, id="amount_over_int64"),
        pytest.param(post(60, 999), R.PENDING_TRANSFER_NOT_FOUND, id="pending_not_found"),
        pytest.param(post(60, 1001), R.PENDING_TRANSFER_NOT_PENDING, id="not_pending"),
        pytest.param(post(60, 1005), R.PENDING_TRANSFER_NOT_PENDING, id="a_post_is_not_pending"),
        pytest.param(
            post(60, PENDING_ID, dr=2),
            R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
            id="post_other_dr",
        ),
        pytest.param(
            void(60, PENDING_ID, cr=1),
            R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID,
            id="void_other_cr",
        ),
        pytest.param(
            post(60, PENDING_ID, ledger=2),
            R.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER,
            id="post_other_ledger",
        ),
        pytest.param(
            post(60, PENDING_ID, code=2), R.PENDING_TRANSFER_HAS_DIFFERENT_CODE, id="other_code"
        ),
        pytest.param(
            post(60, PENDING_ID, amount=51), R.EXCEEDS_PENDING_TRANSFER_AMOUNT, id="post_too_much"
        ),
        pytest.param(
            void(60, PENDING_ID, amount=51), R.EXCEEDS_PENDING_TRANSFER_AMOUNT, id="void_too_much"
        ),
        pytest.param(
            void(60, PENDING_ID, amount=49),
            R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT,
            id="void_partial",
        ),
        pytest.param(
            post(60, POSTED_PENDING_ID), R.PENDING_TRANSFER_ALREADY_POSTED, id="post_posted"
        ),
        pytest.param(
            void(60, POSTED_PENDING_ID), R.PENDING_TRANSFER_ALREADY_POSTED, id="void_posted"
        ),
        pytest.param(
            post(60, VOIDED_PENDING_ID), R.PENDING_TRANSFER_ALREADY_VOIDED, id="post_voided"
        ),
        pytest.param(
            void(60, VOIDED_PENDING_ID), R.PENDING_TRANSFER_ALREADY_VOIDED, id="void_voided"
        ),
    ],
)
def test_transfer_rejected(engine: Engine, transfer: Transfer, expected: str) -> None:
    assert_rejected(engine, [transfer], [expected])


def test_limits_allow_exactly_the_available_amount(engine: Engine) -> None:
    ok_transfers(engine, [xfer(60, dr=3, cr=2, amount=60, flags=PENDING)])
    # The reservation counts against the limit ...
    assert_rejected(engine, [xfer(61, dr=3, cr=2, amount=41)], [R.EXCEEDS_CREDITS])
    ok_transfers(engine, [xfer(61, dr=3, cr=2, amount=40)])
    assert balances(engine, 3) == (60, 40, 0, 100)
    ok_transfers(engine, [xfer(62, dr=1, cr=4, amount=100)])
    assert_rejected(engine, [xfer(63, dr=1, cr=4, amount=1)], [R.EXCEEDS_DEBITS])
    # ... and voiding it frees the room again.
    ok_transfers(engine, [void(64, 60)])
    ok_transfers(engine, [xfer(65, dr=3, cr=2, amount=60)])
    assert balances(engine, 3) == (0, 100, 0, 100)


# ================================================================================== idempotency

# Existing transfers in the fixture: 1004 (1 -> 2, amount 5, user data 7/8/9), 1005 (full post of
# 102), PENDING_TIMEOUT_ID (pending with timeout 3600).
E = xfer(1004, amount=5, user_data_128=7, user_data_64=8, user_data_32=9)
EP = post(1005, POSTED_PENDING_ID)
ET = xfer(PENDING_TIMEOUT_ID, amount=20, flags=PENDING, timeout=3600)


def _r(t: Transfer, **kw: int) -> Transfer:
    return msgspec.structs.replace(t, **kw)


@pytest.mark.parametrize(
    ("transfer", "expected"),
    [
        pytest.param(E, R.EXISTS, id="exists"),
        pytest.param(EP, R.EXISTS, id="post_exists"),
        pytest.param(_r(EP, amount=30), R.EXISTS, id="post_exists_explicit_amount"),
        pytest.param(
            _r(EP, debit_account_id=1, credit_account_id=2, ledger=1, code=1),
            R.EXISTS,
            id="post_exists_explicit_fields",
        ),
        pytest.param(ET, R.EXISTS, id="pending_exists"),
        pytest.param(_r(E, flags=PENDING), R.EXISTS_WITH_DIFFERENT_FLAGS, id="flags"),
        pytest.param(_r(E, debit_account_id=7), R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID, id="dr"),
        pytest.param(
            _r(E, credit_account_id=7), R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID, id="cr"
        ),
        pytest.param(
            _r(EP, debit_account_id=7), R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID, id="post_dr"
        ),
        pytest.param(_r(E, amount=6), R.EXISTS_WITH_DIFFERENT_AMOUNT, id="amount"),
        pytest.param(_r(EP, amount=29), R.EXISTS_WITH_DIFFERENT_AMOUNT, id="post_amount"),
        pytest.param(
            _r(EP, pending_id=PENDING_ID), R.EXISTS_WITH_DIFFERENT_PENDING_ID, id="pending_id"
        ),
        pytest.param(
            _r(E, user_data_128=1), R.EXISTS_WITH_DIFFERENT_USER_DATA_128, id="user_data_128"
        ),
        pytest.param(
            _r(E, user_data_64=1), R.EXISTS_WITH_DIFFERENT_USER_DATA_64, id="user_data_64"
        ),
        pytest.param(
            _r(E, user_data_32=1), R.EXISTS_WITH_DIFFERENT_USER_DATA_32, id="user_data_32"
        ),
        pytest.param(_r(ET, timeout=3601), R.EXISTS_WITH_DIFFERENT_TIMEOUT, id="timeout"),
        pytest.param(_r(E, ledger=2), R.EXISTS_WITH_DIFFERENT_LEDGER, id="ledger"),
        pytest.param(_r(EP, ledger=2), R.EXISTS_WITH_DIFFERENT_LEDGER, id="post_ledger"),
        pytest.param(_r(E, code=2), R.EXISTS_WITH_DIFFERENT_CODE, id="code"),
        # Existence is checked before validation: a re-sent id never reaches the other checks.
        pytest.param(_r(E, ledger=0), R.EXISTS_WITH_DIFFERENT_LEDGER, id="before_validation"),
    ],
)
def test_transfer_idempotency(engine: Engine, transfer: Transfer, expected: str) -> None:
    assert_rejected(engine, [transfer], [expected])


def test_exists_in_the_same_batch_applies_once(engine: Engine) -> None:
    before = balances(engine, 7)
    outcome = engine.create_transfers([xfer(60, dr=7), xfer(60, dr=7), xfer(60, dr=7, amount=1)])
    assert outcome.results == [R.OK, R.EXISTS, R.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert [t.id for t in outcome.transfers] == [60]
    assert balances(engine, 7) == (before[0], before[1] + 10, before[2], before[3])


def test_resending_a_whole_batch_applies_nothing(engine: Engine) -> None:
    batch = [xfer(60, amount=1), xfer(61, amount=2, flags=PENDING), post(62, 61)]
    ok_transfers(engine, batch)
    assert_rejected(engine, batch, [R.EXISTS] * 3)


def test_post_resent_with_amount_zero_after_a_partial_post(engine: Engine) -> None:
    ok_transfers(engine, [post(60, PENDING_ID, amount=20)])
    # Amount 0 asks for the whole pending amount (50): not what was posted (20).
    assert_rejected(engine, [post(60, PENDING_ID)], [R.EXISTS_WITH_DIFFERENT_AMOUNT])
    assert_rejected(engine, [post(60, PENDING_ID, amount=20)], [R.EXISTS])


def test_balancing_transfer_idempotency(engine: Engine) -> None:
    ok_transfers(engine, [xfer(60, dr=3, cr=2, amount=1000, flags=BAL_DR)])
    assert engine.transfers[60].amount == 100
    # The amount of a balancing transfer is an upper bound: re-sending it is `exists` ...
    assert_rejected(engine, [xfer(60, dr=3, cr=2, amount=1000, flags=BAL_DR)], [R.EXISTS])
    assert_rejected(engine, [xfer(60, dr=3, cr=2, amount=100, flags=BAL_DR)], [R.EXISTS])
    # ... unless the bound is below what was moved.
    assert_rejected(
        engine, [xfer(60, dr=3, cr=2, amount=99, flags=BAL_DR)], [R.EXISTS_WITH_DIFFERENT_AMOUNT]
    )


def test_id_of_a_failed_transfer_can_be_used_later(engine: Engine) -> None:
    assert_rejected(engine, [xfer(60, dr=3, amount=1000)], [R.EXCEEDS_CREDITS])
    ok_transfers(engine, [xfer(60, dr=3, amount=10)])


# ==================================================================================== overflows


@pytest.fixture
def fresh(clock: FakeClock) -> Engine:
    e = Engine(clock)
    ok_accounts(e, [acct(1), acct(2), acct(3)])
    return e


@pytest.mark.parametrize(
    ("setup", "transfer", "expected"),
    [
        pytest.param(
            xfer(10, dr=1, cr=2, amount=AMOUNT_MAX, flags=PENDING),
            xfer(11, dr=1, cr=3, amount=1, flags=PENDING),
            R.OVERFLOWS_DEBITS_PENDING,
            id="debits_pending",
        ),
        pytest.param(
            xfer(10, dr=1, cr=2, amount=AMOUNT_MAX, flags=PENDING),
            xfer(11, dr=3, cr=2, amount=1, flags=PENDING),
            R.OVERFLOWS_CREDITS_PENDING,
            id="credits_pending",
        ),
        pytest.param(
            xfer(10, dr=1, cr=2, amount=AMOUNT_MAX),
            xfer(11, dr=1, cr=3, amount=1),
            R.OVERFLOWS_DEBITS_POSTED,
            id="debits_posted",
        ),
        pytest.param(
            xfer(10, dr=1, cr=2, amount=AMOUNT_MAX),
            xfer(11, dr=3, cr=2, amount=1),
            R.OVERFLOWS_CREDITS_POSTED,
            id="credits_posted",
        ),
        # A pending transfer may be posted later, so the posted balance must have room too.
        pytest.param(
            xfer(10, dr=1, cr=2, amount=AMOUNT_MAX),
            xfer(11, dr=1, cr=3, amount=1, flags=PENDING),
            R.OVERFLOWS_DEBITS_POSTED,
            id="debits_posted_by_pending",
        ),
        pytest.param(
            xfer(10, dr=1, cr=2, amount=AMOUNT_MAX),
            xfer(11, dr=3, cr=2, amount=1, flags=PENDING),
            R.OVERFLOWS_CREDITS_POSTED,
            id="credits_posted_by_pending",
        ),
        pytest.param(
            xfer(10, dr=1, cr=2, amount=AMOUNT_MAX - 5, flags=PENDING),
            xfer(11, dr=1, cr=3, amount=10),
            R.OVERFLOWS_DEBITS,
            id="debits",
        ),
        pytest.param(
            xfer(10, dr=1, cr=2, amount=AMOUNT_MAX - 5, flags=PENDING),
            xfer(11, dr=3, cr=2, amount=10),
            R.OVERFLOWS_CREDITS,
            id="credits",
        ),
    ],
)
def test_overflows(fresh: Engine, setup: Transfer, transfer: Transfer, expected: str) -> None:
    ok_transfers(fresh, [setup])
    assert_rejected(fresh, [transfer], [expected])


def test_amount_up_to_int64_max_is_accepted(fresh: Engine) -> None:
    ok_transfers(fresh, [xfer(10, amount=AMOUNT_MAX)])
    assert balances(fresh, 1) == (0, AMOUNT_MAX, 0, 0)


def test_overflows_timeout(fresh: Engine, clock: FakeClock) -> None:
    # The deadline (timestamp + timeout in ns) must fit in int64.
    room_s = (2**63 - 1 - clock.ns) // NS_PER_S
    assert_rejected(
        fresh, [xfer(10, amount=1, flags=PENDING, timeout=room_s + 1)], [R.OVERFLOWS_TIMEOUT]
    )
    assert_rejected(
        fresh, [xfer(10, amount=1, flags=PENDING, timeout=2**64)], [R.OVERFLOWS_TIMEOUT]
    )
    ok_transfers(fresh, [xfer(10, amount=1, flags=PENDING, timeout=room_s - 1)])


# ================================================================================ linked chains


def test_linked_chain_success(engine: Engine) -> None:
    outcome = engine.create_transfers(
        [
            xfer(60, dr=1, cr=7, amount=90, flags=LINKED),
            xfer(61, dr=7, cr=2, amount=80, flags=LINKED),
            xfer(62, dr=1, cr=2, amount=5, flags=PENDING),
        ]
    )
    assert outcome.results == [R.OK, R.OK, R.OK]
    assert [t.id for t in outcome.transfers] == [60, 61, 62]
    assert balances(engine, 7) == (0, 80, 0, 90)


def test_linked_chain_failure_in_the_middle_rolls_back_earlier_legs(engine: Engine) -> None:
    assert_rejected(
        engine,
        [
            xfer(60, dr=1, cr=3, amount=5, flags=LINKED),  # credits 3 ...
            xfer(61, dr=3, cr=7, amount=105, flags=LINKED),  # ... so that 3 may pay 105
            xfer(62, dr=7, cr=99, amount=1),  # fails
        ],
        [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_FAILED, R.CREDIT_ACCOUNT_NOT_FOUND],
    )
    # The rolled-back ids are free again.
    ok_transfers(engine, [xfer(60), xfer(61), xfer(62)])


def test_events_after_a_failure_in_a_chain_are_not_evaluated(engine: Engine) -> None:
    outcome = engine.create_transfers(
        [
            xfer(60, flags=LINKED),
            xfer(61, dr=99, flags=LINKED),  # fails
            xfer(62, dr=0, flags=LINKED),  # invalid, but never evaluated
            xfer(63),  # ends the chain
            xfer(64, amount=3),  # not in the chain: evaluated normally
        ]
    )
    assert outcome.results == [
        R.LINKED_EVENT_FAILED,
        R.DEBIT_ACCOUNT_NOT_FOUND,
        R.LINKED_EVENT_FAILED,
        R.LINKED_EVENT_FAILED,
        R.OK,
    ]
    assert [t.id for t in outcome.transfers] == [64]
    assert set(engine.transfers).isdisjoint({60, 61, 62, 63})


def test_failure_at_the_end_of_a_chain(engine: Engine) -> None:
    outcome = engine.create_transfers(
        [xfer(60, flags=LINKED), xfer(61, flags=LINKED), xfer(62, dr=99), xfer(63)]
    )
    assert outcome.results == [
        R.LINKED_EVENT_FAILED,
        R.LINKED_EVENT_FAILED,
        R.DEBIT_ACCOUNT_NOT_FOUND,
        R.OK,
    ]


def test_linked_event_chain_open_at_end_of_batch(engine: Engine) -> None:
    assert_rejected(engine, [xfer(60, flags=LINKED)], [R.LINKED_EVENT_CHAIN_OPEN])
    outcome = engine.create_transfers(
        [xfer(60), xfer(61, flags=LINKED), xfer(62, flags=LINKED), xfer(63, flags=LINKED)]
    )
    assert outcome.results == [
        R.OK,
        R.LINKED_EVENT_FAILED,
        R.LINKED_EVENT_FAILED,
        R.LINKED_EVENT_CHAIN_OPEN,
    ]
    assert [t.id for t in outcome.transfers] == [60]


def test_chain_open_at_a_request_end_does_not_leak_into_the_next_request(engine: Engine) -> None:
    outcome = engine.create_transfers(
        [xfer(60, flags=LINKED), xfer(61, flags=LINKED), xfer(62), xfer(63)],
        request_ends=[1],
    )
    assert outcome.results == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_CHAIN_OPEN, R.OK, R.OK]
    # A chain broken before a request end stops at the request end.
    outcome = engine.create_transfers(
        [xfer(70, dr=99, flags=LINKED), xfer(71, flags=LINKED), xfer(72)], request_ends=[1]
    )
    assert outcome.results == [R.DEBIT_ACCOUNT_NOT_FOUND, R.LINKED_EVENT_FAILED, R.OK]


def test_exists_inside_a_chain_fails_the_chain(engine: Engine) -> None:
    assert_rejected(engine, [xfer(60, flags=LINKED), E], [R.LINKED_EVENT_FAILED, R.EXISTS])
    # Also when the duplicate id comes from an earlier leg of the same chain.
    assert_rejected(
        engine,
        [xfer(60, flags=LINKED), xfer(60, flags=LINKED), xfer(61)],
        [R.LINKED_EVENT_FAILED, R.EXISTS, R.LINKED_EVENT_FAILED],
    )


def test_two_chains_in_a_batch_are_independent(engine: Engine) -> None:
    outcome = engine.create_transfers(
        [xfer(60, flags=LINKED), xfer(61, dr=99), xfer(62, flags=LINKED), xfer(63)]
    )
    assert outcome.results == [R.LINKED_EVENT_FAILED, R.DEBIT_ACCOUNT_NOT_FOUND, R.OK, R.OK]


def test_chain_rollback_restores_pending_state_closing_and_history(engine: Engine) -> None:
    assert_rejected(
        engine,
        [
            xfer(60, dr=1, cr=6, amount=3, flags=LINKED | PENDING, timeout=1),  # history row
            post(61, PENDING_ID, flags=POST | LINKED),
            void(62, PENDING_TIMEOUT_ID, flags=VOID | LINKED),
            xfer(63, dr=7, cr=2, amount=1, flags=LINKED | PENDING | CLOSE_DR),
            xfer(64, dr=99),
        ],
        [R.LINKED_EVENT_FAILED] * 4 + [R.DEBIT_ACCOUNT_NOT_FOUND],
    )
    assert engine.pending_status[PENDING_ID] == PendingStatus.PENDING
    assert not engine.accounts[7].flags & CLOSED
    ok_transfers(engine, [post(61, PENDING_ID)])


def test_rolled_back_pending_with_timeout_never_expires(engine: Engine, clock: FakeClock) -> None:
    assert_rejected(
        engine,
        [xfer(60, amount=3, flags=LINKED | PENDING, timeout=1), xfer(61, dr=99)],
        [R.LINKED_EVENT_FAILED, R.DEBIT_ACCOUNT_NOT_FOUND],
    )
    ok_transfers(engine, [xfer(60, amount=4, flags=PENDING, timeout=5)])  # reuses the id
    clock.advance(seconds=2)
    outcome = engine.create_transfers([xfer(70)])
    assert outcome.expirations == []
    assert engine.pending_status[60] == PendingStatus.PENDING


# ============================================================================ pending/post/void


def test_pending_reserves(engine: Engine) -> None:
    before = balances(engine, 7)
    ok_transfers(engine, [xfer(60, dr=7, cr=2, amount=15, flags=PENDING)])
    assert balances(engine, 7) == (before[0] + 15, before[1], before[2], before[3])
    assert engine.pending_status[60] == PendingStatus.PENDING


@pytest.mark.parametrize(
    ("amount", "posted"),
    [(0, 50), (50, 50), (20, 20), (1, 1)],
    ids=["amount_zero_means_full", "full", "partial", "minimal"],
)
def test_post_pending(engine: Engine, amount: int, posted: int) -> None:
    dr, cr = balances(engine, 1), balances(engine, 2)
    outcome = engine.create_transfers([post(60, PENDING_ID, amount=amount, user_data_32=4)])
    assert outcome.results == [R.OK]
    (stored,) = outcome.transfers
    # Accounts, ledger and code come from the pending transfer.
    assert (stored.debit_account_id, stored.credit_account_id, stored.ledger, stored.code) == (
        1,
        2,
        1,
        1,
    )
    assert (stored.amount, stored.pending_id, stored.user_data_32) == (posted, PENDING_ID, 4)
    # The whole reservation is released, `posted` of it moves.
    assert balances(engine, 1) == (dr[0] - 50, dr[1] + posted, dr[2], dr[3])
    assert balances(engine, 2) == (cr[0], cr[1], cr[2] - 50, cr[3] + posted)
    assert engine.pending_status[PENDING_ID] == PendingStatus.POSTED


@pytest.mark.parametrize("amount", [0, 50])
def test_void_pending(engine: Engine, amount: int) -> None:
    dr, cr = balances(engine, 1), balances(engine, 2)
    outcome = engine.create_transfers([void(60, PENDING_ID, amount=amount, dr=1, cr=2, code=1)])
    assert outcome.results == [R.OK]
    assert outcome.transfers[0].amount == 50
    assert balances(engine, 1) == (dr[0] - 50, dr[1], dr[2], dr[3])
    assert balances(engine, 2) == (cr[0], cr[1], cr[2] - 50, cr[3])
    assert engine.pending_status[PENDING_ID] == PendingStatus.VOIDED


def test_pending_and_post_in_one_batch(engine: Engine) -> None:
    outcome = engine.create_transfers(
        [xfer(60, dr=7, amount=9, flags=PENDING), post(61, 60, amount=4), post(62, 60)]
    )
    assert outcome.results == [R.OK, R.OK, R.PENDING_TRANSFER_ALREADY_POSTED]
    assert balances(engine, 7) == (0, 4, 0, 0)


def test_post_after_void_and_void_after_post(engine: Engine) -> None:
    ok_transfers(engine, [void(60, PENDING_ID)])
    assert_rejected(engine, [post(61, PENDING_ID)], [R.PENDING_TRANSFER_ALREADY_VOIDED])
    ok_transfers(engine, [xfer(62, flags=PENDING), post(63, 62)])
    assert_rejected(engine, [void(64, 62)], [R.PENDING_TRANSFER_ALREADY_POSTED])


# ================================================================================ timeout expiry


def test_pending_expires_at_the_next_batch_after_its_deadline(
    engine: Engine, clock: FakeClock
) -> None:
    outcome = engine.create_transfers([xfer(60, dr=7, cr=2, amount=9, flags=PENDING, timeout=2)])
    deadline = outcome.transfers[0].timestamp + 2 * NS_PER_S
    clock.ns = deadline - 1
    outcome = engine.create_transfers([xfer(61, amount=1)])
    assert outcome.expirations == []
    assert balances(engine, 7) == (9, 0, 0, 0)
    clock.ns = deadline
    outcome = engine.create_transfers([xfer(62, amount=1)])
    (expiration,) = outcome.expirations
    assert expiration.pending_id == 60
    assert deadline <= expiration.timestamp < outcome.transfers[0].timestamp
    assert balances(engine, 7) == (0, 0, 0, 0)
    assert engine.pending_status[60] == PendingStatus.EXPIRED
    assert_rejected(engine, [post(63, 60)], [R.PENDING_TRANSFER_EXPIRED])
    assert_rejected(engine, [void(63, 60)], [R.PENDING_TRANSFER_EXPIRED])


def test_post_in_the_batch_that_expires_the_pending(engine: Engine, clock: FakeClock) -> None:
    outcome = engine.create_transfers([xfer(60, dr=7, cr=2, amount=9, flags=PENDING, timeout=1)])
    clock.advance(seconds=5)
    outcome = engine.create_transfers([post(61, 60)])
    assert outcome.results == [R.PENDING_TRANSFER_EXPIRED]
    assert [e.pending_id for e in outcome.expirations] == [60]
    assert outcome.transfers == []


def test_post_after_the_deadline_within_a_batch(engine: Engine, clock: FakeClock) -> None:
    outcome = engine.create_transfers([xfer(60, dr=7, cr=2, amount=9, flags=PENDING, timeout=1)])
    deadline = outcome.transfers[0].timestamp + NS_PER_S
    # The batch starts 1 ns before the deadline: nothing has expired yet, but the second event's
    # timestamp is the deadline itself.
    clock.ns = deadline - 1
    before = snapshot(engine)
    outcome = engine.create_transfers([xfer(61, dr=1, cr=2, amount=1), post(62, 60)])
    assert outcome.results == [R.OK, R.PENDING_TRANSFER_EXPIRED]
    assert outcome.expirations == []
    assert [t.id for t in outcome.transfers] == [61]
    assert snapshot(engine)[2] == before[2]
    assert balances(engine, 7) == (9, 0, 0, 0)
    # The next batch expires it.
    outcome = engine.create_transfers([xfer(63, amount=1)])
    assert [e.pending_id for e in outcome.expirations] == [60]
    assert balances(engine, 7) == (0, 0, 0, 0)


def test_post_before_the_deadline_prevents_expiry(engine: Engine, clock: FakeClock) -> None:
    ok_transfers(engine, [xfer(60, dr=7, cr=2, amount=9, flags=PENDING, timeout=1)])
    ok_transfers(engine, [post(61, 60, amount=3)])
    clock.advance(seconds=10)
    outcome = engine.create_transfers([xfer(62, amount=1)])
    assert outcome.expirations == []
    assert balances(engine, 7) == (0, 3, 0, 0)
    assert engine.pending_status[60] == PendingStatus.POSTED


def test_expirations_in_deadline_order_with_unique_timestamps(
    engine: Engine, clock: FakeClock
) -> None:
    ok_transfers(
        engine,
        [
            xfer(60, amount=1, flags=PENDING, timeout=3),
            xfer(61, amount=1, flags=PENDING, timeout=1),
            xfer(62, amount=1, flags=PENDING, timeout=2),
            xfer(63, amount=1, flags=PENDING, timeout=9),
        ],
    )
    clock.advance(seconds=4)
    outcome = engine.create_accounts([acct(20)])  # account batches expire pendings too
    assert [e.pending_id for e in outcome.expirations] == [61, 62, 60]
    stamps = [e.timestamp for e in outcome.expirations] + [outcome.accounts[0].timestamp]
    assert stamps == sorted(set(stamps))
    assert engine.pending_status[63] == PendingStatus.PENDING


# ==================================================================================== balancing


def test_balancing_debit_moves_what_is_available(engine: Engine) -> None:
    outcome = engine.create_transfers([xfer(60, dr=3, cr=2, amount=1000, flags=BAL_DR)])
    assert outcome.results == [R.OK]
    assert outcome.transfers[0].amount == 100
    assert balances(engine, 3) == (0, 100, 0, 100)
    # Nothing left to move.
    assert_rejected(engine, [xfer(61, dr=3, cr=2, amount=1, flags=BAL_DR)], [R.EXCEEDS_CREDITS])


def test_balancing_debit_below_the_available_amount_moves_the_amount(engine: Engine) -> None:
    ok_transfers(engine, [xfer(60, dr=3, cr=2, amount=30, flags=BAL_DR | PENDING)])
    assert engine.transfers[60].amount == 30
    # The reservation lowers what is available.
    ok_transfers(engine, [xfer(61, dr=3, cr=2, amount=1000, flags=BAL_DR)])
    assert engine.transfers[61].amount == 70


def test_balancing_credit_moves_what_is_available(engine: Engine) -> None:
    outcome = engine.create_transfers([xfer(60, dr=1, cr=4, amount=1000, flags=BAL_CR)])
    assert outcome.results == [R.OK]
    assert outcome.transfers[0].amount == 100
    assert balances(engine, 4) == (0, 100, 0, 100)
    assert_rejected(engine, [xfer(61, dr=1, cr=4, amount=1, flags=BAL_CR)], [R.EXCEEDS_DEBITS])


def test_balancing_on_an_unlimited_account_uses_its_balance(engine: Engine) -> None:
    # Account 7 has nothing: a balancing debit has nothing to move, whatever its flags.
    assert_rejected(engine, [xfer(60, dr=7, cr=2, amount=5, flags=BAL_DR)], [R.EXCEEDS_CREDITS])
    ok_transfers(engine, [xfer(61, dr=1, cr=7, amount=8)])
    # Both bounds apply: 7 can give 8, 4 can take 100.
    ok_transfers(engine, [xfer(62, dr=7, cr=4, amount=50, flags=BAL_DR | BAL_CR)])
    assert engine.transfers[62].amount == 8
    # 7 now has debits 8 = credits 8: nothing to balance on its credit side either.
    assert_rejected(engine, [xfer(63, dr=1, cr=7, amount=5, flags=BAL_CR)], [R.EXCEEDS_DEBITS])


# ====================================================================================== closing


@pytest.mark.parametrize(
    ("flags", "closed_id", "result_as_debit", "result_as_credit"),
    [
        (CLOSE_DR, 7, R.DEBIT_ACCOUNT_ALREADY_CLOSED, R.CREDIT_ACCOUNT_ALREADY_CLOSED),
        (CLOSE_CR, 2, R.DEBIT_ACCOUNT_ALREADY_CLOSED, R.CREDIT_ACCOUNT_ALREADY_CLOSED),
    ],
    ids=["closing_debit", "closing_credit"],
)
def test_closing_transfer_closes_and_void_reopens(
    engine: Engine, flags: int, closed_id: int, result_as_debit: str, result_as_credit: str
) -> None:
    other = 1
    ok_transfers(engine, [xfer(60, dr=7, cr=2, amount=1, flags=PENDING | flags)])
    assert engine.accounts[closed_id].flags & CLOSED
    assert_rejected(engine, [xfer(61, dr=closed_id, cr=other)], [result_as_debit])
    assert_rejected(engine, [xfer(61, dr=other, cr=closed_id)], [result_as_credit])
    assert_rejected(engine, [xfer(61, dr=closed_id, cr=other, flags=PENDING)], [result_as_debit])
    ok_transfers(engine, [void(62, 60)])
    assert not engine.accounts[closed_id].flags & CLOSED
    ok_transfers(engine, [xfer(61, dr=closed_id, cr=other)])


def test_closing_transfer_cannot_be_posted(engine: Engine) -> None:
    ok_transfers(engine, [xfer(60, dr=7, cr=2, amount=1, flags=PENDING | CLOSE_DR)])
    assert_rejected(engine, [post(61, 60)], [R.DEBIT_ACCOUNT_ALREADY_CLOSED])
    ok_transfers(engine, [xfer(62, dr=1, cr=2, amount=1, flags=PENDING | CLOSE_CR)])
    assert_rejected(engine, [post(63, 62)], [R.CREDIT_ACCOUNT_ALREADY_CLOSED])


def test_closed_account_accepts_voids_but_not_posts(engine: Engine) -> None:
    ok_transfers(
        engine,
        [
            xfer(60, dr=7, cr=2, amount=5, flags=PENDING),
            xfer(61, dr=1, cr=7, amount=6, flags=PENDING),
        ],
    )
    ok_transfers(engine, [xfer(62, dr=7, cr=1, amount=1, flags=PENDING | CLOSE_DR)])
    assert_rejected(engine, [post(63, 60)], [R.DEBIT_ACCOUNT_ALREADY_CLOSED])
    assert_rejected(engine, [post(63, 61)], [R.CREDIT_ACCOUNT_ALREADY_CLOSED])
    ok_transfers(engine, [void(63, 60), void(64, 61)])
    assert balances(engine, 7) == (1, 0, 0, 0)
    assert engine.accounts[7].flags & CLOSED


def test_closing_transfer_expiry_reopens(engine: Engine, clock: FakeClock) -> None:
    ok_transfers(engine, [xfer(60, dr=7, cr=2, amount=1, flags=PENDING | CLOSE_DR, timeout=1)])
    assert engine.accounts[7].flags & CLOSED
    clock.advance(seconds=2)
    outcome = engine.create_transfers([xfer(61, dr=7, cr=2, amount=1)])
    assert [e.pending_id for e in outcome.expirations] == [60]
    assert outcome.results == [R.OK]
    assert not engine.accounts[7].flags & CLOSED


def test_closing_an_already_closed_account_fails(engine: Engine) -> None:
    ok_transfers(engine, [xfer(60, dr=7, cr=2, amount=1, flags=PENDING | CLOSE_DR)])
    assert_rejected(
        engine,
        [xfer(61, dr=7, cr=1, amount=1, flags=PENDING | CLOSE_DR)],
        [R.DEBIT_ACCOUNT_ALREADY_CLOSED],
    )


# ====================================================================================== history


def test_history_rows(engine: Engine, clock: FakeClock) -> None:
    outcome = engine.create_transfers(
        [
            xfer(60, dr=1, cr=6, amount=10),
            xfer(61, dr=1, cr=2, amount=1),  # no history account: no row
            xfer(62, dr=6, cr=2, amount=4, flags=PENDING, timeout=1),
            xfer(63, dr=6, cr=2, amount=3, flags=PENDING),
            post(64, 63, amount=2),
        ]
    )
    assert outcome.results == [R.OK] * 5
    ts = {t.id: t.timestamp for t in outcome.transfers}
    assert outcome.history == [
        (6, AccountBalance(ts[60], 0, 0, 0, 10)),
        (6, AccountBalance(ts[62], 4, 0, 0, 10)),
        (6, AccountBalance(ts[63], 7, 0, 0, 10)),
        (6, AccountBalance(ts[64], 4, 2, 0, 10)),
    ]
    clock.advance(seconds=2)
    outcome = engine.create_transfers([void(65, 60)])  # 60 is not pending
    assert outcome.results == [R.PENDING_TRANSFER_NOT_PENDING]
    (expiration,) = outcome.expirations
    assert outcome.history == [(6, AccountBalance(expiration.timestamp, 0, 2, 0, 10))]


def test_history_row_for_both_sides(engine: Engine) -> None:
    ok_accounts(engine, [acct(20, flags=HISTORY)])
    outcome = engine.create_transfers([xfer(60, dr=6, cr=20, amount=1)])
    assert [account_id for account_id, _ in outcome.history] == [6, 20]


# =================================================================================== timestamps


def test_timestamps_unique_and_strictly_increasing_across_batches(
    engine: Engine, clock: FakeClock
) -> None:
    stamps: list[int] = []
    for step in range(6):
        # The clock stands still, jumps ahead and even goes back: timestamps still increase.
        clock.advance(ns=(-3 if step == 2 else 0) + (10**6 if step == 4 else 0))
        outcome = engine.create_transfers(
            [xfer(5000 + step * 10 + i, amount=1, flags=PENDING, timeout=1) for i in range(3)]
            + [xfer(5009 + step * 10, dr=99)]
        )
        stamps += [e.timestamp for e in outcome.expirations]
        stamps += [t.timestamp for t in outcome.transfers]
        accounts = engine.create_accounts([acct(200 + step)])
        stamps += [e.timestamp for e in accounts.expirations]
        stamps += [a.timestamp for a in accounts.accounts]
    clock.advance(seconds=2)
    outcome = engine.create_transfers([xfer(500)])
    stamps += [e.timestamp for e in outcome.expirations] + [outcome.transfers[0].timestamp]
    assert stamps == sorted(set(stamps))
    assert len(outcome.expirations) == 18


def test_timestamps_follow_the_clock_when_it_is_ahead(engine: Engine, clock: FakeClock) -> None:
    clock.advance(seconds=100)
    outcome = engine.create_transfers([xfer(60, dr=99), xfer(61)])
    # Every event takes a timestamp, failed or not.
    assert outcome.transfers[0].timestamp == clock.ns + 1


# ======================================================================================= replay


def _replay(clock: FakeClock, accounts: list[Account], log: list) -> Engine:
    fresh = Engine(clock)
    fresh.replay(accounts, sorted(log, key=lambda r: r.timestamp))
    return fresh


def test_replay_rebuilds_the_same_state(clock: FakeClock) -> None:
    engine = Engine(clock)
    accounts: list[Account] = []
    log: list[Transfer | Expiration] = []

    def keep(outcome) -> None:
        accounts.extend(outcome.accounts)
        log.extend(outcome.transfers)
        log.extend(outcome.expirations)

    keep(engine.create_accounts([acct(1), acct(2), acct(3, flags=DMNEC), acct(4, flags=HISTORY)]))
    keep(
        engine.create_transfers(
            [
                xfer(10, dr=1, cr=3, amount=100),
                xfer(11, dr=3, cr=2, amount=30, flags=PENDING, timeout=1),
                xfer(12, dr=3, cr=4, amount=20, flags=PENDING),
                xfer(13, dr=3, cr=4, amount=20, flags=PENDING),
                xfer(14, dr=2, cr=4, amount=5, flags=PENDING | CLOSE_DR | LINKED),
                xfer(15, dr=1, cr=4, amount=5, flags=LINKED),
                xfer(16, dr=1, cr=99),  # fails the chain 14-16
                xfer(17, dr=1, cr=2, amount=1, flags=PENDING | CLOSE_CR),
                xfer(18, dr=3, cr=1, amount=1000, flags=BAL_DR),
                post(19, 12, amount=7),
            ]
        )
    )
    clock.advance(seconds=2)
    keep(
        engine.create_transfers(
            [void(20, 13), xfer(21, dr=4, cr=1, amount=1, flags=PENDING, timeout=60)]
        )
    )
    keep(engine.create_accounts([acct(5)]))

    fresh = _replay(clock, accounts, log)
    assert {i: msgspec.structs.astuple(a) for i, a in fresh.accounts.items()} == {
        i: msgspec.structs.astuple(a) for i, a in engine.accounts.items()
    }
    assert fresh.pending_status == engine.pending_status
    assert fresh.transfers == engine.transfers
    assert engine.pending_status[11] == PendingStatus.EXPIRED
    assert engine.accounts[2].flags & CLOSED
    for ledger in (1, 2):
        assert fresh.trial_balance(ledger) == engine.trial_balance(ledger)

    # Both continue identically: a pending survives replay and still expires.
    clock.advance(seconds=61)
    batch = [post(30, 21), void(31, 17), xfer(32, dr=1, cr=2, amount=1)]
    a, b = engine.create_transfers(batch), fresh.create_transfers(batch)
    assert a.results == b.results == [R.PENDING_TRANSFER_EXPIRED, R.OK, R.OK]
    assert a.expirations == b.expirations
    assert a.transfers == b.transfers
    assert fresh.pending_status == engine.pending_status


# ============================================================================== every code tested

_DEDICATED: dict[str, object] = {
    R.OK: test_transfer_ok_posts_and_stores,
    R.LINKED_EVENT_FAILED: test_linked_chain_failure_in_the_middle_rolls_back_earlier_legs,
    R.LINKED_EVENT_CHAIN_OPEN: test_linked_event_chain_open_at_end_of_batch,
    R.PENDING_TRANSFER_EXPIRED: test_pending_expires_at_the_next_batch_after_its_deadline,
    R.OVERFLOWS_TIMEOUT: test_overflows_timeout,
    R.DEBIT_ACCOUNT_ALREADY_CLOSED: test_closing_transfer_closes_and_void_reopens,
    R.CREDIT_ACCOUNT_ALREADY_CLOSED: test_closing_transfer_closes_and_void_reopens,
}


def _parametrized_codes(test: object, name: str) -> set[str]:
    codes = set()
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            argnames = (
                [n.strip() for n in mark.args[0].split(",")]
                if isinstance(mark.args[0], str)
                else list(mark.args[0])
            )
            position = argnames.index(name)
            for p in mark.args[1]:
                codes.add(p.values[position])
    return codes


def test_every_result_code_has_a_test() -> None:
    account_codes = _parametrized_codes(test_create_account_rejected, "expected") | {A.OK}
    assert account_codes == set(AccountResult)
    transfer_codes = (
        _parametrized_codes(test_transfer_rejected, "expected")
        | _parametrized_codes(test_transfer_idempotency, "expected")
        | _parametrized_codes(test_overflows, "expected")
        | set(_DEDICATED)
    )
    assert transfer_codes == set(TransferResult)


def test_failed_chain_that_created_and_posted_a_pending_leaves_no_status() -> None:
    """Regression: rollback must not resurrect the status of a pending the chain created."""
    engine = Engine(FakeClock())
    ok_accounts(engine, [acct(1), acct(2)])
    outcome = engine.create_transfers(
        [
            xfer(10, amount=5, flags=PENDING | LINKED),
            post(11, pending_id=10, flags=POST | LINKED),
            xfer(12, dr=1, cr=1, amount=1),
        ]
    )
    assert outcome.results[2] == "accounts_must_be_different"
    assert engine.transfers == {}
    assert engine.pending_status == {}
