"""Users, merchants, cards, wallets; top-ups and withdrawals through the bank."""

from __future__ import annotations

import pytest

from formicary.payments import (
    BankBusy,
    BankDeclined,
    CardTransferState,
    IdempotencyConflict,
    IdentityLevel,
    IdentityLevelTooLow,
    InsufficientFunds,
    InvalidCard,
    InvalidRequest,
    Outcome,
    Reply,
    UnknownParty,
    bank_clearing_id,
    user_wallet_id,
)
from tests.payments.world import World, card_number


def test_a_new_user_has_an_empty_wallet_that_cannot_go_negative(world: World) -> None:
    user, _ = world.user()
    assert world.payments.parties.wallet_balance(user.id) == 0
    (account,) = world.ledger.lookup_accounts([user_wallet_id(user.id)])
    assert account.flags & 2  # debits_must_not_exceed_credits


def test_cards_are_stored_masked_and_binding_twice_is_a_no_op(world: World) -> None:
    user, _ = world.user()
    number = card_number(999)
    card = world.payments.parties.bind_card(user.id, "CMB", number)
    assert card.masked_number == number[:6] + "*" * 9 + number[-4:]
    assert world.payments.parties.bind_card(user.id, "CMB", number) == card
    with pytest.raises(InvalidCard):
        world.payments.parties.bind_card(
            user.id, "CMB", number[:-1] + str((int(number[-1]) + 1) % 10)
        )
    with pytest.raises(InvalidRequest):
        world.payments.parties.bind_card(user.id, "cmb", number)
    with pytest.raises(UnknownParty):
        world.payments.parties.bind_card(10_000, "CMB", number)


def test_top_up_moves_money_from_the_bank_clearing_account_once(world: World) -> None:
    user, card = world.user()
    parties = world.payments.parties
    first = parties.top_up(user.id, card.id, 10_000, request_id="t-1")
    again = parties.top_up(user.id, card.id, 10_000, request_id="t-1")
    assert first == again and first.state == CardTransferState.SUCCEEDED
    assert parties.wallet_balance(user.id) == 10_000
    assert world.posted(bank_clearing_id("ICBC")) == -10_000
    assert world.bank.collected_fen["ICBC"] == 10_000
    with pytest.raises(IdempotencyConflict):
        parties.top_up(user.id, card.id, 999, request_id="t-1")
    assert world.books_balance()


def test_a_declined_or_busy_top_up_moves_nothing(world: World) -> None:
    user, card = world.user()
    world.bank.declined_cards.add(card.masked_number)
    with pytest.raises(BankDeclined):
        world.payments.parties.top_up(user.id, card.id, 500, request_id="t-1")
    # The failure is recorded: the same request answers the same error.
    with pytest.raises(BankDeclined):
        world.payments.parties.top_up(user.id, card.id, 500, request_id="t-1")
    world.bank.declined_cards.clear()
    world.bank.busy_banks.add("ICBC")
    with pytest.raises(BankBusy):
        world.payments.parties.top_up(user.id, card.id, 500, request_id="t-2")
    assert world.payments.parties.wallet_balance(user.id) == 0
    assert world.posted(bank_clearing_id("ICBC")) == 0


def test_withdrawal_reserves_then_posts_after_the_bank_pays(world: World) -> None:
    user, card = world.user(10_000)
    parties = world.payments.parties
    done = parties.withdraw(user.id, card.id, 4_000, request_id="w-1")
    assert done.state == CardTransferState.SUCCEEDED
    assert parties.wallet_balance(user.id) == 6_000
    assert world.bank.paid_out_fen["ICBC"] == 4_000
    with pytest.raises(InsufficientFunds):
        parties.withdraw(user.id, card.id, 6_001, request_id="w-2")
    assert world.bank.paid_out_fen["ICBC"] == 4_000  # the bank was never asked


def test_a_declined_withdrawal_releases_the_reservation(world: World) -> None:
    user, card = world.user(10_000)
    world.bank.script("payout", Reply(Outcome.DECLINED, "account frozen"))
    with pytest.raises(BankDeclined, match="account frozen"):
        world.payments.parties.withdraw(user.id, card.id, 4_000, request_id="w-1")
    assert world.payments.parties.wallet_balance(user.id) == 10_000
    (wallet,) = world.ledger.lookup_accounts([user_wallet_id(user.id)])
    assert wallet.debits_pending == 0


def test_the_identity_level_caps_one_operation(world: World) -> None:
    unverified, card = world.user(level=IdentityLevel.UNVERIFIED)
    with pytest.raises(IdentityLevelTooLow):
        world.payments.parties.top_up(unverified.id, card.id, 1, request_id="t")
    basic, card = world.user(level=IdentityLevel.BASIC)
    world.payments.parties.top_up(basic.id, card.id, 100_000, request_id="t-1")  # 1,000 yuan
    with pytest.raises(IdentityLevelTooLow):
        world.payments.parties.top_up(basic.id, card.id, 100_001, request_id="t-2")
    world.payments.parties.set_identity_level(basic.id, IdentityLevel.VERIFIED)
    world.payments.parties.top_up(basic.id, card.id, 100_001, request_id="t-2")


def test_someone_elses_card_is_refused(world: World) -> None:
    _, alice_card = world.user()
    bob, _ = world.user()
    with pytest.raises(UnknownParty):
        world.payments.parties.top_up(bob.id, alice_card.id, 100, request_id="t")


def test_merchants_validate_their_terms(world: World) -> None:
    parties = world.payments.parties
    merchant = world.merchant("offline_qr")
    assert merchant.settlement_account_masked.endswith(merchant.settlement_account_masked[-4:])
    assert "*" in merchant.settlement_account_masked
    assert parties.merchant_balance(merchant.id) == 0
    with pytest.raises(InvalidRequest):
        parties.register_merchant(
            "x",
            category="5411",
            fee_plan="gold",
            settlement_bank_code="CMB",
            settlement_account_number="12345678",
        )
    with pytest.raises(InvalidRequest):
        parties.register_merchant(
            "x",
            category="grocery",
            fee_plan="online",
            settlement_bank_code="CMB",
            settlement_account_number="12345678",
        )


def test_recovery_creates_a_wallet_a_crash_left_missing(world: World) -> None:
    store = world.payments.ctx.store
    with store.transaction() as conn:  # the row committed, then the process died
        user_id = store.insert(
            conn, "users", {"name": "orphan", "identity_level": 2, "created_ns": 0}
        )
    assert world.ledger.lookup_accounts([user_wallet_id(user_id)]) == []
    assert world.payments.parties.ensure_accounts() == 1
    assert world.payments.parties.ensure_accounts() == 0
    assert world.payments.parties.wallet_balance(user_id) == 0
    assert len(world.ledger.lookup_accounts([user_wallet_id(user_id)])) == 1
