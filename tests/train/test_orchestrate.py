"""The one training sequence (``train_sae``) and the label heads as the component the trainer calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.conftest import QUIET_CPU, make_texts
from textsae.config.schema import EvalConfig, TrainConfig
from textsae.errors import UserError
from textsae.eval.classify import fit_probe
from textsae.featurize.base import build_featurizer
from textsae.featurize.tfidf import TfidfConfig
from textsae.sae.topk import TopKConfig
from textsae.train.batches import drop_latents
from textsae.train.label_heads import LabelHeads, check_labels
from textsae.train.orchestrate import take_rows, train_sae


def _train(**fields: object) -> TrainConfig:
    """The short training of these tests, with ``fields`` changed."""
    return TrainConfig(steps=20, batch_size=32, warmup_steps=2, **fields)  # type: ignore[arg-type]


def _features() -> tuple[sp.csr_matrix, np.ndarray]:
    """The features the estimator below makes of its texts (its featurizer settings, built as it builds them)."""
    texts, labels = make_texts(200, seed=5)
    featurizer = build_featurizer(TfidfConfig(ngram_range=(1, 1), min_df=1), QUIET_CPU)
    return featurizer.fit_transform(texts), labels


def _weights(sae: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu() for name, value in sae.state_dict().items()}


def test_the_estimator_trains_exactly_the_sae_train_sae_trains() -> None:
    """The estimator adds nothing of its own between featurizing and training: same features and settings, same
    weights (hold-out, seeds, sizes, probe and label heads included)."""
    from textsae import SparseCodeTransformer

    texts, labels = make_texts(200, seed=5)
    sae_settings = {"n_latents": "auto", "k": "auto", "dense_latents": "auto"}
    train = {"steps": 20, "batch_size": 32, "warmup_steps": 2, "dense_init": "probe", "label_loss_weight": 0.5}
    model = SparseCodeTransformer(
        featurizer={"ngram_range": [1, 1], "min_df": 1}, sae=sae_settings, train=train, device="cpu"
    ).fit(texts, labels)
    features, _ = _features()
    sae, summary = train_sae(
        TopKConfig(n_latents="auto", k="auto", dense_latents="auto"),
        _train(dense_init="probe", label_loss_weight=0.5),
        features,
        labels=labels,
        runtime=QUIET_CPU,
        fit_probe=lambda rows, y: fit_probe(rows, y, EvalConfig()),
    )
    assert summary.steps == 20 and sae.cfg.always_on_latents == 1  # two classes: one decision value
    expected, got = _weights(sae), _weights(model.sae_)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=0, msg=name)


def test_the_hold_out_comes_from_the_rows_and_holdout_false_trains_on_all(tmp_path: Path) -> None:
    features, _ = _features()
    cfg = _train(val_fraction=0.25)
    _, held = train_sae(TopKConfig(n_latents=16, k=2), cfg, features, runtime=QUIET_CPU)
    _, every = train_sae(TopKConfig(n_latents=16, k=2), cfg, features, runtime=QUIET_CPU, holdout=False)
    assert held.validation and not every.validation  # no hold-out: no validation metrics


def test_a_probe_needs_as_many_dense_latents_as_decision_values() -> None:
    features, labels = _features()
    with pytest.raises(UserError, match=r"needs sae.dense_latents=auto \(1 decision values.*got sae.dense_latents=3"):
        train_sae(
            TopKConfig(n_latents=16, k=4, dense_latents=3),
            _train(dense_init="probe"),
            features,
            labels=labels,
            runtime=QUIET_CPU,
            fit_probe=lambda rows, y: fit_probe(rows, y, EvalConfig()),
        )


def test_take_rows_reads_matrices_and_gives_views_of_stored_features(tmp_path: Path) -> None:
    from textsae.store.features import ShardedFeatures

    dense = np.arange(12, dtype=np.float32).reshape(6, 2)
    stored = ShardedFeatures([dense[:4], dense[4:]], np.array([0, 4, 6]))
    view = take_rows(stored, np.array([1, 5]))
    assert isinstance(view, ShardedFeatures)
    assert np.array_equal(view.to_array(), dense[[1, 5]])
    rows = take_rows(dense, np.array([0, 2]))
    assert isinstance(rows, np.ndarray) and np.array_equal(rows, dense[[0, 2]])


def test_label_heads_own_the_weight_the_dropout_and_their_checkpoint_tensors() -> None:
    cfg = TrainConfig(label_loss_weight=0.5, label_head="both", label_dropout=0.25)
    labels = torch.tensor([0, 1, 2, 1])
    assert LabelHeads.for_training(TrainConfig(), 8, 2, labels) is None  # no label loss: no heads
    assert LabelHeads.for_training(cfg, 8, 2, None) is None
    torch.manual_seed(0)
    heads = LabelHeads.for_training(cfg, 8, 2, labels)
    assert heads is not None and heads.head is not None and heads.dense_head is not None
    assert heads.head.out_features == 3 and heads.dense_head.in_features == 2
    codes = torch.randn(4, 8)
    term, ce = heads.training_loss(codes, labels, torch.Generator().manual_seed(7), 10)
    expected_ce = heads.loss(drop_latents(codes, 0.25, torch.Generator().manual_seed(7)), labels)
    assert ce.item() == pytest.approx(expected_ce.item()) and term.item() == pytest.approx(0.5 * 10 * ce.item())

    other = LabelHeads(8, 2, 3, "both")
    tensors = {"model.W_enc": torch.zeros(1), **{name: value + 1 for name, value in heads.state_dict().items()}}
    other.load_checkpoint_tensors(tensors)  # takes its own tensors, ignores the SAE's
    assert other.head is not None
    torch.testing.assert_close(other.head.weight, heads.head.weight + 1)


def test_a_label_loss_needs_one_label_per_row() -> None:
    check_labels(TrainConfig(), None, 5)  # no label loss: nothing needed
    with pytest.raises(UserError, match="one class label per training document"):
        check_labels(TrainConfig(label_loss_weight=1.0), np.zeros(4, dtype=np.int64), 5)
