"""Learning-rate schedules: linear warm-up, a flat middle, then decay to zero."""

from __future__ import annotations

import math
from typing import Literal


def lr_factor(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int,
    decay: Literal["cosine", "linear", "none"],
    decay_begin: int,
) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based).

    Warm-up rises linearly over ``warmup_steps`` (step 0 gets ``1 / warmup_steps``, step
    ``warmup_steps - 1`` the full rate); decay runs from ``decay_begin`` (at the earliest when warm-up
    ends) to the last step, linearly or along a half cosine, reaching 0 one step after the last (so
    every step still learns).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "none":
        return 1.0
    start = max(decay_begin, warmup_steps)
    if step < start:
        return 1.0
    progress = (step - start + 1) / (total_steps - start + 1)
    progress = min(progress, 1.0)
    if decay == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))
