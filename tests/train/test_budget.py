"""The training budget: fixed lengths, the automatic stopping rule, its cooldown and warm-up cap."""

from __future__ import annotations

import pytest

from textsae.config.schema import TrainConfig
from textsae.errors import ConfigError
from textsae.train.budget import StoppingState, TrainingBudget


def _budget(**kwargs) -> TrainingBudget:
    return TrainingBudget(TrainConfig(**kwargs), steps_per_epoch=10)


def test_fixed_budgets_come_from_steps_or_epochs() -> None:
    assert _budget(steps=7, epochs=3).total_steps == 7 and not _budget(steps=7).automatic
    assert _budget(epochs=2.5).total_steps == 25
    assert _budget().automatic and _budget(max_steps=900).total_steps == 900


def test_warmup_never_takes_more_than_a_tenth_of_the_run() -> None:
    assert _budget(steps=50, warmup_steps=100).warmup_steps == 5
    assert _budget(steps=5000, warmup_steps=100).warmup_steps == 100
    assert _budget(min_steps=300, warmup_steps=100).warmup_steps == 30  # automatic: a tenth of the shortest run
    budget = _budget(steps=50, warmup_steps=100)
    assert budget.lr_factor(4) == pytest.approx(1.0) and budget.lr_factor(0) == pytest.approx(0.2)


def test_fixed_schedule_decays_over_the_last_fifth() -> None:
    budget = _budget(steps=100, warmup_steps=10, decay_start=0.8)
    factors = [budget.lr_factor(step) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(f == 1.0 for f in factors[10:80]) and 0.0 < factors[99] == pytest.approx(1 / 21)


def _feed(budget: TrainingBudget, fvus: list[float]) -> int | None:
    """Observe one FVU per evaluation; the step of the evaluation that ended the improving phase, else None."""
    step = 0
    for fvu in fvus:
        step += budget.cfg.eval_every
        if not budget.wants_evaluation(step):
            return None
        if budget.observe(step, fvu):
            return step
    return None


def test_automatic_budget_stops_when_the_holdout_fvu_levels_off() -> None:
    budget = _budget(min_steps=100, max_steps=10_000, eval_every=100, patience=3, stop_tolerance=0.01, decay_start=0.8)
    # falls fast, then flattens at 0.5: the window of 3 evaluations without a 1% gain ends at the 8th evaluation
    converged = _feed(budget, [0.9, 0.7, 0.6, 0.55, 0.5, 0.5, 0.499, 0.4985, 0.498])
    assert converged == 800
    assert budget.state.converged_at == 800 and budget.state.best_fvu == pytest.approx(0.4985)
    assert budget.total_steps == 1000  # a quarter of 800 steps of decay: the last 20% of the run
    assert budget.lr_factor(799) == 1.0 and budget.lr_factor(900) == pytest.approx(1 - 101 / 201)
    assert not budget.wants_evaluation(900)
    assert "levelled off at step 800" in budget.describe()


def test_a_steady_slow_gain_keeps_training() -> None:
    budget = _budget(min_steps=100, max_steps=10_000, patience=3, stop_tolerance=0.01)
    fvus = [0.8 * 0.995**i for i in range(40)]  # 1.5% per three evaluations: above the tolerance
    assert _feed(budget, fvus) is None and budget.state.converged_at is None


def test_no_stop_before_min_steps_and_none_after_the_decay_began() -> None:
    budget = _budget(min_steps=600, max_steps=10_000, patience=2)
    assert _feed(budget, [0.5] * 5) is None  # flat from the start, but min_steps not reached
    assert budget.observe(600, 0.5) and budget.state.converged_at == 600
    capped = _budget(min_steps=100, max_steps=1000, decay_start=0.8)
    assert capped.wants_evaluation(700) and not capped.wants_evaluation(800)  # the cap's own decay has begun
    assert "reached train.max_steps=1000" in capped.describe()


def test_cooldown_is_capped_by_max_steps_and_skipped_without_decay() -> None:
    budget = _budget(min_steps=100, max_steps=1100, patience=1)
    budget.observe(800, 0.5)
    assert budget.observe(900, 0.5) and budget.total_steps == 1100  # 900 + 225 capped at 1100
    flat = _budget(min_steps=100, patience=1, decay="none")
    flat.observe(100, 0.5)
    assert flat.observe(200, 0.5) and flat.total_steps == 200


def test_a_nan_fvu_counts_as_no_improvement() -> None:
    budget = _budget(min_steps=100, patience=1)
    budget.observe(100, 0.5)
    assert budget.observe(200, float("nan"))


def test_without_decay_the_rule_watches_until_max_steps() -> None:
    flat = _budget(min_steps=100, max_steps=1000, decay="none")
    assert flat.wants_evaluation(900) and not flat.wants_evaluation(1000)


def test_a_nan_first_fvu_is_replaced_by_the_first_finite_one() -> None:
    budget = _budget(min_steps=100, patience=3)
    budget.observe(100, float("nan"))
    budget.observe(200, 0.7)
    assert budget.state.best_fvu == 0.7 and budget.state.best_step == 200


@pytest.mark.parametrize(
    "damage",
    [
        {"best_step": -1},
        {"end_step": "900"},
        {"converged_at": 900, "end_step": None},
        {"converged_at": 900, "end_step": 800},
        {"recent_fvu": ["x"]},
    ],
)
def test_a_damaged_stopping_state_is_refused(damage: dict) -> None:
    values = {**StoppingState(best_fvu=0.4, best_step=700, recent_fvu=[0.5]).to_dict(), **damage}
    with pytest.raises(ValueError, match="stopping state"):
        StoppingState.from_dict(values)


def test_stopping_state_round_trips_through_json() -> None:
    state = StoppingState(best_fvu=0.4, best_step=700, recent_fvu=[0.5, 0.45], converged_at=900, end_step=1125)
    assert StoppingState.from_dict({**state.to_dict(), "from_a_newer_version": 1}) == state


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"min_steps": 0}, "train.min_steps and train.max_steps"),
        ({"min_steps": 600, "max_steps": 500}, "1 <= min_steps <= max_steps"),
        ({"eval_every": 0}, "train.eval_every"),
        ({"stop_tolerance": 1.0}, "train.stop_tolerance"),
        ({"patience": 0}, "train.patience"),
        ({"epochs": 0}, "train.epochs must be > 0 or null"),
    ],
)
def test_budget_settings_are_checked(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**override)
