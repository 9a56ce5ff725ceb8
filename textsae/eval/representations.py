"""Representations of a document at a size: pure functions ``(train, test) -> Representation``.

Each function fits whatever it needs on the *training* rows only (scales, means, PCA/SVD bases),
then builds the stored form of both splits and measures, on the test rows, how well the stored form
reconstructs the source (FVU, cosine) and how long encoding took. Nothing is written to disk here.

Sizes (``bytes_per_doc``) count what one document's stored form holds, uncompressed; anything
stored once for the whole corpus (a per-dimension scale, a mean, a PCA basis) is left out, as the
row pointers are for sparse matrices (see :mod:`textsae.eval.sizes`):

============================  =====================================  ================================
family                        stored per document                    bytes per document
============================  =====================================  ================================
``fp32`` / ``fp16``           d floats                               4d / 2d
``int8``                      d int8; ``vector`` scale adds one fp32  d (``dimension``), d + 4 (``vector``)
``binary``                    d sign bits of x − mean                 ceil(d / 8)
``pca`` / ``lsa``             w component scores in fp16              2w
``tfidf`` / ``tfidf_top``     non-zeros as (index, fp16 value)        nnz × (index bytes + 2)
============================  =====================================  ================================

Reconstructions, for FVU and cosine against the source test rows (FVU = Σ‖x − x̂‖² / Σ‖x − x̄‖²,
x̄ the test mean; cosine = mean over rows of cos(x, x̂), rows with a zero vector skipped):
``fp16``/``int8`` dequantise; ``binary`` decodes bit b of dimension j to μ_j ± a_j with μ the train
mean and a_j = mean_i |x_ij − μ_j| over train (the squared-error-optimal level for a sign code);
``pca``/``lsa`` map the scores back through the basis; ``tfidf_top`` is its own reconstruction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import scipy.sparse as sp

from textsae.errors import UserError
from textsae.eval.sizes import bytes_per_doc, index_bytes_needed, truncate_rows
from textsae.rows import is_sparse
from textsae.sae.losses import fvu_from_sums

__all__ = [
    "Representation",
    "binary_sign",
    "dense_fp16",
    "dense_fp32",
    "int8_quantized",
    "lsa",
    "pca",
    "reconstruction_quality",
    "sae_codes",
    "sparse_source",
    "truncated_sparse",
]

Matrix: TypeAlias = np.ndarray | sp.csr_matrix
_CHUNK_ROWS = 2048


@dataclass
class Representation:
    """One stored form of both splits, with its size and how faithful it is.

    ``train``/``test`` are what a classifier sees (floats; a quantised form is given dequantised, so
    the classifier gets the information the stored bytes hold, on the source's scale).
    """

    family: str
    """``fp32``, ``fp16``, ``int8``, ``binary``, ``pca``, ``tfidf``, ``tfidf_top``, ``lsa`` or ``sae``."""
    name: str
    """Unique label, e.g. ``pca-64``."""
    train: Matrix
    test: Matrix
    bytes_per_doc: float
    """Mean stored bytes per test document (see the module docstring)."""
    stored: Matrix | None = None
    """The test rows exactly as they would be written (e.g. int8 or packed bits), for the on-disk size."""
    fvu: float | None = None
    """Fraction of the source's test variance the stored form does not reconstruct (None: not defined)."""
    cosine: float | None = None
    """Mean cosine between source and reconstructed test rows."""
    l0: float | None = None
    """Mean stored entries per test document (non-zeros, or the width of a dense form)."""
    encode_seconds: float = 0.0
    """Wall time to turn the source test rows into the stored form (fitting on train excluded)."""
    params: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ quality


def reconstruction_quality(X: Matrix, reconstruct: Callable[[int, int], np.ndarray]) -> tuple[float, float]:
    """FVU and mean cosine of a reconstruction of ``X``, computed in row chunks (nothing dense of full size).

    Args:
        X: ``(n, d)`` source rows (dense or CSR).
        reconstruct: ``reconstruct(begin, end)`` returns the dense ``(end - begin, d)`` reconstruction of rows ``begin:end``.

    Returns:
        ``(fvu, cosine)``; FVU is ``nan`` when all rows are equal, cosine ``nan`` when every row is zero.
    """
    n = X.shape[0]
    error = squares = 0.0
    column_sum = np.zeros(X.shape[1], dtype=np.float64)
    cosines = []
    for begin in range(0, n, _CHUNK_ROWS):
        end = min(begin + _CHUNK_ROWS, n)
        x = _dense(X[begin:end])
        x_hat = np.asarray(reconstruct(begin, end), dtype=np.float64)
        error += float(np.square(x - x_hat).sum())
        squares += float(np.square(x).sum())
        column_sum += x.sum(axis=0)
        norms = np.linalg.norm(x, axis=1) * np.linalg.norm(x_hat, axis=1)
        ok = norms > 0
        cosines.append((x[ok] * x_hat[ok]).sum(axis=1) / norms[ok])
    fvu = fvu_from_sums(error, squares, float(np.square(column_sum).sum()), n)
    cosine_values = np.concatenate(cosines) if cosines else np.zeros(0)
    return fvu, float(cosine_values.mean()) if cosine_values.size else float("nan")


def _dense(block: Matrix) -> np.ndarray:
    return block.toarray().astype(np.float64) if is_sparse(block) else np.asarray(block, dtype=np.float64)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _check_dense(train: Any, test: Any, caller: str) -> tuple[np.ndarray, np.ndarray]:
    if sp.issparse(train) or sp.issparse(test):
        raise UserError(
            f"{caller} needs dense feature arrays (hidden states); got a sparse matrix. Use lsa/truncated_sparse for TF-IDF."
        )
    train, test = np.asarray(train, dtype=np.float32), np.asarray(test, dtype=np.float32)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1] or 0 in train.shape or 0 in test.shape:
        raise UserError(
            f"{caller} needs non-empty 2-D train and test arrays with the same number of columns. "
            f"Got shapes {train.shape} and {test.shape}."
        )
    return train, test


def _check_width(width: int, limit: int, what: str, caller: str) -> int:
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 1 <= width <= limit:
        raise UserError(f"The {what!r} parameter of {caller} must be an int in [1, {limit}]. Got {width!r} instead.")
    return int(width)


# ------------------------------------------------------------------------------ dense families


def dense_fp32(train: np.ndarray, test: np.ndarray) -> Representation:
    """The dense source as stored in float32 (the reference point: FVU 0, cosine 1)."""
    train, test = _check_dense(train, test, "dense_fp32")
    d = train.shape[1]
    return Representation("fp32", "fp32", train, test, 4.0 * d, stored=test, fvu=0.0, cosine=1.0, l0=float(d))


def dense_fp16(train: np.ndarray, test: np.ndarray) -> Representation:
    """Dense vectors rounded to float16 (values beyond ±65504 become ±inf; hidden states stay far below)."""
    train, test = _check_dense(train, test, "dense_fp16")
    stored, seconds = _timed(lambda: test.astype(np.float16))
    test_hat = stored.astype(np.float32)
    fvu, cosine = reconstruction_quality(test, lambda b, e: test_hat[b:e])
    d = train.shape[1]
    return Representation(
        "fp16",
        "fp16",
        train.astype(np.float16).astype(np.float32),
        test_hat,
        2.0 * d,
        stored=stored,
        fvu=fvu,
        cosine=cosine,
        l0=float(d),
        encode_seconds=seconds,
    )


def int8_quantized(
    train: np.ndarray, test: np.ndarray, *, scale: Literal["dimension", "vector"] = "dimension"
) -> Representation:
    """Symmetric int8 quantisation: q = clip(round(x / s), −127, 127), x̂ = q · s.

    ``dimension``: s_j = max_i |x_ij| / 127 over the *training* rows (one fp32 per dimension for the
    whole corpus, not counted per document; test values beyond the training range are clipped).
    ``vector``: s_i = max_j |x_ij| / 127 per document, stored beside it as fp32 (+4 bytes).
    """
    train, test = _check_dense(train, test, "int8_quantized")
    if scale not in ("dimension", "vector"):
        raise UserError(
            f"The 'scale' parameter of int8_quantized must be 'dimension' or 'vector'. Got {scale!r} instead."
        )
    d = train.shape[1]
    if scale == "dimension":
        s = np.abs(train).max(axis=0) / 127.0  # (d,)
        s[s == 0] = 1.0

        def scales(x: np.ndarray) -> np.ndarray:
            return s
    else:

        def scales(x: np.ndarray) -> np.ndarray:
            s_rows = np.abs(x).max(axis=1, keepdims=True) / 127.0  # (n, 1)
            return np.where(s_rows == 0, 1.0, s_rows).astype(np.float32)

    def quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s_x = scales(x)
        return np.clip(np.rint(x / s_x), -127, 127).astype(np.int8), s_x

    (q_test, s_test), seconds = _timed(lambda: quantize(test))
    q_train, s_train = quantize(train)
    test_hat = (q_test * s_test).astype(np.float32)
    fvu, cosine = reconstruction_quality(test, lambda b, e: test_hat[b:e])
    return Representation(
        "int8",
        f"int8-{scale}",
        (q_train * s_train).astype(np.float32),
        test_hat,
        float(d + (4 if scale == "vector" else 0)),
        stored=q_test,
        fvu=fvu,
        cosine=cosine,
        l0=float(d),
        encode_seconds=seconds,
        params={"scale": scale},
    )


def binary_sign(train: np.ndarray, test: np.ndarray) -> Representation:
    """One bit per dimension: b_ij = [x_ij > μ_j], μ the training mean; packed 8 per byte.

    The classifier sees ±1; the reconstruction is μ_j ± a_j (see the module docstring).
    """
    train, test = _check_dense(train, test, "binary_sign")
    mu = train.mean(axis=0)  # (d,)
    level = np.abs(train - mu).mean(axis=0)  # (d,)
    (bits_test, packed), seconds = _timed(lambda: _sign_bits(test, mu))
    bits_train, _ = _sign_bits(train, mu)
    signs_test = 2.0 * bits_test - 1.0
    fvu, cosine = reconstruction_quality(test, lambda b, e: mu + signs_test[b:e] * level)
    d = train.shape[1]
    return Representation(
        "binary",
        "binary",
        (2.0 * bits_train - 1.0).astype(np.float32),
        signs_test.astype(np.float32),
        float(math.ceil(d / 8)),
        stored=packed,
        fvu=fvu,
        cosine=cosine,
        l0=float(d),
        encode_seconds=seconds,
    )


def _sign_bits(x: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bits = x > mu  # (n, d) bool
    return bits.astype(np.float32), np.packbits(bits, axis=1)  # packed: (n, ceil(d / 8)) uint8


def pca(train: np.ndarray, test: np.ndarray, n_components: int, *, seed: int = 0) -> Representation:
    """The first ``n_components`` principal components (fit on train), stored as fp16 scores."""
    from sklearn.decomposition import PCA

    train, test = _check_dense(train, test, "pca")
    width = _check_width(n_components, min(train.shape), "n_components", "pca")
    model = PCA(n_components=width, random_state=seed).fit(train)
    scores, seconds = _timed(lambda: model.transform(test).astype(np.float16))
    train_scores = model.transform(train).astype(np.float16).astype(np.float32)
    test_scores = scores.astype(np.float32)
    fvu, cosine = reconstruction_quality(test, lambda b, e: model.inverse_transform(test_scores[b:e]))
    return Representation(
        "pca",
        f"pca-{width}",
        train_scores,
        test_scores,
        2.0 * width,
        stored=scores,
        fvu=fvu,
        cosine=cosine,
        l0=float(width),
        encode_seconds=seconds,
        params={"n_components": width},
    )


# ----------------------------------------------------------------------------- sparse families


def sparse_source(train: sp.csr_matrix, test: sp.csr_matrix, *, value_bytes: int = 2) -> Representation:
    """The sparse source (TF-IDF) as it is: every non-zero as an (index, value) pair."""
    train, test = _check_sparse(train, test, "sparse_source")
    index_bytes = index_bytes_needed(train.shape[1])
    size = bytes_per_doc(test, index_bytes=index_bytes, value_bytes=value_bytes)
    return Representation(
        "tfidf",
        "tfidf",
        train,
        test,
        size,
        stored=test,
        fvu=0.0,
        cosine=1.0,
        l0=float(test.getnnz(axis=1).mean()),
        params={"index_bytes": index_bytes},
    )


def truncated_sparse(
    train: sp.csr_matrix, test: sp.csr_matrix, max_entries: int, *, value_bytes: int = 2
) -> Representation:
    """Each row's ``max_entries`` largest-magnitude entries (:func:`~textsae.eval.sizes.truncate_rows`)."""
    train, test = _check_sparse(train, test, "truncated_sparse")
    kept, seconds = _timed(lambda: truncate_rows(test, max_entries))
    index_bytes = index_bytes_needed(train.shape[1])
    fvu, cosine = reconstruction_quality(test, lambda b, e: kept[b:e].toarray())
    return Representation(
        "tfidf_top",
        f"tfidf_top-{max_entries}",
        truncate_rows(train, max_entries),
        kept,
        bytes_per_doc(kept, index_bytes=index_bytes, value_bytes=value_bytes),
        stored=kept,
        fvu=fvu,
        cosine=cosine,
        l0=float(kept.getnnz(axis=1).mean()),
        encode_seconds=seconds,
        params={"max_entries": max_entries, "index_bytes": index_bytes},
    )


def lsa(train: sp.csr_matrix, test: sp.csr_matrix, n_components: int, *, seed: int = 0) -> Representation:
    """Latent semantic analysis: ``TruncatedSVD(n_components)`` fit on train, scores stored as fp16."""
    from sklearn.decomposition import TruncatedSVD

    train, test = _check_sparse(train, test, "lsa")
    width = _check_width(n_components, min(train.shape) - 1, "n_components", "lsa")
    model = TruncatedSVD(n_components=width, algorithm="randomized", n_iter=5, random_state=seed).fit(train)
    scores, seconds = _timed(lambda: model.transform(test).astype(np.float16))
    train_scores = model.transform(train).astype(np.float16).astype(np.float32)
    test_scores = scores.astype(np.float32)
    fvu, cosine = reconstruction_quality(test, lambda b, e: test_scores[b:e] @ model.components_)
    return Representation(
        "lsa",
        f"lsa-{width}",
        train_scores,
        test_scores,
        2.0 * width,
        stored=scores,
        fvu=fvu,
        cosine=cosine,
        l0=float(width),
        encode_seconds=seconds,
        params={"n_components": width},
    )


def _check_sparse(train: Any, test: Any, caller: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    if not (sp.issparse(train) and sp.issparse(test)):
        raise UserError(
            f"{caller} needs sparse (CSR) feature matrices such as TF-IDF; got a dense array. Use pca/int8/binary for dense features."
        )
    if train.shape[1] != test.shape[1] or 0 in train.shape or 0 in test.shape:
        raise UserError(
            f"{caller} needs non-empty train and test matrices with the same columns. Got shapes {train.shape} and {test.shape}."
        )
    return sp.csr_matrix(train), sp.csr_matrix(test)


# -------------------------------------------------------------------------------------- SAE codes


def sae_codes(
    sae: Any, train: Matrix, test: Matrix, k: int | None, *, batch_size: int = 1024, value_bytes: int = 2
) -> Representation:
    """An SAE's sparse codes read at inference ``k`` (see ``SparseAutoencoder.encode``), on CPU.

    Bytes count the non-zeros as (index, fp16 value) pairs, with uint16 indices up to 65,536
    latents; the reconstruction is ``sae.decode(codes)`` in the source's (raw) space.
    """
    import torch

    from textsae.encode import sparse_codes
    from textsae.rows import rows_to_tensor

    def encode(X: Matrix) -> sp.csr_matrix:
        blocks = [
            sparse_codes(sae, rows_to_tensor(X, slice(b, min(b + batch_size, X.shape[0])), "cpu"), k=k)
            for b in range(0, X.shape[0], batch_size)
        ]
        codes = sp.vstack(blocks, format="csr")
        codes.data = codes.data.astype(np.float16).astype(np.float32)  # the stored values are fp16
        return codes

    sae = sae.eval().cpu()
    test_codes, seconds = _timed(lambda: encode(test))
    train_codes = encode(train)

    def reconstruct(begin: int, end: int) -> np.ndarray:
        with torch.no_grad():
            return sae.decode(torch.from_numpy(test_codes[begin:end].toarray())).numpy()

    fvu, cosine = reconstruction_quality(test, reconstruct)
    index_bytes = index_bytes_needed(sae.n_latents)
    label = k if k is not None else "sae"
    return Representation(
        "sae",
        f"sae-k{label}",
        train_codes,
        test_codes,
        bytes_per_doc(test_codes, index_bytes=index_bytes, value_bytes=value_bytes),
        stored=test_codes,
        fvu=fvu,
        cosine=cosine,
        l0=float(test_codes.getnnz(axis=1).mean()),
        encode_seconds=seconds,
        params={"k": k, "n_latents": sae.n_latents, "index_bytes": index_bytes},
    )
