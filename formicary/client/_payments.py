"""The payments calls, as data both clients send: one place builds each request.

A money-moving call without its key (`request_id`, `request_no`) gets a fresh one, sent with
every retry of that call, so a retried top-up, withdrawal, refund, QR or bill payment or
red-packet claim is applied once.
Creations (users, merchants, campaigns) carry a fresh Idempotency-Key instead: the server
keeps it with the record it created, so a retry answers that record, even after a restart.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, NamedTuple

import msgspec

from formicary.api.payments_wire import (
    ROW_ID_MAX,
    BillerIn,
    BillerOut,
    BillersOut,
    BillOut,
    BillPayIn,
    BillPaymentOut,
    BillsOut,
    CampaignClaimIn,
    CampaignClaimOut,
    CampaignClaimsOut,
    CampaignClosedOut,
    CampaignIn,
    CampaignOut,
    CardIn,
    CardOut,
    CardsOut,
    CardTransferIn,
    CardTransferOut,
    CodePaymentIn,
    FamilyGrantIn,
    FamilyGrantOut,
    FamilyGrantsOut,
    FamilyPayIn,
    FamilyRevokeIn,
    FamilyStatementOut,
    MerchantIn,
    MerchantOut,
    MerchantQrOut,
    OrderIn,
    OrderOut,
    PayIn,
    PaymentCodeOut,
    PaymentOut,
    QrPaymentIn,
    QuoteOut,
    RefundIn,
    RefundOut,
    RefundsOut,
    SettlementIn,
    SettlementReportOut,
    UserIn,
    UserOut,
    WalletOut,
)
from formicary.client._common import IDEMPOTENCY_HEADER, JSON_HEADERS

__all__ = [
    "PaymentsCall",
    "bill",
    "bill_payment",
    "biller",
    "billers",
    "bind_card",
    "campaign",
    "campaign_claims",
    "cards",
    "claim",
    "claim_red_packet",
    "close_campaign",
    "create_campaign",
    "create_order",
    "family_grant",
    "family_grants",
    "family_statement",
    "grant_family",
    "headers",
    "issue_code",
    "lookup_bills",
    "merchant",
    "merchant_qr",
    "merchant_wallet",
    "order",
    "pay",
    "pay_bill",
    "pay_family",
    "pay_qr",
    "pay_with_code",
    "payment",
    "quote",
    "refund",
    "refunds",
    "register_biller",
    "register_merchant",
    "register_user",
    "revoke_family",
    "settle",
    "settlement",
    "top_up",
    "user",
    "user_wallet",
    "withdraw",
]

BASE = "/v1/payments"
_encoder = msgspec.json.Encoder()


class PaymentsCall(NamedTuple):
    method: str
    path: str
    params: dict[str, str] | None
    content: bytes | None
    decoder: msgspec.json.Decoder[Any]
    idempotency_key: str | None = None


_USER = msgspec.json.Decoder(UserOut)
_MERCHANT = msgspec.json.Decoder(MerchantOut)
_WALLET = msgspec.json.Decoder(WalletOut)
_CARD = msgspec.json.Decoder(CardOut)
_CARDS = msgspec.json.Decoder(CardsOut)
_CARD_TRANSFER = msgspec.json.Decoder(CardTransferOut)
_CAMPAIGN = msgspec.json.Decoder(CampaignOut)
_CAMPAIGN_CLOSED = msgspec.json.Decoder(CampaignClosedOut)
_CLAIM = msgspec.json.Decoder(CampaignClaimOut)
_CLAIMS = msgspec.json.Decoder(CampaignClaimsOut)
_ORDER = msgspec.json.Decoder(OrderOut)
_QUOTE = msgspec.json.Decoder(QuoteOut)
_PAYMENT = msgspec.json.Decoder(PaymentOut)
_REFUND = msgspec.json.Decoder(RefundOut)
_REFUNDS = msgspec.json.Decoder(RefundsOut)
_REPORT = msgspec.json.Decoder(SettlementReportOut)
_QR = msgspec.json.Decoder(MerchantQrOut)
_CODE = msgspec.json.Decoder(PaymentCodeOut)
_BILLER = msgspec.json.Decoder(BillerOut)
_BILLERS = msgspec.json.Decoder(BillersOut)
_BILL = msgspec.json.Decoder(BillOut)
_BILLS = msgspec.json.Decoder(BillsOut)
_BILL_PAYMENT = msgspec.json.Decoder(BillPaymentOut)
_GRANT = msgspec.json.Decoder(FamilyGrantOut)
_GRANTS = msgspec.json.Decoder(FamilyGrantsOut)
_STATEMENT = msgspec.json.Decoder(FamilyStatementOut)


def headers(call: PaymentsCall) -> dict[str, str] | None:
    """The headers of a call: JSON when it has a body, its Idempotency-Key when it has one."""
    found: dict[str, str] = {}
    if call.content is not None:
        found.update(JSON_HEADERS)
    if call.idempotency_key is not None:
        found[IDEMPOTENCY_HEADER] = call.idempotency_key
    return found or None


def _id(value: int, what: str) -> int:
    """A payments id for a path: an int of 1 .. 2^63 - 1 (never a string that could escape
    the path)."""
    if type(value) is not int or not 0 < value <= ROW_ID_MAX:
        raise ValueError(f"{what} must be an int of 1..{ROW_ID_MAX}, got {value!r}")
    return value


def _post(path: str, body: msgspec.Struct | None, decoder: Any, key: bool = False) -> PaymentsCall:
    content = None if body is None else _encoder.encode(body)
    return PaymentsCall("POST", BASE + path, None, content, decoder, _key() if key else None)


def _get(path: str, decoder: Any, params: dict[str, str] | None = None) -> PaymentsCall:
    return PaymentsCall("GET", BASE + path, params, None, decoder)


def _key() -> str:
    return uuid.uuid4().hex


# -- parties and wallets


def register_user(name: str, identity_level: str) -> PaymentsCall:
    body = UserIn(name=name, identity_level=identity_level)  # type: ignore[arg-type]
    return _post("/users", body, _USER, key=True)


def user(user_id: int) -> PaymentsCall:
    return _get(f"/users/{_id(user_id, 'user_id')}", _USER)


def user_wallet(user_id: int) -> PaymentsCall:
    return _get(f"/users/{_id(user_id, 'user_id')}/wallet", _WALLET)


def bind_card(user_id: int, bank_code: str, card_number: str) -> PaymentsCall:
    body = CardIn(bank_code=bank_code, card_number=card_number)
    return _post(f"/users/{_id(user_id, 'user_id')}/cards", body, _CARD)


def cards(user_id: int) -> PaymentsCall:
    return _get(f"/users/{_id(user_id, 'user_id')}/cards", _CARDS)


def _card_transfer(
    kind: str, user_id: int, card_id: int, amount_fen: int, request_id: str | None
) -> PaymentsCall:
    body = CardTransferIn(card_id=card_id, amount_fen=amount_fen, request_id=request_id or _key())
    return _post(f"/users/{_id(user_id, 'user_id')}/{kind}", body, _CARD_TRANSFER)


def top_up(user_id: int, card_id: int, amount_fen: int, request_id: str | None) -> PaymentsCall:
    return _card_transfer("top-ups", user_id, card_id, amount_fen, request_id)


def withdraw(user_id: int, card_id: int, amount_fen: int, request_id: str | None) -> PaymentsCall:
    return _card_transfer("withdrawals", user_id, card_id, amount_fen, request_id)


def register_merchant(
    name: str,
    category: str,
    fee_plan: str,
    settlement_bank_code: str,
    settlement_account_number: str,
) -> PaymentsCall:
    body = MerchantIn(
        name=name,
        category=category,
        fee_plan=fee_plan,  # type: ignore[arg-type]
        settlement_bank_code=settlement_bank_code,
        settlement_account_number=settlement_account_number,
    )
    return _post("/merchants", body, _MERCHANT, key=True)


def merchant(merchant_id: int) -> PaymentsCall:
    return _get(f"/merchants/{_id(merchant_id, 'merchant_id')}", _MERCHANT)


def merchant_wallet(merchant_id: int) -> PaymentsCall:
    return _get(f"/merchants/{_id(merchant_id, 'merchant_id')}/wallet", _WALLET)


# -- campaigns


def create_campaign(
    name: str,
    kind: str,
    discount_fen: int,
    budget_fen: int,
    funder_merchant_id: int | None,
    merchant_id: int | None,
    min_order_fen: int,
) -> PaymentsCall:
    body = CampaignIn(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        discount_fen=discount_fen,
        budget_fen=budget_fen,
        funder_merchant_id=funder_merchant_id,
        merchant_id=merchant_id,
        min_order_fen=min_order_fen,
    )
    return _post("/campaigns", body, _CAMPAIGN, key=True)


def campaign(campaign_id: int) -> PaymentsCall:
    return _get(f"/campaigns/{_id(campaign_id, 'campaign_id')}", _CAMPAIGN)


def close_campaign(campaign_id: int) -> PaymentsCall:
    return _post(f"/campaigns/{_id(campaign_id, 'campaign_id')}/close", None, _CAMPAIGN_CLOSED)


def claim_red_packet(campaign_id: int, user_id: int, request_id: str | None) -> PaymentsCall:
    body = CampaignClaimIn(user_id=user_id, request_id=request_id or _key())
    return _post(f"/campaigns/{_id(campaign_id, 'campaign_id')}/claims", body, _CLAIM)


def campaign_claims(campaign_id: int, after_id: int = 0, limit: int = 1000) -> PaymentsCall:
    params = {"after_id": str(after_id), "limit": str(limit)}
    return _get(f"/campaigns/{_id(campaign_id, 'campaign_id')}/claims", _CLAIMS, params)


def claim(claim_id: int) -> PaymentsCall:
    return _get(f"/claims/{_id(claim_id, 'claim_id')}", _CLAIM)


# -- the cashier and refunds


def create_order(
    merchant_id: int, amount_fen: int, merchant_order_no: str, description: str
) -> PaymentsCall:
    body = OrderIn(
        merchant_id=merchant_id,
        amount_fen=amount_fen,
        merchant_order_no=merchant_order_no,
        description=description,
    )
    return _post("/orders", body, _ORDER)


def order(order_id: int) -> PaymentsCall:
    return _get(f"/orders/{_id(order_id, 'order_id')}", _ORDER)


def quote(order_id: int, campaign_id: int | None) -> PaymentsCall:
    params = None if campaign_id is None else {"campaign_id": str(_id(campaign_id, "campaign_id"))}
    return _get(f"/orders/{_id(order_id, 'order_id')}/quote", _QUOTE, params)


def pay(order_id: int, user_id: int, card_id: int | None, campaign_id: int | None) -> PaymentsCall:
    body = PayIn(
        user_id=user_id,
        funding="wallet" if card_id is None else "card",
        card_id=card_id,
        campaign_id=campaign_id,
    )
    return _post(f"/orders/{_id(order_id, 'order_id')}/pay", body, _PAYMENT)


def payment(payment_id: int) -> PaymentsCall:
    return _get(f"/payments/{_id(payment_id, 'payment_id')}", _PAYMENT)


def refund(payment_id: int, amount_fen: int, request_no: str | None) -> PaymentsCall:
    body = RefundIn(amount_fen=amount_fen, request_no=request_no or _key())
    return _post(f"/payments/{_id(payment_id, 'payment_id')}/refunds", body, _REFUND)


def refunds(payment_id: int) -> PaymentsCall:
    return _get(f"/payments/{_id(payment_id, 'payment_id')}/refunds", _REFUNDS)


# -- settlement


def settle(business_date: date) -> PaymentsCall:
    return _post("/settlements", SettlementIn(business_date=business_date.isoformat()), _REPORT)


def settlement(business_date: date) -> PaymentsCall:
    return _get(f"/settlements/{business_date.isoformat()}", _REPORT)


# -- offline


def merchant_qr(merchant_id: int) -> PaymentsCall:
    return _get(f"/merchants/{_id(merchant_id, 'merchant_id')}/qr", _QR)


def pay_qr(
    user_id: int,
    qr: str,
    amount_fen: int,
    request_id: str | None,
    card_id: int | None,
    campaign_id: int | None,
) -> PaymentsCall:
    body = QrPaymentIn(
        user_id=user_id,
        qr=qr,
        amount_fen=amount_fen,
        request_id=request_id or _key(),
        funding="wallet" if card_id is None else "card",
        card_id=card_id,
        campaign_id=campaign_id,
    )
    return _post("/qr-payments", body, _PAYMENT)


def issue_code(user_id: int) -> PaymentsCall:
    return _post(f"/users/{_id(user_id, 'user_id')}/payment-codes", None, _CODE)


def pay_with_code(
    merchant_id: int,
    code: str,
    amount_fen: int,
    merchant_order_no: str,
    campaign_id: int | None,
) -> PaymentsCall:
    body = CodePaymentIn(
        code=code,
        amount_fen=amount_fen,
        merchant_order_no=merchant_order_no,
        campaign_id=campaign_id,
    )
    return _post(f"/merchants/{_id(merchant_id, 'merchant_id')}/code-payments", body, _PAYMENT)


# -- bills


def billers(category: str | None) -> PaymentsCall:
    return _get("/billers", _BILLERS, None if category is None else {"category": category})


def register_biller(
    name: str,
    category: str,
    settlement_bank_code: str,
    settlement_account_number: str,
    fee_plan: str,
) -> PaymentsCall:
    body = BillerIn(
        name=name,
        category=category,  # type: ignore[arg-type]
        settlement_bank_code=settlement_bank_code,
        settlement_account_number=settlement_account_number,
        fee_plan=fee_plan,  # type: ignore[arg-type]
    )
    return _post("/billers", body, _BILLER)


def biller(biller_id: int) -> PaymentsCall:
    return _get(f"/billers/{_id(biller_id, 'biller_id')}", _BILLER)


def lookup_bills(biller_id: int, account_number: str) -> PaymentsCall:
    path = f"/billers/{_id(biller_id, 'biller_id')}/bills"
    return _get(path, _BILLS, {"account_number": account_number})


def bill(bill_id: int) -> PaymentsCall:
    return _get(f"/bills/{_id(bill_id, 'bill_id')}", _BILL)


def pay_bill(
    bill_id: int,
    user_id: int,
    amount_fen: int | None,
    request_id: str | None,
    card_id: int | None,
    grant_id: int | None,
) -> PaymentsCall:
    if card_id is not None and grant_id is not None:
        raise ValueError("pay a bill by card (card_id) or by family grant (grant_id), not both")
    funding = "card" if card_id is not None else "family" if grant_id is not None else "wallet"
    body = BillPayIn(
        user_id=user_id,
        request_id=request_id or _key(),
        amount_fen=amount_fen,
        funding=funding,
        card_id=card_id,
        grant_id=grant_id,
    )
    return _post(f"/bills/{_id(bill_id, 'bill_id')}/payments", body, _BILL_PAYMENT)


def bill_payment(bill_payment_id: int) -> PaymentsCall:
    return _get(f"/bill-payments/{_id(bill_payment_id, 'bill_payment_id')}", _BILL_PAYMENT)


# -- family accounts


def grant_family(payer_id: int, member_id: int, monthly_limit_fen: int) -> PaymentsCall:
    body = FamilyGrantIn(
        payer_id=payer_id, member_id=member_id, monthly_limit_fen=monthly_limit_fen
    )
    return _post("/family/grants", body, _GRANT)


def family_grants(payer_id: int | None, member_id: int | None) -> PaymentsCall:
    if payer_id is None and member_id is None:
        raise ValueError("name the payer (payer_id) or the member (member_id), or both")
    params: dict[str, str] = {}
    if payer_id is not None:
        params["payer_id"] = str(_id(payer_id, "payer_id"))
    if member_id is not None:
        params["member_id"] = str(_id(member_id, "member_id"))
    return _get("/family/grants", _GRANTS, params)


def family_grant(grant_id: int) -> PaymentsCall:
    return _get(f"/family/grants/{_id(grant_id, 'grant_id')}", _GRANT)


def pay_family(
    grant_id: int, member_id: int, order_id: int, campaign_id: int | None
) -> PaymentsCall:
    body = FamilyPayIn(member_id=member_id, order_id=order_id, campaign_id=campaign_id)
    return _post(f"/family/grants/{_id(grant_id, 'grant_id')}/payments", body, _PAYMENT)


def family_statement(grant_id: int, payer_id: int, month: str | None) -> PaymentsCall:
    params = {"payer_id": str(_id(payer_id, "payer_id"))}
    if month is not None:
        params["month"] = month
    return _get(f"/family/grants/{_id(grant_id, 'grant_id')}/statement", _STATEMENT, params)


def revoke_family(grant_id: int, payer_id: int) -> PaymentsCall:
    body = FamilyRevokeIn(payer_id=payer_id)
    return _post(f"/family/grants/{_id(grant_id, 'grant_id')}/revoke", body, _GRANT)
