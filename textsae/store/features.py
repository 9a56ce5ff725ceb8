"""The feature store: dense features extracted once, in shards, shared by every run with the same inputs.

Layout of one entry (``<store.dir>/<key>/<split>/``)::

    shard-00000.npy ...     float32 rows, ``shard_docs`` documents each (memory-mapped when read)
    docids-00000.npy ...    int64 document id of every row (only for per-token features)
    stats.json              row count, mean row norm, per-dimension mean and std (float64 sums)
    manifest.json           written last: every file with its size and SHA-256
    extraction.json         only while unfinished: the documents per shard the extraction cuts with

The key is a hash of the split's texts and the featurizer's parameters, so a second run with the
same corpus and featurizer finds the entry and reuses it. Shard ``i`` holds documents
``i*shard_docs ..`` and is written atomically; an interrupted extraction keeps its complete shards
and extracts the others, and because every shard depends only on its own documents, ends with the
same files as an uninterrupted one. Under ``torchrun`` each rank extracts a contiguous part of whole
shards, so N processes write the same entry as one, and any number resumes what any number left.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textsae._io import (
    atomic_path,
    atomic_write_json,
    hash_texts,
    logger,
    read_json_checked,
    resolve_device,
    stable_hash,
)
from textsae.distributed import barrier, on_main, rank_device, rank_slice, setup
from textsae.errors import IncompleteArtifactError, UserError
from textsae.locks import group_lock
from textsae.store.manifest import MANIFEST_NAME, read_manifest, write_manifest

__all__ = ["ShardedFeatures", "extract_to_store", "open_features", "store_key", "texts_fingerprint"]

SHARD_PATTERN = re.compile(r"^shard-(\d{5})\.npy$")
DOCIDS_PATTERN = re.compile(r"^docids-(\d{5})\.npy$")
STATS_NAME = "stats.json"
PLAN_NAME = "extraction.json"
"""Only while an extraction is unfinished: the documents per shard it cuts with, so a resume cuts the same way."""
RESUME_HINT = "re-run the same command to finish the extraction (complete shards are kept)"


def texts_fingerprint(texts: Sequence[str]) -> str:
    """SHA-256 over the documents (length-prefixed UTF-8), so any change of text or order changes it."""
    digest = hashlib.sha256()
    hash_texts(digest, texts)
    return digest.hexdigest()


def store_key(texts: Sequence[str], featurizer_params: dict[str, Any], model_id: str) -> str:
    """Cache key of one split's features: its texts, the featurizer's parameters and the model location."""
    params = {
        k: v for k, v in featurizer_params.items() if k not in ("progress", "device", "batch_size", "sort_by_length")
    }
    return stable_hash({"texts": texts_fingerprint(texts), "params": params, "model": model_id}, length=16)


@dataclass
class ShardedFeatures:
    """Read-only rows of a store entry (or a subset of them) without loading them all into memory.

    Indexing with an int array or a slice returns a float32 ``np.ndarray``; ``subset(rows)`` gives
    a view on some rows (used for train/validation splits). The trainer reads batches through
    ``__getitem__``, so memory stays bounded by the batch, not the corpus.
    """

    shards: list[np.ndarray]
    offsets: np.ndarray
    rows: np.ndarray | None = None
    doc_ids: np.ndarray | None = None
    stats: dict[str, Any] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        n = int(self.offsets[-1]) if self.rows is None else len(self.rows)
        width = self.shards[0].shape[1] if self.shards else 0
        return n, width

    ndim = 2
    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def subset(self, rows: np.ndarray) -> ShardedFeatures:
        """A view on ``rows`` (indices into this object)."""
        rows = np.asarray(rows, dtype=np.int64)
        base = rows if self.rows is None else self.rows[rows]
        return ShardedFeatures(
            self.shards, self.offsets, base, None if self.doc_ids is None else self.doc_ids[rows], self.stats
        )

    def __getitem__(self, index: Any) -> np.ndarray:
        n = self.shape[0]
        if isinstance(index, slice):
            index = np.arange(n)[index]
        index = np.asarray(index, dtype=np.int64)
        if index.ndim != 1:
            raise TypeError("ShardedFeatures rows must be indexed by a 1-D int array or a slice.")
        if index.size and (index.min() < -n or index.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        index = np.where(index < 0, index + n, index)
        absolute = index if self.rows is None else self.rows[index]
        out = np.empty((len(absolute), self.shape[1]), dtype=np.float32)
        shard_of = np.searchsorted(self.offsets, absolute, side="right") - 1
        for shard in np.unique(shard_of):
            where = np.flatnonzero(shard_of == shard)
            out[where] = self.shards[shard][absolute[where] - self.offsets[shard]]
        return out

    def to_array(self) -> np.ndarray:
        """All rows in memory as one float32 array."""
        return self[slice(None)]


def extract_to_store(
    featurizer: Any,
    texts: Sequence[str],
    directory: Path,
    *,
    shard_docs: int = 4096,
    meta: dict[str, Any] | None = None,
) -> ShardedFeatures:
    """Extract features of ``texts`` into ``directory`` (keeping the complete shards an interrupted extraction left)
    and open them.

    A complete entry is reused as it is (and logged). ``featurizer`` needs ``iter_chunks(texts, chunk_docs=,
    start=)`` yielding ``(vectors, doc_ids)`` per chunk of documents from ``start`` on (only the chunks needed are
    consumed).

    Under ``torchrun`` every rank must call this with the same arguments: each extracts the shards of its
    :func:`~textsae.distributed.rank_slice` of the documents (whole shards; shard ``i`` holds documents
    ``i*shard_docs ..``); rank 0 holds the entry's lock for the group, and writes the statistics and the manifest after
    every rank is done. The entry is the same, byte for byte, as one process writes; an interrupted extraction of any
    number of processes is resumed by any number.

    Args:
        featurizer: A fitted featurizer with ``iter_chunks`` (e.g. ``HiddenStatesFeaturizer``).
        texts: The documents, in the order their rows will have.
        directory: The store entry's split folder.
        shard_docs: Documents per shard (a resumed extraction keeps the interrupted one's).
        meta: Extra manifest keys (e.g. the featurizer params), kept for people reading the store.

    Returns:
        The stored features, memory-mapped.
    """
    directory = Path(directory)
    current = setup(rank_device(resolve_device(str(getattr(featurizer, "device", "cpu")))))
    if not current.distributed:
        complete = _open_complete(directory)
        if complete is not None:
            return complete
    elif on_main(lambda: _open_complete(directory) is not None):
        return open_features(directory, verify_hashes=False)  # rank 0 has just checked every hash
    with group_lock(directory, what=f"store entry {directory}", wait=True):
        cut, done = on_main(lambda: _plan(directory, shard_docs, len(texts)))
        if cut is not None:  # not finished by the writer we waited for
            _extract_part(featurizer, texts, directory, cut, done, rank_slice(len(texts), align=cut))
            barrier()
            on_main(lambda: _finish(directory, cut, len(texts), meta))
    # finished by the writer we waited for: rank 0's _plan has just checked every hash
    return open_features(directory, verify_hashes=current.is_main and cut is not None)


def _open_complete(directory: Path) -> ShardedFeatures | None:
    """``directory`` opened when it is a complete entry (checked against its manifest, hashes too), else ``None``."""
    if not (directory / MANIFEST_NAME).exists():
        return None
    try:
        return _reuse(open_features(directory), directory)
    except (IncompleteArtifactError, UserError):  # damaged: repaired under the lock
        return None


def _plan(directory: Path, shard_docs: int, n_docs: int) -> tuple[int | None, list[int]]:
    """Under the lock, before anyone writes: the shard size to cut with and the shards already complete, or ``(None,
    [])`` when the entry is complete (finished by the writer we waited for). A damaged entry is deleted first."""
    if (directory / MANIFEST_NAME).exists():
        try:
            _reuse(open_features(directory), directory)
            return None, []
        except (IncompleteArtifactError, UserError) as error:
            logger.warning("Store entry %s is damaged (%s); extracting it again", directory, error)
            _remove_entry_files(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for tmp in directory.glob(".tmp-*"):
        tmp.unlink()
    cut, done = _resume_cut(directory, _complete_shards(directory), shard_docs, n_docs)
    atomic_write_json(directory / PLAN_NAME, {"shard_docs": cut, "n_docs": n_docs})
    if done:
        logger.info("Resuming extraction in %s: %d complete shards are kept", directory, len(done))
    return cut, done


def _resume_cut(directory: Path, done: dict[int, Path], shard_docs: int, n_docs: int) -> tuple[int, list[int]]:
    """The documents per shard an interrupted extraction cut with (from its plan file, else from its first shard), so
    a resume cuts the rest the same way whatever ``shard_docs`` says now, and the shards it left that fit that cut. When
    they do not all fit one cut, every shard is deleted: the extraction starts again."""
    if not done:
        return shard_docs, []
    plan = directory / PLAN_NAME
    planned = read_json_checked(plan, "the plan of an interrupted extraction") if plan.exists() else {}
    recorded = planned.get("shard_docs") if isinstance(planned, dict) else None
    if recorded is None and 0 in done:  # left by a version without the plan file
        recorded = _docs_in_shard(directory, 0)
    cut = recorded if isinstance(recorded, int) and recorded >= 1 else 0
    fits = cut > 0 and all(_docs_in_shard(directory, i) == max(min(cut, n_docs - i * cut), 0) for i in done)
    if not fits:
        logger.warning("Shards in %s were not all cut with one shard size; extracting again", directory)
        for stale in directory.glob("*.npy"):
            stale.unlink()
        return shard_docs, []
    if cut != shard_docs:
        logger.info("Resuming with the interrupted extraction's %d documents per shard", cut)
    return cut, sorted(done)


def _docs_in_shard(directory: Path, index: int) -> int:
    """Documents in complete shard ``index``: its rows, or for per-token shards its distinct document ids."""
    doc_ids = directory / f"docids-{index:05d}.npy"
    if doc_ids.exists():
        return int(np.unique(np.load(doc_ids, allow_pickle=False)).size)
    return int(np.load(directory / f"shard-{index:05d}.npy", mmap_mode="r", allow_pickle=False).shape[0])


def _reuse(features: ShardedFeatures, directory: Path) -> ShardedFeatures:
    logger.info("Reusing stored features in %s (%d rows)", directory, features.shape[0])
    return features


def _remove_entry_files(directory: Path) -> None:
    """Delete what an entry's writer writes (the manifest first, so the entry reads as incomplete meanwhile)."""
    (directory / MANIFEST_NAME).unlink(missing_ok=True)
    for path in directory.iterdir():
        if SHARD_PATTERN.match(path.name) or DOCIDS_PATTERN.match(path.name) or path.name in (STATS_NAME, PLAN_NAME):
            path.unlink()


def _extract_part(
    featurizer: Any, texts: Sequence[str], directory: Path, cut: int, done: list[int], part: slice
) -> None:
    """Extract this process's missing shards of ``part`` (whole shards), one run of consecutive shards at a time."""
    complete = set(done)
    missing = [i for i in range(part.start // cut, -(-part.stop // cut)) if i not in complete]
    while missing:
        run = 1
        while run < len(missing) and missing[run] == missing[0] + run:
            run += 1
        first, missing = missing[0], missing[run:]
        begin = first * cut
        # texts are sliced per chunk, never listed whole: a streamed split's are read from their file chunk by chunk
        chunks = featurizer.iter_chunks(texts, chunk_docs=cut, start=begin)
        for index, (vectors, doc_ids) in enumerate(itertools.islice(chunks, run), start=first):
            _save_shard(directory, index, cut, vectors, doc_ids)
        chunks.close()  # the next shard belongs to another rank (or is complete)


def _save_shard(directory: Path, index: int, cut: int, vectors: np.ndarray, doc_ids: np.ndarray) -> None:
    """Shard ``index`` (and for per-token features its document ids, first: the shard marks the pair complete)."""
    if not np.array_equal(doc_ids, np.arange(index * cut, index * cut + len(vectors))):  # per token
        _save_npy(directory / f"docids-{index:05d}.npy", doc_ids.astype(np.int64))
    _save_npy(directory / f"shard-{index:05d}.npy", np.ascontiguousarray(vectors, dtype=np.float32))


def _finish(directory: Path, cut: int, n_docs: int, meta: dict[str, Any] | None) -> None:
    """The entry's statistics and, last, its manifest, once every shard is in place; then the plan goes."""
    files = sorted(p for p in directory.iterdir() if p.suffix == ".npy" and not p.name.startswith(".tmp-"))
    shards = [p for p in files if p.name.startswith("shard-")]
    if len(shards) != -(-n_docs // cut):
        raise IncompleteArtifactError(
            f"{directory}: {len(shards)} feature shards of {-(-n_docs // cut)} are in place after extraction. {RESUME_HINT}."
        )
    atomic_write_json(directory / STATS_NAME, _stats([np.load(p, mmap_mode="r") for p in shards]))
    write_manifest(
        directory,
        [*files, directory / STATS_NAME],
        {"kind": "features", "n_docs": n_docs, "shard_docs": cut, **(meta or {})},
    )
    (directory / PLAN_NAME).unlink(missing_ok=True)


def open_features(directory: Path, *, verify_hashes: bool = True) -> ShardedFeatures:
    """Open a complete store entry, memory-mapped, after checking every file's size and SHA-256 against its manifest
    (about 1 s per GB; the pages read stay cached for training). ``verify_hashes=False`` checks sizes only (for ranks
    whose rank 0 has just checked the hashes).

    Raises:
        IncompleteArtifactError: The manifest is missing or does not match the files.
        UserError: A shard is not a 2-D float32 array, or shards disagree in width.
    """
    directory = Path(directory)
    manifest = read_manifest(directory, verify_hashes=verify_hashes, resume_hint=RESUME_HINT)
    names = sorted(e["name"] for e in manifest["files"])
    shard_names = [n for n in names if SHARD_PATTERN.match(n)]
    shards: list[np.ndarray] = []
    for name in shard_names:
        try:
            array = np.load(directory / name, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise UserError(
                f"{directory / name}: not a readable .npy array ({exc}). Delete {directory} and re-run to extract again."
            ) from None
        if array.ndim != 2 or array.dtype != np.float32 or (shards and array.shape[1] != shards[0].shape[1]):
            raise UserError(
                f"{directory / name}: expected a 2-D float32 array as wide as the other shards. Got {array.dtype} {array.shape}."
            )
        shards.append(array)
    if not shards:
        raise UserError(f"{directory}: the manifest lists no feature shards. Delete the folder and re-run.")
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in shards])]).astype(np.int64)
    doc_names = [n for n in names if n.startswith("docids-")]
    if not doc_names and isinstance(manifest.get("n_docs"), int) and int(offsets[-1]) != manifest["n_docs"]:
        raise IncompleteArtifactError(
            f"{directory}: its shards hold {int(offsets[-1])} rows but its manifest says {manifest['n_docs']} documents. "
            "Delete the folder and re-run to extract again."
        )
    doc_ids = np.concatenate([np.load(directory / n, allow_pickle=False) for n in doc_names]) if doc_names else None
    stats = read_json_checked(directory / STATS_NAME, "feature statistics") if STATS_NAME in names else None
    return ShardedFeatures(shards, offsets, None, doc_ids, stats)


def _complete_shards(directory: Path) -> dict[int, Path]:
    """Shards already written, by index (gaps allowed: several processes write shards of their own parts)."""
    return {int(match.group(1)): path for path in directory.iterdir() if (match := SHARD_PATTERN.match(path.name))}


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def _stats(shards: list[np.ndarray]) -> dict[str, Any]:
    """Row count, mean row norm and per-dimension mean/std, accumulated in float64 shard by shard."""
    n, width = 0, shards[0].shape[1] if shards else 0
    total, total_sq, norm_sum = np.zeros(width), np.zeros(width), 0.0
    for shard in shards:
        block = np.asarray(shard, dtype=np.float64)
        n += len(block)
        total += block.sum(0)
        total_sq += np.square(block).sum(0)
        norm_sum += float(np.linalg.norm(block, axis=1).sum())
    mean = total / max(n, 1)
    std = np.sqrt(np.maximum(total_sq / max(n, 1) - np.square(mean), 0.0))
    return {"rows": n, "mean_norm": norm_sum / max(n, 1), "mean": mean.tolist(), "std": std.tolist()}
