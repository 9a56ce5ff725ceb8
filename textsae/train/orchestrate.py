"""The one way an SAE is trained on a feature matrix: hold-out split, sizes, memory check, SAE, probe, trainer.

The pipeline (and through it the quality bench and the universal codebook), the scikit-learn estimator and the anomaly
bench all call :func:`train_sae`, so the same features, labels and settings give the same SAE whichever of them asks.
What differs between them stays with the caller: where features come from, how labels are encoded, which
classifier fits the probe's latents (``train/`` never imports ``eval/``, so it is passed in), and what is done with
the trained SAE.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

import numpy as np
import scipy.sparse as sp
import torch

from textsae import distributed
from textsae._io import logger, resolve_device
from textsae.config.schema import RuntimeConfig, SAEConfig, TrainConfig, to_dict
from textsae.errors import UserError
from textsae.sae import DataShape, SparseAutoencoder, build_sae
from textsae.sae.sizing import describe_sizes, resolve_sizes
from textsae.store.features import ShardedFeatures
from textsae.train.footprint import check_fits, estimate
from textsae.train.trainer import Trainer, TrainSummary, holdout_split

__all__ = ["ProbeFit", "TrainingRows", "take_rows", "train_sae"]

TrainingRows: TypeAlias = sp.csr_matrix | np.ndarray | ShardedFeatures
"""What an SAE trains on: a CSR matrix (TF-IDF), a dense array, or stored dense features read batch by batch."""

ProbeFit: TypeAlias = Callable[[TrainingRows, np.ndarray], tuple[np.ndarray, np.ndarray, float]]
"""``train.dense_init=probe``: fits a linear classifier of the labels on the SAE's training rows and returns its
``(weights (m, d_in), bias (m,), C)``; the SAE's m always-on latents are fixed to its decision values."""


def take_rows(matrix: TrainingRows, rows: np.ndarray) -> TrainingRows:
    """Rows of a feature matrix; stored features (dense or CSR shards) give a view, so nothing is loaded yet."""
    subset = getattr(matrix, "subset", None)
    return subset(rows) if callable(subset) else matrix[rows]


def train_sae(
    sae_config: SAEConfig,
    train_config: TrainConfig,
    features: TrainingRows,
    *,
    labels: np.ndarray | None = None,
    runtime: RuntimeConfig | None = None,
    fit_probe: ProbeFit | None = None,
    holdout: bool = True,
    run_dir: Path | None = None,
    checkpoint_path: Path | None = None,
    metrics_path: Path | None = None,
    data_fingerprint: str | None = None,
) -> tuple[SparseAutoencoder, TrainSummary]:
    """Build an SAE sized for ``features`` and train it (resuming from ``checkpoint_path`` when it exists).

    In order: ``train.val_fraction`` of the rows held out (seeded by ``train.seed``), ``torch.manual_seed(train.seed)``,
    the ``auto`` sizes resolved from the training rows and their labels, a refusal when training cannot fit in memory
    (or on ``run_dir``'s disk), the SAE built, the probe fitted when ``train.dense_init=probe``, then
    :class:`~textsae.train.trainer.Trainer` run to the end.

    Args:
        sae_config: The SAE's settings (sizes may say ``auto``).
        train_config: Training settings.
        features: Every row the SAE may learn from, ``(n_docs, d_in)``; the hold-out is taken from them.
        labels: Class ids (0 … n_classes − 1) of the rows of ``features``, or ``None``; they size
            ``sae.dense_latents=auto``, train the label heads (``train.label_loss_weight`` > 0) and the probe.
        runtime: Device, precision, threads and progress; default :class:`~textsae.config.schema.RuntimeConfig`'s.
        fit_probe: The classifier of ``train.dense_init=probe`` (see :data:`ProbeFit`); needed only then.
        holdout: ``False`` trains on every row, with no hold-out (the automatic budget then watches training rows).
        run_dir: Where checkpoints and the SAE will be written: its file system is checked for space.
        checkpoint_path: The resumable state; ``None`` disables checkpoints.
        metrics_path: ``metrics.jsonl`` to append to; ``None`` disables the log.
        data_fingerprint: A hash of the data, so a checkpoint of other data is never resumed.

    Returns:
        The trained SAE (on the training device) and the trainer's summary.

    Raises:
        UserError: The SAE cannot fit in memory or on disk, or ``train.dense_init=probe`` with
            ``sae.dense_latents`` other than the classifier's number of decision values.
    """
    runtime = runtime or RuntimeConfig()
    train_rows, val_rows = (
        holdout_split(features.shape[0], train_config)
        if holdout
        else (np.arange(features.shape[0]), np.zeros(0, dtype=np.int64))
    )
    training = take_rows(features, train_rows) if holdout else features
    train_labels = labels[train_rows] if labels is not None else None
    torch.manual_seed(train_config.seed)
    shape = DataShape.of(training, train_labels)
    d_in = int(features.shape[1])
    resolved = resolve_sizes(sae_config, shape)
    check_fits(
        estimate(resolved, d_in, train_config, shards=_latent_shards(runtime)),
        device=resolve_device(runtime.device),
        run_dir=run_dir,
        n_latents=int(resolved.n_latents),
        d_in=d_in,
    )  # before any weight is allocated
    sae = build_sae(sae_config, d_in, shape)
    if "auto" in to_dict(sae_config).values():
        logger.info("Sizes: %s", describe_sizes(sae_config, sae.cfg, shape))
    dense_encoder = None
    if train_config.dense_init == "probe" and fit_probe is not None and train_labels is not None:
        dense_encoder = _fit_dense_probe(fit_probe, training, train_labels, sae.cfg.always_on_latents, shape)
    trainer = Trainer(
        sae,
        train_config,
        training,
        checkpoint_path=checkpoint_path,
        metrics_path=metrics_path,
        val_features=take_rows(features, val_rows) if len(val_rows) else None,
        labels=train_labels if train_config.label_loss_weight > 0 else None,
        dense_encoder=dense_encoder,
        data_fingerprint=data_fingerprint,
        runtime=runtime,
    )
    return sae, trainer.train()


def _fit_dense_probe(
    fit_probe: ProbeFit, training: TrainingRows, labels: np.ndarray, dense_latents: int, shape: DataShape
) -> tuple[np.ndarray, np.ndarray]:
    """``train.dense_init=probe``: the classifier's ``(weights, bias)`` fit on the SAE's training rows."""
    if dense_latents != shape.n_decisions:
        raise UserError(
            f"train.dense_init=probe needs sae.dense_latents=auto ({shape.n_decisions} decision values for this "
            f"corpus's classes); got sae.dense_latents={dense_latents}."
        )
    start = time.perf_counter()
    weights, bias, C = fit_probe(training, labels)
    logger.info(
        "Dense latents fixed to a logistic regression of the training labels (C=%g, %d decision values) in %.1f s",
        C,
        len(bias),
        time.perf_counter() - start,
    )
    return weights, bias


def _latent_shards(runtime: RuntimeConfig | None) -> int:
    """Into how many blocks the latents are split (``runtime.shard_dictionary=latents`` under torchrun), else 1."""
    return distributed.world().size if runtime is not None and runtime.shard_dictionary == "latents" else 1
