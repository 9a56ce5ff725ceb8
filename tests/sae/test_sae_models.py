"""The four SAE architectures: shapes, hand-checked formulas, sparse vs dense, constraints, AuxK."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import ARCHITECTURES, sae_config
from textsae.config.schema import SAEConfig
from textsae.errors import UserError
from textsae.sae import SAE_REGISTRY, SparseAutoencoder, build_sae, losses

ARCHS = ARCHITECTURES
D_IN, N_LATENTS, K, B = 8, 16, 3, 6


def _make(arch: str, *, d_in: int = D_IN, seed: int = 0, **overrides: Any) -> SparseAutoencoder:
    torch.manual_seed(seed)
    fields = {"architecture": arch, "n_latents": N_LATENTS, "k": K, **overrides}
    return build_sae(sae_config(**fields), d_in)


def _set_identity(sae: SparseAutoencoder) -> None:
    """W_enc = W_dec = I, biases 0 (d_in == n_latents)."""
    with torch.no_grad():
        eye = torch.eye(sae.d_in)
        sae.W_enc.copy_(eye)
        sae.W_dec.copy_(eye)
        sae.b_enc.zero_()
        sae.b_dec.zero_()


def _sparse_batch(seed: int = 1) -> torch.Tensor:
    """Dense (B, D_IN) with values in [0, 1], ~40% non-zeros, row 2 all zero."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(B, D_IN, generator=gen) * (torch.rand(B, D_IN, generator=gen) < 0.4)
    x[0, 0] = 0.7  # row 0 is not empty
    x[2] = 0.0
    return x


# ------------------------------------------------------------------------------------ generic


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("training", [True, False])
def test_forward_shapes(arch: str, training: bool) -> None:
    sae = _make(arch).train(training)
    x = torch.randn(B, D_IN)
    out = sae(x)
    for name in ("x_in", "x_hat", "recon_logits"):
        assert getattr(out, name).shape == (B, D_IN), name
    assert out.codes.shape == out.pre_acts.shape == (B, N_LATENTS)
    assert out.recon_logits is out.x_hat  # mse
    assert sae.encode(x).shape == (B, N_LATENTS)
    assert sae.decode(sae.encode(x)).shape == (B, D_IN)
    loss = sae.loss(out, dead_mask=torch.zeros(N_LATENTS, dtype=torch.bool))
    assert all(t.shape == () for t in loss)


@pytest.mark.parametrize("arch", ARCHS)
def test_init_is_tied_and_unit_norm(arch: str) -> None:
    sae = _make(arch)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(N_LATENTS))
    torch.testing.assert_close(sae.W_enc, sae.W_dec.T, rtol=0, atol=0)
    assert sae.W_enc.is_contiguous() and sae.W_enc.data_ptr() != sae.W_dec.data_ptr()
    assert torch.count_nonzero(sae.b_enc) == 0


def test_wrong_input_raises_user_error() -> None:
    sae = _make("topk")
    with pytest.raises(UserError, match=r"shape \(B, d_in=8\)\. Got a torch.strided tensor of shape \(2, 5\)"):
        sae.encode(torch.zeros(2, 5))
    with pytest.raises(UserError, match="type ndarray"):
        sae.encode(torch.zeros(2, 8).numpy())
    with pytest.raises(UserError, match="needs sae.architecture='topk'"):
        SAE_REGISTRY["topk"](8, SAEConfig(architecture="relu_l1"))


# ----------------------------------------------------------------------------- sparse vs dense


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("reconstruction", ["mse", "bce"])
@pytest.mark.parametrize("training", [True, False])
def test_sparse_and_dense_input_give_same_codes_losses_and_grads(
    arch: str, reconstruction: str, training: bool
) -> None:
    scaling = "mean_norm" if reconstruction == "mse" else "none"
    x = _sparse_batch()
    dead_mask = torch.arange(N_LATENTS) % 3 == 0
    results = []
    for x_used in (x, x.to_sparse_csr()):
        sae = _make(arch, reconstruction=reconstruction, input_scaling=scaling).train(training)
        sae.init_from_data(x_used)
        out = sae(x_used)
        loss = sae.loss(out, dead_mask=dead_mask)
        loss.total.backward()
        grads = {name: p.grad for name, p in sae.named_parameters()}
        results.append((out.codes, loss, grads, sae.encode(x_used), sae.state_dict()))
    (codes_d, loss_d, grads_d, enc_d, state_d), (codes_s, loss_s, grads_s, enc_s, state_s) = results
    tol = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(codes_s, codes_d, **tol)
    torch.testing.assert_close(enc_s, enc_d, **tol)
    for field in loss_d._fields:
        torch.testing.assert_close(getattr(loss_s, field), getattr(loss_d, field), **tol, msg=field)
    for name in grads_d:
        torch.testing.assert_close(grads_s[name], grads_d[name], **tol, msg=name)
    for name in state_d:  # scaling stats, b_dec init, batchtopk threshold
        torch.testing.assert_close(state_s[name], state_d[name], **tol, msg=name)


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_active_row_decoder_matches_dense_reference(arch: str) -> None:
    """The embedding_bag decoder (fast path) against codes @ W_dec + b_dec (eager reference)."""
    x = torch.randn(B, D_IN)
    fast = _make(arch)
    reference = _make(arch)
    activate = reference._activate

    def dense_codes_only(pre, train, limit=None, x_in=None):  # type: ignore[no-untyped-def]
        codes, active = activate(pre, train=train, limit=limit)
        return (active.to_dense(pre.shape[1]) if codes is None else codes), None

    reference._activate = dense_codes_only  # type: ignore[method-assign]
    outputs = []
    for sae in (fast, reference):
        out = sae(x)
        sae.loss(out).total.backward()
        outputs.append(out)
    torch.testing.assert_close(outputs[0].x_hat, outputs[1].x_hat, rtol=1e-5, atol=1e-6)
    for (name, p_fast), p_ref in zip(fast.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p_fast.grad, p_ref.grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("arch", ARCHS)
def test_decode_of_csr_codes_equals_decode_of_dense_codes(arch: str) -> None:
    sae = _make(arch).eval()
    codes = sae.encode(torch.randn(B, D_IN))
    torch.testing.assert_close(sae.decode(codes.to_sparse_csr()), sae.decode(codes), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("sparse", [False, True])
def test_runs_under_bf16_autocast(arch: str, sparse: bool) -> None:
    """Under bf16 autocast the losses are fp32 and within bf16 rounding of the fp32 ones, the gradients fp32 and
    pointing the same way."""
    results = []
    for enabled in (False, True):
        sae = _make(arch)
        x = _sparse_batch()
        x = x.to_sparse_csr() if sparse else x
        sae.init_from_data(x)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            out = sae(x)
            loss = sae.loss(out, dead_mask=torch.arange(N_LATENTS) < 4)
        loss.total.backward()
        results.append((out, loss, {name: p.grad for name, p in sae.named_parameters()}))
    (_, loss_fp32, grads_fp32), (out, loss, grads) = results
    assert sparse or out.codes.dtype == torch.bfloat16  # dense input: the encoder did run in bf16
    for field in loss._fields:
        assert getattr(loss, field).dtype == torch.float32, field
        assert getattr(loss, field).item() == pytest.approx(getattr(loss_fp32, field).item(), rel=2e-2, abs=1e-6), field
    for name, grad in grads.items():
        assert grad.dtype == torch.float32, name
        assert F.cosine_similarity(grad.flatten(), grads_fp32[name].flatten(), dim=0) > 0.99, name


# ---------------------------------------------------------------------------- scaling and init


@pytest.mark.parametrize("sparse", [False, True])
def test_mean_norm_scaling_gives_mean_norm_sqrt_d_in(sparse: bool) -> None:
    sae = _make("topk", input_scaling="mean_norm")
    x = _sparse_batch() * 5
    xs = x.to_sparse_csr() if sparse else x
    sae.init_from_data(xs)
    x_in = sae.normalize(xs)
    assert x_in.layout == xs.layout
    norms = x_in.to_dense().norm(dim=1)
    assert norms.mean().item() == pytest.approx(math.sqrt(D_IN), rel=1e-6)
    torch.testing.assert_close(sae.b_dec.detach(), x_in.to_dense().mean(dim=0))
    torch.testing.assert_close(sae.denormalize(x_in.to_dense()), x)


def test_standardize_scaling_dense_and_refused_for_sparse() -> None:
    sae = _make("relu_l1", input_scaling="standardize")
    x = torch.randn(20, D_IN) * 3 + 1
    x[:, 0] = 2.0  # constant column keeps scale 1
    sae.init_from_data(x)
    x_in = sae.normalize(x)
    torch.testing.assert_close(x_in.mean(dim=0), torch.zeros(D_IN), atol=1e-5, rtol=0)
    torch.testing.assert_close(x_in[:, 1:].std(dim=0, unbiased=False), torch.ones(D_IN - 1))
    assert sae.input_scale[0].item() == 1.0
    with pytest.raises(UserError, match="input_scaling=standardize .* sparse"):
        sae.encode(x.to_sparse_csr())
    with pytest.raises(UserError, match="input_scaling=standardize .* sparse"):
        sae.init_from_data(x.to_sparse_csr())


def test_bce_init_b_dec_is_logit_of_clamped_mean() -> None:
    sae = _make("topk", reconstruction="bce", input_scaling="none")
    x = (_sparse_batch() > 0).float()
    x[:, 1] = 0.0
    sae.init_from_data(x.to_sparse_csr())
    expected = torch.logit(x.mean(dim=0).clamp(1e-5, 1 - 1e-5))
    torch.testing.assert_close(sae.b_dec.detach(), expected)


@pytest.mark.parametrize("arch", ARCHS)
def test_bce_reconstruction_equals_torch_bce(arch: str) -> None:
    sae = _make(arch, reconstruction="bce", input_scaling="none")
    x = (_sparse_batch() > 0).float()
    out = sae(x)
    expected = F.binary_cross_entropy_with_logits(out.recon_logits, x, reduction="sum") / B
    torch.testing.assert_close(sae.loss(out).reconstruction, expected)
    torch.testing.assert_close(out.x_hat, torch.sigmoid(out.recon_logits))
    torch.testing.assert_close(sae.decode(out.codes), out.x_hat)


@pytest.mark.parametrize("arch", ARCHS)
def test_fvu_of_perfect_and_mean_reconstruction(arch: str) -> None:
    sae = _make(arch)
    x = torch.randn(B, D_IN)
    out = sae(x)
    assert sae.loss(out._replace(x_hat=out.x_in)).fvu.item() == 0.0
    mean = out.x_in.mean(dim=0, keepdim=True).expand_as(out.x_in)
    assert sae.loss(out._replace(x_hat=mean)).fvu.item() == pytest.approx(1.0, rel=1e-6)


# -------------------------------------------------------------------------- hand-made penalties


def test_relu_l1_loss_by_hand() -> None:
    sae = _make("relu_l1", n_latents=3, d_in=3, l1=0.1, input_scaling="none")
    _set_identity(sae)
    x = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    out = sae(x)
    torch.testing.assert_close(out.codes, torch.tensor([[1.0, 0.0, 3.0], [0.5, 0.0, 0.0]]))
    loss = sae.loss(out)
    assert loss.reconstruction.item() == pytest.approx((4.0 + 1.0) / 2)  # Σ (x − relu(x))², mean over 2 rows
    assert loss.sparsity.item() == pytest.approx((4.0 + 0.5) / 2)  # mean_b ‖z_b‖₁
    assert loss.total.item() == pytest.approx(2.5 + 0.1 * 2.25)
    assert loss.auxk.item() == 0.0


def test_sigmoid_kl_loss_and_code_by_hand() -> None:
    rho, beta = 0.05, 0.5
    sae = _make("sigmoid_kl", n_latents=3, d_in=3, rho=rho, beta=beta, code_threshold=0.5, input_scaling="none")
    _set_identity(sae)
    ln3 = math.log(3.0)
    x = torch.tensor([[ln3, 0.0, -ln3], [ln3, ln3, ln3]])  # sigmoid: [.75, .5, .25], [.75, .75, .75]
    out = sae(x)
    a = torch.tensor([[0.75, 0.5, 0.25], [0.75, 0.75, 0.75]])
    torch.testing.assert_close(out.codes, a)
    rho_hat = [0.75, 0.625, 0.5]
    kl = sum(rho * math.log(rho / r) + (1 - rho) * math.log((1 - rho) / (1 - r)) for r in rho_hat)
    recon = ((x - a) ** 2).sum().item() / 2
    loss = sae.loss(out)
    assert loss.sparsity.item() == pytest.approx(kl, rel=1e-6)
    assert loss.reconstruction.item() == pytest.approx(recon, rel=1e-6)
    assert loss.total.item() == pytest.approx(recon + beta * kl, rel=1e-6)
    # Inference code: a·[a > 0.5]; 0.5 itself is dropped.
    torch.testing.assert_close(sae.encode(x), torch.tensor([[0.75, 0.0, 0.0], [0.75, 0.75, 0.75]]))
    torch.testing.assert_close(sae.eval()(x).codes, sae.encode(x))


# ------------------------------------------------------------------------------ TopK/BatchTopK


def test_topk_by_hand() -> None:
    sae = _make("topk", n_latents=4, d_in=4, k=2, input_scaling="none")
    _set_identity(sae)
    x = torch.tensor([[4.0, -1.0, 3.0, 2.0], [-5.0, -6.0, 1.0, -7.0]])
    expected = torch.tensor([[4.0, 0.0, 3.0, 0.0], [0.0, 0.0, 1.0, 0.0]])  # −5 is kept, then ReLU'd
    torch.testing.assert_close(sae(x).codes, expected)
    torch.testing.assert_close(sae.encode(x), expected)


def test_topk_keeps_exactly_k_largest_per_row() -> None:
    sae = _make("topk")
    with torch.no_grad():
        sae.b_enc.fill_(100.0)  # every pre-activation positive
    out = sae(torch.randn(B, D_IN))
    assert (torch.count_nonzero(out.codes, dim=1) == K).all()
    kth_largest = out.pre_acts.topk(K, dim=1).values[:, -1:]  # (B, 1)
    torch.testing.assert_close(out.codes, out.pre_acts * (out.pre_acts >= kth_largest))


def test_batchtopk_by_hand_threshold_and_inference() -> None:
    sae = _make("batchtopk", n_latents=4, d_in=4, k=2, input_scaling="none")
    _set_identity(sae)
    x = torch.tensor([[9.0, 8.0, 7.0, 6.0], [1.0, 2.0, 3.0, 4.0], [-1.0, -2.0, -3.0, 5.0]])
    codes = sae.train()(x).codes  # top B·k = 6 of the batch: 9 8 7 6 5 4
    torch.testing.assert_close(codes, torch.tensor([[9.0, 8.0, 7.0, 6.0], [0, 0, 0, 4.0], [0, 0, 0, 5.0]]))
    assert sae.threshold.item() == 4.0  # first update sets θ
    sae(torch.tensor([[10.0, 0.0, 0.0, 0.0], [0.0] * 4, [0.0] * 4]))  # only positive kept: 10
    assert sae.threshold.item() == pytest.approx(0.99 * 4.0 + 0.01 * 10.0)
    sae(torch.zeros(3, 4))  # nothing positive kept: θ unchanged
    assert sae.threshold.item() == pytest.approx(4.06)
    inference = torch.tensor([[9.0, 8.0, 7.0, 6.0], [0.0] * 4, [0, 0, 0, 5.0]])  # pre · [pre > 4.06]
    torch.testing.assert_close(sae.encode(x), inference)  # train mode: still inference codes
    torch.testing.assert_close(sae.eval()(x).codes, inference)
    assert sae.threshold.item() == pytest.approx(4.06)  # no update in eval mode or encode


def test_batchtopk_keeps_exactly_batch_k_and_encode_is_per_row() -> None:
    sae = _make("batchtopk")
    with torch.no_grad():
        sae.b_enc.fill_(100.0)  # every pre-activation positive
    x = torch.randn(B, D_IN) * torch.arange(1.0, B + 1).unsqueeze(1)  # later rows spread wider: they win more entries
    out = sae.train()(x)
    pre = out.pre_acts.detach()
    kth_of_batch = pre.flatten().topk(B * K).values[-1]
    torch.testing.assert_close(out.codes, pre * (pre >= kth_of_batch), rtol=0, atol=0)  # the batch's B·k largest
    counts = torch.count_nonzero(out.codes, dim=1).tolist()
    assert sum(counts) == B * K and len(set(counts)) > 1, counts  # not k per row: rows differ in count
    with torch.no_grad():
        sae.threshold.fill_(100.5)
    batch_codes = sae.encode(x)
    torch.testing.assert_close(batch_codes, pre * (pre > 100.5), rtol=0, atol=0)  # inference: pre · [pre > θ]
    assert 0 < torch.count_nonzero(batch_codes) < B * N_LATENTS  # θ splits this batch
    for row in range(B):
        torch.testing.assert_close(sae.encode(x[row : row + 1]), batch_codes[row : row + 1], rtol=0, atol=0)


def _auxk_reference(sae: SparseAutoencoder, out: Any, dead_mask: torch.Tensor) -> torch.Tensor:
    e = out.x_in - out.x_hat.detach()
    masked = torch.where(dead_mask, out.pre_acts, torch.full_like(out.pre_acts, -1e30))
    k_aux = min(sae.k_aux, int(dead_mask.sum()))
    values, indices = masked.topk(k_aux, dim=1)
    z_aux = torch.zeros_like(out.pre_acts).scatter(1, indices, values.relu())
    e_hat = z_aux @ sae.W_dec
    return ((e - e_hat) ** 2).sum() / ((e - e.mean(dim=0)) ** 2).sum()


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
@pytest.mark.parametrize("n_dead", [2, 12])  # fewer and more than k_aux = min(8 // 2, 4·3) = 4
def test_auxk_zero_without_dead_latents_and_matches_reference_with_some(arch: str, n_dead: int) -> None:
    sae = _make(arch)
    assert sae.k_aux == 4
    x = torch.randn(B, D_IN)
    out = sae(x)
    assert sae.loss(out).auxk.item() == 0.0
    assert sae.loss(out, dead_mask=torch.zeros(N_LATENTS, dtype=torch.bool)).auxk.item() == 0.0
    assert (
        _make(arch, auxk_coefficient=0.0).loss(out, dead_mask=torch.ones(N_LATENTS, dtype=torch.bool)).auxk.item()
        == 0.0
    )
    dead_mask = torch.arange(N_LATENTS) >= N_LATENTS - n_dead
    loss = sae.loss(out, dead_mask=dead_mask)
    assert loss.auxk.item() > 0
    torch.testing.assert_close(loss.auxk, _auxk_reference(sae, out, dead_mask))
    torch.testing.assert_close(loss.total, loss.reconstruction + sae.cfg.auxk_coefficient * loss.auxk)
    # Only dead latents receive the AuxK gradient.
    loss.auxk.backward()
    assert torch.count_nonzero(sae.W_dec.grad[~dead_mask]) == 0
    assert torch.count_nonzero(sae.W_dec.grad[dead_mask]) > 0


# --------------------------------------------------------------------------- decoder constraints


@pytest.mark.parametrize("arch", ARCHS)
def test_normalize_decoder_gives_unit_rows(arch: str) -> None:
    sae = _make(arch)
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(N_LATENTS, 1) * 5 + 0.1)
    sae.normalize_decoder_()
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(N_LATENTS))
    off = _make(arch, normalize_decoder=False)
    with torch.no_grad():
        off.W_dec.mul_(3.0)
    off.normalize_decoder_()
    torch.testing.assert_close(off.W_dec.norm(dim=1), torch.full((N_LATENTS,), 3.0))


@pytest.mark.parametrize("arch", ARCHS)
def test_remove_parallel_grad_leaves_grad_orthogonal_to_rows(arch: str) -> None:
    sae = _make(arch)
    with torch.no_grad():
        sae.W_dec.mul_(2.0)  # rows of norm 2: the projection must divide by ‖w‖²
    grad = torch.randn(N_LATENTS, D_IN)
    sae.W_dec.grad = grad.clone()
    sae.remove_parallel_grad_()
    new = sae.W_dec.grad
    torch.testing.assert_close((new * sae.W_dec).sum(dim=1), torch.zeros(N_LATENTS), atol=1e-5, rtol=0)
    removed = grad - new  # must be parallel to the rows
    unit = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)
    torch.testing.assert_close(removed, (grad * unit).sum(dim=1, keepdim=True) * unit, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk_elements", [1, 7, 30, 10_000])
def test_row_dots_in_blocks_equal_one_product(chunk_elements: int) -> None:
    """Blocks of 1 row, 2 rows with a short last block, exactly 10 rows, and everything at once."""
    from textsae.sae.base import _row_dots

    a, b = torch.randn(11, 3), torch.randn(11, 3)
    torch.testing.assert_close(_row_dots(a, b, chunk_elements), (a * b).sum(dim=1))
    assert _row_dots(a[:0], b[:0], chunk_elements).shape == (0,)  # no rows: an empty result, not an error


@pytest.mark.parametrize("n_dead", [0, 2, 12])
def test_auxk_loss_sync_free_picks_match_picks_trimmed_to_the_dead_count(n_dead: int) -> None:
    """The GPU path keeps k_aux picks (alive ones decode to zero); the CPU path trims k_aux to the dead count."""
    sae = _make("topk")
    out = sae(torch.randn(B, D_IN))
    residual = (out.x_in - out.x_hat).detach()
    dead_mask = torch.arange(N_LATENTS) >= N_LATENTS - n_dead
    results = []
    for k_aux in (sae.k_aux, max(1, min(sae.k_aux, n_dead))):
        pre_acts = out.pre_acts.detach().requires_grad_(True)
        W_dec = sae.W_dec.detach().clone().requires_grad_(True)
        loss = losses.auxk_loss(pre_acts, residual, W_dec, dead_mask, k_aux)
        loss.backward()
        results.append((loss, pre_acts.grad, W_dec.grad))
    for full, trimmed in zip(*results):
        torch.testing.assert_close(full, trimmed)
    assert (results[0][0].item() > 0) == (n_dead > 0)


def test_one_fvu_for_batches_and_chunked_sums() -> None:
    """The batch FVU of the loss and the chunked FVU of the metrics agree; no variance gives nan, not a huge number."""
    import numpy as np

    from textsae.sae.losses import fvu, fvu_from_sums

    rng = np.random.default_rng(0)
    x, x_hat = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    chunked = fvu_from_sums(float(((x - x_hat) ** 2).sum()), float((x**2).sum()), float((x.sum(0) ** 2).sum()), 50)
    assert chunked == pytest.approx(float(fvu(torch.from_numpy(x), torch.from_numpy(x_hat))), rel=1e-9)
    same = np.ones((4, 3))
    assert math.isnan(fvu_from_sums(1.0, float((same**2).sum()), float((same.sum(0) ** 2).sum()), 4))
    assert math.isnan(fvu_from_sums(0.0, 0.0, 0.0, 0))


@pytest.mark.parametrize("reconstruction", ["mse", "bce"])
@pytest.mark.parametrize("sparse", [False, True])
def test_an_fvu_without_variance_is_nan_everywhere(reconstruction: str, sparse: bool) -> None:
    """Equal rows have no variance to explain: the loss output's FVU (both reconstruction paths), the batch FVU
    and the chunked FVU are all nan, whether the reconstruction is perfect (0/0) or not (x/0), never inf."""
    from textsae.sae.losses import fvu, fvu_from_sums

    sae = _make("topk", reconstruction=reconstruction, input_scaling="none")
    row = torch.tensor([[0.1, 0.0, 0.3, 0.7, 0.0, 0.2, 0.9, 0.4]])
    same = row.repeat(B, 1)
    as_input = (lambda t: t.to_sparse_csr()) if sparse else (lambda t: t)
    assert math.isnan(sae.loss(sae(as_input(same))).fvu.item())
    assert math.isnan(fvu(as_input(same), same).item()) and math.isnan(fvu(as_input(same), 0 * same).item())
    assert math.isnan(fvu(as_input(row), 0 * row).item())  # one row
    sums = float(same.double().pow(2).sum()), float(same.double().sum(0).pow(2).sum())
    assert math.isnan(fvu_from_sums(1.0, *sums, B)) and math.isnan(fvu_from_sums(0.0, *sums, B))
