"""TopK with always-on dense latents (``sae.dense_latents``)."""

from __future__ import annotations

import pytest
import torch

from tests.sae.test_multi_topk import identity_topk
from textsae.config.schema import SAEConfig
from textsae.errors import ConfigError, UserError
from textsae.sae import build_sae
from textsae.sae.base import SparseAutoencoder
from textsae.sae.topk import MULTI_TOPK_WEIGHT


def test_dense_latents_are_always_on_and_signed_by_hand() -> None:
    sae = identity_topk(k=3, dense_latents=2, n=5)
    x = torch.tensor([[-0.5, 0.1, 3.0, -2.0, 1.0], [0.0, -4.0, -1.0, 5.0, 2.0]])
    codes = sae.encode(x)
    # latents 0, 1 keep their signed value; TopK picks 1 of latents 2..4 (the largest, ReLU'd)
    torch.testing.assert_close(codes, torch.tensor([[-0.5, 0.1, 3.0, 0.0, 0.0], [0.0, -4.0, 0.0, 5.0, 0.0]]))
    out = sae(x)
    torch.testing.assert_close(out.codes, codes)  # training and inference codes agree
    torch.testing.assert_close(out.x_hat, codes)  # identity decoder (embedding_bag path)
    torch.testing.assert_close(sae.decode(codes.to_sparse_csr()), codes)
    # at an inference k the dense latents stay and k − m sparse ones are picked
    torch.testing.assert_close(sae.encode(x, k=4)[0], torch.tensor([-0.5, 0.1, 3.0, 0.0, 1.0]))


def test_dense_latents_get_gradient_from_every_row() -> None:
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(architecture="topk", n_latents=32, k=4, dense_latents=2, auxk_coefficient=0.0), 8)
    x = torch.randn(16, 8)
    out = sae(x)
    assert (out.codes[:, :2] != 0).all()  # always active
    assert (sae.active_mask(out.codes).sum(dim=1) <= 4).all()
    sae.loss(out).total.backward()
    assert (sae.W_enc.grad[:, :2].abs().sum(dim=0) > 0).all()
    assert torch.isfinite(sae.W_enc.grad).all()


def test_dense_latents_with_multi_topk_loss_by_hand() -> None:
    """n = 8, k = 2, one dense latent: the k term keeps the signed latent 0 and the largest other (3.0); the 4k = 8
    term keeps every latent, ReLU'd except latent 0, so it misses only the negative sparse entries."""
    x = torch.tensor([[-0.5, 3.0, -1.0, 2.0, 1.0, 0.5, -2.0, 0.25]])
    sae = identity_topk(k=2, n=8, dense_latents=1, multi_topk=True)
    recon_k = 1.0 + 4.0 + 1.0 + 0.25 + 4.0 + 0.0625  # every entry but -0.5 and 3.0
    recon_4k = 1.0 + 4.0  # the ReLU'd -1.0 and -2.0
    loss = sae.loss(sae(x))
    assert loss.reconstruction.item() == pytest.approx(recon_k)
    assert loss.total.item() == pytest.approx(recon_k + MULTI_TOPK_WEIGHT * recon_4k)
    loss.total.backward()
    assert torch.isfinite(sae.W_enc.grad).all() and sae.W_dec.grad[0].abs().sum() > 0  # the dense latent learns too


def test_save_and_load_keeps_dense_latents(tmp_path) -> None:
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(architecture="topk", n_latents=16, k=4, dense_latents=2), 8)
    x = torch.randn(6, 8)
    sae.save_pretrained(tmp_path)
    loaded = SparseAutoencoder.from_pretrained(tmp_path)
    assert loaded.cfg.dense_latents == 2
    torch.testing.assert_close(loaded.encode(x), sae.encode(x))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"architecture": "batchtopk", "dense_latents": 1}, "sae.dense_latents is a key of sae.architecture=topk"),
        ({"k": 4, "dense_latents": 4}, "sae.dense_latents must be auto or an int in [0, sae.k - 1 = 3]"),
        ({"k": 4, "dense_latents": -1}, "sae.dense_latents must be auto or an int >= 0"),
    ],
)
def test_bad_dense_latents_are_refused(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        SAEConfig(**kwargs)


def test_inference_k_must_exceed_dense_latents() -> None:
    sae = identity_topk(k=3, dense_latents=2, n=5)
    with pytest.raises(UserError, match="must exceed sae.dense_latents=2"):
        sae.encode(torch.zeros(1, 5), k=2)


def test_a_label_head_on_dense_latents_needs_dense_latents() -> None:
    from pathlib import Path

    from textsae.config.compose import load_recipe

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"
    with pytest.raises(
        ConfigError, match="train.label_head=dense reads the always-on latents; set sae.dense_latents > 0"
    ):
        load_recipe(recipe, ["train.label_head=dense", "sae.dense_latents=0", "train.dense_init=learned"])
    assert load_recipe(recipe, ["train.label_head=both", "sae.dense_latents=2"]).train.label_head == "both"
    with pytest.raises(ConfigError, match="train.label_head"):
        load_recipe(recipe, ["train.label_head=dens", "sae.dense_latents=2"])
