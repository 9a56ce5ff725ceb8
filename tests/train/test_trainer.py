"""Trainer: schedules, resume equivalence, dead-latent tracking, denoising."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.conftest import ARCHITECTURES, QUIET_CPU, sae_config
from textsae.config.schema import SAEConfig, TrainConfig
from textsae.rows import rows_to_tensor
from textsae.sae import build_sae
from textsae.train.batches import drop_latents
from textsae.train.schedules import lr_factor
from textsae.train.trainer import Trainer


def _features(n_rows: int = 300, d_in: int = 40, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.random((n_rows, d_in)) * (rng.random((n_rows, d_in)) < 0.2)
    return sp.csr_matrix(dense.astype(np.float32))


def _trainer(
    tmp_path: Path,
    *,
    steps: int = 12,
    checkpoint_every: int = 4,
    features: sp.csr_matrix | None = None,
    label_loss_weight: float = 0.0,
    label_head: str = "codes",
    label_dropout: float = 0.0,
    dense_encoder: tuple[np.ndarray, np.ndarray] | None = None,
    **sae_kwargs,
) -> Trainer:
    torch.manual_seed(0)
    features = _features() if features is None else features
    sae = build_sae(sae_config(**{"n_latents": 32, "k": 4, **sae_kwargs}), features.shape[1])
    cfg = TrainConfig(
        steps=steps,
        batch_size=32,
        warmup_steps=2,
        checkpoint_every=checkpoint_every,
        log_every=1,
        label_loss_weight=label_loss_weight,
        label_head=label_head,
        label_dropout=label_dropout,
        dense_init="probe" if dense_encoder is not None else "learned",
    )
    labels = (np.asarray(features[:, 0].todense()).ravel() > 0).astype(np.int64) if label_loss_weight else None
    return Trainer(
        sae,
        cfg,
        features,
        checkpoint_path=tmp_path / "ckpt.safetensors",
        metrics_path=tmp_path / "metrics.jsonl",
        labels=labels,
        dense_encoder=dense_encoder,
        runtime=QUIET_CPU,
    )


def _interrupted_at_step_8_and_resumed(folder: Path, **kwargs) -> Trainer:
    """A trainer stopped right after its step-8 checkpoint, then a new one that resumed from it and finished."""
    interrupted = _trainer(folder, **kwargs)
    original_step = Trainer.train_step

    def crash_after_checkpoint(self: Trainer):
        if self.step == 8:
            raise KeyboardInterrupt
        return original_step(self)

    Trainer.train_step = crash_after_checkpoint  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupted.train()
    finally:
        Trainer.train_step = original_step  # type: ignore[method-assign]
    resumed = _trainer(folder, **kwargs)
    assert resumed.train().resumed_from == 8
    return resumed


def test_lr_schedule_warmup_flat_decay() -> None:
    factors = [lr_factor(s, total_steps=100, warmup_steps=10, decay="linear", decay_begin=80) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(f == 1.0 for f in factors[10:80])
    assert 0.0 < factors[99] == pytest.approx(1 / 21) and all(a > b for a, b in zip(factors[80:], factors[81:]))
    cosine = [lr_factor(s, total_steps=100, warmup_steps=0, decay="cosine", decay_begin=0) for s in range(100)]
    assert cosine[49] == pytest.approx(0.5, abs=0.02) and 0.0 < cosine[-1] < 1e-3


@pytest.mark.parametrize(
    ("architecture", "label_loss_weight", "decoder_init", "extra"),
    [
        *((architecture, 0.0, "random", {}) for architecture in ARCHITECTURES),
        ("topk", 0.01, "data", {}),
        ("topk", 0.01, "data", {"label_head": "both", "dense_latents": 2}),
        ("topk", 0.01, "data", {"label_dropout": 0.5}),
    ],
)
def test_resume_after_interruption_is_bit_identical(
    tmp_path: Path, architecture: str, label_loss_weight: float, decoder_init: str, extra: dict
) -> None:
    kwargs = {
        "architecture": architecture,
        "label_loss_weight": label_loss_weight,
        "decoder_init": decoder_init,
        **extra,
    }
    reference = _trainer(tmp_path / "a", **kwargs)
    reference.train()

    resumed = _interrupted_at_step_8_and_resumed(tmp_path / "b", **kwargs)
    for name, value in reference.sae.state_dict().items():
        assert torch.equal(value, resumed.sae.state_dict()[name]), name
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("dense_latents", [0, 1], ids=["topk", "with_a_label_latent"])
def test_resume_with_the_fused_native_steps_is_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dense_latents: int
) -> None:
    """With weights counted as larger than the cache, the trainer steps W_dec and W_enc through the fused native
    kernels and its forwards take the remembered c·W_enc; a run resumed from a checkpoint (which starts from a freshly
    summed c·W_enc) ends on the same bits as the uninterrupted one."""
    from textsae import native
    from textsae.sae import cache_blocks

    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 1024)
    fused = []
    real = native.encoder_adam_step
    monkeypatch.setattr(native, "encoder_adam_step", lambda *a, **kw: fused.append(1) or real(*a, **kw))
    features = _features(d_in=200)
    kwargs: dict = {"features": features}
    if dense_latents:  # one latent fixed to a linear function of the input, as tfidf_auto's label latent
        probe = np.random.default_rng(1).normal(size=(1, 200)).astype(np.float32), np.zeros(1, dtype=np.float32)
        kwargs |= {"dense_latents": 1, "dense_encoder": probe, "label_loss_weight": 0.5}
    reference = _trainer(tmp_path / "a", **kwargs)
    reference.train()
    assert len(fused) == 12  # every step, from the first (the trainer makes Adam's state at set-up)
    resumed = _interrupted_at_step_8_and_resumed(tmp_path / "b", **kwargs)
    for name, value in reference.sae.state_dict().items():
        assert torch.equal(value, resumed.sae.state_dict()[name]), name
    if dense_latents:
        assert resumed.stepper is not None and resumed.stepper.fixed == 1


def test_checkpoint_for_other_config_is_refused(tmp_path: Path) -> None:
    _trainer(tmp_path, steps=4).train()
    from textsae.errors import UserError

    with pytest.raises(UserError, match="different config"):
        _trainer(tmp_path, steps=6).train()


def test_training_reduces_fvu_and_logs_metrics(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, steps=60, checkpoint_every=100)
    trainer.train()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "fvu", "l0", "dead_fraction", "lr"} <= set(lines[0])
    first, last = np.mean([r["fvu"] for r in lines[:10]]), np.mean([r["fvu"] for r in lines[-10:]])
    assert last < first - 0.02  # batch FVU is noisy: compare 10-step means
    assert lines[0]["l0"] == pytest.approx(4.0)


def test_dead_latents_are_tracked(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, steps=10, dead_after=64)
    trainer.train()
    fired_ever = trainer.samples_since_fired < 64
    dead_fraction = 1 - fired_ever.float().mean().item()
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["dead_fraction"] == pytest.approx(dead_fraction)


def _record_denoising(corruption: str, p: float) -> tuple[Trainer, list[torch.Tensor], list[torch.Tensor], list]:
    """Train 5 steps with ``train.corruption``; return the trainer, the clean batches, the SAE's inputs and its targets."""
    features = _features()
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=32, k=4), features.shape[1])
    cfg = TrainConfig(steps=5, batch_size=32, corruption=corruption, corruption_p=p)
    trainer = Trainer(sae, cfg, features, runtime=QUIET_CPU)
    inputs: list[torch.Tensor] = []
    targets: list = []
    forward, loss = sae.forward, sae.loss

    def recording_forward(x: torch.Tensor):
        inputs.append(x)
        return forward(x)

    def recording_loss(out, target=None, **options):
        targets.append(target)
        return loss(out, target=target, **options)

    sae.forward, sae.loss = recording_forward, recording_loss  # type: ignore[method-assign]
    trainer.train()
    clean = [rows_to_tensor(features, trainer._batch_rows(step), "cpu") for step in range(5)]
    assert len(inputs) == len(targets) == 5
    for x_in, x in zip(inputs, clean):  # noise only on the non-zeros: the sparsity pattern is the clean one
        assert torch.equal(x_in.crow_indices(), x.crow_indices()) and torch.equal(x_in.col_indices(), x.col_indices())
    return trainer, clean, inputs, targets


def test_without_corruption_the_sae_sees_and_reconstructs_the_clean_rows() -> None:
    _, clean, inputs, targets = _record_denoising("none", 0.5)  # corruption_p is ignored
    for x, x_in, target in zip(clean, inputs, targets):
        assert torch.equal(x_in.values(), x.values())
        assert target is None  # the loss reconstructs the model's own input


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_mask_corruption_zeroes_entries_at_rate_p_and_reconstructs_the_clean_rows(p: float) -> None:
    trainer, clean, inputs, targets = _record_denoising("mask", p)
    kept = total = 0
    for x, x_in, target in zip(clean, inputs, targets):
        survived = x_in.values() != 0
        torch.testing.assert_close(x_in.values()[survived], x.values()[survived], rtol=0, atol=0)  # kept: unscaled
        kept += int(survived.sum())
        total += int((x.values() != 0).sum())
        torch.testing.assert_close(target.to_dense(), trainer.sae.normalize(x).to_dense())  # the target is clean
    assert total > 1000  # 5 batches × 32 rows × ~8 non-zeros
    assert abs(kept / total - (1 - p)) < 4 * math.sqrt(p * (1 - p) / total), (kept, total)  # within 4 binomial sd


def test_gaussian_corruption_adds_noise_of_p_times_the_rms_and_reconstructs_the_clean_rows() -> None:
    p = 0.5
    trainer, clean, inputs, targets = _record_denoising("gaussian", p)
    relative_noise = []
    for x, x_in, target in zip(clean, inputs, targets):
        rms = x.values().pow(2).mean().sqrt()
        relative_noise.append((x_in.values() - x.values()) / rms)
        torch.testing.assert_close(target.to_dense(), trainer.sae.normalize(x).to_dense())  # the target is clean
    noise = torch.cat(relative_noise)
    assert noise.numel() > 1000 and (noise != 0).all()
    assert abs(noise.mean().item()) < 0.07  # sd of the mean: p / sqrt(n) ≈ 0.014
    assert abs(noise.std().item() - p) < 0.05  # sd of the sd: p / sqrt(2n) ≈ 0.01


def test_dense_features_train(tmp_path: Path) -> None:
    dense = _features().toarray()
    trainer = _trainer(tmp_path, features=dense, input_scaling="standardize")
    summary = trainer.train()
    assert summary.steps == 12


def test_label_loss_trains_a_head_on_the_codes(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, steps=40, checkpoint_every=100, label_loss_weight=0.01)
    trainer.train()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert np.mean([r["label_ce"] for r in lines[-5:]]) < np.mean([r["label_ce"] for r in lines[:5]])
    assert trainer.label_heads is not None and trainer.label_heads.head.out_features == 2


@pytest.mark.parametrize("label_head", ["codes", "dense", "both"])
def test_label_head_reads_the_whole_code_the_dense_latents_or_both(tmp_path: Path, label_head: str) -> None:
    trainer = _trainer(tmp_path, label_loss_weight=0.01, label_head=label_head, dense_latents=3)
    trainer.setup()
    heads = trainer.label_heads
    assert (heads.head is not None) == (label_head in ("codes", "both"))
    assert (heads.dense_head is None) == (label_head == "codes")
    codes = torch.randn(8, 32, requires_grad=True)
    y = torch.tensor([0, 1] * 4)
    expected = torch.zeros(())
    if heads.head is not None:
        expected = expected + torch.nn.functional.cross_entropy(heads.head(codes), y)
    if heads.dense_head is not None:
        assert heads.dense_head.in_features == 3
        expected = expected + torch.nn.functional.cross_entropy(heads.dense_head(codes[:, :3]), y)
    ce = heads.loss(codes, y)
    assert ce.item() == pytest.approx(expected.item())
    ce.backward()
    reaches_sparse_latents = bool(codes.grad[:, 3:].abs().sum() > 0)
    assert reaches_sparse_latents == (label_head != "dense")  # the dense head sees latents 0..2 only


def test_a_dense_label_head_without_dense_latents_is_a_user_error(tmp_path: Path) -> None:
    from textsae.errors import UserError

    with pytest.raises(UserError, match="sae.dense_latents=0"):
        _trainer(tmp_path, label_loss_weight=0.01, label_head="dense").setup()


def test_label_loss_without_labels_is_a_user_error() -> None:
    from textsae.errors import UserError

    features = _features()
    sae = build_sae(SAEConfig(n_latents=32, k=4), features.shape[1])
    with pytest.raises(UserError, match="needs one class label per training document"):
        Trainer(sae, TrainConfig(steps=2, label_loss_weight=0.1), features, runtime=QUIET_CPU)


def test_label_dropout_zeroes_latents_and_rescales_the_rest() -> None:
    codes = torch.rand(400, 50) + 0.5
    dropped = drop_latents(codes, 0.25, torch.Generator().manual_seed(3))
    kept = dropped != 0
    assert 0.70 < kept.float().mean().item() < 0.80
    assert torch.allclose(dropped[kept], codes[kept] / 0.75)
    again = drop_latents(codes, 0.25, torch.Generator().manual_seed(3))
    assert torch.equal(dropped, again)  # the mask is a function of the step's generator: resume sees the same one
    assert drop_latents(codes, 0.0, torch.Generator()) is codes


def test_label_dropout_changes_only_what_the_head_sees(tmp_path: Path) -> None:
    plain = _trainer(tmp_path / "a", steps=6, label_loss_weight=0.01)
    plain.train()
    dropped = _trainer(tmp_path / "b", steps=6, label_loss_weight=0.01, label_dropout=0.5)
    dropped.train()
    first = [json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[0]) for name in ("a", "b")]
    assert first[0]["reconstruction"] == first[1]["reconstruction"]  # step 0: same weights, the whole code decoded
    assert first[0]["label_ce"] != first[1]["label_ce"]  # ... but the head read a code with latents dropped
    assert not torch.equal(plain.sae.W_enc, dropped.sae.W_enc)
    unsupervised = [_trainer(tmp_path / name, steps=6, label_dropout=p) for name, p in (("c", 0.0), ("d", 0.5))]
    for trainer in unsupervised:
        trainer.train()
    assert torch.equal(unsupervised[0].sae.W_enc, unsupervised[1].sae.W_enc)  # no head: nothing to drop


def test_data_init_puts_training_rows_in_the_decoder(tmp_path: Path) -> None:
    features = _features()
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=32, k=4, decoder_init="data"), features.shape[1])
    Trainer(sae, TrainConfig(steps=1, lr=1e-12, warmup_steps=0), features, runtime=QUIET_CPU).setup()
    centred = sae.normalize(torch.from_numpy(features.toarray())) - sae.b_dec.detach()
    unit = centred / centred.norm(dim=1, keepdim=True)
    similarity = (sae.W_dec.detach() @ unit.T).max(dim=1).values
    assert torch.all(similarity > 0.999)
    assert torch.allclose(sae.W_enc.detach(), sae.W_dec.detach().T)


def _auto_trainer(tmp_path: Path, features: sp.csr_matrix | None = None, **train_kwargs) -> Trainer:
    """A trainer on the automatic budget with a hold-out, small enough to converge in a few dozen steps."""
    torch.manual_seed(0)
    features = _features(n_rows=400) if features is None else features
    sae = build_sae(SAEConfig(n_latents=32, k=4, decoder_init="neighbours"), features.shape[1])
    settings = {
        "batch_size": 32,
        "warmup_steps": 2,
        "checkpoint_every": 4,
        "log_every": 2,
        "min_steps": 8,
        "max_steps": 400,
        "eval_every": 4,
        "patience": 2,
        "stop_tolerance": 0.01,
        **train_kwargs,
    }
    return Trainer(
        sae,
        TrainConfig(**settings),
        features[:360],
        val_features=features[360:],
        checkpoint_path=tmp_path / "ckpt.safetensors",
        metrics_path=tmp_path / "metrics.jsonl",
        runtime=QUIET_CPU,
    )


def test_automatic_budget_stops_on_the_holdout_and_decays(tmp_path: Path) -> None:
    trainer = _auto_trainer(tmp_path)
    summary = trainer.train()
    converged = summary.converged_at
    assert converged is not None and 8 <= converged < 300  # levelled off long before max_steps
    assert summary.steps == converged + -(-converged // 4)  # then a quarter of that as decay
    evaluations = [
        json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if "val_fvu" in line
    ]
    steps = [r["step"] for r in evaluations if not r.get("final")]
    assert steps == list(range(4, converged + 1, 4))  # every eval_every steps until it converged, none after
    assert evaluations[-1].get("final") and evaluations[-1]["step"] == summary.steps
    assert trainer.scheduler.get_last_lr()[0] < 0.01 * trainer.cfg.lr  # decayed to (almost) zero at the end
    assert "levelled off at step" in summary.budget


@pytest.mark.parametrize("offset", [-2, 2])  # killed while still improving, or during the decay
def test_automatic_budget_resumes_to_the_same_stop(tmp_path: Path, offset: int) -> None:
    reference = _auto_trainer(tmp_path / "a")
    expected = reference.train()
    interrupted = _auto_trainer(tmp_path / "b")
    original_step = Trainer.train_step
    stop_at = expected.converged_at + offset  # the stopping state (recent FVUs, the decision) is in the checkpoint

    def crash(self: Trainer):
        if self.step == stop_at:
            raise KeyboardInterrupt
        return original_step(self)

    Trainer.train_step = crash  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupted.train()
    finally:
        Trainer.train_step = original_step  # type: ignore[method-assign]
    resumed = _auto_trainer(tmp_path / "b")
    summary = resumed.train()
    assert summary.resumed_from == 4 * (stop_at // 4) and summary.steps == expected.steps
    assert summary.converged_at == expected.converged_at
    for name, value in reference.sae.state_dict().items():
        assert torch.equal(value, resumed.sae.state_dict()[name]), name
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()


def test_probe_fixed_dense_latents_hold_the_classifier_s_decision_values(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from textsae.config.schema import EvalConfig
    from textsae.eval.classify import fit_probe

    features = _features(n_rows=300)
    labels = np.random.default_rng(0).integers(0, 3, 300)
    weights, bias, C = fit_probe(features, labels, EvalConfig(C_grid=[0.5, 2.0], cv_folds=3))
    assert weights.shape == (3, features.shape[1]) and bias.shape == (3,) and C in (0.5, 2.0)
    reference = LogisticRegression(C=C, max_iter=2000).fit(features, labels).decision_function(features)
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=32, k=6, dense_latents=3, decoder_init="neighbours"), features.shape[1])
    cfg = TrainConfig(
        steps=20,
        batch_size=32,
        warmup_steps=2,
        dense_init="probe",
        label_loss_weight=0.01,
    )
    trainer = Trainer(sae, cfg, features, labels=labels, dense_encoder=(weights, bias), runtime=QUIET_CPU)
    trainer.setup()
    frozen = sae.W_enc.detach()[:, :3].clone()
    trainer.train()
    assert torch.equal(sae.W_enc.detach()[:, :3], frozen)  # b_enc follows b_dec, which the encoder subtracts
    assert not torch.equal(sae.W_enc.detach()[:, 3:], sae.W_dec.detach()[3:].T)  # the rest of the encoder trained
    with torch.no_grad():
        codes = sae.encode(torch.from_numpy(features.toarray()))
    np.testing.assert_allclose(codes[:, :3].numpy(), reference, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("sparse_input", [False, True])
def test_a_loss_on_fixed_dense_latents_does_not_move_b_dec(sparse_input: bool) -> None:
    features = _features(n_rows=64)
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=32, k=6, dense_latents=2), features.shape[1])
    sae.init_from_data(torch.from_numpy(features.toarray()))
    x = rows_to_tensor(features, slice(None), "cpu") if sparse_input else torch.from_numpy(features.toarray())
    before = sae.encode(x)[:, :2].detach()
    sae.set_dense_encoder(torch.randn(2, features.shape[1]), torch.randn(2))
    sae(x).codes[:, :2].sum().backward()
    assert sae.b_dec.grad is None or not sae.b_dec.grad.any()
    sae.zero_grad()
    sae(x).codes[:, 2:].sum().backward()  # the learned latents still train the centring
    assert sae.b_dec.grad.abs().sum() > 0 and not torch.equal(before, sae.encode(x)[:, :2].detach())


def test_probe_dense_init_without_a_classifier_is_a_user_error() -> None:
    from textsae.errors import UserError

    features = _features()
    sae = build_sae(SAEConfig(n_latents=32, k=4, dense_latents=1), features.shape[1])
    with pytest.raises(UserError, match="dense_init=probe needs the classifier"):
        Trainer(sae, TrainConfig(steps=2, dense_init="probe"), features, runtime=QUIET_CPU)
