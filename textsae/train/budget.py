"""How long an SAE trains: a fixed budget, or the automatic one that stops when the hold-out FVU levels off.

**Fixed** (``train.steps``, or ``train.epochs`` passes over the training rows): that many optimiser steps;
warm-up, then a flat rate, then decay over the last ``1 − train.decay_start`` of the run.

**Automatic** (``train.steps`` and ``train.epochs`` both null): the length does not depend on the corpus
size. Every ``train.eval_every`` steps the FVU of the hold-out (``train.val_fraction`` of the training
split; the reported split is never read) is measured. When it fell by less than ``train.stop_tolerance``
(relative) over the last ``train.patience`` evaluations, and not before ``train.min_steps``, the run has
converged at step s: the learning rate then
decays linearly to 0 over ``s · (1 − decay_start) / decay_start`` more steps (with the default 0.8, a
quarter of s: the same "last 20%" cooldown a fixed run has) and training ends. ``train.max_steps`` caps
the whole run; a run that reaches ``decay_start · max_steps`` without converging decays over the rest.
The decision is a pure function of the step and the (deterministic) hold-out FVU, and its state is
checkpointed, so a resumed run stops where the uninterrupted one would have.

Either way the warm-up is at most a tenth of the run (of ``min_steps`` for the automatic budget), so a
short run always reaches its peak learning rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from textsae.config.schema import TrainConfig
from textsae.train.schedules import lr_factor

__all__ = ["StoppingState", "TrainingBudget"]

WARMUP_MAX_FRACTION = 0.1
"""Warm-up never takes more than this fraction of the run (of ``min_steps`` for the automatic budget)."""


@dataclass
class StoppingState:
    """Progress of the automatic stopping rule; saved in every checkpoint."""

    best_fvu: float | None = None
    """Lowest hold-out FVU seen so far."""
    best_step: int = 0
    """Step of ``best_fvu``."""
    recent_fvu: list[float] = field(default_factory=list)
    """Hold-out FVU of the last ``patience + 1`` evaluations, oldest first."""
    converged_at: int | None = None
    """Step at which the FVU levelled off (the cooldown starts here); ``None`` while still improving."""
    end_step: int | None = None
    """Last step of the run once it is decided (converged_at + cooldown, capped at max_steps)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StoppingState:
        """Inverse of :meth:`to_dict`; unknown keys are ignored.

        Raises:
            ValueError: A value has the wrong type or the steps contradict each other (a damaged checkpoint).
        """
        if not isinstance(values, dict):
            raise ValueError(f"stopping state must be a mapping, got {type(values).__name__}")
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        state = cls(**known)
        optional_steps = {"converged_at": state.converged_at, "end_step": state.end_step}
        if not _is_count(state.best_step) or not all(
            step is None or _is_count(step) for step in optional_steps.values()
        ):
            raise ValueError(
                f"stopping state steps must be ints >= 0, got best_step={state.best_step!r}, {optional_steps}"
            )
        if (state.converged_at is None) != (state.end_step is None) or (
            state.end_step is not None and state.converged_at is not None and state.end_step < state.converged_at
        ):
            raise ValueError(f"stopping state has converged_at={state.converged_at!r} and end_step={state.end_step!r}")
        numbers = [state.best_fvu, *state.recent_fvu] if isinstance(state.recent_fvu, list) else None
        if numbers is None or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers if v is not None
        ):
            raise ValueError(
                f"stopping state FVU values must be numbers, got best_fvu={state.best_fvu!r}, recent_fvu={state.recent_fvu!r}"
            )
        return state


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class TrainingBudget:
    """Length, learning-rate schedule and stopping decision of one training run.

    Args:
        cfg: Training settings.
        steps_per_epoch: Optimiser steps in one pass over the training rows (for ``train.epochs``).
    """

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.state = StoppingState()
        if cfg.steps is not None:
            self.fixed_steps: int | None = cfg.steps
        elif cfg.epochs is not None:
            self.fixed_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
        else:
            self.fixed_steps = None
        shortest_run = self.fixed_steps if self.fixed_steps is not None else cfg.min_steps
        self.warmup_steps = min(cfg.warmup_steps, int(WARMUP_MAX_FRACTION * shortest_run))

    @property
    def automatic(self) -> bool:
        """Whether the run stops on its own (no ``train.steps`` or ``train.epochs``)."""
        return self.fixed_steps is None

    @property
    def total_steps(self) -> int:
        """Steps of the run as far as known now: the fixed budget, the decided end, or ``max_steps``."""
        if self.fixed_steps is not None:
            return self.fixed_steps
        return self.state.end_step if self.state.end_step is not None else self.cfg.max_steps

    @property
    def decay_begin(self) -> int:
        """First step of the learning-rate decay."""
        if self.state.converged_at is not None:
            return self.state.converged_at
        return max(int(self.cfg.decay_start * self.total_steps), self.warmup_steps)

    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak learning rate for the 0-based ``step``."""
        return lr_factor(
            max(step, 0),
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps,
            decay=self.cfg.decay,
            decay_begin=self.decay_begin,
        )

    def wants_evaluation(self, step: int) -> bool:
        """Whether the hold-out FVU should be measured after ``step`` steps (automatic budget, still improving)."""
        # Once the rate decays on its own (a run that never levelled off), a stopping decision has nothing left to decide.
        last = self.decay_begin if self.cfg.decay != "none" and self.cfg.decay_start > 0.0 else self.cfg.max_steps
        return self.automatic and self.state.converged_at is None and step % self.cfg.eval_every == 0 and step < last

    def observe(self, step: int, fvu: float) -> bool:
        """Record the hold-out FVU after ``step`` steps; True when this evaluation ends the improving phase."""
        state = self.state
        if state.best_fvu is None or not math.isfinite(state.best_fvu) or (math.isfinite(fvu) and fvu < state.best_fvu):
            state.best_fvu, state.best_step = fvu, step
        state.recent_fvu = [*state.recent_fvu, fvu][-(self.cfg.patience + 1) :]
        oldest = state.recent_fvu[0]
        still_improving = fvu <= oldest * (1.0 - self.cfg.stop_tolerance)  # False for a NaN FVU
        if len(state.recent_fvu) <= self.cfg.patience or step < self.cfg.min_steps or still_improving:
            return False
        state.converged_at = step
        state.end_step = min(step + self.cooldown_steps(step), self.cfg.max_steps)
        return True

    def cooldown_steps(self, step: int) -> int:
        """Steps of linear decay after converging at ``step``: the last ``1 − decay_start`` of the run."""
        if self.cfg.decay == "none" or self.cfg.decay_start >= 1.0:
            return 0
        if self.cfg.decay_start <= 0.0:
            return step
        return math.ceil(step * (1.0 - self.cfg.decay_start) / self.cfg.decay_start)

    def describe(self) -> str:
        """One line on how the run's length was set, for logs and the SAE's metadata."""
        if self.fixed_steps is not None:
            source = (
                f"train.steps={self.cfg.steps}" if self.cfg.steps is not None else f"train.epochs={self.cfg.epochs:g}"
            )
            return f"{self.fixed_steps} steps ({source})"
        state = self.state
        if state.converged_at is None:
            return f"{self.total_steps} steps (automatic budget: reached train.max_steps={self.cfg.max_steps} before the hold-out FVU levelled off)"
        return (
            f"{self.total_steps} steps (automatic budget: hold-out FVU levelled off at step {state.converged_at}, "
            f"best {state.best_fvu:.4g} at step {state.best_step}; then {self.total_steps - state.converged_at} steps of decay)"
        )
