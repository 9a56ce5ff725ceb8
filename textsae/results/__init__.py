"""Typed results: what a run, a universal codebook and the benchmarks write as JSON, as dataclasses.

Each class's ``to_json()`` gives exactly the mapping that is written (same keys, order and values), and the classes
whose files are read back have ``from_json``. The package sits below every layer that writes or reads these files
(the pipeline, ``eval/``, ``bench/``, the sweep) and imports nothing else of textsae.
"""

from __future__ import annotations

from textsae.results._json import JSONObject
from textsae.results.run_report import (
    ClassifierResult,
    DatasetInfo,
    Report,
    RepresentationResult,
    SAEStats,
    StoredSize,
    UniversalEntry,
    UniversalReport,
)

__all__ = [
    "ClassifierResult",
    "DatasetInfo",
    "JSONObject",
    "Report",
    "RepresentationResult",
    "SAEStats",
    "StoredSize",
    "UniversalEntry",
    "UniversalReport",
]
