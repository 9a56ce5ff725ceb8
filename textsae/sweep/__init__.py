"""Grid sweeps over config keys, sharing one featurization and scoring on a validation split."""

from textsae.sweep.grid import Axis, GridPoint, expand_grid, parse_grid
from textsae.sweep.report import pareto_front, write_sweep_outputs
from textsae.sweep.runner import best_point, run_sweep, validation_corpus

__all__ = [
    "Axis",
    "GridPoint",
    "best_point",
    "expand_grid",
    "pareto_front",
    "parse_grid",
    "run_sweep",
    "validation_corpus",
    "write_sweep_outputs",
]
