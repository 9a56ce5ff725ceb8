"""Stored forms and their compressed sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from textsae.bench.compression import (
    compressed_sizes,
    files_bytes,
    save_stored,
    text_bytes,
    zstd_available,
)
from textsae.store.codes import load_codes


def test_compressed_sizes_of_repetitive_text() -> None:
    data = text_bytes(["the same review again"] * 200)
    sizes = compressed_sizes(data)
    assert sizes["raw"] == len(data) == 200 * 21 + 199
    assert sizes["gzip"] < sizes["raw"] / 10
    assert (sizes["zstd"] is None) != zstd_available()
    if sizes["zstd"] is not None:
        assert sizes["zstd"] < sizes["raw"] / 10


def test_save_stored_dense_and_sparse(tmp_path: Path) -> None:
    dense = np.arange(12, dtype=np.int8).reshape(3, 4)
    (npy,) = save_stored(dense, tmp_path / "int8")
    assert npy.name == "int8.npy" and np.array_equal(np.load(npy), dense)
    codes = sp.csr_matrix(np.array([[0, 1.5, 0], [2.0, 0, 0.25]], dtype=np.float32))
    shards = save_stored(codes, tmp_path / "codes")
    assert [p.name for p in shards] == [p.name for p in sorted((tmp_path / "codes").glob("shard-*"))] != []
    np.testing.assert_array_equal(load_codes(tmp_path / "codes").toarray(), codes.toarray())
    assert len(files_bytes(shards)) == sum(p.stat().st_size for p in shards)
    other = sp.csr_matrix(np.array([[0, 0, 4.0], [0, 0, 0], [1.0, 0, 0]], dtype=np.float32))
    again = save_stored(other, tmp_path / "codes")  # a second write replaces the first
    np.testing.assert_array_equal(load_codes(tmp_path / "codes").toarray(), other.toarray())
    assert [p.name for p in again] == [p.name for p in sorted((tmp_path / "codes").glob("shard-*"))]
