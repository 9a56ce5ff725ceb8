"""The optimiser step inside backward: the same parameters as one step after backward, with one gradient alive."""

from __future__ import annotations

import pytest
import torch

from textsae.config.schema import SAEConfig
from textsae.sae import build_sae
from textsae.train.label_heads import LabelHeads
from textsae.train.step_in_backward import StepInBackward

D_IN, N_LATENTS = 20, 48


def _setup(seed: int, dense_latents: int) -> tuple[torch.nn.Module, LabelHeads, torch.optim.Optimizer, list]:
    torch.manual_seed(seed)
    sae = build_sae(SAEConfig(n_latents=N_LATENTS, k=6, dense_latents=dense_latents), D_IN)
    sae.init_from_data(torch.randn(64, D_IN))
    heads = LabelHeads(N_LATENTS, dense_latents, 3, "codes")
    parameters = list(sae.parameters()) + list(heads.parameters())
    return sae, heads, torch.optim.Adam(parameters, lr=1e-2, fused=True), parameters


def _loss(sae: torch.nn.Module, heads: LabelHeads, step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(step)
    x = torch.randn(32, D_IN, generator=gen)
    labels = torch.randint(0, 3, (32,), generator=gen)
    out = sae(x)
    dead = torch.arange(N_LATENTS) % 4 == 0
    return sae.loss(out, dead_mask=dead).total + 10 * heads.loss(out.codes, labels)


@pytest.mark.parametrize("kernels", ["torch", "native"])
@pytest.mark.parametrize("fixed", [0, 2])
def test_same_parameters_as_a_step_after_backward(fixed: int, kernels: str, request: pytest.FixtureRequest) -> None:
    """Bit for bit on torch's kernels; to float rounding where W_dec's native fused step stands in for torch's three
    passes (it runs at any size on CPU)."""
    request.getfixturevalue(f"{kernels}_kernels")
    sae_a, heads_a, opt_a, _ = _setup(0, fixed)
    sae_b, heads_b, opt_b, params_b = _setup(0, fixed)
    StepInBackward(sae_b, opt_b, params_b, fixed_dense_latents=fixed)
    sae_a.train()
    sae_b.train()
    for step in range(5):
        opt_a.zero_grad(set_to_none=True)
        _loss(sae_a, heads_a, step).backward()
        if fixed:
            sae_a.W_enc.grad[:, :fixed] = 0.0
            sae_a.b_enc.grad[:fixed] = 0.0
        sae_a.remove_parallel_grad_()
        opt_a.step()
        sae_a.normalize_decoder_()

        _loss(sae_b, heads_b, step).backward()
        assert all(p.grad is None for p in params_b)  # each gradient was freed after its update
    for (name, a), b in zip(
        list(sae_a.named_parameters()) + list(heads_a.named_parameters()),
        list(sae_b.parameters()) + list(heads_b.parameters()),
    ):
        if kernels == "torch":
            assert torch.equal(a, b), name
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    if fixed:
        assert sae_b.W_enc.grad is None


def test_one_gradient_alive_at_each_update() -> None:
    sae, heads, opt, params = _setup(1, 0)
    alive = []
    original = opt.step

    def counting_step(*args, **kwargs):  # type: ignore[no-untyped-def]
        alive.append(sum(p.grad is not None for p in params))
        return original(*args, **kwargs)

    opt.step = counting_step  # type: ignore[method-assign]
    stepper = StepInBackward(sae, opt, params)
    sae.train()
    _loss(sae, heads, 0).backward()
    assert alive == [1] * len(params)
    stepper.remove()
    _loss(sae, heads, 1).backward()  # hooks gone: gradients stay, nothing is stepped
    assert len(alive) == len(params) and all(p.grad is not None for p in params)
