"""torch's blocked sparse decode (the path without textsae's native kernels) gives embedding_bag's values and gradients,
for uneven rows and uneven column blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import sae_config
from textsae.sae import build_sae, cache_blocks, decoder

N_LATENTS, D_IN = 40, 1000


def _entries(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of 5, 0, 3, 7 and 1 distinct latents, in no particular order within a row."""
    gen = torch.Generator().manual_seed(seed)
    sizes = [5, 0, 3, 7, 1]
    indices = torch.cat([torch.randperm(N_LATENTS, generator=gen)[:n] for n in sizes])
    values = torch.rand(indices.numel(), generator=gen)
    offsets = torch.tensor([0, *torch.tensor(sizes).cumsum(0).tolist()])
    return indices, values, offsets


def _forward_backward(decode, weight: torch.Tensor, values: torch.Tensor, indices, offsets, grad):  # type: ignore[no-untyped-def]
    weight = weight.clone().requires_grad_()
    values = values.clone().requires_grad_()
    out = decode(indices, values, offsets, weight)
    out.backward(grad)
    return out.detach(), values.grad, weight.grad


def _embedding_bag(indices, values, offsets, weight):  # type: ignore[no-untyped-def]
    return F.embedding_bag(indices, weight, offsets, mode="sum", per_sample_weights=values, include_last_offset=True)


@pytest.mark.parametrize("block_bytes", [128 * N_LATENTS * 4, 300 * N_LATENTS * 4], ids=["128_columns", "300_columns"])
@pytest.mark.usefixtures("torch_kernels")
def test_blocked_decode_equals_embedding_bag(monkeypatch: pytest.MonkeyPatch, block_bytes: int) -> None:
    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", block_bytes)  # W_dec (160 kB) is now "large": several blocks
    monkeypatch.setattr(cache_blocks, "MIN_ROW_REUSE", 0)
    indices, values, offsets = _entries()
    weight = torch.randn(N_LATENTS, D_IN, generator=torch.Generator().manual_seed(1))
    grad = torch.randn(offsets.numel() - 1, D_IN, generator=torch.Generator().manual_seed(2))
    assert len(cache_blocks.column_blocks(weight)) > 1
    ours = _forward_backward(decoder.sparse_decode, weight, values, indices, offsets, grad)
    reference = _forward_backward(_embedding_bag, weight, values, indices, offsets, grad)
    for name, a, b in zip(("output", "values grad", "weight grad"), ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)
    assert torch.count_nonzero(ours[0][1]) == 0  # the empty row decodes to zero


@pytest.mark.usefixtures("torch_kernels")
def test_small_decoders_and_few_entries_per_latent_keep_embedding_bag(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(decoder._BlockedDecode, "apply", lambda *args: calls.append(1))
    indices, values, offsets = _entries()  # 16 entries over 40 latents
    monkeypatch.setattr(cache_blocks, "MIN_ROW_REUSE", 0)
    decoder.sparse_decode(indices, values, offsets, torch.randn(N_LATENTS, D_IN))  # 160 kB: cache-resident
    assert calls == []
    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 1024)
    decoder.sparse_decode(indices, values, offsets, torch.randn(N_LATENTS, D_IN))
    assert calls == [1]
    monkeypatch.setattr(cache_blocks, "MIN_ROW_REUSE", 1)  # 0.4 entries per latent: no row of W_dec is reused
    decoder.sparse_decode(indices, values, offsets, torch.randn(N_LATENTS, D_IN))
    assert calls == [1]


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
@pytest.mark.usefixtures("torch_kernels")
def test_a_topk_sae_trains_the_same_through_the_blocked_decoder(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loss (with AuxK on dead latents) and every gradient of a sparse-input TopK SAE, blocked or not."""
    x = torch.rand(16, D_IN) * (torch.rand(16, D_IN) < 0.05)
    dead = torch.zeros(N_LATENTS, dtype=torch.bool)
    dead[::4] = True

    def gradients() -> tuple[float, dict[str, torch.Tensor]]:
        torch.manual_seed(0)
        sae = build_sae(sae_config(arch, n_latents=N_LATENTS, k=4, decoder_init="random"), D_IN)
        sae.init_from_data(x)
        sae.train()
        loss = sae.loss(sae(x.to_sparse_csr()), dead_mask=dead).total
        loss.backward()
        return float(loss), {name: p.grad.clone() for name, p in sae.named_parameters()}

    plain_loss, plain = gradients()
    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 128 * N_LATENTS * 4)
    monkeypatch.setattr(cache_blocks, "MIN_ROW_REUSE", 0)
    used: list[int] = []
    real_apply = decoder._BlockedDecode.apply
    monkeypatch.setattr(decoder._BlockedDecode, "apply", lambda *args: used.append(1) or real_apply(*args))
    blocked_loss, blocked = gradients()
    assert len(used) >= 2  # the reconstruction and the AuxK residual
    assert blocked_loss == pytest.approx(plain_loss, rel=1e-5)
    for name, grad in plain.items():
        torch.testing.assert_close(blocked[name], grad, rtol=1e-4, atol=1e-5, msg=name)
