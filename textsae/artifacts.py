"""Saving and loading a run's artefacts, each a folder completed by a manifest written last."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from textsae._io import atomic_path, write_npz
from textsae.errors import IncompleteArtifactError, UserError
from textsae.featurize.base import Featurizer, load_featurizer
from textsae.sae import SparseAutoencoder, load_sae
from textsae.store.manifest import MANIFEST_NAME, read_manifest, write_manifest


def is_complete(directory: Path) -> bool:
    """True when ``directory`` holds a manifest whose files are all present with the listed sizes."""
    if not (directory / MANIFEST_NAME).exists():
        return False
    try:
        read_manifest(directory)
    except IncompleteArtifactError:
        return False
    return True


def _files_in(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith(".tmp-")
    )


def _require_listed(directory: Path, manifest: dict) -> None:
    """Every file of an artefact folder must be in its manifest: a manifest that lists less (even nothing) would
    otherwise vouch for files it never hashed."""
    listed = {entry["name"] for entry in manifest["files"]}
    unlisted = [p.name for p in _files_in(directory) if p.name not in listed and not p.name.startswith(".")]
    if unlisted:
        raise IncompleteArtifactError(
            f"{directory} holds files its {MANIFEST_NAME} does not list: {unlisted[:5]}. It was changed after it was "
            f"written: delete {directory} and run the command again."
        )


def _start_rewrite(directory: Path) -> None:
    """Remove an earlier manifest before files are replaced, so a folder half-way through a rewrite reads as incomplete.

    Without this, a kill between replacing the files and writing the new manifest would leave the
    old manifest beside new files; it checks only sizes, so it could accept them.
    """
    (directory / MANIFEST_NAME).unlink(missing_ok=True)


def save_sae_artifact(sae: SparseAutoencoder, directory: Path, meta: dict) -> None:
    """``save_pretrained`` plus a manifest, so an interrupted save is never mistaken for a finished one."""
    _start_rewrite(directory)
    sae.save_pretrained(directory)
    write_manifest(directory, _files_in(directory), {"kind": "sae", **meta})


def load_sae_artifact(directory: Path) -> SparseAutoencoder:
    """Load a trained SAE folder, checking its manifest first."""
    if not directory.exists():
        raise UserError(f"No trained SAE at {directory}; run `textsae train` (or `textsae run`) first.")
    # Hashes too: a weights file changed in place keeps its size (flipped sign bits silently change the codes).
    # SHA-256 reads ~1 GB/s on the development CPU: about a second for a 30,000-term × 4,096-latent SAE.
    manifest = read_manifest(
        directory, verify_hashes=True, resume_hint="re-run `textsae train` with the same recipe to finish training"
    )
    _require_listed(directory, manifest)
    return load_sae(directory)


def sae_fingerprint(directory: Path) -> str:
    """SHA-256 of a trained SAE's weights, from its manifest: ties codes to the SAE that made them."""
    if not directory.exists():
        raise UserError(f"No trained SAE at {directory}; run `textsae train` (or `textsae run`) first.")
    manifest = read_manifest(directory, resume_hint="re-run `textsae train` with the same recipe to finish training")
    return next((f["sha256"] for f in manifest["files"] if f["name"].endswith(".safetensors")), "")


def save_featurizer_artifact(featurizer: Featurizer, directory: Path) -> None:
    """``save_pretrained`` plus a manifest."""
    _start_rewrite(directory)
    featurizer.save_pretrained(directory)
    write_manifest(directory, _files_in(directory), {"kind": "featurizer"})


def load_featurizer_artifact(
    directory: Path, *, trust_remote_code: bool = False, allow_pickle: bool = False
) -> Featurizer:
    """Load a fitted featurizer folder, checking its manifest first; the opt-ins come from the caller only."""
    if not directory.exists():
        raise UserError(f"No fitted featurizer at {directory}; run `textsae featurize` (or `textsae run`) first.")
    manifest = read_manifest(
        directory, verify_hashes=True, resume_hint="re-run `textsae featurize` with the same recipe"
    )
    _require_listed(directory, manifest)
    return load_featurizer(directory, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)


def save_feature_matrices(directory: Path, matrices: dict[str, sp.csr_matrix | np.ndarray], meta: dict) -> None:
    """Write each matrix (``<name>.npz`` CSR or ``<name>.npy`` dense) atomically, then the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    _start_rewrite(directory)
    files = []
    for name, matrix in matrices.items():
        path = directory / (f"{name}.npz" if sp.issparse(matrix) else f"{name}.npy")
        with atomic_path(path) as tmp:
            if sp.issparse(matrix):
                csr = sp.csr_matrix(matrix)
                shape = np.array(csr.shape, dtype=np.int64)
                write_npz(
                    tmp,
                    {
                        "indices": csr.indices,
                        "indptr": csr.indptr,
                        "format": np.array(b"csr"),
                        "shape": shape,
                        "data": csr.data,
                    },
                )
            else:
                with open(tmp, "wb") as handle:  # a handle: np.save would append ".npy" to the temporary name
                    np.save(handle, matrix, allow_pickle=False)
        files.append(path)
    write_manifest(directory, files, {"kind": "features", **meta})


def load_feature_matrices(directory: Path) -> dict[str, sp.csr_matrix | np.ndarray]:
    """Inverse of :func:`save_feature_matrices`, after checking every file's SHA-256 against the manifest."""
    manifest = read_manifest(
        directory, verify_hashes=True, resume_hint="re-run `textsae featurize` with the same recipe"
    )
    out: dict[str, sp.csr_matrix | np.ndarray] = {}
    for entry in manifest["files"]:
        path = directory / entry["name"]
        try:
            out[path.stem] = sp.load_npz(path).tocsr() if path.suffix == ".npz" else np.load(path, allow_pickle=False)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise IncompleteArtifactError(
                f"{path} cannot be read as a feature matrix ({type(error).__name__}: {error}); it was damaged after it was written. "
                f"Delete {directory} and re-run `textsae featurize` with the same recipe."
            ) from None
    return out
