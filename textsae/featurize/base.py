"""The featurizer contract: text in, one row of features per document out.

Every featurizer follows scikit-learn's estimator conventions (keyword-only ``__init__`` that
only stores parameters, ``fit`` returns ``self``, learned state ends in ``_``) and saves itself
as a directory whose ``config.json`` names its ``kind``. :func:`load_featurizer` reads that
``kind`` and hands the directory to the matching class; :func:`build_featurizer` does the same
for a :class:`~textsae.config.schema.FeaturizerConfig`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from textsae._io import read_json_checked
from textsae.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import scipy.sparse as sp

    from textsae.config.schema import FeaturizerConfig, RuntimeConfig

    if sys.version_info >= (3, 11):
        from typing import Self
    else:  # pragma: no cover
        from typing_extensions import Self

__all__ = [
    "CONFIG_NAME",
    "FEATURIZERS",
    "Featurizer",
    "build_featurizer",
    "featurizer_class",
    "featurizer_config_classes",
    "load_featurizer",
    "read_featurizer_config",
]

CONFIG_NAME = "config.json"
"""File in a saved featurizer directory that holds ``{"kind", "params", "versions", ...}``."""

FEATURIZERS: dict[str, str] = {
    "tfidf": "textsae.featurize.tfidf:TfidfFeaturizer",
    "hidden_states": "textsae.featurize.hidden_states:HiddenStatesFeaturizer",
    "vectors": "textsae.featurize.vectors:VectorsFeaturizer",
}
"""The featurizer registry: ``featurizer.kind`` → ``"module:Class"``, imported when first used (so a TF-IDF run
never imports torch). Each class carries its config dataclass as ``config_class``; adding a featurizer is its module
and one line here."""


@runtime_checkable
class Featurizer(Protocol):
    """What the rest of textsae needs from a featurizer.

    ``isinstance(obj, Featurizer)`` only checks that the methods exist. On Python < 3.12 it also
    reads the ``n_features`` property, which raises ``NotFittedError`` before ``fit``, so check a
    fitted object.
    """

    def fit(self, texts: Iterable[str], y: Any = None) -> Self:
        """Learn the vocabulary (or whatever state the featurizer needs) from ``texts``."""
        ...

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix | np.ndarray:
        """Return one row per document: ``(n_docs, n_features)``, CSR (sparse) or dense float32."""
        ...

    def fit_transform(self, texts: Iterable[str], y: Any = None) -> sp.csr_matrix | np.ndarray:
        """``fit(texts).transform(texts)``, possibly faster."""
        ...

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write the fitted featurizer to ``directory`` (``config.json`` written last)."""
        ...

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, trust_remote_code: bool = False, allow_pickle: bool = False
    ) -> Self:
        """Rebuild a fitted featurizer saved by :meth:`save_pretrained`.

        ``trust_remote_code`` and ``allow_pickle`` are opt-ins only the caller can give: a saved folder is data, and
        what it says about them is never taken as permission (featurizers that load no model ignore them).
        """
        ...

    @property
    def n_features(self) -> int:
        """Width of the rows that :meth:`transform` returns."""
        ...


def featurizer_class(kind: str) -> type[Featurizer]:
    """The class that implements featurizer ``kind``.

    Args:
        kind: A featurizer family, e.g. ``"tfidf"``.

    Returns:
        The featurizer class.

    Raises:
        UserError: ``kind`` is not a known featurizer family.
    """
    target = FEATURIZERS.get(kind)
    if target is None:
        raise UserError(f"Unknown featurizer kind {kind!r}. Expected one of {sorted(FEATURIZERS)}.")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def featurizer_config_classes() -> dict[str, type[FeaturizerConfig]]:
    """Each registered featurizer's config class, by kind."""
    # config_class and from_config are on every registered class but not in the Featurizer protocol, where they would
    # change what isinstance(obj, Featurizer) checks.
    return {kind: featurizer_class(kind).config_class for kind in FEATURIZERS}  # type: ignore[attr-defined]  # see above


def build_featurizer(cfg: FeaturizerConfig, runtime: RuntimeConfig | None = None) -> Featurizer:
    """An unfitted featurizer built from its config.

    Args:
        cfg: The ``featurizer`` section of a recipe.
        runtime: The recipe's ``runtime`` section (device, precision, progress), for featurizers that run a model.

    Returns:
        The featurizer, ready for ``fit``.

    Raises:
        UserError: ``cfg.kind`` is not a known featurizer family.
    """
    return featurizer_class(cfg.kind).from_config(cfg, runtime)  # type: ignore[attr-defined]  # see featurizer_config_classes


def read_featurizer_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check the ``config.json`` of a saved featurizer.

    Args:
        directory: A directory written by ``save_pretrained``.

    Returns:
        The parsed JSON object; it has a string ``"kind"`` and a dict ``"params"``.

    Raises:
        UserError: The directory or its ``config.json`` is missing, is not valid JSON, or lacks
            ``kind``/``params``.
    """
    path = Path(directory) / CONFIG_NAME
    if not Path(directory).is_dir():
        raise UserError(
            f"Featurizer directory {str(directory)!r} does not exist. Expected a directory written by save_pretrained()."
        )
    if not path.is_file():
        raise UserError(
            f"{path}: file is missing. Expected the config.json that save_pretrained() writes last; the save may have been interrupted."
        )
    config = read_json_checked(path, "the config.json that save_pretrained() writes")
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("kind"), str)
        or not isinstance(config.get("params"), dict)
    ):
        raise UserError(
            f'{path}: expected a JSON object with a string "kind" and an object "params". Got {_short(config)} instead.'
        )
    return config


def load_featurizer(
    directory: str | os.PathLike[str], *, trust_remote_code: bool = False, allow_pickle: bool = False
) -> Featurizer:
    """Load a saved featurizer of any kind.

    Args:
        directory: A directory written by ``save_pretrained``.
        trust_remote_code: Let a hidden-states featurizer run its model repository's own code (the saved folder's
            setting is never taken as permission).
        allow_pickle: Let it load pickle-only model weights (likewise).

    Returns:
        The fitted featurizer.

    Raises:
        UserError: The directory is missing or incomplete, or its ``kind`` is unknown.
    """
    config = read_featurizer_config(directory)
    kind = config["kind"]
    if kind not in FEATURIZERS:
        raise UserError(
            f"{Path(directory) / CONFIG_NAME}: unknown featurizer kind {kind!r}. Expected one of {sorted(FEATURIZERS)}."
        )
    return featurizer_class(kind).from_pretrained(
        directory, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
    )


def _short(obj: Any, limit: int = 80) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."
