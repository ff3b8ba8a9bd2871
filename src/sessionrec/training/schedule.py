"""Learning-rate schedules: the multiplier of each parameter group's base rate at a step.

`step` is the reference codes' decay by epoch (SR-GNN: ×0.1 every 3 epochs). `linear` and
`cosine` decay from the base rate to `lr_final` × base over a horizon: the run's `epochs`, or
its time budget (`lr_horizon="budget"`, with `max_minutes`), so that a run cut by the clock
ends at the low rate whatever the machine's speed ("budgeted training": Li, Yumer and
Ramanan, ICLR 2020, found a linear decay to zero over the budget best). A linear warm-up over
the first `lr_warmup_steps` optimiser steps multiplies any schedule.
"""

from __future__ import annotations

import math

SCHEDULES = ("step", "linear", "cosine")
HORIZONS = ("epochs", "budget")


def decay_factor(schedule: str, progress: float, final: float) -> float:
    """`linear` or `cosine` decay from 1 to `final` as `progress` goes from 0 to 1."""
    p = min(max(progress, 0.0), 1.0)
    shape = 1.0 - p if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
    return final + (1.0 - final) * shape


def warmup_factor(update: int, warmup_steps: int) -> float:
    """Linear warm-up: (update + 1) / warmup_steps for the first `warmup_steps` updates."""
    return 1.0 if warmup_steps <= 0 else min(1.0, (update + 1) / warmup_steps)
