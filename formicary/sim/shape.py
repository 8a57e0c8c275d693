"""The shape of a Double-11 night: the midnight peak curve and the three-stage funnel.

Traffic at virtual time tau (seconds after 00:00:00 Beijing time, negative before) is a base
rate times `PeakCurve.factor(tau)`:

    tau < -ramp_s            floor                                   (the evening before)
    -ramp_s <= tau < 0       floor + (1 - floor) * ((tau + ramp_s) / ramp_s) ** 2
                                                                     (carts fill up, ramp to 1)
    0 <= tau < rise_s        1 + (peak - 1) * tau / rise_s           (the sharp rise at 00:00)
    tau >= rise_s            1 + (peak - 1) * exp(-(tau - rise_s) / decay_s)
                                                                     (decay back to the base)

With the defaults (ramp 60 s from 0.2, rise 3 s, peak 5x, decay 20 s) the first minute after
midnight carries ~2.4x the traffic of a base minute and the peak second ~5x; after two minutes
the rate is back within 1% of the base.

The funnel has three stages in the proportion clicks : cashier : payments = 12 : 12 : 6: every
"buy" click opens the cashier (an order), and half of the cashier visits go on to pay. Stage k
arrives at `weight_k * unit_per_s * scale * factor(tau)` per virtual second; the simulator
draws clicks at the first stage's rate and thins them (cashier/clicks, payments/cashier), so the
proportions hold in expectation and in totals.
"""

from __future__ import annotations

import math

import msgspec

__all__ = ["Funnel", "PeakCurve"]


class PeakCurve(msgspec.Struct, frozen=True, kw_only=True):
    """Rate multiplier around midnight; see the module docstring for the formula."""

    ramp_s: float = 60.0
    floor: float = 0.2
    rise_s: float = 3.0
    peak: float = 5.0
    decay_s: float = 20.0

    def __post_init__(self) -> None:
        if not (0 < self.ramp_s <= 3_600 and 0 < self.rise_s <= 600 and 0 < self.decay_s <= 3_600):
            raise ValueError("ramp_s, rise_s and decay_s must be positive (at most an hour)")
        if not 0 < self.floor <= 1:
            raise ValueError("floor must be in (0, 1]")
        if not 1 <= self.peak <= 100:
            raise ValueError("peak must be 1..100 times the base rate")

    def factor(self, tau_s: float) -> float:
        if tau_s < -self.ramp_s:
            return self.floor
        if tau_s < 0:
            x = (tau_s + self.ramp_s) / self.ramp_s
            return self.floor + (1 - self.floor) * x * x
        if tau_s < self.rise_s:
            return 1 + (self.peak - 1) * tau_s / self.rise_s
        return 1 + (self.peak - 1) * math.exp(-(tau_s - self.rise_s) / self.decay_s)

    def integral(self, start_s: float, end_s: float, step_s: float = 0.05) -> float:
        """The area under the factor from start to end (for expected totals), by midpoints."""
        assert end_s >= start_s and step_s > 0
        steps = max(1, math.ceil((end_s - start_s) / step_s))
        width = (end_s - start_s) / steps
        return sum(self.factor(start_s + (i + 0.5) * width) for i in range(steps)) * width


class Funnel(msgspec.Struct, frozen=True, kw_only=True):
    """Stage weights (12 : 12 : 6) and the base rate of one weight unit per virtual second."""

    clicks: int = 12
    cashier: int = 12
    payments: int = 6
    unit_per_s: float = 10.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.payments <= self.cashier <= self.clicks <= 1_000:
            raise ValueError("funnel weights need 0 < payments <= cashier <= clicks <= 1000")
        if not 0 < self.unit_per_s * self.scale <= 100_000:
            raise ValueError("unit_per_s * scale must be in (0, 100000] per second")

    def clicks_per_s(self, factor: float) -> float:
        return self.clicks * self.unit_per_s * self.scale * factor

    @property
    def cashier_given_click(self) -> float:
        return self.cashier / self.clicks

    @property
    def pay_given_cashier(self) -> float:
        return self.payments / self.cashier
