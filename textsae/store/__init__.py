"""Artefacts on disk: manifests (written last, so interrupted folders show up) and sharded sparse codes."""

from __future__ import annotations

from textsae.store.codes import (
    CODES_FORMAT_VERSION,
    WRITER_STATE_NAME,
    CodesWithIds,
    CodesWriter,
    codes_info,
    load_codes,
    shard_name,
)
from textsae.store.manifest import (
    DEFAULT_RESUME_HINT,
    MANIFEST_FORMAT_VERSION,
    MANIFEST_NAME,
    read_manifest,
    write_manifest,
)

__all__ = [
    "CODES_FORMAT_VERSION",
    "DEFAULT_RESUME_HINT",
    "MANIFEST_FORMAT_VERSION",
    "MANIFEST_NAME",
    "WRITER_STATE_NAME",
    "CodesWithIds",
    "CodesWriter",
    "codes_info",
    "load_codes",
    "read_manifest",
    "shard_name",
    "write_manifest",
]
