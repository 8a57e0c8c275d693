"""The FakeBank's memory is bounded like a real bank's idempotency table: answers live for a
TTL, at most `answers_max` of them; a full table answers busy (nothing done), never forgets
an answer early, and a long run stays within the bound."""

from __future__ import annotations

from formicary.payments import BankAccountRef, FakeBank, Outcome, Reply

CARD = BankAccountRef("ICBC", "622202******1234")
NS_PER_S = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now_ns = 1_700_000_000 * NS_PER_S

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: int) -> None:
        self.now_ns += seconds * NS_PER_S


def test_a_full_table_answers_busy_and_forgets_nothing_before_its_ttl() -> None:
    clock = Clock()
    bank = FakeBank(answers_max=3, answer_ttl_s=60, clock_ns=clock)
    for n in range(3):
        assert bank.collect(f"c-{n}", CARD, 100).ok
        clock.advance(1)
    full = bank.collect("c-3", CARD, 100)
    assert full == Reply(Outcome.BUSY, "idempotency table full; retry later")
    # Repeats are still answered from memory: nothing moves twice.
    assert all(bank.collect(f"c-{n}", CARD, 100).ok for n in range(3))
    assert bank.collected_fen["ICBC"] == 300
    assert bank.answers == 3
    # Once the oldest answers expire there is room again; the busy call did nothing, so its
    # retry is a fresh call that moves the money once.
    clock.advance(57)  # c-0 is 60 s old now, c-1 59 s
    assert bank.collect("c-3", CARD, 100).ok
    assert bank.collected_fen["ICBC"] == 400
    assert (bank.answers, bank.expired) == (3, 1)


def test_an_uncaptured_authorization_lapses_with_its_answer() -> None:
    clock = Clock()
    bank = FakeBank(answers_max=10, answer_ttl_s=60, clock_ns=clock)
    assert bank.authorize("pay-1", CARD, 500).ok
    assert bank.authorize("pay-2", CARD, 700).ok
    assert bank.capture("pay-2", CARD, 700).ok
    assert bank.holds_open == 1
    clock.advance(60)
    assert bank.capture("pay-1", CARD, 500) == Reply(Outcome.DECLINED, "no matching authorization")
    assert bank.holds_open == 0
    # The capture of pay-2 is too old to be reversed by a void: it stays captured.
    assert bank.void("pay-2", CARD, 700).ok
    assert bank.captured_fen["ICBC"] == 700


def test_a_long_run_stays_within_the_bound() -> None:
    clock = Clock()
    bank = FakeBank(answers_max=100, answer_ttl_s=30, clock_ns=clock)
    largest = 0
    for n in range(20_000):
        request_id = f"pay-{n}"
        assert bank.authorize(request_id, CARD, 100).ok
        if n % 3:  # a third of the holds are left to lapse
            assert bank.capture(request_id, CARD, 100).ok
        clock.advance(1)
        largest = max(largest, bank.answers)
    assert largest <= 100
    assert bank.holds_open <= 31
    assert bank.expired > 20_000
    assert bank.calls["authorize"] == 20_000


def test_defaults_are_a_day_and_a_million() -> None:
    bank = FakeBank()
    assert bank.answers_max == 1_000_000
    assert bank.collect("c-1", CARD, 1).ok and bank.answers == 1
