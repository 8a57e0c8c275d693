"""One exception tree for the channel layer. Results of bank calls are data, never exceptions:
these are raised only for invalid configuration or input."""

from __future__ import annotations

__all__ = ["ChannelError", "InvalidPlanInput", "InvalidRule"]


class ChannelError(Exception):
    """Base of every error raised by `formicary.channels`."""


class InvalidRule(ChannelError, ValueError):
    """A flow rule, breaker rule, bank profile or request is out of its allowed range."""


class InvalidPlanInput(ChannelError, ValueError):
    """Capacity-planning input (peak, shares, capacities, CSV file) is unusable."""
