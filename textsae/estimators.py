"""scikit-learn estimator wrapping featurizer + SAE: raw texts in, sparse codes out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from textsae.errors import UserError


class SparseCodeTransformer(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[call-arg]  # sklearn takes this class keyword, mypy (untyped bases) checks object's; transform does its own pandas output
    """Texts → sparse SAE codes, usable in a scikit-learn ``Pipeline`` and with ``clone``.

    Either loads a trained run (``pretrained``) or, in :meth:`fit`, fits a featurizer and trains an SAE
    on the given texts.

    Args:
        pretrained: A run directory (with ``featurizer/`` and ``sae/``); ``fit`` then only loads it.
        featurizer: Featurizer settings (fields of ``FeaturizerConfig``), used when not ``pretrained``.
        sae: SAE settings (fields of ``SAEConfig``).
        train: Training settings (fields of ``TrainConfig``); ``train.val_fraction`` of the texts is held out from
            SAE training to stop the automatic budget.
        batch_size: Documents encoded at once in :meth:`transform`.
        device: ``auto``, ``cpu`` or ``cuda``.
        trust_remote_code: Let a ``pretrained`` hidden-states run's model execute code from its repository. Only
            this argument grants it: what the run directory says is never taken as permission.
        allow_pickle: Let a ``pretrained`` hidden-states run load pickle-only model weights (likewise).

    Examples:
        >>> from sklearn.pipeline import make_pipeline
        >>> from sklearn.linear_model import LogisticRegression
        >>> model = make_pipeline(SparseCodeTransformer(pretrained="runs/quickstart/abc"), LogisticRegression())
    """

    def __init__(
        self,
        *,
        pretrained: str | None = None,
        featurizer: dict[str, Any] | None = None,
        sae: dict[str, Any] | None = None,
        train: dict[str, Any] | None = None,
        batch_size: int = 1024,
        device: str = "auto",
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
    ) -> None:
        self.pretrained = pretrained
        self.featurizer = featurizer
        self.sae = sae
        self.train = train
        self.batch_size = batch_size
        self.device = device
        self.trust_remote_code = trust_remote_code
        self.allow_pickle = allow_pickle

    def fit(self, X: Sequence[str], y: Any = None) -> SparseCodeTransformer:
        """Load the pretrained run, or fit the featurizer and train the SAE on ``X``."""
        from pathlib import Path

        from textsae.artifacts import load_featurizer_artifact, load_sae_artifact
        from textsae.config.schema import (
            EvalConfig,
            FeaturizerConfig,
            RuntimeConfig,
            SAEConfig,
            TrainConfig,
        )
        from textsae.eval.classify import fit_probe
        from textsae.featurize.base import build_featurizer
        from textsae.paths import RunPaths
        from textsae.train.orchestrate import train_sae

        if self.pretrained is not None:
            paths = RunPaths(Path(self.pretrained))
            self.featurizer_ = load_featurizer_artifact(
                paths.featurizer, trust_remote_code=self.trust_remote_code, allow_pickle=self.allow_pickle
            )
            self.sae_ = load_sae_artifact(paths.sae)
            return self
        texts = _check_texts(X)
        settings = _with_moved_keys(self.train, self.featurizer)
        runtime = RuntimeConfig(**{"device": self.device, "progress": False, **settings.get("runtime", {})})
        self.featurizer_ = build_featurizer(FeaturizerConfig(**settings.get("featurizer", {})), runtime)
        features = self.featurizer_.fit_transform(texts)
        train_cfg = TrainConfig(**settings.get("train", {}))
        supervised = train_cfg.label_loss_weight > 0 or train_cfg.dense_init == "probe"
        if supervised and y is None:
            raise UserError(
                "train={'label_loss_weight': ...} > 0 or {'dense_init': 'probe'} needs labels: call fit(X, y)."
            )
        labels = np.unique(np.asarray(y), return_inverse=True)[1] if y is not None else None
        self.sae_, _ = train_sae(
            SAEConfig(**(self.sae or {})),
            train_cfg,
            features,
            labels=labels,
            runtime=runtime,
            fit_probe=lambda rows, labels: fit_probe(rows, labels, EvalConfig()),
        )
        self.sae_.cpu()
        return self

    def transform(self, X: Sequence[str]) -> Any:
        """Sparse codes of ``X``: a ``(n_docs, n_latents)`` float32 CSR matrix, one row per document in order; a
        document with no text (empty or whitespace) gets an empty row. After ``set_output(transform="pandas")``
        (or ``sklearn.set_config(transform_output="pandas")``): a DataFrame with sparse columns ``latent0 …``, indexed
        like ``X`` when ``X`` is a pandas Series."""
        from textsae.encode import encode_in_memory

        check_is_fitted(self, "sae_")
        codes = encode_in_memory(
            self.featurizer_, self.sae_, _check_texts(X), batch_size=self.batch_size, device=self.device
        )
        if self._output_container() != "pandas":
            return codes
        import pandas as pd

        index = X.index if isinstance(X, pd.Series) else None
        return pd.DataFrame.sparse.from_spmatrix(codes, index=index, columns=self.get_feature_names_out())

    def set_output(self, *, transform: str | None = None) -> SparseCodeTransformer:
        """Choose what :meth:`transform` returns: ``"default"`` (CSR), ``"pandas"`` (a DataFrame with sparse
        columns, so the codes stay sparse), or None (unchanged). polars has no sparse columns and is refused."""
        if transform is None:
            return self
        if transform not in ("default", "pandas"):
            raise UserError(
                f"SparseCodeTransformer.set_output(transform={transform!r}): the codes are sparse; use 'default' (CSR) "
                "or 'pandas' (sparse columns). polars has no sparse columns: convert a pandas result if you need it."
            )
        self._sklearn_output_config = {"transform": transform}  # the attribute sklearn's clone carries over
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True  # raw documents, not a numeric 2-D array
        tags.input_tags.two_d_array = False
        return tags

    def _output_container(self) -> str:
        import sklearn

        chosen = getattr(self, "_sklearn_output_config", {}).get("transform", "default")
        return sklearn.get_config()["transform_output"] if chosen == "default" else chosen

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        """Names ``latent0 … latent{n-1}``."""
        import numpy as np

        check_is_fitted(self, "sae_")
        return np.asarray([f"latent{i}" for i in range(self.sae_.n_latents)], dtype=object)


def _check_texts(X: Any) -> list[str]:
    if isinstance(X, str):
        raise UserError(
            "SparseCodeTransformer: Iterable over raw text documents expected, string object received. "
            "Wrap a single document in a list: [text]."
        )
    return list(X)


def _with_moved_keys(train: dict[str, Any] | None, featurizer: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The ``train=`` and ``featurizer=`` settings with the keys that moved to ``runtime`` (``device``, ``threads``,
    ``autocast``, ``dtype`` …) moved there, as in a recipe, so ``train={"threads": 1}`` keeps working."""
    from textsae.config.compose import move_keys

    tree = {"train": dict(train or {}), "featurizer": dict(featurizer or {})}
    move_keys(tree, "SparseCodeTransformer")
    return tree
