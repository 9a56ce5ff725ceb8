"""Sparse codes on disk: fixed-size shards plus a manifest, written so that a killed run can resume.

A codes folder looks like::

    codes/
      shard-00000.npz      # rows 0 .. shard_docs-1
      shard-00001.npz      # the next shard_docs rows; only the last shard may be shorter
      ...
      doc_ids.npy          # optional: each code row's document id (e.g. its 0-based row in the input file)
      labels.npy           # optional: each code row's class id, when the input had labels
      manifest.json        # written last: n_docs, n_latents, format, dtypes, shards, sizes, hashes
      writer.json          # only while writing: the writer's settings, removed after the manifest

Shard formats:

* ``npz`` -- an uncompressed ``.npz`` with the same keys as :func:`scipy.sparse.save_npz`
  (``format=b"csr"``, ``shape`` int64 ``[rows, n_latents]``, ``data`` float16, ``indices``
  uint16 when ``n_latents <= 65,536`` else int32, ``indptr`` int64). Zip entries carry a fixed
  timestamp, so the same codes always give the same bytes.
* ``parquet`` -- one row per document with list columns ``indices`` (uint16 / int32) and
  ``values`` (float16, Parquet's ``Float16`` logical type), zstd-compressed; ``n_latents`` and
  ``nnz`` are in the file's key-value metadata.

Resuming. Every shard is written under a temporary name and renamed into place, so after a kill
only complete shards carry a ``shard-NNNNN`` name. A new :class:`CodesWriter` on the same folder
counts them (reading only each shard's ``shape``/row count) and reports
:attr:`CodesWriter.completed_docs`; the caller skips that many documents and writes the rest.
The settings a resume must share with the first run (``n_latents``, ``fmt``, ``shard_docs`` and
``meta``) are kept in ``writer.json``, written before the first shard; a writer with other
settings refuses to continue. A shorter-than-``shard_docs`` last shard (a kill inside
:meth:`CodesWriter.close`, before the manifest) is deleted and written again.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, overload

import numpy as np
import scipy.sparse as sp

from textsae._io import (
    _json_default,
    atomic_path,
    atomic_write_json,
    logger,
    read_json,
    write_npz,
)
from textsae.errors import IncompleteArtifactError, UserError
from textsae.runtime import available_memory
from textsae.store.manifest import _RESERVED_KEYS as _MANIFEST_KEYS
from textsae.store.manifest import (
    DEFAULT_RESUME_HINT,
    MANIFEST_NAME,
    read_manifest,
    write_manifest,
)

__all__ = [
    "CODES_FORMAT_VERSION",
    "WRITER_STATE_NAME",
    "CodesWithIds",
    "CodesWriter",
    "codes_info",
    "finish_codes_folder",
    "load_codes",
    "shard_count",
    "shard_name",
    "start_codes_folder",
    "write_codes_shard",
]

CODES_FORMAT_VERSION = 1
"""Version of the shard layout (recorded in the manifest as ``codes_format_version``)."""

WRITER_STATE_NAME = "writer.json"
"""Settings of an unfinished writer; present only while a folder is incomplete."""

ROW_FILES = {"doc_ids": "doc_ids.npy", "labels": "labels.npy"}
"""Optional per-row arrays written beside the shards (int64, one entry per code row)."""


class CodesWithIds(NamedTuple):
    """What ``load_codes(..., with_ids=True)`` returns."""

    codes: sp.csr_matrix
    """``(n_docs, n_latents)`` codes."""
    doc_ids: np.ndarray
    """``(n_docs,)``: each row's document id. ``textsae encode``: its 0-based data row in the input file (the header
    excluded, ``int64``), or with ``--id-column`` that column's values (``int64`` for an integer column, else text);
    ``0 … n_docs − 1`` for codes written without ids."""
    labels: np.ndarray | None
    """``int64 (n_docs,)`` class ids when the input had labels, else ``None``."""


_FP16_MAX = float(np.finfo(np.float16).max)  # 65504
_UINT16_COLUMNS = 1 << 16  # uint16 indices address columns 0 .. 65535
_MAX_LATENTS = np.iinfo(np.int32).max
_SHARD_RE = re.compile(r"shard-(\d{5,})\.(npz|parquet)")
_WRITER_KEYS = frozenset(
    {
        "codes_format_version",
        "n_docs",
        "n_latents",
        "format",
        "index_dtype",
        "value_dtype",
        "shard_docs",
        "nnz",
        "shards",
        "row_files",
    }
)


def shard_name(index: int, fmt: str) -> str:
    """File name of shard number ``index`` (``shard-00000.npz``)."""
    return f"shard-{index:05d}.{fmt}"


def _index_dtype(n_latents: int) -> np.dtype:
    return np.dtype(np.uint16) if n_latents <= _UINT16_COLUMNS else np.dtype(np.int32)


def _jsonable(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as it reads back from JSON (tuples become lists, numpy scalars Python numbers)."""
    return json.loads(json.dumps(obj, default=_json_default))


class CodesWriter:
    """Write sparse codes to ``directory`` in shards of ``shard_docs`` documents, then a manifest.

    Use it as a context manager; leaving the block normally calls :meth:`close`, leaving it with
    an exception writes no manifest, so the folder stays resumable::

        with CodesWriter(out, n_latents=4096, shard_docs=50_000, meta={"sae": sae_hash}) as writer:
            for batch in batches(start=writer.completed_docs):
                writer.write(codes_of(batch))

    Args:
        directory: Output folder (created if needed).
        n_latents: Number of columns of every codes matrix (at most 2**31 - 1).
        fmt: ``"npz"`` (CSR shards) or ``"parquet"`` (rows of ``indices``/``values`` lists).
        shard_docs: Documents per shard; every shard but the last holds exactly this many.
        meta: Extra JSON-serialisable keys for the manifest (e.g. the SAE's hash). A resumed
            writer must pass the same ``meta``.
        overwrite: Delete an existing (complete or partial) output in ``directory`` first.

    Raises:
        UserError: A parameter is out of range; ``directory`` already holds complete codes and
            ``overwrite`` is false; or it holds shards of an interrupted run written with other
            settings (or that cannot be resumed).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        n_latents: int,
        fmt: Literal["npz", "parquet"] = "npz",
        shard_docs: int = 50_000,
        meta: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        _check_writer_args(n_latents=n_latents, fmt=fmt, shard_docs=shard_docs, meta=meta or {})
        self.directory = Path(directory)
        self.n_latents = int(n_latents)
        self.fmt = fmt
        self.shard_docs = int(shard_docs)
        self.meta = _jsonable(meta or {})
        self.index_dtype = _index_dtype(self.n_latents)
        self._buffer: list[sp.csr_matrix] = []
        self._buffered_rows = 0
        self._shards: list[dict[str, Any]] = []
        self._closed = False
        self._prepare(overwrite=overwrite)

    # ----------------------------------------------------------------------------------- setup

    def _prepare(self, *, overwrite: bool) -> None:
        _open_folder(self.directory, overwrite=overwrite)
        found = _existing_shards(self.directory, self.fmt)
        if sorted(found) != list(range(len(found))):
            missing = sorted(set(range(max(found) + 1)) - set(found))
            raise UserError(
                f"{self.directory} cannot be resumed: shards {[shard_name(i, self.fmt) for i in missing][:5]} are missing "
                f"between the ones present. Pass overwrite=True to start again."
            )
        shards = [found[i] for i in sorted(found)]
        if shards:
            self._resume(shards)
        else:
            atomic_write_json(self.directory / WRITER_STATE_NAME, self._state())

    def _state(self) -> dict[str, Any]:
        return _writer_state(self.n_latents, self.fmt, self.shard_docs, self.meta)

    def _resume(self, shards: list[Path]) -> None:
        _check_resumable(self.directory, self._state(), len(shards))
        for position, path in enumerate(shards):
            rows, nnz = _checked_header(path, self.n_latents)
            if rows < self.shard_docs and position == len(shards) - 1:
                # Only close() writes a short shard; it was killed before the manifest. Redo it.
                logger.info("Deleting %s (%d rows, the unfinished last shard); it will be written again.", path, rows)
                path.unlink()
                break
            if rows != self.shard_docs:
                raise UserError(
                    f"{path} has {rows} rows; expected shard_docs={self.shard_docs}. Pass overwrite=True to start again."
                )
            self._shards.append({"name": path.name, "rows": rows, "nnz": nnz})
        if self._shards:
            logger.info(
                "Resuming codes in %s: %d documents already in %d shards.",
                self.directory,
                self.completed_docs,
                len(self._shards),
            )

    # ------------------------------------------------------------------------------- writing

    @property
    def completed_docs(self) -> int:
        """Documents already in complete shards on disk (right after construction: where to resume)."""
        return sum(shard["rows"] for shard in self._shards)

    def write(self, codes: sp.spmatrix | sp.sparray | np.ndarray) -> None:
        """Append documents (rows); every full ``shard_docs`` rows are written out as a shard.

        Args:
            codes: A ``(n_docs, n_latents)`` sparse matrix (any scipy format) or 2-D array.

        Raises:
            UserError: ``codes`` has the wrong number of columns, or holds NaN/inf or values
                outside the float16 range (|v| > 65504).
            RuntimeError: The writer is already closed.
        """
        if self._closed:
            raise RuntimeError(f"CodesWriter for {self.directory} is closed; create a new one to write more.")
        if not sp.issparse(codes) and not (isinstance(codes, np.ndarray) and codes.ndim == 2):
            raise TypeError(
                f"CodesWriter.write expects a 2-D scipy sparse matrix or numpy array. Got {type(codes).__name__} instead."
            )
        if codes.shape[1] != self.n_latents:
            raise UserError(
                f"Codes passed to CodesWriter have {codes.shape[1]} columns; expected n_latents={self.n_latents}."
            )
        if codes.shape[0] == 0:
            return
        chunk = sp.csr_matrix(codes, copy=True)  # a copy: the caller may reuse its buffers
        chunk.sum_duplicates()  # sorted indices, no duplicates: one layout for the same codes
        _check_fp16_range(chunk.data, self.directory)
        self._buffer.append(chunk)
        self._buffered_rows += codes.shape[0]
        if self._buffered_rows >= self.shard_docs:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        stacked = sp.vstack(self._buffer, format="csr") if len(self._buffer) > 1 else self._buffer[0]
        n_rows = stacked.shape[0]
        stop = n_rows if final else n_rows - n_rows % self.shard_docs
        for start in range(0, stop, self.shard_docs):
            self._write_shard(stacked[start : min(start + self.shard_docs, stop)])
        rest = stacked[stop:]
        self._buffer = [rest] if rest.shape[0] else []
        self._buffered_rows = rest.shape[0]

    def _write_shard(self, rows: sp.csr_matrix) -> None:
        self._shards.append(_write_shard_file(self.directory, len(self._shards), rows, self.n_latents, self.fmt))

    def close(
        self,
        *,
        extra_meta: dict[str, Any] | None = None,
        doc_ids: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> None:
        """Write the last (possibly short) shard, the optional row arrays and then the manifest; a second call does nothing.

        Args:
            extra_meta: Keys added to the manifest that need not match on resume (e.g. timings).
            doc_ids: Each written row's document id (ints >= 0, or text, one per row); stored as ``doc_ids.npy``.
            labels: Each written row's class id (ints, one per row); stored as ``labels.npy``.

        Raises:
            UserError: ``extra_meta`` uses a key the writer sets itself, or ``doc_ids``/``labels`` do not hold one
                int per written row.
        """
        if self._closed:
            return
        _check_meta_keys(_jsonable(extra_meta or {}), "extra_meta")
        if self._buffered_rows:
            self._flush(final=True)
        _finish_folder(
            self.directory,
            self._shards,
            n_latents=self.n_latents,
            fmt=self.fmt,
            shard_docs=self.shard_docs,
            meta=self.meta,
            extra_meta=extra_meta,
            doc_ids=doc_ids,
            labels=labels,
        )
        self._closed = True

    def __enter__(self) -> CodesWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
            return
        self._closed = True  # no manifest: the folder stays incomplete and resumable
        logger.warning(
            "Writing codes to %s stopped (%s); %d documents are in complete shards. Re-run to resume.",
            self.directory,
            exc_type.__name__,
            self.completed_docs,
        )


# ------------------------------------------------------------------ shards by index (several writers)


def shard_count(n_docs: int, shard_docs: int) -> int:
    """How many shards ``n_docs`` documents take at ``shard_docs`` per shard."""
    return -(-int(n_docs) // int(shard_docs))


def _shard_rows(index: int, n_docs: int, shard_docs: int) -> int:
    return min(shard_docs, n_docs - index * shard_docs)


def start_codes_folder(
    directory: str | os.PathLike[str],
    *,
    n_latents: int,
    n_docs: int,
    fmt: Literal["npz", "parquet"] = "npz",
    shard_docs: int = 50_000,
    meta: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> list[int]:
    """Get ``directory`` ready for shards written by index, by one process or by several (one per rank).

    The one-process :class:`CodesWriter` appends shards in order. When the number of documents is known up front,
    shard ``i`` always holds documents ``i*shard_docs ..`` and can be written by whichever process encodes them, in
    any order (:func:`write_codes_shard`); :func:`finish_codes_folder` then writes the manifest. Call this once (on
    rank 0) before any shard is written. Shards an interrupted run left, by any number of processes or by a
    :class:`CodesWriter`, are kept when they were written with the same settings and input; the returned indices
    need not be written again.

    Args:
        directory: Output folder (created if needed).
        n_latents: Columns of every codes matrix.
        n_docs: Documents the folder will hold.
        fmt: ``"npz"`` or ``"parquet"``.
        shard_docs: Documents per shard (the last shard may be shorter).
        meta: Extra manifest keys; a resumed run must pass the same.
        overwrite: Delete earlier codes (complete or not) first.

    Returns:
        The indices of complete shards already in place, sorted.

    Raises:
        UserError: As :class:`CodesWriter`: complete codes without ``overwrite``, or shards of an interrupted run with
            other settings, or a shard that does not hold the rows its index says.
    """
    _check_writer_args(n_latents=n_latents, fmt=fmt, shard_docs=shard_docs, meta=meta or {})
    root = Path(directory)
    _open_folder(root, overwrite=overwrite)
    state = _writer_state(int(n_latents), fmt, int(shard_docs), _jsonable(meta or {}))
    found = _existing_shards(root, fmt)
    if not found:
        atomic_write_json(root / WRITER_STATE_NAME, state)
        return []
    _check_resumable(root, state, len(found))
    n_shards = shard_count(n_docs, shard_docs)
    for index, path in sorted(found.items()):
        rows, _ = _checked_header(path, int(n_latents))
        expected = _shard_rows(index, n_docs, shard_docs) if index < n_shards else 0
        if rows != expected:
            raise UserError(
                f"{path} has {rows} rows; shard {index} of {n_docs} documents at shard_docs={shard_docs} holds "
                f"{expected}. Pass overwrite=True to start again."
            )
    logger.info("Resuming codes in %s: %d of %d shards are complete.", root, len(found), n_shards)
    return sorted(found)


def write_codes_shard(
    directory: str | os.PathLike[str], index: int, codes: sp.spmatrix | sp.sparray, *, n_latents: int, fmt: str
) -> None:
    """Write shard number ``index`` of a folder prepared by :func:`start_codes_folder` (atomically).

    Raises:
        UserError: ``codes`` is not ``n_latents`` wide, or holds values float16 cannot store.
    """
    if codes.shape[1] != n_latents:
        raise UserError(f"Codes of shard {index} have {codes.shape[1]} columns; expected n_latents={n_latents}.")
    rows = sp.csr_matrix(codes)
    if not rows.has_canonical_format:  # summed before the range check; the caller's matrix stays as it was
        rows = rows.copy()
        rows.sum_duplicates()
    _check_fp16_range(rows.data, Path(directory))
    _write_shard_file(Path(directory), index, rows, int(n_latents), fmt)


def finish_codes_folder(
    directory: str | os.PathLike[str],
    *,
    n_latents: int,
    n_docs: int,
    fmt: Literal["npz", "parquet"] = "npz",
    shard_docs: int = 50_000,
    meta: dict[str, Any] | None = None,
    extra_meta: dict[str, Any] | None = None,
    doc_ids: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> None:
    """Write the row files and the manifest of a folder whose every shard is in place (call it once, on rank 0, after
    every process wrote its shards). The folder is then the same, byte for byte, as :class:`CodesWriter` writes.

    Raises:
        IncompleteArtifactError: A shard is missing or holds other rows than its index says.
        UserError: As :meth:`CodesWriter.close`.
    """
    root = Path(directory)
    shards = []
    for index in range(shard_count(n_docs, shard_docs)):
        path = root / shard_name(index, fmt)
        if not path.is_file():
            raise IncompleteArtifactError(f"{path} is missing: every shard must be written before the manifest.")
        rows, nnz = _checked_header(path, int(n_latents))
        if rows != _shard_rows(index, n_docs, shard_docs):
            raise IncompleteArtifactError(
                f"{path} holds {rows} rows; expected {_shard_rows(index, n_docs, shard_docs)}."
            )
        shards.append({"name": path.name, "rows": rows, "nnz": nnz})
    _finish_folder(
        root,
        shards,
        n_latents=int(n_latents),
        fmt=fmt,
        shard_docs=int(shard_docs),
        meta=_jsonable(meta or {}),
        extra_meta=extra_meta,
        doc_ids=doc_ids,
        labels=labels,
    )


def _open_folder(directory: Path, *, overwrite: bool) -> None:
    """Create ``directory``; refuse complete codes (or clear them with ``overwrite``); drop half-written files."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / MANIFEST_NAME
    if manifest.exists() and not overwrite:
        read_manifest(directory, resume_hint="Pass overwrite=True (`textsae encode --overwrite`) to encode again")
        raise UserError(
            f"{directory} already holds complete codes ({manifest} exists). Use them as they are, "
            f"or pass overwrite=True to delete them and write new ones."
        )
    if overwrite:
        _clear(directory)
    for stale in directory.glob(".tmp-*"):  # half-written files of a killed run
        if stale.name.startswith((".tmp-shard-", f".tmp-{WRITER_STATE_NAME}.", f".tmp-{MANIFEST_NAME}.")):
            stale.unlink()


def _clear(directory: Path) -> None:
    # The manifest goes first: from then on the folder reads as incomplete, even if we are killed.
    for name in (MANIFEST_NAME, WRITER_STATE_NAME, *ROW_FILES.values()):
        (directory / name).unlink(missing_ok=True)
    for path in directory.iterdir():
        if _SHARD_RE.fullmatch(path.name) and path.is_file():
            path.unlink()
    logger.info("Cleared earlier codes in %s (overwrite=True).", directory)


def _existing_shards(directory: Path, fmt: str) -> dict[int, Path]:
    """The complete shards in ``directory`` by index (refusing shards of the other format)."""
    found: dict[int, Path] = {}
    for path in directory.iterdir():
        match = _SHARD_RE.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        if match.group(2) != fmt:
            raise UserError(
                f"{directory} holds {match.group(2)} shards of an interrupted run ({path.name}); this writer writes "
                f"fmt={fmt!r}. Pass fmt={match.group(2)!r} to resume, or overwrite=True to start again."
            )
        found[int(match.group(1))] = path
    return found


def _writer_state(n_latents: int, fmt: str, shard_docs: int, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "codes_format_version": CODES_FORMAT_VERSION,
        "n_latents": n_latents,
        "format": fmt,
        "shard_docs": shard_docs,
        "meta": meta,
    }


def _check_resumable(directory: Path, state: dict[str, Any], n_shards: int) -> None:
    """Shards of an interrupted run may be kept only under the settings they were written with (``writer.json``)."""
    try:
        saved = read_json(directory / WRITER_STATE_NAME)
    except (OSError, ValueError):
        raise UserError(
            f"{directory} holds {n_shards} shards but no readable {WRITER_STATE_NAME}, so it cannot be resumed safely. "
            f"Pass overwrite=True to start again."
        ) from None
    differences = [
        f"{key}={saved.get(key)!r} (this writer: {value!r})" for key, value in state.items() if saved.get(key) != value
    ]
    if differences:
        raise UserError(
            f"{directory} holds {n_shards} shards of an interrupted run written with different settings: "
            f"{'; '.join(differences)}. Pass the same settings and input to resume, or overwrite=True (`textsae encode --overwrite`) to start again."
        )


def _checked_header(path: Path, n_latents: int) -> tuple[int, int]:
    """``(rows, nnz)`` of a shard whose width must be ``n_latents``."""
    rows, n_columns, nnz = _shard_header(path)
    if n_columns != n_latents:
        raise UserError(
            f"{path} has {n_columns} columns; expected n_latents={n_latents}. Pass overwrite=True to start again."
        )
    return rows, nnz


def _write_shard_file(directory: Path, index: int, rows: sp.csr_matrix, n_latents: int, fmt: str) -> dict[str, Any]:
    """Write ``rows`` (canonical CSR) as shard ``index``, atomically; returns its manifest entry."""
    name = shard_name(index, fmt)
    if not rows.has_canonical_format:
        rows = rows.copy()
        rows.sum_duplicates()
    data = rows.data.astype(np.float16)
    indices = rows.indices.astype(_index_dtype(n_latents))
    indptr = rows.indptr.astype(np.int64)
    with atomic_path(directory / name) as tmp:
        if fmt == "npz":
            _write_npz_shard(tmp, data=data, indices=indices, indptr=indptr, n_latents=n_latents)
        else:
            _write_parquet_shard(tmp, data=data, indices=indices, indptr=indptr, n_latents=n_latents)
    logger.debug("Wrote %s (%d documents).", directory / name, rows.shape[0])
    return {"name": name, "rows": rows.shape[0], "nnz": int(indptr[-1])}


def _finish_folder(
    directory: Path,
    shards: list[dict[str, Any]],
    *,
    n_latents: int,
    fmt: str,
    shard_docs: int,
    meta: dict[str, Any],
    extra_meta: dict[str, Any] | None,
    doc_ids: np.ndarray | None,
    labels: np.ndarray | None,
) -> None:
    """The optional row files, then the manifest (last), then the writer's state goes."""
    extra = _jsonable(extra_meta or {})
    _check_meta_keys(extra, "extra_meta")
    n_docs = sum(shard["rows"] for shard in shards)
    row_files = []
    for key, values in (("doc_ids", doc_ids), ("labels", labels)):
        if values is None:
            continue
        array = _row_array(
            values, n_docs, f"CodesWriter.close({key}=...)", non_negative=key == "doc_ids", allow_text=key == "doc_ids"
        )
        path = directory / ROW_FILES[key]
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        row_files.append(path)
    full_meta = {
        **meta,
        **extra,
        "codes_format_version": CODES_FORMAT_VERSION,
        "n_docs": n_docs,
        "n_latents": n_latents,
        "format": fmt,
        "index_dtype": _index_dtype(n_latents).name,
        "value_dtype": "float16",
        "shard_docs": shard_docs,
        "nnz": sum(shard["nnz"] for shard in shards),
        "shards": list(shards),
        "row_files": [path.name for path in row_files],
    }
    write_manifest(directory, [directory / shard["name"] for shard in shards] + row_files, full_meta)
    (directory / WRITER_STATE_NAME).unlink(missing_ok=True)
    logger.info("Wrote codes for %d documents in %d shards to %s.", n_docs, len(shards), directory)


def _check_fp16_range(values: np.ndarray, directory: Path) -> None:
    if values.size and not (np.isfinite(values).all() and np.abs(values).max() <= _FP16_MAX):
        raise UserError(
            f"Codes written to {directory} hold NaN/inf or values beyond the float16 range "
            f"(max |value| = {np.nanmax(np.abs(values))!r}, expected <= {_FP16_MAX:g}); codes are stored as float16."
        )


def _check_writer_args(*, n_latents: int, fmt: str, shard_docs: int, meta: dict[str, Any]) -> None:
    if (
        isinstance(n_latents, bool)
        or not isinstance(n_latents, (int, np.integer))
        or not 1 <= n_latents <= _MAX_LATENTS
    ):
        raise UserError(
            f"The 'n_latents' parameter of CodesWriter must be an int in [1, {_MAX_LATENTS}]. Got {n_latents!r} instead."
        )
    if fmt not in ("npz", "parquet"):
        raise UserError(f"The 'fmt' parameter of CodesWriter must be 'npz' or 'parquet'. Got {fmt!r} instead.")
    if isinstance(shard_docs, bool) or not isinstance(shard_docs, (int, np.integer)) or shard_docs < 1:
        raise UserError(f"The 'shard_docs' parameter of CodesWriter must be an int >= 1. Got {shard_docs!r} instead.")
    _check_meta_keys(meta, "meta")


def _check_meta_keys(meta: dict[str, Any], what: str) -> None:
    clashing = sorted((_WRITER_KEYS | _MANIFEST_KEYS).intersection(meta))
    if clashing:
        raise UserError(
            f"CodesWriter {what} may not use the keys {clashing}: the writer sets them itself. Rename them."
        )


# --------------------------------------------------------------------------------- shard I/O


def _write_npz_shard(path: Path, *, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_latents: int) -> None:
    shape = np.array([len(indptr) - 1, n_latents], dtype=np.int64)
    write_npz(path, {"indices": indices, "indptr": indptr, "format": np.array(b"csr"), "shape": shape, "data": data})


def _write_parquet_shard(
    path: Path, *, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_latents: int
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    large = indptr[-1] > np.iinfo(np.int32).max
    list_array = pa.LargeListArray if large else pa.ListArray
    offsets = pa.array(indptr if large else indptr.astype(np.int32))
    table = pa.table(
        {
            "indices": list_array.from_arrays(offsets, pa.array(indices)),
            "values": list_array.from_arrays(offsets, pa.array(data)),
        }
    )
    table = table.replace_schema_metadata({"textsae.n_latents": str(n_latents), "textsae.nnz": str(int(indptr[-1]))})
    pq.write_table(table, path, compression="zstd")


def _shard_header(path: Path) -> tuple[int, int, int]:
    """``(rows, n_columns, nnz)`` of a shard, without reading its entries."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                rows, n_columns = (int(v) for v in archive["shape"])
                return rows, n_columns, int(archive["indptr"][-1])
        import pyarrow.parquet as pq

        metadata = pq.read_metadata(path)
        extra = metadata.metadata or {}
        return metadata.num_rows, int(extra[b"textsae.n_latents"]), int(extra[b"textsae.nnz"])
    except Exception as exc:  # any parse failure means the file is not a shard we wrote
        raise IncompleteArtifactError(
            f"{path} could not be read as a codes shard ({type(exc).__name__}: {exc}). Delete it and re-run to resume, "
            f"or pass overwrite=True to start again."
        ) from exc


def _read_shard(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(data, indices, indptr, n_columns)`` of a shard."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return archive["data"], archive["indices"], archive["indptr"], int(archive["shape"][1])
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        extra = table.schema.metadata or {}
        indices_column = table.column("indices").combine_chunks()
        offsets = np.asarray(indices_column.offsets, dtype=np.int64)
        indices = np.asarray(indices_column.flatten())
        data = np.asarray(table.column("values").combine_chunks().flatten())
        return data, indices, offsets - offsets[0], int(extra[b"textsae.n_latents"])
    except Exception as exc:  # a corrupt file of the right size: name it rather than fail deep in numpy
        raise IncompleteArtifactError(
            f"{path} could not be read as a codes shard ({type(exc).__name__}: {exc})."
        ) from exc


# ----------------------------------------------------------------------------------- reading


def codes_info(directory: str | os.PathLike[str], *, resume_hint: str = DEFAULT_RESUME_HINT) -> dict[str, Any]:
    """The manifest meta of a complete codes folder, plus ``disk_bytes`` (sum of shard sizes).

    Checks that every shard is present with the recorded size (no hashing, no reading).

    Args:
        directory: A folder written by :class:`CodesWriter`.
        resume_hint: How to finish the folder if it turns out incomplete.

    Returns:
        ``n_docs``, ``n_latents``, ``format``, ``index_dtype``, ``value_dtype``, ``shard_docs``,
        ``nnz``, ``shards`` (name, rows, nnz), the writer's meta and ``disk_bytes``.

    Raises:
        IncompleteArtifactError: The manifest or a shard is missing, or a size differs.
    """
    manifest = read_manifest(directory, resume_hint=resume_hint)
    if "shards" not in manifest or "n_latents" not in manifest:
        raise UserError(
            f"{directory} holds a manifest but not one of sparse codes (no 'shards'/'n_latents'). Expected a folder written by CodesWriter."
        )
    info = {key: value for key, value in manifest.items() if key not in _MANIFEST_KEYS}
    _check_codes_numbers(Path(directory), info)
    info["disk_bytes"] = sum(entry["bytes"] for entry in manifest["files"])
    return info


def _check_codes_numbers(root: Path, info: dict[str, Any]) -> None:
    """The manifest's counts are data: non-negative ints that add up, shards named in writing order, and no more
    than the entries a ``n_docs × n_latents`` matrix can hold, all before anything is allocated from them."""

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    def refuse(what: str) -> IncompleteArtifactError:
        return IncompleteArtifactError(f"{root / MANIFEST_NAME}: {what}. Delete {root} and run the command again.")

    n_docs, n_latents, nnz, shards = info.get("n_docs"), info.get("n_latents"), info.get("nnz"), info.get("shards")
    if not (whole(n_docs) and whole(n_latents) and whole(nnz) and isinstance(shards, list)):
        raise refuse(
            f"n_docs, n_latents and nnz must be ints >= 0 and shards a list; got {n_docs!r}, {n_latents!r}, {nnz!r}"
        )
    for index, shard in enumerate(shards):
        if not isinstance(shard, dict) or not whole(shard.get("rows")) or not whole(shard.get("nnz")):
            raise refuse(f"shard entry {index} is {shard!r}; expected rows and nnz as ints >= 0")
        match = _SHARD_RE.fullmatch(str(shard.get("name")))
        if match is None or int(match.group(1)) != index:
            raise refuse(
                f"shard entry {index} is named {shard.get('name')!r}; expected {shard_name(index, 'npz')} (or .parquet)"
            )
    if sum(s["rows"] for s in shards) != n_docs or sum(s["nnz"] for s in shards) != nnz:
        raise refuse(
            f"the shards hold {sum(s['rows'] for s in shards)} rows and {sum(s['nnz'] for s in shards)} entries; "
            f"n_docs={n_docs} and nnz={nnz} say otherwise"
        )
    if nnz > n_docs * n_latents:
        raise refuse(f"nnz={nnz} is more than n_docs × n_latents = {n_docs * n_latents}")


@overload
def load_codes(
    directory: str | os.PathLike[str],
    *,
    verify_hashes: bool = ...,
    resume_hint: str = ...,
    with_ids: Literal[False] = ...,
) -> sp.csr_matrix: ...


@overload
def load_codes(
    directory: str | os.PathLike[str], *, verify_hashes: bool = ..., resume_hint: str = ..., with_ids: Literal[True]
) -> CodesWithIds: ...


def load_codes(
    directory: str | os.PathLike[str],
    *,
    verify_hashes: bool = True,
    resume_hint: str = DEFAULT_RESUME_HINT,
    with_ids: bool = False,
) -> sp.csr_matrix | CodesWithIds:
    """Read all shards of a complete codes folder into one CSR matrix.

    Args:
        directory: A folder written by :class:`CodesWriter`.
        verify_hashes: Also check every file's SHA-256 against the manifest (on by default: a same-size edit is
            refused; it reads each file once more, about 1 s per GB, and False skips it for trusted folders).
        resume_hint: How to finish the folder if it turns out incomplete.
        with_ids: Return :class:`CodesWithIds` ``(codes, doc_ids, labels)`` instead of the codes alone, so rows can
            be matched to the input they came from (``textsae encode`` drops empty texts).

    Returns:
        ``(n_docs, n_latents)`` CSR matrix with float32 values (the stored float16 values, exactly)
        and int32 indices (int64 only beyond 2**31 - 1 entries), rows in writing order.

    Raises:
        IncompleteArtifactError: The manifest or a shard is missing, a size or hash differs, or a
            shard does not hold what the manifest says.
    """
    root = Path(directory)
    info = codes_info(root, resume_hint=resume_hint)
    if verify_hashes:
        read_manifest(root, verify_hashes=True, resume_hint=resume_hint)
    n_docs, n_latents, total_nnz = int(info["n_docs"]), int(info["n_latents"]), int(info["nnz"])
    index_dtype = np.int32 if total_nnz <= np.iinfo(np.int32).max else np.int64
    needed = (n_docs + 1 + total_nnz) * np.dtype(index_dtype).itemsize + 4 * total_nnz
    free = available_memory("cpu")
    if free is not None and needed > free:
        raise UserError(
            f"{root}: its manifest says {n_docs:,} documents and {total_nnz:,} entries, {needed / 2**30:.1f} GiB in memory, "
            f"but {free / 2**30:.1f} GiB is free; read it shard by shard, or check the folder."
        )
    data = np.empty(total_nnz, dtype=np.float32)
    indices = np.empty(total_nnz, dtype=index_dtype)
    indptr = np.zeros(n_docs + 1, dtype=index_dtype)
    row, entry = 0, 0
    for shard in info["shards"]:
        path = root / shard["name"]  # codes_info has checked that it exists with the recorded size
        shard_data, shard_indices, shard_indptr, n_columns = _read_shard(path)
        rows, nnz = len(shard_indptr) - 1, len(shard_data)
        if (
            (rows, nnz, n_columns) != (shard["rows"], shard["nnz"], n_latents)
            or row + rows > n_docs
            or entry + nnz > total_nnz
        ):
            raise IncompleteArtifactError(
                f"{path} holds {rows} rows, {nnz} entries and {n_columns} columns; {MANIFEST_NAME} expects "
                f"{shard['rows']}, {shard['nnz']} and {n_latents}. Delete {root} and run the command again."
            )
        _check_shard_structure(path, root, shard_data, shard_indices, shard_indptr, n_latents)
        data[entry : entry + nnz] = shard_data
        indices[entry : entry + nnz] = shard_indices
        indptr[row + 1 : row + rows + 1] = shard_indptr[1:] + entry
        row, entry = row + rows, entry + nnz
    if row != n_docs:
        raise IncompleteArtifactError(
            f"{root}: shards hold {row} rows; {MANIFEST_NAME} expects n_docs={n_docs}. Delete {root} and run the command again."
        )
    codes = sp.csr_matrix((data, indices, indptr), shape=(n_docs, n_latents), copy=False)
    if not with_ids:
        return codes
    arrays = {key: _read_row_file(root, info, key, n_docs) for key in ROW_FILES}
    doc_ids = arrays["doc_ids"] if arrays["doc_ids"] is not None else np.arange(n_docs, dtype=np.int64)
    return CodesWithIds(codes, doc_ids, arrays["labels"])


def _check_shard_structure(
    path: Path, root: Path, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_latents: int
) -> None:
    """A shard is data even when its manifest agrees: row offsets that start at 0, never fall and end at its entry
    count, column indices inside the code, finite values (scipy trusts all of these, and reads out of bounds if not)."""
    problems = []
    if len(indptr) == 0 or indptr[0] != 0 or indptr[-1] != len(data) or np.any(np.diff(indptr) < 0):
        problems.append("its row offsets do not run from 0 to its entry count without falling")
    if len(indices) != len(data) or (len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n_latents)):
        problems.append(f"its column indices leave 0 … {n_latents - 1}")
    if not np.isfinite(data).all():
        problems.append("it holds NaN or infinite values")
    if problems:
        raise IncompleteArtifactError(f"{path}: {'; '.join(problems)}. Delete {root} and run the command again.")


def _row_array(values: Any, n_rows: int, what: str, *, non_negative: bool, allow_text: bool = False) -> np.ndarray:
    array = np.asarray(values)
    if allow_text and array.shape == (n_rows,) and array.dtype.kind == "U":  # ids from a column the user named
        return array
    if array.shape != (n_rows,) or not np.issubdtype(array.dtype, np.integer):
        raise UserError(
            f"{what} must hold one int per code row ({n_rows}); got {array.dtype} of shape {array.shape} instead."
        )
    if non_negative and n_rows and int(array.min()) < 0:
        raise UserError(f"{what} must be ints >= 0; got {int(array.min())}.")
    return array.astype(np.int64)


def _read_row_file(root: Path, info: dict[str, Any], key: str, n_docs: int) -> np.ndarray | None:
    """A per-row array named in the manifest (checked: int64, one per row), or None when the folder has none."""
    name = ROW_FILES[key]
    if name not in (info.get("row_files") or []):
        return None
    path = root / name  # codes_info has checked that it exists with the recorded size
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise IncompleteArtifactError(
            f"{path} is not a readable .npy array ({error}). Delete {root} and run the command again."
        ) from None
    try:
        return _row_array(array, n_docs, str(path), non_negative=key == "doc_ids", allow_text=key == "doc_ids")
    except UserError as error:
        raise IncompleteArtifactError(f"{error} Delete {root} and run the command again.") from None
