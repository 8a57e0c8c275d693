"""Issuers and the vetting rules a product's issuer must pass before the product may list.

The rules come from the seed's marketplace (Zhaocaibao admitted only these issuers):

| issuer kind | rule (`VettingRule`) | passes when |
|---|---|---|
| bank | `bank_total_assets` | total assets > 200 billion yuan |
| asset management company | `asset_manager_licensed` | it holds the regulator's licence |
| P&C insurer | `pc_insurer_solvency` | solvency ratio > 150 % |
| any other institution | `whitelist` | the marketplace whitelisted it |

Each kind is judged by its own rule only: the whitelist admits institutions outside the three
categories, it is not a way around a category's rule (a small bank stays refused).
Thresholds are strict ("more than"), as the seed states them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

import msgspec

from formicary.wealth.errors import InvalidRequest

__all__ = [
    "BANK_TOTAL_ASSETS_MIN_FEN",
    "INSURER_SOLVENCY_MIN_PCT",
    "Issuer",
    "IssuerKind",
    "Vetting",
    "VettingPolicy",
    "VettingRule",
    "vet",
]

# 200 billion yuan in fen: the seed's floor for banks (strictly more is needed).
BANK_TOTAL_ASSETS_MIN_FEN = 200_000_000_000 * 100
# The seed's floor for P&C insurers' comprehensive solvency ratio, in percent (strictly more).
INSURER_SOLVENCY_MIN_PCT = Decimal(150)
# Beyond any real balance sheet (the largest bank holds ~50 trillion yuan) yet inside int64.
_ASSETS_FEN_MAX = 10**18
_SOLVENCY_PCT_MAX = Decimal(100_000)
_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class IssuerKind(StrEnum):
    BANK = "bank"
    ASSET_MANAGER = "asset_manager"
    PC_INSURER = "pc_insurer"
    OTHER = "other"


_KINDS = frozenset(k.value for k in IssuerKind)


class VettingRule(StrEnum):
    """The rule that decides an issuer of each kind (named in every refusal)."""

    BANK_TOTAL_ASSETS = "bank_total_assets"
    ASSET_MANAGER_LICENSED = "asset_manager_licensed"
    PC_INSURER_SOLVENCY = "pc_insurer_solvency"
    WHITELIST = "whitelist"


class Issuer(msgspec.Struct, frozen=True):
    """An institution that issues fixed-term products, with the figures vetting reads.

    `total_assets_fen` matters for banks, `solvency_ratio_pct` for P&C insurers, `licensed`
    for asset management companies; a figure a rule needs but that is missing fails the rule.
    """

    issuer_id: str
    name: str
    kind: IssuerKind
    total_assets_fen: int | None = None
    solvency_ratio_pct: Decimal | None = None
    licensed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.issuer_id, str) or not _ID.fullmatch(self.issuer_id):
            raise InvalidRequest("issuer id: 1 to 64 of letters, digits, '_', '.', '-'")
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 200:
            raise InvalidRequest("issuer name: 1 to 200 characters")
        if self.kind not in _KINDS:
            raise InvalidRequest(f"issuer kind must be one of {sorted(_KINDS)}")
        assets = self.total_assets_fen
        if assets is not None and (
            not isinstance(assets, int)
            or isinstance(assets, bool)
            or not 0 <= assets <= _ASSETS_FEN_MAX
        ):
            raise InvalidRequest(f"total assets must be 0 to {_ASSETS_FEN_MAX} fen")
        ratio = self.solvency_ratio_pct
        if ratio is not None and (
            not isinstance(ratio, Decimal)
            or not ratio.is_finite()
            or not 0 <= ratio <= _SOLVENCY_PCT_MAX
        ):
            raise InvalidRequest("solvency ratio must be a finite Decimal percent, 0 to 100000")


@dataclass(frozen=True, slots=True)
class VettingPolicy:
    """The thresholds (the seed's by default)."""

    bank_total_assets_min_fen: int = BANK_TOTAL_ASSETS_MIN_FEN
    insurer_solvency_min_pct: Decimal = INSURER_SOLVENCY_MIN_PCT


class Vetting(msgspec.Struct, frozen=True):
    """The verdict on an issuer: the rule that decided it, and why."""

    issuer_id: str
    passed: bool
    rule: VettingRule
    reason: str


def vet(issuer: Issuer, *, whitelisted: bool, policy: VettingPolicy | None = None) -> Vetting:
    """Judge `issuer` by the rule of its kind (see the module docstring)."""
    p = policy or VettingPolicy()
    kind = issuer.kind
    if kind == IssuerKind.BANK:
        rule = VettingRule.BANK_TOTAL_ASSETS
        assets = issuer.total_assets_fen
        floor = _yuan(p.bank_total_assets_min_fen)
        if assets is None:
            return Vetting(issuer.issuer_id, False, rule, "a bank must report its total assets")
        passed = assets > p.bank_total_assets_min_fen
        relation = "more than" if passed else "not more than"
        reason = f"total assets {_yuan(assets)} yuan, {relation} the {floor} yuan floor"
        return Vetting(issuer.issuer_id, passed, rule, reason)
    if kind == IssuerKind.ASSET_MANAGER:
        rule = VettingRule.ASSET_MANAGER_LICENSED
        if issuer.licensed:
            return Vetting(issuer.issuer_id, True, rule, "a licensed asset management company")
        reason = "an asset management company must hold the regulator's licence"
        return Vetting(issuer.issuer_id, False, rule, reason)
    if kind == IssuerKind.PC_INSURER:
        rule = VettingRule.PC_INSURER_SOLVENCY
        ratio = issuer.solvency_ratio_pct
        floor_pct = p.insurer_solvency_min_pct
        if ratio is None:
            reason = "a P&C insurer must report its solvency ratio"
            return Vetting(issuer.issuer_id, False, rule, reason)
        passed = ratio > floor_pct
        relation = "more than" if passed else "not more than"
        reason = f"solvency ratio {ratio}%, {relation} the {floor_pct}% floor"
        return Vetting(issuer.issuer_id, passed, rule, reason)
    assert kind == IssuerKind.OTHER, kind
    rule = VettingRule.WHITELIST
    if whitelisted:
        return Vetting(issuer.issuer_id, True, rule, "whitelisted by the marketplace")
    reason = "an institution outside the bank, AMC and P&C insurer categories must be whitelisted"
    return Vetting(issuer.issuer_id, False, rule, reason)


def _yuan(fen: int) -> str:
    return f"{fen // 100:,}.{fen % 100:02d}"
