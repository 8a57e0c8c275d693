"""Durable idempotency for campaigns: a creation's request id and red-packet claims live in the
payments store, so a request re-sent after a restart of the service (store and ledger reopened
from their files) lands at most once, and the budget is never overspent."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from formicary.ledger import LedgerService, open_store
from formicary.payments import (
    MARKETING_ID,
    CampaignKind,
    CouponExhausted,
    CouponNotApplicable,
    FakeBank,
    IdempotencyConflict,
    InvalidState,
    Payments,
    PaymentsStore,
    campaign_budget_id,
    user_wallet_id,
)
from formicary.payments.campaigns import ClaimState
from formicary.payments.store import _MIGRATIONS, SCHEMA_VERSION
from tests.payments.world import SECRET, T0_NS, ManualClock


class Service:
    """The payments service over files: `restart()` closes and reopens everything."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.clock = ManualClock(T0_NS)
        self.bank = FakeBank()
        self._open(recover=True)

    def _open(self, *, recover: bool) -> None:
        self.ledger = LedgerService(
            open_store(f"sqlite:///{self.directory}/ledger.db"), clock_ns=self.clock
        )
        self.ledger.start()
        self.store = PaymentsStore(self.directory / "payments.db")
        self.payments = Payments(
            self.ledger, self.store, self.bank, secret=SECRET, clock_ns=self.clock
        )
        if recover:
            self.payments.recover()

    def close(self) -> None:
        self.store.close()
        self.ledger.close()

    def restart(self, *, recover: bool = True) -> None:
        self.close()
        self._open(recover=recover)

    def posted(self, account_id: int) -> int:
        found = self.ledger.lookup_accounts([account_id])
        return found[0].credits_posted - found[0].debits_posted if found else 0


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    s = Service(tmp_path)
    yield s
    s.close()


def _red_packet(s: Service, budget_fen: int = 1_500, request_id: str | None = "d11") -> int:
    return s.payments.campaigns.create(
        "Double 11",
        CampaignKind.RED_PACKET,
        discount_fen=500,
        budget_fen=budget_fen,
        request_id=request_id,
    ).id


def test_a_creation_and_a_claim_re_sent_after_a_restart_land_once(service: Service) -> None:
    campaign_id = _red_packet(service)
    ada = service.payments.parties.register_user("Ada")
    claim = service.payments.campaigns.claim(campaign_id, ada.id, request_id="c-1")
    assert claim.state == ClaimState.SUCCEEDED and claim.amount_fen == 500

    service.restart()
    campaigns = service.payments.campaigns
    assert _red_packet(service) == campaign_id  # the same campaign, funded once
    assert service.posted(MARKETING_ID) == -1_500
    assert campaigns.claim(campaign_id, ada.id, request_id="c-1") == claim
    assert service.posted(user_wallet_id(ada.id)) == 500
    assert campaigns.remaining_fen(campaign_id) == 1_000
    assert service.payments.recover().finished == 0
    with pytest.raises(IdempotencyConflict):
        _red_packet(service, budget_fen=2_000)  # the same request id, other terms
    with pytest.raises(IdempotencyConflict):
        campaigns.claim(_red_packet(service, request_id="other"), ada.id, request_id="c-1")


@pytest.mark.parametrize("finish", ["recover", "re-send"])
def test_a_claim_cut_short_by_a_crash_is_finished_once_after_the_restart(
    service: Service, monkeypatch: pytest.MonkeyPatch, finish: str
) -> None:
    campaign_id = _red_packet(service)
    ada = service.payments.parties.register_user("Ada")
    # The process dies after the ledger moved the packet, before the row said so.
    store = service.store
    real = store.transition

    def crash(table: str, *args: object, **kwargs: object) -> bool:
        if table == "campaign_claims":
            raise SystemExit("killed")
        return real(table, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "transition", crash)
    with pytest.raises(SystemExit):
        service.payments.campaigns.claim(campaign_id, ada.id, request_id="c-1")
    monkeypatch.undo()
    assert service.posted(user_wallet_id(ada.id)) == 500

    service.restart(recover=finish == "recover")
    campaigns = service.payments.campaigns
    if finish == "re-send":
        (open_claim,) = campaigns.claims(campaign_id)
        assert open_claim.state == ClaimState.CREATED
        assert campaigns.claim(campaign_id, ada.id, request_id="c-1").state == "succeeded"
    (claim,) = campaigns.claims(campaign_id)
    assert claim.state == ClaimState.SUCCEEDED and claim.request_id == "c-1"
    assert campaigns.claim(campaign_id, ada.id, request_id="c-1") == claim
    assert service.posted(user_wallet_id(ada.id)) == 500
    assert campaigns.remaining_fen(campaign_id) == 1_000


def test_a_claim_whose_row_was_written_before_a_crash_moves_once(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id = _red_packet(service)
    ada = service.payments.parties.register_user("Ada")
    monkeypatch.setattr(
        service.payments.ctx.ledger, "submit", lambda chain: (_ for _ in ()).throw(SystemExit)
    )
    with pytest.raises(SystemExit):
        service.payments.campaigns.claim(campaign_id, ada.id, request_id="c-1")
    monkeypatch.undo()
    assert service.posted(user_wallet_id(ada.id)) == 0
    service.restart()
    assert service.posted(user_wallet_id(ada.id)) == 500  # recover() finished it
    claim = service.payments.campaigns.claim(campaign_id, ada.id, request_id="c-1")
    assert claim.state == ClaimState.SUCCEEDED
    assert service.posted(user_wallet_id(ada.id)) == 500


def test_the_budget_is_never_overspent_by_racing_and_re_sent_claims(service: Service) -> None:
    campaign_id = _red_packet(service, budget_fen=1_500)  # three packets of 500
    users = [service.payments.parties.register_user(f"u{n}") for n in range(6)]

    def claim_all() -> dict[int, str]:
        answers: dict[int, str] = {}
        barrier = threading.Barrier(len(users))

        def claim(user_id: int) -> None:
            barrier.wait()
            try:
                service.payments.campaigns.claim(campaign_id, user_id, request_id=f"r-{user_id}")
                answers[user_id] = "ok"
            except CouponExhausted:
                answers[user_id] = "exhausted"

        threads = [threading.Thread(target=claim, args=(u.id,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return answers

    first = claim_all()
    assert sorted(first.values()) == ["exhausted"] * 3 + ["ok"] * 3
    service.restart()
    assert claim_all() == first  # the same answers, nothing moved again
    wallets = [service.posted(user_wallet_id(u.id)) for u in users]
    assert sum(wallets) == 1_500 and sorted(set(wallets)) == [0, 500]
    assert service.posted(campaign_budget_id(campaign_id)) == 0
    assert service.payments.campaigns.remaining_fen(campaign_id) == 0


def test_what_can_be_claimed(service: Service) -> None:
    campaigns = service.payments.campaigns
    campaign_id = _red_packet(service)
    ada = service.payments.parties.register_user("Ada")
    campaigns.claim(campaign_id, ada.id, request_id="c-1")
    with pytest.raises(InvalidState, match="already"):
        campaigns.claim(campaign_id, ada.id, request_id="c-2")  # one packet per user
    coupon = campaigns.create(
        "coupon", CampaignKind.COUPON, discount_fen=100, budget_fen=1_000, min_order_fen=500
    )
    with pytest.raises(CouponNotApplicable):
        campaigns.claim(coupon.id, ada.id, request_id="c-3")
    campaigns.close(campaign_id)
    bo = service.payments.parties.register_user("Bo")
    with pytest.raises(CouponNotApplicable):
        campaigns.claim(campaign_id, bo.id, request_id="c-4")


def test_a_version_2_store_is_migrated_and_keeps_its_campaigns(tmp_path: Path) -> None:
    path = tmp_path / "payments.db"
    conn = sqlite3.connect(path)
    for script in _MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute(
        "INSERT INTO campaigns (name, kind, discount_fen, min_order_fen, budget_fen, state,"
        " created_ns) VALUES ('old', 'red_packet', 100, 0, 1000, 'active', 0)"
    )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    store = PaymentsStore(path)
    assert store.scalar("PRAGMA user_version") == SCHEMA_VERSION
    assert store.scalar("SELECT name FROM campaigns WHERE request_id IS NULL") == "old"
    assert store.scalar("SELECT count(*) FROM campaign_claims") == 0
    store.close()
    again = PaymentsStore(path)  # reopening changes nothing
    assert again.scalar("PRAGMA user_version") == SCHEMA_VERSION
    assert again.scalar("SELECT count(*) FROM campaigns") == 1
    again.close()
