"""Offline payments: the merchant's static QR code, and the user's dynamic payment code.

Static QR (user scans, enters the amount): `fmq1.<merchant id>.<mac>`, signed so that a code
for a merchant that the platform never issued is refused (it does not stop a sticker swapped
for another genuine merchant's code: that is a risk-control matter).

Dynamic payment code (merchant scans the user's phone): `fpc1.<user id>.<issued ms>.<nonce>.<mac>`
where mac = HMAC-SHA256 under a per-user key derived from the platform secret, so a phone that
holds only its own user key can mint codes offline, and a code cannot be re-bound to another
user. A code is refused as:

- forged: malformed, wrong MAC, unknown user, or issued further in the future than the skew;
- replayed: its (user, nonce) was already redeemed (a retry by the same merchant for the same
  order is not a replay: it returns that payment);
- expired: older than the time to live (60 s by default), by the injected clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import msgspec

from formicary.payments.cashier import Cashier
from formicary.payments.context import Context, check_amount, check_text
from formicary.payments.errors import (
    CodeExpired,
    CodeForged,
    CodeReplayed,
    UnknownParty,
)
from formicary.payments.parties import Parties
from formicary.payments.records import Funding, Payment

__all__ = ["CodeClaims", "Offline", "PaymentCodes"]

_NS_PER_MS = 1_000_000
_CODE = re.compile(r"fpc1\.([0-9]{1,19})\.([0-9]{1,16})\.([0-9a-f]{16})\.([0-9a-f]{32})")
_QR = re.compile(r"fmq1\.([0-9]{1,19})\.([0-9a-f]{32})")
# A code or QR text longer than this is not ours; refuse before any parsing work.
_TEXT_MAX = 96
# Used codes older than the time to live can never pass again; prune at most this many per
# redemption so the table stays small without a separate job.
_PRUNE_ROWS_MAX = 100


class CodeClaims(msgspec.Struct, frozen=True):
    """What a verified payment code says."""

    user_id: int
    issued_ns: int
    nonce: int


class PaymentCodes:
    """Mints and verifies signed codes (pure: no storage, the time is passed in)."""

    def __init__(self, secret: bytes, *, ttl_s: int, skew_s: int) -> None:
        assert len(secret) >= 32, "a payments secret has at least 256 bits"
        assert ttl_s > 0 and skew_s >= 0
        self._code_key = hmac.new(secret, b"payment-code", hashlib.sha256).digest()
        self._qr_key = hmac.new(secret, b"merchant-qr", hashlib.sha256).digest()
        self.ttl_ns = ttl_s * 1_000_000_000
        self.skew_ns = skew_s * 1_000_000_000

    def user_key(self, user_id: int) -> bytes:
        """The key a user's phone holds to mint its own codes offline."""
        return hmac.new(self._code_key, b"user:%d" % user_id, hashlib.sha256).digest()

    def mint(self, user_id: int, issued_ns: int, nonce: int) -> str:
        """A payment code for `user_id`, issued at `issued_ns`, with a 64-bit nonce."""
        assert 0 <= nonce < 2**64
        body = f"fpc1.{user_id}.{issued_ns // _NS_PER_MS}.{nonce:016x}"
        return f"{body}.{_mac(self.user_key(user_id), body)}"

    def verify(self, code: str, now_ns: int) -> CodeClaims:
        """Check the form, MAC and issue time of a code (not its expiry: see `Offline`)."""
        match = _CODE.fullmatch(code) if isinstance(code, str) and len(code) <= _TEXT_MAX else None
        if match is None:
            raise CodeForged("not a payment code")
        user_id, issued_ms, nonce_hex, mac = match.groups()
        body = code[: code.rindex(".")]
        if not hmac.compare_digest(mac, _mac(self.user_key(int(user_id)), body)):
            raise CodeForged("the payment code's signature is wrong")
        issued_ns = int(issued_ms) * _NS_PER_MS
        if issued_ns > now_ns + self.skew_ns:
            raise CodeForged("the payment code claims to be issued in the future")
        return CodeClaims(int(user_id), issued_ns, int(nonce_hex, 16))

    def expired(self, claims: CodeClaims, now_ns: int) -> bool:
        return now_ns - claims.issued_ns > self.ttl_ns

    def merchant_qr(self, merchant_id: int) -> str:
        body = f"fmq1.{merchant_id}"
        return f"{body}.{_mac(self._qr_key, body)}"

    def verify_merchant_qr(self, qr: str) -> int:
        match = _QR.fullmatch(qr) if isinstance(qr, str) and len(qr) <= _TEXT_MAX else None
        if match is None:
            raise CodeForged("not a merchant QR code")
        body = qr[: qr.rindex(".")]
        if not hmac.compare_digest(match.group(2), _mac(self._qr_key, body)):
            raise CodeForged("the merchant QR code's signature is wrong")
        return int(match.group(1))


def _mac(key: bytes, body: str) -> str:
    # 128 bits of HMAC-SHA256: forging one code takes ~2^128 tries, and codes stay short.
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]


class Offline:
    """Face-to-face payments by QR code and payment code."""

    def __init__(self, ctx: Context, parties: Parties, cashier: Cashier) -> None:
        self._ctx = ctx
        self._parties = parties
        self._cashier = cashier
        self.codes = PaymentCodes(
            ctx.secret, ttl_s=ctx.config.code_ttl_s, skew_s=ctx.config.code_skew_s
        )

    # ----------------------------------------------------------------- static QR

    def merchant_qr(self, merchant_id: int) -> str:
        """The text of the merchant's static QR code (print it at the till)."""
        self._parties.merchant(merchant_id)
        return self.codes.merchant_qr(merchant_id)

    def pay_merchant_qr(
        self,
        user_id: int,
        qr: str,
        amount_fen: int,
        *,
        request_id: str,
        funding: Funding | None = None,
        campaign_id: int | None = None,
    ) -> Payment:
        """The user scanned a merchant's QR and typed the amount; idempotent by `request_id`
        (the user app's key for this payment)."""
        check_amount(amount_fen)
        check_text(request_id, "request_id")
        merchant_id = self.codes.verify_merchant_qr(qr)
        try:
            self._parties.merchant(merchant_id)
        except UnknownParty:
            raise CodeForged("the QR code names no merchant") from None
        self._parties.user(user_id)
        order = self._cashier.create_order(
            merchant_id,
            amount_fen,
            merchant_order_no=f"qr:{user_id}:{request_id}",
            description="static QR payment",
        )
        return self._cashier.pay(order.id, user_id, funding, campaign_id=campaign_id)

    # ----------------------------------------------------------------- payment codes

    def issue_code(self, user_id: int) -> str:
        """A fresh one-time payment code for the user's phone to show."""
        self._parties.user(user_id)
        return self.codes.mint(user_id, self._ctx.clock_ns(), secrets.randbits(64))

    def pay_with_code(
        self,
        merchant_id: int,
        code: str,
        amount_fen: int,
        *,
        merchant_order_no: str,
        campaign_id: int | None = None,
    ) -> Payment:
        """The merchant scanned the user's payment code: charge the user's wallet.

        The code is redeemed (recorded as used) before the payment: a code whose payment then
        fails (e.g. insufficient funds) is spent, as on a real till; the user shows a new one.
        """
        check_amount(amount_fen)
        check_text(merchant_order_no, "merchant_order_no")
        self._parties.merchant(merchant_id)
        now = self._ctx.clock_ns()
        claims = self.codes.verify(code, now)
        try:
            self._parties.user(claims.user_id)
        except UnknownParty:
            raise CodeForged("the payment code names no user") from None
        self._redeem(claims, merchant_id, merchant_order_no, now)
        order = self._cashier.create_order(
            merchant_id, amount_fen, merchant_order_no=merchant_order_no, description="payment code"
        )
        return self._cashier.pay(order.id, claims.user_id, campaign_id=campaign_id)

    def _redeem(self, claims: CodeClaims, merchant_id: int, order_no: str, now: int) -> None:
        """Record the code as used, once; the same merchant retrying the same order passes."""
        with self._ctx.store.transaction() as conn:
            row = conn.execute(
                "SELECT merchant_id, merchant_order_no FROM payment_codes"
                " WHERE user_id = ? AND nonce = ?",
                (claims.user_id, _signed64(claims.nonce)),
            ).fetchone()
            if row is not None:
                if (row["merchant_id"], row["merchant_order_no"]) == (merchant_id, order_no):
                    return  # the merchant's retry of the same payment: idempotent
                raise CodeReplayed("the payment code was already used")
            if self.codes.expired(claims, now):
                raise CodeExpired("the payment code has expired; show a new one")
            conn.execute(
                "DELETE FROM payment_codes WHERE rowid IN (SELECT rowid FROM payment_codes"
                " WHERE used_ns < ? ORDER BY used_ns LIMIT ?)",
                (now - self.codes.ttl_ns - self.codes.skew_ns, _PRUNE_ROWS_MAX),
            )
            self._ctx.store.insert(
                conn,
                "payment_codes",
                {
                    "user_id": claims.user_id,
                    "nonce": _signed64(claims.nonce),
                    "issued_ns": claims.issued_ns,
                    "used_ns": now,
                    "merchant_id": merchant_id,
                    "merchant_order_no": order_no,
                },
            )


def _signed64(value: int) -> int:
    """SQLite integers are signed 64-bit: store the unsigned nonce's two's complement."""
    return value - 2**64 if value >= 2**63 else value
