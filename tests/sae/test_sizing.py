"""Automatic sizes (sae.n_latents=auto, sae.k=auto), per-document code lengths and the neighbourhood initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from textsae.config.schema import SAEConfig
from textsae.errors import ConfigError, UserError
from textsae.eval.health import top1_top2_ratios
from textsae.rows import rows_to_tensor
from textsae.sae import DataShape, build_sae
from textsae.sae.neighbours import neighbourhood_means
from textsae.sae.sizing import MAX_LATENTS, MIN_LATENTS, describe_sizes, resolve_sizes

AUTO = SAEConfig(n_latents="auto", k="auto")


def _sparse(n_docs: int, d_in: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    cols = np.stack([rng.choice(d_in, size=nnz, replace=False) for _ in range(n_docs)])
    values = rng.random((n_docs, nnz)).astype(np.float32) + 0.1
    return sp.csr_matrix((values.ravel(), cols.ravel(), np.arange(0, n_docs * nnz + 1, nnz)), shape=(n_docs, d_in))


def test_dense_sources_get_k32_and_a_dictionary_that_grows_with_the_corpus() -> None:
    small = resolve_sizes(AUTO, DataShape(3000, 384))
    assert (small.n_latents, small.k, small.adaptive_k) == (1024, 32, "none")  # 3000·32/64 = 1500 -> 1024
    assert resolve_sizes(AUTO, DataShape(50, 384)).n_latents == MIN_LATENTS
    assert resolve_sizes(AUTO, DataShape(1_000_000, 384)).n_latents == MAX_LATENTS


def test_sparse_sources_count_only_the_entries_a_short_document_can_have() -> None:
    shape = DataShape.of(_sparse(6000, 500, nnz=10))
    resolved = resolve_sizes(AUTO, shape)
    assert resolved.adaptive_k == "input_nnz" and resolved.k == 64
    assert resolved.n_latents == 512  # 6000 docs · 10 entries / 64 = 937 -> 512
    long_docs = resolve_sizes(AUTO, DataShape.of(_sparse(6000, 500, nnz=100)))
    assert long_docs.n_latents == 4096  # 6000 · 64 / 64 = 6000 -> 4096
    assert (
        resolve_sizes(AUTO, DataShape(100_000, 20_000, np.full(100_000, 100))).n_latents == 1024
    )  # 2^25 / 20,000 = 1677


def test_explicit_sizes_are_kept_and_k_auto_fits_small_dictionaries() -> None:
    shape = DataShape(3000, 384)
    assert resolve_sizes(SAEConfig(n_latents=256, k=8), shape).n_latents == 256
    assert resolve_sizes(SAEConfig(n_latents=128, k="auto"), shape).k == 16  # at most n_latents / 8
    batch = resolve_sizes(SAEConfig(n_latents="auto", k=16, architecture="batchtopk"), DataShape.of(_sparse(10, 50, 5)))
    assert not hasattr(batch, "adaptive_k") and batch.n_latents == 64  # no per-document cap: k entries each
    relu = resolve_sizes(SAEConfig(n_latents="auto", architecture="relu_l1"), shape)
    assert relu.n_latents == 1024 and not hasattr(relu, "k")  # counted as a dense TopK code of 32 entries
    line = describe_sizes(AUTO, resolve_sizes(AUTO, shape), shape)
    assert "n_latents=1024" in line and "k=32" in line and "3000 training documents" in line


def test_auto_sizes_need_the_training_data() -> None:
    with pytest.raises(UserError, match="'auto' sizes come from the training data"):
        build_sae(AUTO, 384)
    assert build_sae(AUTO, 384, DataShape(3000, 384)).n_latents == 1024


def test_auto_sizes_are_validated_like_ints() -> None:
    SAEConfig(n_latents="auto", k=16, dense_latents=4)
    with pytest.raises(ConfigError, match="sae.k must be auto or an int"):
        SAEConfig(n_latents=8, k=16)
    with pytest.raises(ConfigError, match="needs a fixed sae.n_latents"):
        SAEConfig(n_latents="auto", matryoshka_prefixes=[64])
    with pytest.raises(ConfigError, match="sae.adaptive_k is a key of sae.architecture=topk"):
        SAEConfig(architecture="batchtopk", adaptive_k="input_nnz")


@pytest.mark.parametrize("dense_latents", [0, 2, 4])
def test_input_nnz_caps_every_code_at_its_document_s_nonzeros(dense_latents: int) -> None:
    x = _sparse(40, 60, nnz=3)
    x = sp.vstack([x, _sparse(10, 60, nnz=20, seed=1), sp.csr_matrix((1, 60), dtype=np.float32)]).tocsr()
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=64, k=8, dense_latents=dense_latents, decoder_init="data"), 60, DataShape.of(x))
    assert sae.cfg.adaptive_k == "input_nnz"
    sae.init_from_data(rows_to_tensor(x, slice(None), "cpu"))
    nnz = np.diff(x.indptr)
    expected = np.minimum(nnz, 8)  # the always-on dense latents count too: 4 of them on a 3-term document keep 3
    for tensor in (rows_to_tensor(x, slice(None), "cpu"), torch.from_numpy(x.toarray())):  # CSR and dense agree
        codes = sae.encode(tensor)
        assert ((codes != 0).sum(dim=1).numpy() <= expected).all()
    out = sae.train()(rows_to_tensor(x, slice(None), "cpu"))
    assert ((out.codes != 0).sum(dim=1).numpy() <= expected).all()
    assert ((out.codes != 0).sum(dim=1).numpy()[40:50] >= 7).all()  # long documents keep (almost) all k
    if dense_latents > 3:  # the short rows keep their 3 dense latents of largest magnitude
        pre_dense = out.pre_acts[:40, :dense_latents].detach().abs()
        kept = out.codes[:40, :dense_latents] != 0
        assert (kept.sum(dim=1) == 3).all()
        smallest_kept = pre_dense.masked_fill(~kept, float("inf")).min(dim=1).values
        assert (smallest_kept >= pre_dense.masked_fill(kept, -1.0).max(dim=1).values).all()
    assert len(out.active.indices) == int(expected.sum())  # the decoder reads only the kept rows of W_dec ...
    torch.testing.assert_close(
        out.x_hat, out.codes @ sae.W_dec + sae.b_dec, rtol=1e-5, atol=1e-5
    )  # ... and loses nothing
    sae.loss(out).total.backward()
    assert torch.isfinite(sae.W_enc.grad).all()
    uncapped = build_sae(
        SAEConfig(n_latents=64, k=8, dense_latents=dense_latents, adaptive_k="none"), 60, DataShape.of(x)
    )
    assert uncapped.entry_limit(rows_to_tensor(x, slice(None), "cpu")) is None


def test_an_sae_built_without_data_does_not_cap_codes() -> None:
    sae = build_sae(SAEConfig(n_latents=32, k=4), 10)
    assert sae.cfg.adaptive_k == "none" and sae.entry_limit(torch.ones(2, 10)) is None


def test_neighbourhood_means_average_a_seed_and_its_nearest_rows() -> None:
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(8, 30))
    labels = np.repeat(np.arange(8), 100)
    x = torch.from_numpy(directions[labels] + 0.05 * rng.normal(size=(800, 30))).float()
    torch.manual_seed(0)
    means = neighbourhood_means(x, torch.zeros(30), 16, neighbours=8)
    assert torch.allclose(means.norm(dim=1), torch.ones(16), atol=1e-5)
    truth = torch.from_numpy(directions / np.linalg.norm(directions, axis=1, keepdims=True)).float()
    assert ((means @ truth.T).max(dim=1).values > 0.99).all()  # each mean sits on the cluster its seed came from
    centre = torch.from_numpy(directions.mean(axis=0)).float()
    torch.manual_seed(1)
    one = neighbourhood_means(x[:1], centre, 3, neighbours=8)  # one usable row: it alone, then random directions
    first = (x[0] - centre) / (x[0] - centre).norm()
    assert torch.allclose(one[0], first, atol=1e-5) and torch.allclose(one.norm(dim=1), torch.ones(3), atol=1e-5)


def test_sparse_and_dense_neighbourhoods_agree() -> None:
    x = _sparse(300, 40, nnz=6)
    center = torch.from_numpy(np.asarray(x.mean(axis=0)).ravel()).float()
    results = []
    for tensor in (rows_to_tensor(x, slice(None), "cpu"), torch.from_numpy(x.toarray())):
        torch.manual_seed(3)
        results.append(neighbourhood_means(tensor, center, 16, chunk_rows=64))
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-5)


def test_neighbourhood_init_does_not_tie_latents_to_single_documents() -> None:
    """The memorisation the data init shows at step 0, and its absence with neighbourhoods (same sample, same SAE size)."""
    x = _sparse(2000, 300, nnz=12)
    ratios = {}
    for init in ("data", "neighbours"):
        torch.manual_seed(0)
        sae = build_sae(SAEConfig(n_latents=64, k=8, decoder_init=init, adaptive_k="none"), 300)
        sae.init_from_data(rows_to_tensor(x, slice(None), "cpu"))
        with torch.no_grad():
            codes = sae.encode(rows_to_tensor(x, slice(None), "cpu"))
        ratios[init] = float(np.median(top1_top2_ratios(sp.csr_matrix(codes.numpy()))))
    assert ratios["neighbours"] < 1.5 < ratios["data"]
