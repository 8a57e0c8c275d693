"""Formicary's Python SDK: a sync and an asyncio client for the ledger HTTP API (and the
money-market fund's routes: `fund_subscribe`, `fund_redeem`, `fund_holding`, ...; and the
payments core's: `payments_register_user`, `payments_pay`, `payments_refund`, ...; and the
fixed-term marketplace's: `wealth_list_product`, `wealth_purchase`, `wealth_tick`, ...).

Single-event calls (`create_transfer`, `create_account`) are batched automatically across
threads or coroutines; lists go out as explicit batches; busy answers (503/429) and network
errors are retried with bounded backoff, which is safe because events are idempotent by id.

    from formicary.client import Client, TransferIn

    with Client("http://127.0.0.1:8000") as client:
        result = client.create_transfer(
            TransferIn(id="9", debit_account_id="1", credit_account_id="7", amount=500,
                       ledger=156, code=1)
        )
        assert result == "ok"
"""

from formicary.api.funds_wire import (
    FundBooksOut,
    FundDayOut,
    FundHoldingOut,
    FundIncomeOut,
    FundOrderOut,
)
from formicary.api.payments_wire import (
    BillerOut,
    BillOut,
    BillPaymentOut,
    CampaignClaimOut,
    CampaignClosedOut,
    CampaignOut,
    CardOut,
    CardTransferOut,
    FamilyGrantOut,
    FamilyStatementLineOut,
    FamilyStatementOut,
    MerchantOut,
    OrderOut,
    PaymentCodeOut,
    PaymentOut,
    QuoteOut,
    RefundOut,
    RefundsOut,
    SettlementLineOut,
    SettlementReportOut,
    UserOut,
    WalletOut,
)
from formicary.api.wealth_wire import (
    IssuerOut,
    MatchOut,
    MaturityOut,
    NotificationOut,
    ProductOut,
    SaleCloseOut,
    TickOut,
    VettingOut,
    WealthPurchaseOut,
    WealthReservationOut,
)
from formicary.api.wire import (
    AccountIn,
    AccountOut,
    BalanceOut,
    BalancePage,
    CreateResultOut,
    FieldErrorOut,
    TransferIn,
    TransferOut,
    TransferPage,
    TrialBalanceOut,
)
from formicary.client._async import AsyncClient
from formicary.client._errors import (
    ApiError,
    BadRequest,
    BusyError,
    ClientClosedError,
    Conflict,
    FormicaryError,
    InvalidEventError,
    NetworkError,
    NotFound,
    PayloadTooLarge,
    ProtocolError,
    ServerError,
)
from formicary.client._sync import Client

__all__ = [
    "AccountIn",
    "AccountOut",
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "BalanceOut",
    "BalancePage",
    "BillOut",
    "BillPaymentOut",
    "BillerOut",
    "BusyError",
    "CampaignClaimOut",
    "CampaignClosedOut",
    "CampaignOut",
    "CardOut",
    "CardTransferOut",
    "Client",
    "ClientClosedError",
    "Conflict",
    "CreateResultOut",
    "FamilyGrantOut",
    "FamilyStatementLineOut",
    "FamilyStatementOut",
    "FieldErrorOut",
    "FormicaryError",
    "FundBooksOut",
    "FundDayOut",
    "FundHoldingOut",
    "FundIncomeOut",
    "FundOrderOut",
    "InvalidEventError",
    "IssuerOut",
    "MatchOut",
    "MaturityOut",
    "MerchantOut",
    "NetworkError",
    "NotFound",
    "NotificationOut",
    "OrderOut",
    "PayloadTooLarge",
    "PaymentCodeOut",
    "PaymentOut",
    "ProductOut",
    "ProtocolError",
    "QuoteOut",
    "RefundOut",
    "RefundsOut",
    "SaleCloseOut",
    "ServerError",
    "SettlementLineOut",
    "SettlementReportOut",
    "TickOut",
    "TransferIn",
    "TransferOut",
    "TransferPage",
    "TrialBalanceOut",
    "UserOut",
    "VettingOut",
    "WalletOut",
    "WealthPurchaseOut",
    "WealthReservationOut",
]
