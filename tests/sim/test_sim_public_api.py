"""The public surface of formicary.sim, pinned."""

from __future__ import annotations

import formicary.sim as sim


def test_public_api() -> None:
    assert sorted(sim.__all__) == [
        "BankLine",
        "BankOutcomeUnknown",
        "BankOverride",
        "CampaignLine",
        "ChannelGateway",
        "Double11",
        "Double11Config",
        "Double11Report",
        "EventClock",
        "ForwardClock",
        "Funnel",
        "GatewayCall",
        "Journey",
        "OutDirNotEmpty",
        "PeakCurve",
        "SecondView",
        "View",
        "build_report",
        "outcome_for",
        "prepare_out_dir",
        "run_double11",
        "write_outputs",
    ]
    for name in sim.__all__:
        assert getattr(sim, name) is not None
