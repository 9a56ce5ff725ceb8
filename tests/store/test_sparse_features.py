"""CSR shards: round trip, row reads in any order, resume after SIGKILL with identical files, refusal of bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.conftest import REPO
from textsae.errors import IncompleteArtifactError, UserError
from textsae.rows import check_finite, row_nnz, rows_to_tensor
from textsae.store.manifest import MANIFEST_NAME, write_manifest
from textsae.store.sparse_features import open_sparse_features, write_sparse_features

N_DOCS, N_FEATURES, SHARD_DOCS = 103, 40, 16


def _matrix(seed: int = 0) -> sp.csr_matrix:
    matrix = sp.random(N_DOCS, N_FEATURES, density=0.15, format="csr", dtype=np.float32, random_state=seed)
    matrix.sort_indices()
    return matrix


def _write(directory: Path, matrix: sp.csr_matrix, **meta: object) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []

    def transform(begin: int, end: int) -> sp.csr_matrix:
        calls.append((begin, end))
        return matrix[begin:end]

    write_sparse_features(transform, matrix.shape[0], N_FEATURES, directory, shard_docs=SHARD_DOCS, meta=meta)
    return calls


def _same(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return a.shape == b.shape and (a != b).nnz == 0


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_round_trip_rows_in_any_order_views_and_stats(tmp_path: Path) -> None:
    matrix = _matrix()
    calls = _write(tmp_path, matrix)
    assert calls == [(b, min(b + SHARD_DOCS, N_DOCS)) for b in range(0, N_DOCS, SHARD_DOCS)]
    features = open_sparse_features(tmp_path)
    assert features.shape == (N_DOCS, N_FEATURES) and len(features) == N_DOCS
    assert _same(features.to_matrix(), matrix)
    rows = np.array([100, 3, 3, 57, 0, -1])  # across shards, unsorted, repeated, negative
    assert _same(features[rows], matrix[rows])
    assert _same(features.get_rows(10, 40), matrix[10:40])
    assert features[np.zeros(0, dtype=np.int64)].shape == (0, N_FEATURES)
    view = features.subset(np.arange(20, 90))
    assert _same(view[np.array([69, 0, 35])], matrix[[89, 20, 55]])
    np.testing.assert_array_equal(row_nnz(view), np.diff(matrix.indptr)[20:90])
    assert features.stats is not None and features.stats["nnz"] == matrix.nnz
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    assert features.stats["mean_norm"] == pytest.approx(norms.mean())
    with pytest.raises(IndexError):
        features[np.array([N_DOCS])]


def test_rows_to_tensor_and_finite_check_read_shards_like_a_matrix(tmp_path: Path) -> None:
    matrix = _matrix(1)
    _write(tmp_path, matrix)
    features = open_sparse_features(tmp_path)
    rows = np.array([5, 90, 17])
    got, want = rows_to_tensor(features, rows, "cpu"), rows_to_tensor(matrix, rows, "cpu")
    assert got.layout == torch.sparse_csr
    torch.testing.assert_close(got.to_dense(), want.to_dense())
    check_finite(features, "features")  # passes
    bad = matrix.copy()
    bad.data[bad.indptr[70]] = np.nan  # row 70
    _write(tmp_path / "bad", bad)
    with pytest.raises(UserError, match=r"1 row\(s\) \(rows 70,"):
        check_finite(open_sparse_features(tmp_path / "bad"), "training features")


def test_rewrite_keeps_complete_shards_and_clears_another_layout(tmp_path: Path) -> None:
    matrix = _matrix()
    _write(tmp_path, matrix, featurizer="a")
    (tmp_path / MANIFEST_NAME).unlink()
    (tmp_path / "data-00003.npy").unlink()  # shard 3 incomplete
    assert _write(tmp_path, matrix, featurizer="a") == [(48, 64)]
    other = _matrix(seed=5)
    assert len(_write(tmp_path, other, featurizer="b")) == 7  # another featurizer: every shard again
    assert _same(open_sparse_features(tmp_path).to_matrix(), other)


KILL_SCRIPT = """
import sys, numpy as np, scipy.sparse as sp
from textsae.store.sparse_features import write_sparse_features
m = sp.random(103, 40, density=0.15, format="csr", dtype=np.float32, random_state=0)
m.sort_indices()
write_sparse_features(lambda b, e: m[b:e], 103, 40, sys.argv[1], shard_docs=16, meta={})
"""


def test_sigkill_mid_write_then_rerun_gives_the_same_files(tmp_path: Path) -> None:
    script = tmp_path / "write.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, str(script), str(tmp_path / "full")], env=env, check=True)
    killed = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "resumed")],
        env={**env, "TEXTSAE_TEST_KILL_AT": "features-shard#3"},
    )
    assert killed.returncode == -9
    assert not (tmp_path / "resumed" / MANIFEST_NAME).exists()
    with pytest.raises(IncompleteArtifactError):
        open_sparse_features(tmp_path / "resumed")
    subprocess.run([sys.executable, str(script), str(tmp_path / "resumed")], env=env, check=True)
    assert _files(tmp_path / "resumed") == _files(tmp_path / "full")


def _tamper(directory: Path, name: str, array: np.ndarray) -> None:
    """Replace one shard file and re-sign the manifest, as a hostile or buggy writer would."""
    np.save(directory / name, array, allow_pickle=False)
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    files = [directory / e["name"] for e in manifest.pop("files")]
    for key in ("format_version", "complete"):
        manifest.pop(key)
    write_manifest(directory, files, manifest)


@pytest.mark.parametrize(
    "name, array, message",
    [
        ("data-00001.npy", np.zeros(5, dtype=np.float64), "expected the 1-D float32 array"),
        ("indices-00000.npy", np.zeros((2, 2), dtype=np.int32), "expected the 1-D int32 array"),
        ("indptr-00002.npy", np.arange(17, dtype=np.int64) + 1, "row pointers must run from 0"),
        ("indptr-00006.npy", None, "shards hold 98 rows but its manifest says 103"),
    ],
)
def test_bad_shard_files_are_refused_in_one_line(
    tmp_path: Path, name: str, array: np.ndarray | None, message: str
) -> None:
    _write(tmp_path, _matrix())
    if array is None:  # valid pointers, 2 rows where the last shard has 7
        pointers = np.load(tmp_path / name)
        array = pointers[[0, 1, -1]]
    _tamper(tmp_path, name, array)
    with pytest.raises(UserError, match=message) as error:
        open_sparse_features(tmp_path)
    assert "\n" not in str(error.value)


def test_an_out_of_range_column_is_refused_when_read(tmp_path: Path) -> None:
    matrix = _matrix()
    _write(tmp_path, matrix)
    indices = np.load(tmp_path / "indices-00000.npy")
    indices[0] = N_FEATURES + 3
    _tamper(tmp_path, "indices-00000.npy", indices)
    features = open_sparse_features(tmp_path)
    with pytest.raises(UserError, match="column index"):
        features[np.array([0])]


def test_a_changed_shard_fails_the_manifest_check(tmp_path: Path) -> None:
    _write(tmp_path, _matrix())
    path = tmp_path / "data-00002.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(IncompleteArtifactError, match="SHA-256"):
        open_sparse_features(tmp_path)


def test_a_complete_entry_of_the_same_layout_is_left_alone(tmp_path: Path) -> None:
    matrix = _matrix()
    _write(tmp_path, matrix, featurizer="a")
    before = _files(tmp_path)
    assert _write(tmp_path, matrix, featurizer="a") == []  # nothing transformed again
    assert _files(tmp_path) == before
