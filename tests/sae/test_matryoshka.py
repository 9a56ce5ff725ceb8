"""Matryoshka loss of the TopK family: each dictionary prefix must reconstruct the input on its own."""

from __future__ import annotations

import pytest
import torch

from tests.sae.test_multi_topk import identity_topk
from textsae.config.schema import SAEConfig
from textsae.errors import ConfigError
from textsae.sae import build_sae


def test_matryoshka_loss_by_hand() -> None:
    """Identity SAE with n = 4, k = 3: the code keeps 4, 3, 2; prefix 1 keeps only 4, prefix 3 keeps 4 and 3."""
    x = torch.tensor([[4.0, -1.0, 3.0, 2.0]])
    plain = identity_topk(k=3)
    nested = identity_topk(k=3, matryoshka_prefixes=[1, 3])
    recon_all = 1.0  # only −1 is missing
    recon_prefix_1 = 1.0 + 9.0 + 4.0  # latent 0 alone: errors on −1, 3, 2
    recon_prefix_3 = 1.0 + 4.0  # latents 0-2 hold 4 and 3 (−1 is not in the code): errors on −1, 2
    loss_plain, loss_nested = plain.loss(plain(x)), nested.loss(nested(x))
    assert loss_plain.total.item() == pytest.approx(recon_all)
    assert loss_nested.total.item() == pytest.approx(recon_all + recon_prefix_1 + recon_prefix_3)
    assert loss_nested.reconstruction.item() == pytest.approx(recon_all)  # the reported term is the whole code's


def _reference_prefix_loss(sae: torch.nn.Module, out: object, n_prefix: int) -> torch.Tensor:
    recon = out.codes[:, :n_prefix] @ sae.W_dec[:n_prefix] + sae.b_dec
    target = out.x_in.to_dense() if out.x_in.layout == torch.sparse_csr else out.x_in
    return (target - recon).square().sum(dim=1).mean()


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
@pytest.mark.parametrize("sparse", [False, True])
def test_matryoshka_terms_and_gradients_match_a_dense_reference(arch: str, sparse: bool) -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 12) * (torch.rand(6, 12) < 0.4)
    prefixes = [2, 5]
    cfg = SAEConfig(architecture=arch, n_latents=10, k=3, auxk_coefficient=0.0, matryoshka_prefixes=prefixes)
    sae = build_sae(cfg, 12).train()
    out = sae(x.to_sparse_csr() if sparse else x)
    loss = sae.loss(out)
    reference = loss.reconstruction + sum(_reference_prefix_loss(sae, out, m) for m in prefixes)
    torch.testing.assert_close(loss.total, reference)
    nested_only = loss.total - loss.reconstruction
    grad = torch.autograd.grad(nested_only, sae.W_dec, retain_graph=True)[0]
    reference_grad = torch.autograd.grad(reference - loss.reconstruction, sae.W_dec)[0]
    torch.testing.assert_close(grad, reference_grad)
    assert torch.count_nonzero(grad[max(prefixes) :]) == 0  # latents beyond every prefix get nothing from these terms
    assert torch.count_nonzero(grad[: max(prefixes)]) > 0


def test_no_prefixes_is_the_plain_loss_and_prefixes_survive_save_load(tmp_path) -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 8)
    cfg = dict(architecture="topk", n_latents=16, k=2, auxk_coefficient=0.0)
    torch.manual_seed(1)
    plain = build_sae(SAEConfig(**cfg), 8)
    torch.manual_seed(1)
    nested = build_sae(SAEConfig(**cfg, matryoshka_prefixes=[4]), 8)
    out = nested(x)
    assert nested.loss(out).total.item() > plain.loss(plain(x)).total.item()
    torch.testing.assert_close(nested.loss(out).reconstruction, plain.loss(plain(x)).reconstruction)
    nested.save_pretrained(tmp_path)
    assert type(nested).from_pretrained(tmp_path).cfg.matryoshka_prefixes == [4]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (
            dict(architecture="relu_l1", matryoshka_prefixes=[16]),
            "sae.matryoshka_prefixes is a key of sae.architecture=batchtopk or topk",
        ),
        (dict(n_latents=64, matryoshka_prefixes=[16, 8]), r"increasing sizes in \[1, sae.n_latents - 1 = 63\]"),
        (dict(n_latents=64, matryoshka_prefixes=[16, 64]), r"increasing sizes in \[1, sae.n_latents - 1 = 63\]"),
        (dict(n_latents=64, matryoshka_prefixes=[0]), r"Got \[0\] instead"),
    ],
)
def test_bad_matryoshka_prefixes_are_refused(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        SAEConfig(**kwargs)
