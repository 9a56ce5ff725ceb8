"""Sparse (CSR) features in shards: TF-IDF rows written shard by shard and read back memory-mapped.

Layout of one entry (e.g. ``RUN_DIR/features/train/``)::

    layout.json             documents, columns, documents per shard and the writer's identity (written first)
    indptr-00000.npy ...    int64 row pointers of the shard's rows, from 0
    indices-00000.npy ...   int32 column of every stored value
    data-00000.npy ...      float32 values (written last of the three: it marks the shard complete)
    stats.json              rows, stored values, mean values per row and mean row norm
    manifest.json           written last: every file with its size and SHA-256

Shard ``i`` holds documents ``i·shard_docs … (i+1)·shard_docs − 1`` and depends only on them and the fitted
featurizer, so an interrupted write resumes after its complete shards and ranks of a ``torchrun`` job each write their
own :func:`~textsae.distributed.rank_slice` of shards: any number of ranks writes the same bytes as one.

Reading maps the shards (:class:`ShardedCSR`) and copies out only the rows asked for. The pages a read touched are
handed back to the kernel right after the copy (``madvise(MADV_DONTNEED)``; they stay in the page cache), so a
process that reads every row, batch after batch, keeps about one batch of them resident rather than the whole corpus.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from textsae._io import atomic_path, atomic_write_json, kill_point, logger, read_json_checked
from textsae.distributed import barrier, on_main, rank_slice
from textsae.errors import IncompleteArtifactError, UserError
from textsae.store.manifest import MANIFEST_NAME, read_manifest, write_manifest

__all__ = ["SPARSE_KIND", "ShardedCSR", "is_sparse_entry", "open_sparse_features", "write_sparse_features"]

SPARSE_KIND = "sparse_features"
"""The ``kind`` in a sparse entry's manifest."""
LAYOUT_NAME = "layout.json"
STATS_NAME = "stats.json"
PARTS = (("indptr", np.int64), ("indices", np.int32), ("data", np.float32))
"""The three arrays of a shard, in the order they are written (``data`` last marks the shard complete)."""
FILE_PATTERN = re.compile(r"^(indptr|indices|data)-(\d{5})\.npy$")
RESUME_HINT = "re-run the same command to finish writing the features (complete shards are kept)"


def _shard_file(directory: Path, part: str, index: int) -> Path:
    return directory / f"{part}-{index:05d}.npy"


def is_sparse_entry(directory: Path) -> bool:
    """True when ``directory`` holds a (complete or interrupted) sparse entry: its layout file exists."""
    return (Path(directory) / LAYOUT_NAME).is_file()


# --- writing ------------------------------------------------------------------------------------


def write_sparse_features(
    transform: Callable[[int, int], sp.csr_matrix],
    n_docs: int,
    n_features: int,
    directory: Path,
    *,
    shard_docs: int,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write the rows of ``n_docs`` documents as CSR shards into ``directory``, then stats and, last, the manifest.

    Under ``torchrun`` every rank calls this with the same arguments: each writes the shards of its
    ``rank_slice(n_docs, align=shard_docs)``, and rank 0 writes the stats and the manifest after a barrier. Complete
    shards of an interrupted write with the same layout (documents, columns, shard size and ``meta``) are kept (a
    complete entry of that layout is left as it is); a folder written with another layout is cleared first. Kill
    point ``features-shard`` (see :func:`textsae._io.kill_point`) follows each written shard.

    Args:
        transform: ``transform(begin, end)`` gives the ``(end − begin, n_features)`` CSR rows of those documents.
        n_docs: Documents of the split.
        n_features: Columns.
        directory: The entry's folder (created).
        shard_docs: Documents per shard.
        meta: What identifies the writer (e.g. the fitted featurizer's hash); kept in the layout and the manifest.
    """
    directory = Path(directory)
    layout = {"n_docs": int(n_docs), "n_features": int(n_features), "shard_docs": int(shard_docs), **(meta or {})}
    if on_main(lambda: _start(directory, layout)):
        return
    mine = rank_slice(n_docs, align=shard_docs)
    for begin in range(mine.start, mine.stop, shard_docs):
        index, end = begin // shard_docs, min(begin + shard_docs, n_docs)
        if _shard_file(directory, "data", index).exists():
            continue  # complete: data is written last
        rows = sp.csr_matrix(transform(begin, end))
        if rows.shape != (end - begin, n_features):
            raise ValueError(f"transform({begin}, {end}) gave shape {rows.shape}; expected {(end - begin, n_features)}")
        rows.sort_indices()
        for part, dtype in PARTS:
            _save_npy(_shard_file(directory, part, index), np.ascontiguousarray(getattr(rows, part), dtype=dtype))
        kill_point("features-shard")
    barrier()
    on_main(lambda: _finish(directory, layout))


def _start(directory: Path, layout: dict[str, Any]) -> bool:
    """Rank 0, before any shard: True when the entry is complete with this layout; else keep the shards of an
    interrupted write of the same layout and clear those of another."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LAYOUT_NAME
    same = False
    if path.exists():
        with contextlib.suppress(UserError):
            same = read_json_checked(path, "the layout of a sparse feature entry") == json.loads(
                json.dumps(layout, default=str)
            )
        if same and (directory / MANIFEST_NAME).exists():
            with contextlib.suppress(IncompleteArtifactError):
                read_manifest(directory)  # sizes; the reader checks hashes
                return True
    (directory / MANIFEST_NAME).unlink(missing_ok=True)  # being (re)written: never read as complete meanwhile
    if path.exists() and not same:
        logger.info("Features in %s were written with other settings; writing them again", directory)
        for stale in directory.iterdir():
            if FILE_PATTERN.match(stale.name) or stale.name in (STATS_NAME, LAYOUT_NAME):
                stale.unlink()
    for tmp in directory.glob(".tmp-*"):
        tmp.unlink(missing_ok=True)
    if not path.exists():
        atomic_write_json(path, layout)
    return False


def _finish(directory: Path, layout: dict[str, Any]) -> None:
    """Rank 0, after every rank wrote its shards: check them, write the stats and the manifest."""
    n_docs, shard_docs = layout["n_docs"], layout["shard_docs"]
    n_shards = -(-n_docs // shard_docs)
    files, rows, nnz, norm_sum = [directory / LAYOUT_NAME], 0, 0, 0.0
    for index in range(n_shards):
        shard = _map_shard(directory, index, layout["n_features"])
        expected = min(shard_docs, n_docs - index * shard_docs)
        if shard.n_rows != expected:
            raise IncompleteArtifactError(
                f"{_shard_file(directory, 'indptr', index)} holds {shard.n_rows} rows; expected {expected}. "
                f"Delete {directory} and re-run."
            )
        rows += shard.n_rows
        nnz += len(shard.data)
        owner = np.repeat(np.arange(shard.n_rows), np.diff(shard.indptr))
        squares = np.bincount(owner, weights=np.square(shard.data, dtype=np.float64), minlength=shard.n_rows)
        norm_sum += float(np.sqrt(squares).sum())
        shard.release()
        files += [_shard_file(directory, part, index) for part, _ in PARTS]
    stats = {
        "rows": rows,
        "nnz": nnz,
        "n_features": layout["n_features"],
        "mean_nnz": nnz / max(rows, 1),
        "mean_norm": norm_sum / max(rows, 1),
    }
    atomic_write_json(directory / STATS_NAME, stats)
    kill_point("manifest")
    write_manifest(directory, [*files, directory / STATS_NAME], {"kind": SPARSE_KIND, **layout})


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle: np.save would append ".npy"
        np.save(handle, array, allow_pickle=False)


# --- reading ------------------------------------------------------------------------------------


def _map_npy(path: Path, dtype: type, what: str) -> tuple[np.ndarray, mmap.mmap | None]:
    """A 1-D ``.npy`` of ``dtype`` mapped read-only, and its mapping (to release pages); one-line errors for others."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran, found = read_header(handle)
            offset = handle.tell()
            size = path.stat().st_size
            mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size > offset else None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable .npy array ({error}). Delete its folder and re-run.") from None
    if len(shape) != 1 or found != np.dtype(dtype) or fortran:
        raise UserError(f"{path}: expected the 1-D {np.dtype(dtype)} array of {what}. Got {found} {shape}.")
    if size - offset != shape[0] * np.dtype(dtype).itemsize:
        raise UserError(f"{path}: {size - offset} data bytes for {shape[0]} {what}; the file is damaged. Re-run.")
    if mapping is None:
        return np.zeros(0, dtype=dtype), None
    return np.ndarray(shape, dtype=dtype, buffer=mapping, offset=offset), mapping


@dataclass
class _Shard:
    """One shard's three arrays, mapped."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    mappings: list[mmap.mmap] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def release(self) -> None:
        """Hand the pages read so far back to the kernel (they stay cached); the arrays stay usable."""
        for mapping in self.mappings:
            mapping.madvise(mmap.MADV_DONTNEED)


def _map_shard(directory: Path, index: int, n_features: int) -> _Shard:
    arrays, mappings = [], []
    for part, dtype in PARTS:
        array, mapping = _map_npy(_shard_file(directory, part, index), dtype, f"{part} of a CSR shard")
        arrays.append(array)
        if mapping is not None:
            mappings.append(mapping)
    shard = _Shard(arrays[0], arrays[1], arrays[2], mappings)
    path = _shard_file(directory, "indptr", index)
    ends = shard.indptr[[0, -1]] if len(shard.indptr) else None
    if ends is None or ends[0] != 0 or ends[1] != len(shard.indices) or len(shard.indices) != len(shard.data):
        raise UserError(
            f"{path}: row pointers must run from 0 to the {len(shard.indices)} stored values of the shard "
            f"({len(shard.data)} in its data file). Delete {directory} and re-run."
        )
    if np.any(np.diff(shard.indptr) < 0):
        raise UserError(f"{path}: row pointers decrease. Delete {directory} and re-run.")
    shard.release()
    return shard


@dataclass
class ShardedCSR:
    """Read-only CSR rows of a sparse entry (or a subset of them), memory-mapped, never loaded whole.

    Indexing with a slice or a 1-D int array (any order, repeats allowed) returns those rows as an in-memory float32
    ``scipy.sparse.csr_matrix``, so callers that slice a CSR matrix read batches from it unchanged;
    ``subset(rows)`` gives a view on some rows (the training/hold-out split), ``get_rows(begin, end)`` a slice and
    ``to_matrix()`` every row.
    """

    shards: list[_Shard]
    offsets: np.ndarray
    n_features: int
    rows: np.ndarray | None = None
    stats: dict[str, Any] | None = None
    source: str = ""

    ndim = 2
    dtype = np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.offsets[-1]) if self.rows is None else len(self.rows)), self.n_features

    def __len__(self) -> int:
        return self.shape[0]

    def subset(self, rows: np.ndarray) -> ShardedCSR:
        """A view on ``rows`` (indices into this object); nothing is read."""
        rows = np.asarray(rows, dtype=np.int64)
        base = rows if self.rows is None else self.rows[rows]
        return ShardedCSR(self.shards, self.offsets, self.n_features, base, self.stats, self.source)

    def get_rows(self, begin: int, end: int) -> sp.csr_matrix:
        """Rows ``begin .. end − 1`` as a CSR matrix."""
        return self[slice(begin, end)]

    def to_matrix(self) -> sp.csr_matrix:
        """Every row in memory as one CSR matrix (for scikit-learn)."""
        return self[slice(None)]

    def row_nnz(self) -> np.ndarray:
        """Stored values of each row (int64), read from the row pointers only."""
        parts = []
        for shard in self.shards:
            parts.append(np.diff(shard.indptr))
            shard.release()
        every = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return every if self.rows is None else every[self.rows]

    def __getitem__(self, index: Any) -> sp.csr_matrix:
        n = self.shape[0]
        if isinstance(index, slice):
            index = np.arange(*index.indices(n), dtype=np.int64)
        index = np.asarray(index)
        if index.ndim != 1 or not (index.dtype.kind in "iu" or index.size == 0):
            raise TypeError("ShardedCSR rows must be indexed by a 1-D int array or a slice.")
        index = index.astype(np.int64, copy=False)
        if index.size and (index.min() < -n or index.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        index = np.where(index < 0, index + n, index)
        return self._gather(index if self.rows is None else self.rows[index])

    def _gather(self, absolute: np.ndarray) -> sp.csr_matrix:
        """The CSR rows ``absolute`` (indices into the whole entry), in that order."""
        shard_of = np.searchsorted(self.offsets, absolute, side="right") - 1
        order = np.argsort(shard_of, kind="stable")
        present, firsts = np.unique(shard_of[order], return_index=True)
        bounds = [*firsts.tolist(), len(order)]
        lengths = np.zeros(len(absolute), dtype=np.int64)
        indices, data = [], []
        for k, shard_index in enumerate(present):
            where = order[bounds[k] : bounds[k + 1]]
            shard = self.shards[shard_index]
            local = absolute[where] - self.offsets[shard_index]
            starts, ends = shard.indptr[local], shard.indptr[local + 1]
            lengths[where] = ends - starts
            # positions of every value of those rows: each row's start repeated over its length, plus 0, 1, 2, ...
            counts = ends - starts
            total = int(counts.sum())
            positions = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
            indices.append(np.asarray(shard.indices[positions]))
            data.append(np.asarray(shard.data[positions]))
            shard.release()
            if total and int(indices[-1].max()) >= self.n_features:
                raise UserError(
                    f"{self.source}: shard {shard_index} has a column index >= the entry's {self.n_features} columns; "
                    "it is damaged. Delete the folder and re-run."
                )
        grouped_lengths = lengths[order]
        grouped = sp.csr_matrix(
            (
                np.concatenate(data) if data else np.zeros(0, np.float32),
                np.concatenate(indices) if indices else np.zeros(0, np.int32),
                np.concatenate([[0], np.cumsum(grouped_lengths)]).astype(np.int64),
            ),
            shape=(len(absolute), self.n_features),
        )
        if np.array_equal(order, np.arange(len(order))):
            return grouped
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return grouped[inverse]


def open_sparse_features(directory: Path) -> ShardedCSR:
    """Open a complete sparse entry, memory-mapped, after checking every file's size and SHA-256 against its manifest.

    Raises:
        IncompleteArtifactError: The manifest is missing or does not match the files.
        UserError: The manifest's layout or a shard's arrays are not what a sparse entry holds.
    """
    directory = Path(directory)
    manifest = read_manifest(directory, verify_hashes=True, resume_hint=RESUME_HINT)
    n_docs, n_features, shard_docs = (manifest.get(key) for key in ("n_docs", "n_features", "shard_docs"))
    if manifest.get("kind") != SPARSE_KIND or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (n_docs, n_features, shard_docs)
    ):
        raise UserError(
            f"{directory / MANIFEST_NAME}: expected kind={SPARSE_KIND!r} with integer n_docs, n_features and "
            f"shard_docs. Got kind={manifest.get('kind')!r}, {n_docs!r}, {n_features!r}, {shard_docs!r}."
        )
    assert isinstance(n_docs, int) and isinstance(n_features, int) and isinstance(shard_docs, int)
    listed = {entry["name"] for entry in manifest["files"]}
    n_shards = -(-n_docs // shard_docs) if shard_docs else 0
    expected = {f"{part}-{i:05d}.npy" for i in range(n_shards) for part, _ in PARTS}
    if not expected <= listed or any(FILE_PATTERN.match(name) and name not in expected for name in listed):
        raise UserError(
            f"{directory / MANIFEST_NAME}: it lists other shard files than {n_shards} shards of {shard_docs} "
            f"documents for {n_docs} documents. Delete {directory} and re-run."
        )
    shards = [_map_shard(directory, i, n_features) for i in range(n_shards)]
    offsets = np.concatenate([[0], np.cumsum([s.n_rows for s in shards])]).astype(np.int64)
    if int(offsets[-1]) != n_docs or any(
        s.n_rows != min(shard_docs, n_docs - i * shard_docs) for i, s in enumerate(shards)
    ):
        raise UserError(
            f"{directory}: its shards hold {int(offsets[-1])} rows but its manifest says {n_docs} documents in shards "
            f"of {shard_docs}. Delete {directory} and re-run."
        )
    stats = read_json_checked(directory / STATS_NAME, "sparse feature statistics") if STATS_NAME in listed else None
    return ShardedCSR(shards, offsets, n_features, None, stats, str(directory))
