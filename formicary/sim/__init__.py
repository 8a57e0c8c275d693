"""Simulators that drive the real service: `double11`, a Double-11 night of simulated shoppers
over simulated banks, through the real payments service and ledger (see docs/double11.md).

`ChannelGateway` (payments' `BankGateway` over the bank channels) lives here for now; it is
general and may move to `formicary.payments`.
"""

from formicary.sim.config import BankOverride, Double11Config
from formicary.sim.double11 import Double11, Journey, SecondView, View
from formicary.sim.gateway import BankOutcomeUnknown, ChannelGateway, GatewayCall, outcome_for
from formicary.sim.report import BankLine, CampaignLine, Double11Report, build_report, write_outputs
from formicary.sim.run import OutDirNotEmpty, prepare_out_dir, run_double11
from formicary.sim.shape import Funnel, PeakCurve
from formicary.sim.timebase import EventClock, ForwardClock

__all__ = [
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
