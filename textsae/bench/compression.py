"""On-disk sizes of a corpus in several stored forms: raw text (gzip, zstd), arrays and codes folders.

``zstandard`` is optional: without it the zstd column is ``None`` and the report says so.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from textsae._io import atomic_path

__all__ = ["GZIP_LEVEL", "ZSTD_LEVEL", "compressed_sizes", "save_stored", "zstd_available"]

GZIP_LEVEL = 9
"""``gzip -9``."""
ZSTD_LEVEL = 19
"""``zstd -19`` (the highest regular level)."""


def zstd_available() -> bool:
    """Whether the optional ``zstandard`` package is importable."""
    return importlib.util.find_spec("zstandard") is not None


def compressed_sizes(data: bytes) -> dict[str, int | None]:
    """``{"raw": len, "gzip": gzip -9 size, "zstd": zstd -19 size or None}`` of one byte string."""
    sizes: dict[str, int | None] = {
        "raw": len(data),
        "gzip": len(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)),
        "zstd": None,
    }
    if zstd_available():
        import zstandard

        sizes["zstd"] = len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data))
    return sizes


def files_bytes(paths: Iterable[Path]) -> bytes:
    """The concatenated contents of ``paths`` (sorted), e.g. every shard of a codes folder."""
    return b"".join(Path(p).read_bytes() for p in sorted(paths))


def text_bytes(texts: list[str]) -> bytes:
    """Documents as UTF-8, one per line (newlines inside a document kept): what a plain text file would hold."""
    return "\n".join(texts).encode("utf-8")


def save_stored(stored: Any, path: Path, *, n_columns: int | None = None) -> list[Path]:
    """Write a representation's stored test rows; returns the files written.

    Dense arrays go to ``<path>.npy`` in their own dtype (fp16, int8, packed bits as uint8). Sparse
    matrices go to a codes folder ``<path>/`` (uint16/int32 indices, fp16 values, CSR shards and a
    manifest), the format ``textsae encode`` writes; only the shard files are returned.
    """
    from textsae.store.codes import CodesWriter
    from textsae.store.manifest import MANIFEST_NAME

    if sp.issparse(stored):
        matrix = sp.csr_matrix(stored)
        with CodesWriter(
            path, n_latents=n_columns or matrix.shape[1], shard_docs=max(matrix.shape[0], 1), overwrite=path.exists()
        ) as writer:
            writer.write(matrix)
        return sorted(
            p for p in path.iterdir() if p.is_file() and p.name != MANIFEST_NAME
        )  # the shards: the manifest is bookkeeping
    target = path.with_suffix(".npy")
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(stored))
    return [target]
