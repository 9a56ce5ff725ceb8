"""``manifest.json``: the last file written into an artefact folder, listing every other file.

A folder is *complete* exactly when its manifest exists, parses, says ``"complete": true`` and
every file it lists is present with the recorded size (and, when asked, SHA-256). Writers put
their files in place first (each atomically) and the manifest last, so a folder left behind by
an interrupted command has no manifest and every reader refuses it with
:class:`~textsae.errors.IncompleteArtifactError`.

Layout::

    {"format_version": 1, "complete": true,
     "files": [{"name": "shard-00000.npz", "bytes": 1234, "sha256": "..."}, ...],
     ...meta}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from textsae._io import atomic_write_json, kill_point, read_json, sha256_file
from textsae.errors import IncompleteArtifactError, UserError

__all__ = ["DEFAULT_RESUME_HINT", "MANIFEST_FORMAT_VERSION", "MANIFEST_NAME", "read_manifest", "write_manifest"]

MANIFEST_NAME = "manifest.json"
"""File name of the manifest inside an artefact folder."""

MANIFEST_FORMAT_VERSION = 1
"""Version of the manifest layout; readers refuse a newer one."""

DEFAULT_RESUME_HINT = "Re-run the same command to resume"
"""What :func:`read_manifest` tells the user to do about an incomplete folder, unless told otherwise."""

_RESERVED_KEYS = frozenset({"format_version", "complete", "files"})


def write_manifest(directory: str | os.PathLike[str], files: list[Path], meta: dict[str, Any]) -> None:
    """Write ``manifest.json`` into ``directory`` (atomically); call it after every listed file is in place.

    Args:
        directory: The artefact folder.
        files: The files that make up the artefact, absolute or relative to ``directory``; each
            must lie inside ``directory``. Their size and SHA-256 are recorded.
        meta: Extra top-level keys (JSON-serialisable). May not use ``format_version``,
            ``complete`` or ``files``.

    Raises:
        ValueError: ``meta`` uses a reserved key, or a file lies outside ``directory``.
        FileNotFoundError: A listed file does not exist.
    """
    kill_point("manifest")
    root = Path(directory)
    clashing = sorted(_RESERVED_KEYS.intersection(meta))
    if clashing:
        raise ValueError(f"write_manifest: meta may not use the reserved keys {clashing}; rename them.")
    entries = []
    for file in files:
        given = Path(file)
        # Callers pass paths either relative to ``directory`` or already joined with it (maybe relatively).
        path = given if given.is_absolute() or given.parts[: len(root.parts)] == root.parts else root / given
        try:
            name = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            raise ValueError(
                f"write_manifest: {path} is not inside {root}; manifest files must lie in the artefact folder."
            ) from None
        entries.append({"name": name, "bytes": path.stat().st_size, "sha256": sha256_file(path)})
    manifest = {"format_version": MANIFEST_FORMAT_VERSION, "complete": True, "files": entries, **meta}
    atomic_write_json(root / MANIFEST_NAME, manifest)


def read_manifest(
    directory: str | os.PathLike[str],
    *,
    verify_hashes: bool = False,
    resume_hint: str = DEFAULT_RESUME_HINT,
) -> dict[str, Any]:
    """Read ``directory/manifest.json`` and check that the folder matches it.

    Sizes are always checked (one ``stat`` per file); hashes only with ``verify_hashes`` since that
    reads every byte (about 1 s per GB on one core of this project's CPU).

    Args:
        directory: The artefact folder.
        verify_hashes: Also recompute each file's SHA-256 and compare it with the manifest.
        resume_hint: The sentence telling the user how to finish an interrupted folder
            (e.g. ``"Re-run `textsae encode RECIPE` to resume"``).

    Returns:
        The whole manifest (``format_version``, ``complete``, ``files`` and the writer's meta).

    Raises:
        UserError: ``directory`` does not exist or is not a folder.
        IncompleteArtifactError: The manifest is missing, unreadable, not marked complete or
            newer than this version understands; or a listed file is missing or differs in size
            or hash.
    """
    root = Path(directory)
    if not root.is_dir():
        raise UserError(
            f"Artefact folder {root} does not exist (or is not a folder). Expected a folder holding {MANIFEST_NAME}."
        )
    hint = resume_hint.strip().rstrip(".")
    hint = hint[:1].upper() + hint[1:]  # it follows a full stop
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise IncompleteArtifactError(
            f"{root} is incomplete: it has no {MANIFEST_NAME}, so the command that writes it was probably interrupted. {hint}."
        )
    try:
        manifest = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise IncompleteArtifactError(
            f"{path} could not be read as JSON ({exc}). {hint}, or delete {root} and run it again."
        ) from exc
    _check_header(path, manifest, hint)
    for entry in manifest["files"]:
        _check_file(root, entry, verify_hashes=verify_hashes)
    return manifest


def _check_header(path: Path, manifest: Any, hint: str) -> None:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise IncompleteArtifactError(
            f"{path} is not a textsae manifest: expected a JSON object with a 'files' list. Delete {path.parent} and run the command again."
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > MANIFEST_FORMAT_VERSION:
        raise IncompleteArtifactError(
            f"{path} has format_version={version!r}; this textsae reads format_version <= {MANIFEST_FORMAT_VERSION}. Upgrade textsae or re-create the folder."
        )
    if manifest.get("complete") is not True:
        raise IncompleteArtifactError(
            f"{path} is not marked complete (got complete={manifest.get('complete')!r}, expected true). {hint}."
        )


def _check_file(root: Path, entry: Any, *, verify_hashes: bool) -> None:
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise IncompleteArtifactError(
            f"{root / MANIFEST_NAME} lists a file entry {entry!r}; expected a plain file name inside {root}. "
            f"Delete {root} and run the command again."
        )
    file = root / name
    if not file.is_file():
        raise IncompleteArtifactError(
            f"{root} is incomplete: {name} is listed in {MANIFEST_NAME} but missing, so files were removed after it was written. "
            f"Delete {root} and run the command again."
        )
    size = file.stat().st_size
    if size != entry.get("bytes"):
        raise IncompleteArtifactError(
            f"{file} has {size} bytes; {MANIFEST_NAME} expects {entry.get('bytes')}. It was truncated or changed after it was written: "
            f"delete {root} and run the command again."
        )
    if verify_hashes:
        digest = sha256_file(file)
        if digest != entry.get("sha256"):
            raise IncompleteArtifactError(
                f"{file} has SHA-256 {digest}; {MANIFEST_NAME} expects {entry.get('sha256')}. It was changed after it was written: "
                f"delete {root} and run the command again."
            )
