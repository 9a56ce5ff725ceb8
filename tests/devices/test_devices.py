"""The same SAE, training and encoding code on every device: CPU always, CUDA when present (marked ``gpu``).

Each test runs on the device under test and checks it against the CPU reference computed in the same test, so the
CPU case checks the logic in CI and the CUDA case checks that nothing in it is CPU-only (sparse CSR kernels, fused
Adam, checkpoints written from device memory, autocast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.conftest import sae_config
from textsae.config.schema import EncodeConfig, RuntimeConfig, SAEConfig, TrainConfig
from textsae.encode import encode_rows, sparse_codes
from textsae.sae import SAE_REGISTRY, SparseAutoencoder, build_sae
from textsae.store.codes import load_codes
from textsae.train import trainer as trainer_module
from textsae.train.checkpoint import load_checkpoint, optimizer_tensors
from textsae.train.trainer import Trainer

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
D_IN, N_LATENTS, K, B = 48, 96, 4, 32
# fp32 on two devices differs by summation order only; bf16 autocast keeps 8 bits of mantissa.
FP32_TOLERANCE = 1e-4
BF16_FVU_TOLERANCE = 0.05
LR = 1e-3


def _features(n_rows: int = 256, *, sparse: bool, seed: int = 0) -> np.ndarray | sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.random((n_rows, D_IN), dtype=np.float32) * (rng.random((n_rows, D_IN)) < 0.2)
    return sp.csr_matrix(dense) if sparse else dense


def _batch(device: str, *, sparse: bool) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(_features(B, sparse=False, seed=5))).to(device)
    return x.to_sparse_csr() if sparse else x


def _build(arch: str) -> SparseAutoencoder:
    torch.manual_seed(0)
    sae = build_sae(sae_config(arch, n_latents=N_LATENTS, k=K, decoder_init="random"), D_IN)
    sae.init_from_data(torch.from_numpy(np.asarray(_features(B, sparse=False, seed=9))))
    return sae


def _step(sae: SparseAutoencoder, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training forward and backward; the codes and every parameter's gradient, on the CPU."""
    sae.train()
    sae.zero_grad(set_to_none=True)
    out = sae(x)
    dead = torch.zeros(sae.n_latents, dtype=torch.bool, device=out.codes.device)
    dead[::3] = True  # AuxK reads these
    sae.loss(out, dead_mask=dead).total.backward()
    return out.codes.detach().cpu(), {name: p.grad.detach().cpu() for name, p in sae.named_parameters()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", sorted(SAE_REGISTRY))
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_forward_backward_and_inference_match_the_cpu(device: str, arch: str, sparse: bool) -> None:
    reference = _build(arch)
    reference_codes, reference_grads = _step(reference, _batch("cpu", sparse=False))
    sae = _build(arch).to(device)
    codes, grads = _step(sae, _batch(device, sparse=sparse))
    torch.testing.assert_close(codes, reference_codes, atol=FP32_TOLERANCE, rtol=FP32_TOLERANCE)
    assert grads.keys() == reference_grads.keys()
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
        torch.testing.assert_close(grad, reference_grads[name], atol=FP32_TOLERANCE, rtol=1e-3, msg=name)
    sae.eval()
    with torch.no_grad():
        inference = sae.encode(_batch(device, sparse=sparse))
        # the reference after its step too: BatchTopK's inference threshold moves in training
        reference_inference = reference.eval().encode(_batch("cpu", sparse=False))
    assert inference.device.type == torch.device(device).type
    torch.testing.assert_close(inference.cpu(), reference_inference, atol=FP32_TOLERANCE, rtol=FP32_TOLERANCE)
    csr = sparse_codes(sae, _batch(device, sparse=sparse))
    np.testing.assert_allclose(csr.toarray(), reference_inference.numpy(), atol=FP32_TOLERANCE)


def _trainer(
    tmp_path: Path, device: str, features: Any, *, val_features: Any = None, precision: str = "auto", **train: Any
) -> Trainer:
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=N_LATENTS, k=K), D_IN)
    settings: dict[str, Any] = {
        "steps": 6,
        "batch_size": 32,
        "warmup_steps": 1,
        "checkpoint_every": 3,
        "lr": LR,
        **train,
    }
    return Trainer(
        sae,
        TrainConfig(**settings),
        features,
        val_features=val_features,
        checkpoint_path=tmp_path / "ckpt.safetensors",
        runtime=RuntimeConfig(progress=False, device=device, precision=precision),
    )


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().clone() for name, value in trainer.sae.state_dict().items()}


class _Interrupted(Exception):
    pass


def _train_until_interrupted(trainer: Trainer, monkeypatch: pytest.MonkeyPatch, *, after_steps: int) -> None:
    """Run ``trainer`` and stop it like a kill right after step ``after_steps`` (its checkpoint is on disk)."""
    calls = {"train-step": 0}

    def interrupt(name: str) -> None:
        calls[name] = calls.get(name, 0) + 1
        if name == "train-step" and calls[name] == after_steps + 1:
            raise _Interrupted

    monkeypatch.setattr(trainer_module, "kill_point", interrupt)
    with pytest.raises(_Interrupted):
        trainer.train()
    monkeypatch.undo()


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("cpu", "cpu"),
        pytest.param("cuda", "cpu", marks=pytest.mark.gpu),
        pytest.param("cpu", "cuda", marks=pytest.mark.gpu),
    ],
)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_a_checkpoint_resumes_on_another_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: str, then: str, sparse: bool
) -> None:
    features = _features(sparse=sparse)
    uninterrupted = _trainer(tmp_path / "whole", first, features, precision="fp32")
    uninterrupted.train()
    _train_until_interrupted(
        _trainer(tmp_path / "split", first, features, precision="fp32"), monkeypatch, after_steps=3
    )
    saved, _ = load_checkpoint(tmp_path / "split" / "ckpt.safetensors")
    resumed = _trainer(tmp_path / "split", then, features, precision="fp32")
    resumed.setup()  # loads the checkpoint onto `then`: exactly what `first` wrote, weights and Adam state
    assert resumed.step == 3 and next(resumed.sae.parameters()).device.type == torch.device(then).type
    for name, value in resumed.sae.state_dict().items():
        assert torch.equal(value.cpu(), saved[f"model.{name}"]), name
    for key, value in optimizer_tensors(resumed.optimizer)[0].items():
        assert torch.equal(value.cpu(), saved[key]), key
    resumed.train()
    assert resumed.resumed_from == 3
    assert resumed.step == uninterrupted.step == 6
    expected = _weights(uninterrupted)
    for name, value in _weights(resumed).items():
        assert torch.isfinite(value).all(), name
        if first == then:
            assert torch.equal(value, expected[name]), name  # same device: a resume changes nothing
        else:  # Adam normalises each gradient entry, so rounding on a near-zero one can move a weight by up to lr
            torch.testing.assert_close(value, expected[name], atol=3 * LR, rtol=0, msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocast_trains_as_well_as_fp32(tmp_path: Path, device: str) -> None:
    features = _features(512, sparse=False)
    summaries = {}
    for precision in ("fp32", "bf16"):
        trainer = _trainer(
            tmp_path / precision, device, features[:384], val_features=features[384:], precision=precision, steps=60
        )
        summaries[precision] = trainer.train()
        assert trainer.use_bf16 == (precision == "bf16")
    fp32, bf16 = (summaries[a].validation["fvu"] for a in ("fp32", "bf16"))
    assert fp32 < 0.9  # it learned something, so the comparison means something
    assert abs(bf16 - fp32) <= BF16_FVU_TOLERANCE, (fp32, bf16)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_encode_on_a_device_writes_the_cpu_codes(tmp_path: Path, device: str, sparse: bool) -> None:
    features = _features(200, sparse=sparse)
    trainer = _trainer(tmp_path, "cpu", features, precision="fp32")
    trainer.train()
    sae = trainer.sae.cpu()
    expected = sparse_codes(sae, torch.from_numpy(np.asarray(_features(200, sparse=False))))  # one batch, on the CPU

    def rows(begin: int, end: int) -> Any:
        return features[begin:end]

    cfg = EncodeConfig(batch_size=64, shard_docs=128)  # batches and shards that do not line up
    out = encode_rows(sae, 200, rows, tmp_path / "codes", cfg, device=device, progress=False, bf16=False)
    assert next(sae.parameters()).device.type == torch.device(device).type
    written = load_codes(out)
    assert written.shape == (200, N_LATENTS)
    assert (written.getnnz(axis=1) == expected.getnnz(axis=1)).all()
    # stored as fp16: a difference in the last fp32 bits may round to the neighbouring fp16 value
    np.testing.assert_allclose(written.toarray(), expected.toarray(), rtol=1e-3, atol=1e-3)
