"""JumpReLU: learned thresholds, the straight-through gradients of the paper, the L0 penalty, and that it trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import QUIET_CPU
from textsae.config.schema import SAEConfig, TrainConfig
from textsae.errors import ConfigError
from textsae.sae import build_sae
from textsae.sae.jumprelu import JumpReLUConfig, JumpReLUSAE, jump_relu, step
from textsae.train.trainer import Trainer


def _identity_sae(threshold: float, *, l0: float = 0.5, bandwidth: float = 0.2) -> JumpReLUSAE:
    sae = build_sae(
        SAEConfig(
            architecture="jumprelu",
            n_latents=4,
            l0=l0,
            threshold_init=threshold,
            bandwidth=bandwidth,
            input_scaling="none",
        ),
        4,
    )
    with torch.no_grad():
        eye = torch.eye(4)
        sae.W_enc.copy_(eye)
        sae.W_dec.copy_(eye)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    assert isinstance(sae, JumpReLUSAE)
    return sae


def test_the_config_is_its_own_and_checked() -> None:
    cfg = SAEConfig(architecture="jumprelu", l0=2.0)
    assert isinstance(cfg, JumpReLUConfig) and not hasattr(cfg, "k") and cfg.code_k is None
    for bad, line in (({"l0": -1}, "sae.l0 must be >= 0"), ({"bandwidth": 0}, "sae.bandwidth must be > 0")):
        with pytest.raises(ConfigError, match=line):
            SAEConfig(architecture="jumprelu", **bad)


def test_codes_and_loss_by_hand() -> None:
    sae = _identity_sae(threshold=0.5)
    x = torch.tensor([[0.9, 0.2, -1.0, 0.6], [0.1, 0.4, 2.0, 0.0]])
    out = sae(x)
    expected_codes = torch.tensor([[0.9, 0.0, 0.0, 0.6], [0.0, 0.0, 2.0, 0.0]])  # pre > θ = 0.5 only
    torch.testing.assert_close(out.codes, expected_codes)
    torch.testing.assert_close(sae.encode(x), expected_codes)  # training and inference codes are the same
    loss = sae.loss(out)
    recon = ((x - expected_codes) ** 2).sum(dim=1).mean()  # identity decoder
    torch.testing.assert_close(loss.reconstruction, recon)
    torch.testing.assert_close(loss.sparsity, torch.tensor(1.5))  # 2 and 1 active latents
    torch.testing.assert_close(loss.total, recon + 0.5 * 1.5)


def test_threshold_gradients_are_the_rectangle_kernel_estimates() -> None:
    theta, eps = 0.5, 0.2
    pre = torch.tensor([[0.45, 0.58, 0.9, 0.3], [0.55, 0.61, 0.1, 0.52]], requires_grad=True)  # some within ε/2 of θ
    threshold = torch.full((4,), theta, requires_grad=True)
    (step(pre, threshold, eps).sum()).backward()
    window = ((pre.detach() - theta).abs() < eps / 2).float()
    torch.testing.assert_close(threshold.grad, -window.sum(dim=0) / eps)
    torch.testing.assert_close(pre.grad, torch.zeros_like(pre))  # the step passes nothing to the pre-activations

    pre.grad, threshold.grad = None, None
    (jump_relu(pre, threshold, eps).sum()).backward()
    torch.testing.assert_close(threshold.grad, -(theta / eps) * window.sum(dim=0))
    torch.testing.assert_close(pre.grad, (pre.detach() > theta).float())


def test_the_l0_penalty_moves_the_log_thresholds_up_through_exp() -> None:
    sae = _identity_sae(threshold=0.5, l0=1.0, bandwidth=0.2)
    x = torch.tensor([[0.45, 0.58, 0.9, 0.3]])
    sae.loss(sae(x)).sparsity.backward()
    # dL0/dlogθ = dL0/dθ · θ; entries 0 (0.45) and 1 (0.58) lie within ε/2 = 0.1 of θ = 0.5.
    torch.testing.assert_close(sae.log_threshold.grad, torch.tensor([-0.5 / 0.2, -0.5 / 0.2, 0.0, 0.0]))


def test_training_learns_thresholds_that_trade_l0_for_reconstruction() -> None:
    rng = np.random.default_rng(0)
    atoms = rng.standard_normal((64, 32)).astype(np.float32)
    weights = rng.exponential(1.0, (2048, 64)) * (rng.random((2048, 64)) < 0.06)
    features = (weights @ atoms).astype(np.float32)
    results = {}
    for l0 in (0.0, 1.0):
        torch.manual_seed(0)
        cfg = SAEConfig(architecture="jumprelu", n_latents=128, l0=l0, threshold_init=0.3, bandwidth=0.2)
        sae = build_sae(cfg, 32)
        trainer = Trainer(
            sae, TrainConfig(steps=300, batch_size=128, warmup_steps=10, lr=3e-3), features, runtime=QUIET_CPU
        )
        trainer.train()
        with torch.no_grad():
            codes = sae.encode(torch.from_numpy(features))
            recon = sae.decode(codes)
        fvu = float(((recon - torch.from_numpy(features)) ** 2).sum() / ((features - features.mean(0)) ** 2).sum())
        results[l0] = (float((codes != 0).sum(dim=1).float().mean()), fvu, float(sae.threshold.mean()))
    (l0_free, fvu_free, theta_free), (l0_penalised, fvu_penalised, theta) = results[0.0], results[1.0]
    assert fvu_free < 0.2 and fvu_penalised < 0.2  # both reconstruct far better than the mean
    assert l0_penalised < 0.7 * l0_free  # the penalty buys sparsity (measured: 14.0 against 28.9) …
    assert theta > 1.5 * theta_free and theta > 0.3  # … by raising the thresholds (0.57 against 0.22, from 0.3)


@pytest.mark.parametrize("sparse", [False, True])
def test_auto_thresholds_start_at_the_code_length_of_k_auto(sparse: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 48)).astype(np.float32)
    if sparse:
        x = np.abs(x) * (rng.random(x.shape) < 0.3)
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(architecture="jumprelu", n_latents=512), 48)
    rows = torch.from_numpy(x)
    sae.init_from_data(rows.to_sparse_csr() if sparse else rows)
    l0 = float((sae.encode(rows) != 0).sum(dim=1).float().mean())
    expected = 64 if sparse else 32  # SPARSE_K / DENSE_K entries per document on average
    assert abs(l0 - expected) <= 0.05 * expected, l0
    fixed = build_sae(SAEConfig(architecture="jumprelu", n_latents=512, threshold_init=0.1), 48)
    fixed.init_from_data(rows)
    torch.testing.assert_close(fixed.threshold, torch.full((512,), 0.1))  # a number is kept as given
