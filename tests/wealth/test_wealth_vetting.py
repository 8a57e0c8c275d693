"""Issuer vetting: each rule admits and refuses at its threshold, and a refused issuer's
product is refused with the rule named."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from formicary.wealth import (
    BANK_TOTAL_ASSETS_MIN_FEN,
    InvalidRequest,
    Issuer,
    IssuerKind,
    IssuerRefused,
    NotFound,
    VettingPolicy,
    VettingRule,
    vet,
)
from tests.wealth.wealth_builders import terms, world

FLOOR = BANK_TOTAL_ASSETS_MIN_FEN  # 200 billion yuan in fen


@pytest.mark.parametrize(
    ("issuer", "whitelisted", "passed", "rule"),
    [
        # Banks: total assets strictly more than 200 billion yuan.
        (Issuer("b", "B", IssuerKind.BANK, total_assets_fen=FLOOR + 1), False, True, "bank"),
        (Issuer("b", "B", IssuerKind.BANK, total_assets_fen=FLOOR), False, False, "bank"),
        (Issuer("b", "B", IssuerKind.BANK), False, False, "bank"),
        # A whitelist entry does not rescue a bank below the floor: each kind has its rule.
        (Issuer("b", "B", IssuerKind.BANK, total_assets_fen=10), True, False, "bank"),
        (Issuer("a", "A", IssuerKind.ASSET_MANAGER, licensed=True), False, True, "amc"),
        (Issuer("a", "A", IssuerKind.ASSET_MANAGER), False, False, "amc"),
        # P&C insurers: solvency ratio strictly more than 150 %.
        (
            Issuer("i", "I", IssuerKind.PC_INSURER, solvency_ratio_pct=Decimal("150.01")),
            False,
            True,
            "ins",
        ),
        (
            Issuer("i", "I", IssuerKind.PC_INSURER, solvency_ratio_pct=Decimal("150")),
            False,
            False,
            "ins",
        ),
        (Issuer("i", "I", IssuerKind.PC_INSURER), False, False, "ins"),
        (Issuer("o", "O", IssuerKind.OTHER), True, True, "white"),
        (Issuer("o", "O", IssuerKind.OTHER), False, False, "white"),
    ],
)
def test_each_kind_is_judged_by_its_rule(
    issuer: Issuer, whitelisted: bool, passed: bool, rule: str
) -> None:
    rules = {
        "bank": VettingRule.BANK_TOTAL_ASSETS,
        "amc": VettingRule.ASSET_MANAGER_LICENSED,
        "ins": VettingRule.PC_INSURER_SOLVENCY,
        "white": VettingRule.WHITELIST,
    }
    verdict = vet(issuer, whitelisted=whitelisted)
    assert (verdict.passed, verdict.rule) == (passed, rules[rule])
    assert verdict.reason


def test_the_thresholds_are_a_policy() -> None:
    policy = VettingPolicy(bank_total_assets_min_fen=10, insurer_solvency_min_pct=Decimal(100))
    assert vet(
        Issuer("b", "B", IssuerKind.BANK, total_assets_fen=11), whitelisted=False, policy=policy
    ).passed
    insurer = Issuer("i", "I", IssuerKind.PC_INSURER, solvency_ratio_pct=Decimal(120))
    assert vet(insurer, whitelisted=False, policy=policy).passed


@pytest.mark.parametrize(
    ("issuer", "rule"),
    [
        (Issuer("town", "Town Bank", IssuerKind.BANK, total_assets_fen=FLOOR), "bank_total_assets"),
        (Issuer("amc", "Some AMC", IssuerKind.ASSET_MANAGER), "asset_manager_licensed"),
        (
            Issuer("ins", "Weak P&C", IssuerKind.PC_INSURER, solvency_ratio_pct=Decimal(149)),
            "pc_insurer_solvency",
        ),
        (Issuer("trust", "Trust Co", IssuerKind.OTHER), "whitelist"),
    ],
)
def test_a_product_of_a_refused_issuer_is_refused_naming_the_rule(
    tmp_path: Path, issuer: Issuer, rule: str
) -> None:
    with world(tmp_path, issuers=(issuer,)) as w:
        with pytest.raises(IssuerRefused, match=rule) as refused:
            w.market.list_product(terms(issuer_id=issuer.issuer_id))
        assert refused.value.rule == rule
        assert w.market.products() == []


def test_the_whitelist_admits_and_its_removal_refuses(tmp_path: Path) -> None:
    trust = Issuer("trust", "Trust Co", IssuerKind.OTHER)
    with world(tmp_path, issuers=(trust,)) as w:
        assert not w.market.vet_issuer("trust").passed
        w.market.whitelist("trust", "risk committee 2026-02")
        assert w.market.list_product(terms("t1", issuer_id="trust")).status == "listed"
        w.market.unwhitelist("trust")
        with pytest.raises(IssuerRefused, match="whitelist"):
            w.market.list_product(terms("t2", issuer_id="trust"))


def test_new_figures_change_the_verdict(tmp_path: Path) -> None:
    with world(tmp_path, issuers=()) as w:
        weak = Issuer("ins", "P&C", IssuerKind.PC_INSURER, solvency_ratio_pct=Decimal(140))
        assert not w.market.register_issuer(weak).passed
        strong = Issuer("ins", "P&C", IssuerKind.PC_INSURER, solvency_ratio_pct=Decimal(180))
        assert w.market.register_issuer(strong).passed
        # The issuer keeps its number, so its settlement account is the same one.
        assert w.market.issuer("ins").solvency_ratio_pct == Decimal(180)
        assert w.market.list_product(terms(issuer_id="ins")).status == "listed"


def test_unknown_issuers_and_bad_figures_are_refused(tmp_path: Path) -> None:
    with world(tmp_path, issuers=()) as w, pytest.raises(NotFound):
        w.market.list_product(terms(issuer_id="nobody"))
    with pytest.raises(InvalidRequest):
        Issuer("b", "B", IssuerKind.BANK, total_assets_fen=-1)
    with pytest.raises(InvalidRequest):
        Issuer("b c", "B", IssuerKind.BANK)
    with pytest.raises(InvalidRequest):
        Issuer("b", "B", "credit_union")  # type: ignore[arg-type]
