"""Offline payments: merchant static QR, and the user's one-time signed payment code."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from formicary.payments import (
    CodeExpired,
    CodeForged,
    CodeReplayed,
    InsufficientFunds,
    PaymentCodes,
    PaymentState,
)
from tests.payments.world import SECRET, World


def _signed(key: bytes, body: str) -> str:
    return f"{body}.{hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]}"


def test_a_user_pays_a_static_qr_with_an_amount_once_per_request(world: World) -> None:
    user, _ = world.user(10_000)
    merchant = world.merchant("offline_qr")
    qr = world.payments.offline.merchant_qr(merchant.id)
    paid = world.payments.offline.pay_merchant_qr(user.id, qr, 1_500, request_id="scan-1")
    assert paid.state == PaymentState.SUCCEEDED and paid.fee_fen == 9
    again = world.payments.offline.pay_merchant_qr(user.id, qr, 1_500, request_id="scan-1")
    assert again == paid
    assert world.payments.parties.wallet_balance(user.id) == 8_500


def test_a_forged_static_qr_is_refused(world: World) -> None:
    user, _ = world.user(10_000)
    merchant = world.merchant()
    qr = world.payments.offline.merchant_qr(merchant.id)
    other = PaymentCodes(b"x" * 32, ttl_s=60, skew_s=5).merchant_qr(merchant.id)
    for forged in (
        qr[:-1] + ("0" if qr[-1] != "0" else "1"),
        qr.replace(f".{merchant.id}.", f".{merchant.id + 1}."),
        other,
        "https://example.com/pay",
        "",
    ):
        with pytest.raises(CodeForged):
            world.payments.offline.pay_merchant_qr(user.id, forged, 100, request_id="r")
    # Correctly signed, but for a merchant that does not exist.
    ghost = world.payments.offline.codes.merchant_qr(10_000)
    with pytest.raises(CodeForged, match="no merchant"):
        world.payments.offline.pay_merchant_qr(user.id, ghost, 100, request_id="r")
    assert world.payments.parties.wallet_balance(user.id) == 10_000


def test_a_payment_code_pays_once_and_a_replay_is_refused(world: World) -> None:
    user, _ = world.user(10_000)
    shop, thief = world.merchant(), world.merchant()
    offline = world.payments.offline
    code = offline.issue_code(user.id)
    paid = offline.pay_with_code(shop.id, code, 2_000, merchant_order_no="till-1")
    assert paid.user_id == user.id and paid.state == PaymentState.SUCCEEDED
    # The same till retrying the same sale is not a replay: it gets the same payment.
    assert offline.pay_with_code(shop.id, code, 2_000, merchant_order_no="till-1") == paid
    with pytest.raises(CodeReplayed):
        offline.pay_with_code(shop.id, code, 2_000, merchant_order_no="till-2")
    with pytest.raises(CodeReplayed):
        offline.pay_with_code(thief.id, code, 9_000, merchant_order_no="x")
    assert world.payments.parties.wallet_balance(user.id) == 8_000


def test_a_payment_code_expires_after_60_seconds(world: World) -> None:
    user, _ = world.user(10_000)
    merchant = world.merchant()
    offline = world.payments.offline
    fresh = offline.issue_code(user.id)
    stale = offline.issue_code(user.id)
    world.clock.advance(60)
    offline.pay_with_code(merchant.id, fresh, 100, merchant_order_no="a")  # 60 s: still valid
    world.clock.advance(0.001)
    with pytest.raises(CodeExpired):
        offline.pay_with_code(merchant.id, stale, 100, merchant_order_no="b")
    assert world.payments.parties.wallet_balance(user.id) == 9_900


def test_a_forged_payment_code_is_refused(world: World) -> None:
    alice, _ = world.user(10_000)
    bob, _ = world.user(10_000)
    merchant = world.merchant()
    offline = world.payments.offline
    now = world.clock()
    code = offline.issue_code(alice.id)
    head, user_id, issued, nonce, mac = code.split(".")
    forged = [
        # bound to the user: Alice's code re-addressed to Bob fails Bob's key
        ".".join((head, str(bob.id), issued, nonce, mac)),
        # a code signed with Alice's key but claiming to be Bob's
        _signed(offline.codes.user_key(alice.id), f"fpc1.{bob.id}.{now // 10**6}.{1:016x}"),
        # a longer life: the issue time is signed
        ".".join((head, user_id, str(int(issued) + 30_000), nonce, mac)),
        # another platform's secret
        PaymentCodes(b"y" * 32, ttl_s=60, skew_s=5).mint(alice.id, now, 7),
        # from the future, beyond the allowed clock skew (5 s)
        offline.codes.mint(alice.id, now + 6_000_000_000, 8),
        # a code for a user that does not exist, correctly signed
        offline.codes.mint(10_000, now, 9),
        "fpc1." + "9" * 200,
        "not a code",
    ]
    for text in forged:
        with pytest.raises(CodeForged):
            offline.pay_with_code(merchant.id, text, 100, merchant_order_no="x")
    # A phone holding the user's key mints valid codes offline (4 s ahead is within skew).
    key_holder = PaymentCodes(SECRET, ttl_s=60, skew_s=5)
    assert key_holder.user_key(alice.id) == offline.codes.user_key(alice.id)
    ahead = key_holder.mint(alice.id, now + 4_000_000_000, 10)
    assert offline.pay_with_code(merchant.id, ahead, 100, merchant_order_no="y").user_id == alice.id


def test_a_code_whose_payment_fails_is_spent(world: World) -> None:
    user, _ = world.user(100)
    merchant = world.merchant()
    code = world.payments.offline.issue_code(user.id)
    with pytest.raises(InsufficientFunds):
        world.payments.offline.pay_with_code(merchant.id, code, 500, merchant_order_no="a")
    with pytest.raises(CodeReplayed):
        world.payments.offline.pay_with_code(merchant.id, code, 50, merchant_order_no="b")


def test_used_codes_are_pruned_once_they_could_never_pass_again(world: World) -> None:
    user, _ = world.user(10_000)
    merchant = world.merchant()
    offline = world.payments.offline
    offline.pay_with_code(merchant.id, offline.issue_code(user.id), 1, merchant_order_no="a")
    world.clock.advance(66)
    offline.pay_with_code(merchant.id, offline.issue_code(user.id), 1, merchant_order_no="b")
    assert world.payments.ctx.store.scalar("SELECT count(*) FROM payment_codes") == 1
