"""The encoder's sparsity-following backward gives autograd's gradients, for every architecture and input layout."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import sae_config
from textsae import native
from textsae.config.schema import SAEConfig
from textsae.sae import SAE_REGISTRY, SparseAutoencoder, build_sae, cache_blocks, encoder

D_IN, N_LATENTS, K, B = 40, 128, 4, 24

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "bce": {"reconstruction": "bce", "input_scaling": "none"},
    "multi_topk": {"multi_topk": True},
    "matryoshka": {"matryoshka_prefixes": [16, 64]},
    "dense_latents": {"dense_latents": 2},
    "input_nnz": {"adaptive_k": "input_nnz"},
}
TOPK_ONLY = {"multi_topk", "dense_latents", "input_nnz"}
TOPK_FAMILY = {"matryoshka"}
CASES = [
    (arch, variant)
    for arch in sorted(SAE_REGISTRY)
    for variant in sorted(VARIANTS)
    if not (variant in TOPK_ONLY and arch != "topk")
    and not (variant in TOPK_FAMILY and arch not in ("topk", "batchtopk"))
]


def _reference_pre_activations(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    center: torch.Tensor,
    fixed_columns: int = 0,
    *,
    training: bool = False,
) -> torch.Tensor:
    """Plain autograd: (x − c)·W + b, the centre detached on the fixed columns."""
    dense = x.to_dense() if x.layout == torch.sparse_csr else x
    center_term = torch.cat([center.detach() @ weight[:, :fixed_columns], center @ weight[:, fixed_columns:]])
    return dense @ weight - center_term + bias


def _reference_gather(pre: torch.Tensor, *args: object) -> torch.Tensor:
    """Plain autograd: the gradient flows back through the dense pre-activations."""
    indices = args[4]
    assert isinstance(indices, torch.Tensor)
    return pre.gather(1, indices)


def _batch(sparse: bool, seed: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(B, D_IN, generator=gen)
    x = x * (torch.rand(B, D_IN, generator=gen) < 0.3)
    return x.to_sparse_csr() if sparse else x


def _gradients(sae: SparseAutoencoder, x: torch.Tensor, *, fixed: bool) -> dict[str, torch.Tensor]:
    sae.train()
    sae.zero_grad(set_to_none=True)
    sae.fixed_columns = sae.cfg.dense_latents if fixed else 0
    out = sae(x)
    dead = torch.zeros(sae.n_latents, dtype=torch.bool)
    dead[::3] = True  # AuxK picks among these
    loss = sae.loss(out, dead_mask=dead).total
    loss = loss + out.codes.square().sum() * 1e-3  # a head reading the dense codes, as the label loss does
    loss.backward()
    return {name: p.grad.clone() for name, p in sae.named_parameters()}


def _build(arch: str, variant: str) -> SparseAutoencoder:
    torch.manual_seed(0)
    cfg = sae_config(arch, n_latents=N_LATENTS, k=K, decoder_init="random", **VARIANTS[variant])
    sae = build_sae(cfg, D_IN)
    sae.init_from_data(_batch(sparse=False, seed=9))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)  # non-zero biases make every term of the gradient visible
    return sae


@pytest.mark.parametrize(("arch", "variant"), CASES)
@pytest.mark.parametrize("sparse_input", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("max_density", [1.0, 0.0], ids=["sparse_backward", "dense_backward"])
def test_gradients_equal_autograd(
    arch: str, variant: str, sparse_input: bool, max_density: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _batch(sparse_input)
    fixed = variant == "dense_latents"
    sae = _build(arch, variant)
    monkeypatch.setattr(encoder, "SPARSE_GRAD_MAX_DENSITY", max_density)  # dense input: G as CSR, or a dense matmul
    # sparse input: the scattered products in many parts, or xᵀ times G densified
    monkeypatch.setattr(encoder, "SCATTER_MIN_LATENTS_PER_ENTRY", 0 if max_density else 10**9)
    monkeypatch.setattr(encoder, "SCATTER_CHUNK_ENTRIES", 64)
    ours = _gradients(sae, x, fixed=fixed)
    monkeypatch.setattr("textsae.sae.base.encoder_pre_activations", _reference_pre_activations)
    monkeypatch.setattr("textsae.sae.base.gathered_pre_activations", _reference_gather)
    reference = _gradients(_build(arch, variant), x, fixed=fixed)
    for name, grad in reference.items():
        scale = float(grad.abs().max()) or 1.0
        torch.testing.assert_close(ours[name], grad, rtol=1e-5, atol=1e-5 * scale, msg=f"{arch}/{variant}: {name}")


def _topk_backward_on_dense_input() -> None:
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(architecture="topk", n_latents=1024, k=8), 32)
    x = torch.randn(64, 32)
    sae.init_from_data(x)
    sae.train()
    sae.loss(sae(x)).total.backward()


@pytest.mark.usefixtures("torch_kernels")
def test_topk_gradient_goes_through_the_kept_entries_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """TopK training never forms a dense ∂pre: its kept values carry the gradient as a CSR of B·k entries."""
    dense_calls: list[int] = []
    csr_entries: list[int] = []
    original_dense, original_csr = encoder._weight_gradient, encoder._weight_gradient_from_transposed

    def dense_spy(*args: torch.Tensor) -> torch.Tensor:
        dense_calls.append(1)
        return original_dense(*args)

    def csr_spy(x: torch.Tensor, g_t: torch.Tensor, center: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
        assert g_t.layout == torch.sparse_csr and g_t.shape == (sums.numel(), x.shape[0])  # Gᵀ: latents × rows
        csr_entries.append(g_t.values().numel())
        return original_csr(x, g_t, center, sums)

    monkeypatch.setattr(encoder, "_weight_gradient", dense_spy)
    monkeypatch.setattr(encoder, "_weight_gradient_from_transposed", csr_spy)
    _topk_backward_on_dense_input()
    assert dense_calls == [] and csr_entries == [64 * 8]


@pytest.mark.usefixtures("native_kernels")
def test_the_native_kernel_takes_the_kept_entries_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the native kernels, the same gradient goes to dense_t_sparse_mm as the B·k kept entries."""
    entries: list[tuple[int, ...]] = []
    original = native.dense_t_sparse_mm

    def spy(
        x: torch.Tensor, g_indices: torch.Tensor, g_values: torch.Tensor, n_cols: int, **kwargs: Any
    ) -> torch.Tensor:
        entries.append(tuple(g_indices.shape))
        return original(x, g_indices, g_values, n_cols, **kwargs)

    monkeypatch.setattr(native, "dense_t_sparse_mm", spy)
    monkeypatch.setattr(encoder, "_weight_gradient", lambda *args: pytest.fail("a dense ∂pre was formed"))
    _topk_backward_on_dense_input()
    assert entries == [(64, 8)]


@pytest.mark.parametrize("arch", sorted(SAE_REGISTRY))
@pytest.mark.parametrize("sparse_input", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("backward_inside", [False, True], ids=["backward_after", "backward_inside"])
def test_bf16_autocast_forward_gives_fp32_gradients_close_to_fp32(
    arch: str, sparse_input: bool, backward_inside: bool
) -> None:
    """An autocast forward hands ∂pre over in bf16; the backward still works on CSR input (the CPU has no bf16 sparse
    kernels), also when called inside the autocast block, and gives fp32 gradients near the fp32 ones (by cosine: bf16
    rounding may flip a near-tie of TopK's selection in a row, which moves a few columns of ∂W_enc a lot)."""
    x = _batch(sparse_input)
    reference = _gradients(_build(arch, "plain"), x, fixed=False)
    sae = _build(arch, "plain")
    sae.train()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    with autocast:
        out = sae(x)
        dead = torch.zeros(sae.n_latents, dtype=torch.bool)
        dead[::3] = True  # as in _gradients
        loss = sae.loss(out, dead_mask=dead).total + out.codes.float().square().sum() * 1e-3
        if backward_inside:
            loss.backward()
    if not backward_inside:
        loss.backward()
    for name, param in sae.named_parameters():
        assert param.grad is not None and param.grad.dtype == torch.float32, name
        assert torch.isfinite(param.grad).all(), name
        cosine = float(F.cosine_similarity(param.grad.flatten(), reference[name].flatten(), dim=0))
        assert cosine > 0.95, f"{arch}: {name} has cosine {cosine:.3f} to the fp32 gradient"


@pytest.mark.usefixtures("torch_kernels")
def test_sparse_input_never_multiplies_two_csr_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's CPU CSR × CSR matmul does not free its output (a TF-IDF run grew to 24 GB): sparse input takes CSR ×
    dense products only, on every path of the backward."""
    products: list[tuple[torch.layout, torch.layout]] = []
    real_mm, real_addmm_ = torch.sparse.mm, torch.Tensor.addmm_

    def spy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        products.append((a.layout, b.layout))
        return real_mm(a, b)

    def spy_addmm_(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, **kwargs: float) -> torch.Tensor:
        products.append((a.layout, b.layout))
        return real_addmm_(out, a, b, **kwargs)

    monkeypatch.setattr(torch.sparse, "mm", spy)
    monkeypatch.setattr(torch.Tensor, "addmm_", spy_addmm_)
    x = _batch(sparse=True)
    for arch in sorted(SAE_REGISTRY):
        for max_density in (1.0, 0.0):
            monkeypatch.setattr(encoder, "SPARSE_GRAD_MAX_DENSITY", max_density)
            _gradients(_build(arch, "plain"), x, fixed=False)
    assert products, "the sparse-input backward ran no sparse product"
    assert all(b == torch.strided for _, b in products), products


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("chunk_entries", [16, 1 << 22], ids=["many_parts", "one_part"])
def test_scattered_weight_gradient_is_the_product_in_any_partition(
    threads: int, chunk_entries: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """xᵀ G − c ⊗ Σ_b G_b from G's k entries per row, with empty rows and unused terms; the same bits on every run."""
    gen = torch.Generator().manual_seed(5)
    n_rows, d_in, n_latents, per_row = 9, 30, 50, 3
    x = torch.rand(n_rows, d_in, generator=gen) * (torch.rand(n_rows, d_in, generator=gen) < 0.2)
    x[[2, 7]] = 0.0  # documents with no term
    x[:, :4] = 0.0  # terms no document has
    indices = torch.rand(n_rows, n_latents, generator=gen).argsort(dim=1)[:, :per_row]
    values = torch.randn(n_rows, per_row, generator=gen)
    center = torch.randn(d_in, generator=gen)
    g = torch.zeros(n_rows, n_latents).scatter_(1, indices, values)
    expected = x.T @ g - torch.outer(center, g.sum(dim=0))
    monkeypatch.setattr(encoder, "SCATTER_CHUNK_ENTRIES", chunk_entries)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runs = [
            encoder._scattered_weight_gradient(x.to_sparse_csr(), indices, values, center, g.sum(dim=0))
            for _ in range(2)
        ]
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(runs[0], expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(runs[0], runs[1])


def test_scattered_weight_gradient_of_an_empty_batch_is_the_centring_term() -> None:
    center, sums = torch.randn(6), torch.randn(4)
    x = torch.zeros(3, 6).to_sparse_csr()
    indices, values = torch.zeros(3, 2, dtype=torch.int64), torch.zeros(3, 2)
    torch.testing.assert_close(
        encoder._scattered_weight_gradient(x, indices, values, center, sums), -torch.outer(center, sums)
    )


@pytest.mark.usefixtures("torch_kernels")
def test_sparse_input_forward_in_cache_blocks_equals_embedding_bag(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide W_enc whose terms the batch reads often is read one block of latents at a time: same pre-activations."""
    x = _batch(sparse=True)
    gen = torch.Generator().manual_seed(4)
    weight, bias, center = torch.randn(D_IN, N_LATENTS, generator=gen), torch.randn(N_LATENTS), torch.randn(D_IN)
    whole = encoder.encoder_pre_activations(x, weight, bias, center)
    used: list[int] = []
    real = encoder.blocked_embedding_bag
    monkeypatch.setattr(encoder, "blocked_embedding_bag", lambda *args: used.append(1) or real(*args))
    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 40 * D_IN * 4)  # blocks of 40 latents (the last one 8)
    monkeypatch.setattr(cache_blocks, "MIN_BLOCK_COLUMNS", 1)
    monkeypatch.setattr(cache_blocks, "MIN_ROW_REUSE", 0)
    blocked = encoder.encoder_pre_activations(x, weight, bias, center)
    assert used == [1]
    torch.testing.assert_close(blocked, whole, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(blocked, _reference_pre_activations(x, weight, bias, center), rtol=1e-5, atol=1e-5)
