"""Small shared helpers: atomic writes, hashing, JSON, device choice and logging."""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import io
import json
import logging
import os
import re
import signal
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger("textsae")


KILL_POINT_ENV = "TEXTSAE_TEST_KILL_AT"
"""Test hook (resume tests only): ``POINT`` or ``POINT#N`` makes the process SIGKILL itself the N-th time it reaches
``POINT`` (a glob), e.g. ``write:checkpoint.safetensors#2``, ``manifest``, ``train-step#7``, ``encode-batch#3``."""

_kill_counts: dict[str, int] = {}


def kill_point(name: str) -> None:
    """Where resume tests may kill the process (see :data:`KILL_POINT_ENV`); does nothing unless that variable is set.

    Named points: ``write:<file name>`` (a file's temporary copy is complete but not yet renamed into
    place), ``manifest`` (every file of a folder is in place, its manifest not yet written),
    ``train-step`` (after each optimiser step) and ``encode-batch`` (after each encoded batch).
    """
    spec = os.environ.get(KILL_POINT_ENV)
    if not spec:
        return
    point, _, nth = spec.partition("#")
    if not fnmatch.fnmatchcase(name, point):
        return
    _kill_counts[point] = _kill_counts.get(point, 0) + 1
    if _kill_counts[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _remove_stale_temporaries(target: Path) -> None:
    """Delete temporary copies of ``target`` left by killed processes (their pid, in the name, is gone)."""
    for stale in target.parent.glob(f".tmp-{glob.escape(target.name)}.*"):
        pid = stale.name[len(f".tmp-{target.name}.") :].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            stale.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed; after a kill it is left as
    ``.tmp-<name>.<pid>.<random>``, a name no reader accepts, and the next write of ``path`` removes
    it. So ``path`` is always either the old complete file or the new complete file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{target.name}.{os.getpid()}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the permissions a plain open() would
        kill_point(f"write:{target.name}")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


_OS_ERROR_CODE = re.compile(r"\(os error (\d+)\)")


def atomic_save_safetensors(path: str | os.PathLike[str], tensors: dict[str, Any], metadata: dict[str, str]) -> None:
    """Write torch ``tensors`` to ``path`` as safetensors, atomically.

    safetensors reports a failed write (a full disk, a lost mount) as ``SafetensorError`` with the
    errno only in its text; it is raised here as the ``OSError`` it is, naming ``path``, so callers
    and the CLI treat it like any other file-system error.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as error:
            match = _OS_ERROR_CODE.search(str(error))
            if match is None:
                raise
            code = int(match.group(1))
            raise OSError(code, os.strerror(code), str(path)) from error


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamp: the same arrays always give the same bytes


def write_npz(path: str | os.PathLike[str], arrays: dict[str, Any]) -> None:
    """Write an uncompressed ``.npz`` (no pickle) whose bytes depend only on ``arrays``.

    ``np.savez`` stamps the current time into the zip, so two runs that compute the same arrays
    would write different files; here every entry carries a fixed date instead.
    """
    import numpy as np

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_json_checked(path: str | os.PathLike[str], expected: str) -> Any:
    """Read a JSON file; an unreadable or malformed file raises ``UserError`` naming it and what was expected."""
    try:
        return read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        from textsae.errors import UserError

        raise UserError(f"{path}: cannot be read as JSON ({exc}). Expected {expected}.") from exc


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def hash_texts(digest: Any, texts: Iterable[str]) -> None:
    """Feed documents into a ``hashlib`` digest, length-prefixed UTF-8, so no two lists of texts collide by concatenation."""
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)


def stable_hash(obj: Any, length: int = 12) -> str:
    """Short hex hash of a JSON-serialisable object, independent of dict order."""
    payload = json.dumps(obj, sort_keys=True, default=_json_default).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:length]


def resolve_device(device: str) -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is present, else ``"cpu"``; other values pass through."""
    import torch

    from textsae.errors import UserError

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"device={device!r} is not a device; expected auto, cpu, cuda or cuda:N.") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"device={device!r} was asked for, but no CUDA GPU is available; use device=auto or device=cpu."
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UserError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s) (cuda:0 ..); choose one of them."
            )
    return device


def library_versions() -> dict[str, str]:
    """Versions of the libraries an artefact depends on, recorded beside it."""
    from importlib import metadata

    versions = {}
    for name in ("textsae", "torch", "numpy", "scipy", "scikit-learn", "tokenizers", "transformers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
