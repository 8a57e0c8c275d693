"""The compiled row builder of SQLiteStore.commit gives exactly the Python rows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formicary.ledger import native
from formicary.ledger.sqlite_store import _python_transfer_rows
from formicary.ledger.types import AMOUNT_MAX, ID_MAX, Transfer

u128 = st.one_of(st.integers(0, 2**63 - 1), st.integers(2**63 - 2, ID_MAX))
transfers = st.builds(
    Transfer,
    id=u128,
    debit_account_id=u128,
    credit_account_id=u128,
    amount=st.integers(1, AMOUNT_MAX),
    ledger=st.integers(1, 2**32 - 1),
    code=st.integers(1, 2**16 - 1),
    flags=st.integers(0, 255),
    pending_id=u128,
    timeout=st.integers(0, 2**32 - 1),
    user_data_128=u128,
    user_data_64=st.integers(0, 2**64 - 1),
    user_data_32=st.integers(0, 2**32 - 1),
    timestamp=st.integers(1, 2**63 - 1),
)


@given(st.lists(transfers, max_size=20))
def test_native_rows_equal_the_python_rows(batch: list[Transfer]) -> None:
    if native.transfer_rows is None:
        pytest.skip("the compiled loop is not built or is switched off")
    assert native.transfer_rows(batch) == _python_transfer_rows(batch)


def test_native_rows_refuse_what_is_not_a_transfer() -> None:
    if native.transfer_rows is None:
        pytest.skip("the compiled loop is not built or is switched off")
    with pytest.raises(TypeError, match="expected a Transfer"):
        native.transfer_rows([object()])  # type: ignore[list-item]
    with pytest.raises(OverflowError):
        native.transfer_rows([Transfer(ID_MAX + 1, 1, 2, 1, 1, 1)])
