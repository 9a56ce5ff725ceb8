"""Multi-TopK training loss and encoding at an inference k other than the training k."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import ARCHITECTURES, sae_config
from textsae.config.schema import EncodeConfig, SAEConfig
from textsae.errors import ConfigError, UserError
from textsae.sae import build_sae
from textsae.sae.topk import MULTI_TOPK_FACTOR, MULTI_TOPK_WEIGHT


def identity_topk(k: int, *, n: int = 4, **sae_options: object) -> torch.nn.Module:
    """A TopK SAE with W_enc = W_dec = I and zero biases, so pre-activations equal the input; ``sae_options`` go to SAEConfig."""
    cfg = SAEConfig(architecture="topk", n_latents=n, k=k, input_scaling="none", auxk_coefficient=0.0, **sae_options)
    sae = build_sae(cfg, n)
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(n))
        sae.W_dec.copy_(torch.eye(n))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_encode_at_inference_k_by_hand() -> None:
    sae = identity_topk(k=1)
    x = torch.tensor([[4.0, -1.0, 3.0, 2.0]])
    torch.testing.assert_close(sae.encode(x), torch.tensor([[4.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(sae.encode(x, k=3), torch.tensor([[4.0, 0.0, 3.0, 2.0]]))  # k above the training k
    torch.testing.assert_close(sae.encode(x, k=4), torch.tensor([[4.0, 0.0, 3.0, 2.0]]))  # −1 is picked, then ReLU'd


def test_multi_topk_loss_by_hand() -> None:
    """n = 4 and k = 1: the 4k term keeps every coordinate, so it reconstructs x exactly except the ReLU'd −1."""
    x = torch.tensor([[4.0, -1.0, 3.0, 2.0]])
    plain, multi = identity_topk(k=1), identity_topk(k=1, multi_topk=True)
    recon_k = 1.0 + 9.0 + 4.0  # top-1 keeps 4: errors on −1, 3, 2
    recon_4k = 1.0  # top-4 keeps all, ReLU drops −1
    assert MULTI_TOPK_FACTOR * 1 == 4
    loss_plain, loss_multi = plain.loss(plain(x)), multi.loss(multi(x))
    assert loss_plain.total.item() == pytest.approx(recon_k)
    assert loss_multi.total.item() == pytest.approx(recon_k + MULTI_TOPK_WEIGHT * recon_4k)
    assert loss_multi.reconstruction.item() == pytest.approx(recon_k)  # the reported term stays L(k)


def test_multi_topk_gradient_reaches_latents_beyond_k() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 8)
    grads = {}
    for multi in (False, True):
        torch.manual_seed(1)
        sae = build_sae(SAEConfig(architecture="topk", n_latents=16, k=2, multi_topk=multi, auxk_coefficient=0.0), 8)
        out = sae(x)
        sae.loss(out).total.backward()
        grads[multi] = (sae.W_dec.grad.abs().sum(dim=1) > 0).sum().item()  # decoder rows that got a gradient
    assert grads[True] > grads[False]


@pytest.mark.parametrize("arch", [name for name in ARCHITECTURES if name != "topk"])
def test_inference_k_keeps_the_k_largest_of_other_codes(arch: str) -> None:
    torch.manual_seed(0)
    sae = build_sae(sae_config(arch, n_latents=16, k=3), 8).eval()
    x = torch.rand(6, 8)
    full = sae.encode(x)
    capped = sae.encode(x, k=2)
    assert (torch.count_nonzero(capped, dim=1) <= 2).all()
    kth = full.topk(2, dim=1).values[:, -1:]
    torch.testing.assert_close(capped, full * (full >= kth))


def test_bad_inference_k_and_config_are_refused() -> None:
    sae = identity_topk(k=1)
    with pytest.raises(UserError, match=r"inference 'k'.*\[1, n_latents=4\]"):
        sae.encode(torch.ones(1, 4), k=5)
    with pytest.raises(ConfigError, match="sae.multi_topk is a key of sae.architecture=topk"):
        SAEConfig(architecture="batchtopk", multi_topk=True)
    with pytest.raises(ConfigError, match="encode.k"):
        EncodeConfig(k=0)
