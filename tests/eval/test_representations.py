"""Representations at a size: dense quantisation, PCA, LSA, truncation and SAE codes on synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from textsae.config.schema import SAEConfig
from textsae.errors import UserError
from textsae.eval.representations import (
    binary_sign,
    dense_fp16,
    dense_fp32,
    int8_quantized,
    lsa,
    pca,
    reconstruction_quality,
    sae_codes,
    sparse_source,
    truncated_sparse,
)
from textsae.sae import build_sae


def _dense(n: int = 60, d: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Low-rank-plus-noise rows, like hidden states (a few strong directions)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(4, d))
    x = rng.normal(size=(n, 4)) @ basis * 3 + 0.1 * rng.normal(size=(n, d)) + 1.0
    return x[: n // 2].astype(np.float32), x[n // 2 :].astype(np.float32)


def _sparse(seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    x = rng.random((80, 40)) * (rng.random((80, 40)) < 0.3)
    return sp.csr_matrix(x[:50].astype(np.float32)), sp.csr_matrix(x[50:].astype(np.float32))


def test_reconstruction_quality_by_hand() -> None:
    x = np.array([[1.0, 0.0], [3.0, 0.0]])  # mean (2, 0): total variance 2
    fvu, cosine = reconstruction_quality(x, lambda b, e: np.array([[1.0, 1.0], [3.0, 0.0]])[b:e])
    assert fvu == pytest.approx(1.0 / 2.0)
    assert cosine == pytest.approx((1 / math.sqrt(2) + 1.0) / 2)
    assert reconstruction_quality(x, lambda b, e: x[b:e]) == (0.0, pytest.approx(1.0))


def test_fp32_fp16_sizes_and_fidelity() -> None:
    train, test = _dense()
    full, half = dense_fp32(train, test), dense_fp16(train, test)
    assert (full.bytes_per_doc, half.bytes_per_doc) == (80.0, 40.0)
    assert full.fvu == 0.0 and 0 <= half.fvu < 1e-6 and half.cosine > 0.999999
    assert half.stored.dtype == np.float16 and half.stored.shape == test.shape


@pytest.mark.parametrize("scale, extra", [("dimension", 0), ("vector", 4)])
def test_int8_error_is_at_most_half_a_step(scale: str, extra: int) -> None:
    train, test = _dense()
    rep = int8_quantized(train, test, scale=scale)
    assert rep.bytes_per_doc == 20 + extra and rep.stored.dtype == np.int8
    step = np.abs(train).max(axis=0) / 127 if scale == "dimension" else np.abs(test).max(axis=1, keepdims=True) / 127
    inside = np.abs(test) <= np.abs(train).max(axis=0)  # per-dimension scales clip values beyond the training range
    assert (np.abs(rep.test - test)[inside] <= (np.broadcast_to(step, test.shape)[inside] / 2 + 1e-6)).all()
    assert rep.fvu < 0.05  # small, though clipping beyond the 30 training rows adds error


def test_int8_by_hand() -> None:
    train = np.array([[127.0, -2.0], [-63.5, 1.0]], dtype=np.float32)  # scales 1.0 and 2/127
    test = np.array([[10.4, 1.0], [200.0, -0.5]], dtype=np.float32)
    rep = int8_quantized(train, test, scale="dimension")
    np.testing.assert_array_equal(rep.stored, np.array([[10, 64], [127, -32]], dtype=np.int8))  # 200 clipped to 127


def test_binary_by_hand() -> None:
    train = np.array([[0.0, 2.0, 5.0], [2.0, 0.0, 5.0]], dtype=np.float32)  # mean (1, 1, 5), levels (1, 1, 0)
    test = np.array([[3.0, -1.0, 6.0]], dtype=np.float32)
    rep = binary_sign(train, test)
    assert rep.bytes_per_doc == 1.0  # 3 bits fit one byte
    np.testing.assert_array_equal(rep.test, [[1.0, -1.0, 1.0]])
    np.testing.assert_array_equal(rep.stored, np.packbits(np.array([[True, False, True]]), axis=1))
    x_hat = np.array([[2.0, 0.0, 5.0]])  # μ ± a
    expected_fvu, _ = reconstruction_quality(test, lambda b, e: x_hat)
    assert math.isnan(expected_fvu) and math.isnan(rep.fvu)  # one test row: no variance to explain
    rep2 = binary_sign(*_dense(d=19))
    assert rep2.bytes_per_doc == 3.0 and 0 < rep2.fvu < 1 and rep2.cosine > 0.5


def test_pca_width_size_and_fvu() -> None:
    train, test = _dense()
    narrow, wide = pca(train, test, 2), pca(train, test, 8)
    assert (narrow.bytes_per_doc, wide.bytes_per_doc) == (4.0, 16.0) and narrow.stored.dtype == np.float16
    assert 0 <= wide.fvu < narrow.fvu < 1
    assert wide.fvu < 0.05  # the data is rank 4 plus small noise
    with pytest.raises(UserError, match="'n_components' parameter of pca must be an int in"):
        pca(train, test, 0)


def test_dense_families_refuse_sparse_input_and_vice_versa() -> None:
    train, test = _sparse()
    with pytest.raises(UserError, match="needs dense feature arrays"):
        dense_fp16(train, test)
    with pytest.raises(UserError, match="needs sparse"):
        lsa(*_dense(), 2)


def test_sparse_families() -> None:
    train, test = _sparse()
    source = sparse_source(train, test)
    assert source.bytes_per_doc == pytest.approx(test.nnz * 4 / test.shape[0])
    top = truncated_sparse(train, test, 3)
    assert (top.test.getnnz(axis=1) <= 3).all() and top.bytes_per_doc <= 12 and 0 < top.fvu < 1
    narrow, wide = lsa(train, test, 2), lsa(train, test, 20)
    assert (narrow.bytes_per_doc, wide.bytes_per_doc) == (4.0, 40.0)
    assert wide.fvu < narrow.fvu


def test_sae_codes_at_two_k() -> None:
    train, test = _dense(d=12)
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(architecture="topk", n_latents=32, k=2, input_scaling="none"), 12)
    with torch.no_grad():
        sae.b_enc.fill_(50.0)  # every pre-activation positive: exactly k entries per row
    small, large = sae_codes(sae, train, test, 2), sae_codes(sae, train, test, 6)
    assert (small.l0, large.l0) == (2.0, 6.0)
    assert (small.bytes_per_doc, large.bytes_per_doc) == (8.0, 24.0)
    assert small.train.shape == (30, 32) and small.name == "sae-k2"
    for rep, k in ((small, 2), (large, 6)):  # FVU of the test rows decoded from their stored (fp16) codes
        with torch.no_grad():
            codes = sae.encode(torch.from_numpy(test), k=k).half().float()
            x_hat = sae.decode(codes).double().numpy()
        np.testing.assert_array_equal(rep.test.toarray(), codes.numpy())
        expected = ((test - x_hat) ** 2).sum() / ((test - test.mean(axis=0)) ** 2).sum()
        assert rep.fvu == pytest.approx(expected, rel=1e-5), k
