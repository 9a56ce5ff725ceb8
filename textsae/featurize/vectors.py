"""Your own vectors as the source: precomputed embeddings (from any model or API) read from a column of the data.

The featurizer computes nothing: ``fit`` learns the dimension, ``transform`` checks each batch of vectors (2-D,
that dimension, finite) and returns it as float32. It takes vectors, not texts; the pipeline and ``textsae encode``
read them from ``featurizer.vector_column`` of the same files as the texts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from textsae._io import atomic_write_json, library_versions
from textsae.config.schema import FeaturizerConfig
from textsae.errors import UserError
from textsae.featurize.base import CONFIG_NAME, read_featurizer_config

if TYPE_CHECKING:
    from textsae.config.schema import RecipeConfig, RuntimeConfig

__all__ = ["KIND", "VectorsConfig", "VectorsFeaturizer"]

KIND = "vectors"
"""The ``kind`` written to ``config.json``."""


@dataclass
class VectorsConfig(FeaturizerConfig):
    """``featurizer.kind=vectors``: your own precomputed vectors, dense, read from a column of the data files."""

    output: ClassVar[Literal["sparse", "dense"]] = "dense"

    vector_column: str = "vector"  # type: ignore[misc]  # a key here, a ClassVar (None) on the base
    """The column holding one list of numbers per document (Parquet list, JSON array, or a JSON list in a CSV
    cell); every vector has the same length. ``textsae encode`` reads the same column."""

    def recipe_problems(self, recipe: RecipeConfig) -> list[str]:
        if recipe.data.has_source and not recipe.data.path:
            return [
                "featurizer.kind=vectors reads its vectors from local files: set data.path=DIR or FILE (with a "
                f"{self.vector_column!r} column), not data.name or data.bundled."
            ]
        return []


class VectorsFeaturizer:
    """Precomputed vectors in, the same vectors out (checked).

    Args:
        vector_column: The data column that holds the vectors (recorded so ``encode`` reads the same one).
    """

    config_class = VectorsConfig
    """The ``featurizer`` section this featurizer is built from."""

    def __init__(self, *, vector_column: str = "vector") -> None:
        self.vector_column = vector_column
        self.n_features_: int | None = None

    @classmethod
    def from_config(cls, cfg: FeaturizerConfig, runtime: RuntimeConfig | None = None) -> VectorsFeaturizer:
        """Build from the ``featurizer`` section of a recipe (``kind: vectors``); ``runtime`` is unused."""
        if not isinstance(cfg, VectorsConfig):
            raise UserError(f"VectorsFeaturizer needs featurizer.kind='vectors'. Got {cfg.kind!r} instead.")
        return cls(vector_column=cfg.vector_column)

    @property
    def n_features(self) -> int:
        """The vectors' dimension (after :meth:`fit`)."""
        if self.n_features_ is None:
            raise UserError("VectorsFeaturizer is not fitted: call fit(vectors) first.")
        return self.n_features_

    def fit(self, vectors: Any, y: Any = None) -> VectorsFeaturizer:
        """Learn the dimension of ``vectors`` (``(n_docs, dim)``)."""
        self.n_features_ = None
        self.n_features_ = self._checked(vectors, expected_dim=None).shape[1]
        return self

    def transform(self, vectors: Any) -> np.ndarray:
        """``vectors`` as a float32 ``(n_docs, dim)`` array, after checking shape and values."""
        return self._checked(vectors, expected_dim=self.n_features)

    def fit_transform(self, vectors: Any, y: Any = None) -> np.ndarray:
        """``fit(vectors).transform(vectors)``."""
        return self.fit(vectors).transform(vectors)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``config.json`` (kind, the column name, the dimension)."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        config = {
            "kind": KIND,
            "params": {"vector_column": self.vector_column},
            "n_features": self.n_features,
            "versions": library_versions(),
        }
        atomic_write_json(target / CONFIG_NAME, config)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, trust_remote_code: bool = False, allow_pickle: bool = False
    ) -> VectorsFeaturizer:
        """Load a featurizer written by :meth:`save_pretrained` (the opt-ins are accepted and unused: no model)."""
        config = read_featurizer_config(directory)
        path = Path(directory) / CONFIG_NAME
        column, dim = config["params"].get("vector_column"), config.get("n_features")
        if config["kind"] != KIND or not isinstance(column, str) or not isinstance(dim, int) or dim < 1:
            raise UserError(
                f"{path}: expected kind {KIND!r}, a string params.vector_column and an int n_features >= 1. Got "
                f"{config['kind']!r}, {column!r} and {dim!r}."
            )
        featurizer = cls(vector_column=column)
        featurizer.n_features_ = dim
        return featurizer

    def _checked(self, vectors: Any, *, expected_dim: int | None) -> np.ndarray:
        if isinstance(vectors, str) or (isinstance(vectors, (list, tuple)) and vectors and isinstance(vectors[0], str)):
            raise UserError(
                "featurizer.kind=vectors takes precomputed vectors, not texts: pass a (n_docs, dim) array, or read "
                f"the {self.vector_column!r} column of the data."
            )
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise UserError(f"Vectors must be a (n_docs, dim) array of numbers ({error}).") from None
        if array.ndim != 2 or (array.shape[0] and array.shape[1] == 0):
            raise UserError(f"Vectors must be a 2-D (n_docs, dim) array. Got shape {array.shape}.")
        if expected_dim is not None and array.shape[1] != expected_dim:
            raise UserError(
                f"These vectors have {array.shape[1]} numbers each, but the featurizer was fitted on {expected_dim}: "
                "encode with vectors from the same model the run was trained on."
            )
        if not np.isfinite(array).all():
            bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
            raise UserError(f"Vector {bad} (0-based) holds NaN or inf; fix or drop that row.")
        return array
