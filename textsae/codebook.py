"""A codebook: a fitted featurizer and trained SAE with the config and report that made them, shared as one folder.

The folder :meth:`Codebook.save_pretrained` writes is the layout of a Hugging Face Hub model repository, and of a
run directory as ``textsae encode`` reads it::

    README.md          model card: YAML metadata (library, tags, base model, datasets, metrics) and usage
    codebook.json      format marker and what the codebook encodes (kind, d_in, n_latents, k)
    config.yaml        the resolved recipe that trained it
    report.json        its evaluation report, when the run was evaluated
    featurizer/        the fitted featurizer (its own manifest)
    sae/               the trained SAE (its own manifest)
    manifest.json      sizes and SHA-256 of the top-level files, written last

What :func:`from_pretrained` reads — a local folder or a hub download — is untrusted: every file is checked against
its manifest, and a hidden-states featurizer may run remote code or load pickle weights only when the caller passes
``trust_remote_code`` / ``allow_pickle``.
"""

from __future__ import annotations

import copy
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import scipy.sparse as sp

from textsae import __version__
from textsae._io import atomic_write_json, atomic_write_text, logger, read_json_checked
from textsae.artifacts import load_featurizer_artifact, load_sae_artifact, save_featurizer_artifact, save_sae_artifact
from textsae.config.safe_yaml import YamlLimitError, load_yaml
from textsae.errors import HubUnreachableError, UserError
from textsae.featurize.base import Featurizer
from textsae.model_card import render_model_card
from textsae.sae import SparseAutoencoder
from textsae.store.manifest import MANIFEST_NAME, read_manifest, write_manifest

__all__ = ["CODEBOOK_NAME", "Codebook", "from_pretrained"]

CODEBOOK_NAME = "codebook.json"
FORMAT = "textsae-codebook"
FORMAT_VERSION = 1
HUB_TIMEOUT_S = 5.0


@dataclass
class Codebook:
    """A fitted featurizer and a trained SAE: texts in, sparse codes out.

    Attributes:
        featurizer: The fitted featurizer (TF-IDF or hidden states).
        sae: The trained sparse autoencoder, on the CPU.
        config: The resolved recipe that trained it, as a plain mapping.
        report: Its evaluation report (``report.json``), or None when the run was not evaluated.

    Examples:
        >>> codebook = textsae.from_pretrained("runs/quickstart/1a2b3c4d5e")  # a run, a saved codebook or a hub id
        >>> codes = codebook.encode(["a quietly moving film"])  # scipy.sparse CSR, one row per text
        >>> codebook.save_pretrained("my-codebook")  # or codebook.push_to_hub("me/my-codebook")
    """

    featurizer: Featurizer
    sae: SparseAutoencoder
    config: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] | None = None

    @classmethod
    def load(cls, directory: str | Path, *, trust_remote_code: bool = False, allow_pickle: bool = False) -> Codebook:
        """Load a run directory or a saved codebook folder (both hold ``featurizer/`` and ``sae/``).

        A codebook folder is verified whole: its manifest must list every top-level file and match it, its marker
        must be this format, and ``featurizer/`` and ``sae/`` must match theirs. A run directory has no top-level
        manifest: its ``config.yaml`` and ``report.json`` are read as they are.

        Args:
            directory: The folder.
            trust_remote_code: Let a hidden-states featurizer's model run code from its repository.
            allow_pickle: Let it load pickle-only weights.

        Raises:
            UserError: The folder lacks a part, or a file differs from its manifest.
        """
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise UserError(f"{root} is not a folder; expected a run directory or a codebook saved by save_pretrained.")
        if not (root / "featurizer").is_dir() or not (root / "sae").is_dir():
            raise UserError(
                f"{root} holds no featurizer/ and sae/, so it is neither a trained run nor a saved codebook "
                "(`textsae run` prints a run's folder; save_pretrained writes a codebook)."
            )
        listed = verify_codebook_folder(root)
        featurizer = load_featurizer_artifact(
            root / "featurizer", trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
        )
        sae = load_sae_artifact(root / "sae").cpu()
        config = _read_config(root / "config.yaml") if listed is None or "config.yaml" in listed else {}
        report = None
        if (root / "report.json").is_file() and (listed is None or "report.json" in listed):
            report = read_json_checked(root / "report.json", "report")
        return cls(featurizer, sae, config, report if isinstance(report, dict) else None)

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 1024, device: str = "auto", k: int | None = None
    ) -> sp.csr_matrix:
        """Sparse codes of ``texts``: ``(n_texts, n_latents)`` float32 CSR, one row per text in order; a text with no
        words gets an empty row. ``k`` reads a TopK SAE at another number of active latents."""
        from textsae.encode import encode_in_memory

        return encode_in_memory(self.featurizer, self.sae, texts, batch_size=batch_size, device=device, k=k)

    def save_pretrained(self, directory: str | Path, *, repo_id: str | None = None) -> Path:
        """Write the codebook into ``directory`` in the hub layout (see the module docstring) and return it.

        The folder must be new, empty, or hold an earlier codebook, which is replaced whole. Local folders are left
        out of the published copies of the config and report (``run.dir``, ``data.path`` becomes its last part).

        Args:
            directory: The folder.
            repo_id: The hub id the model card's usage snippet names (default: a placeholder).
        """
        root = Path(directory).expanduser()
        if root.exists() and not root.is_dir():
            raise UserError(f"{root} is a file; save_pretrained needs a folder (it is created if missing).")
        if root.exists() and any(root.iterdir()) and not _holds_codebook(root):
            raise UserError(f"{root} is not empty and holds no codebook; choose a new or empty folder.")
        model = getattr(self.featurizer, "model", None)
        if _is_local_folder(model):
            logger.warning(
                "The codebook names the local model folder %s: elsewhere from_pretrained needs that folder too. "
                "Train with featurizer.model=<hub id> for a codebook that loads anywhere.",
                model,
            )
        card = self.model_card(repo_id)  # before anything is written: a report it cannot read fails here
        root.mkdir(parents=True, exist_ok=True)
        (root / MANIFEST_NAME).unlink(missing_ok=True)  # from here until the end the folder reads as incomplete
        for name in (CODEBOOK_NAME, "config.yaml", "report.json", "README.md"):  # an earlier codebook's files
            (root / name).unlink(missing_ok=True)
        for part in ("featurizer", "sae"):
            shutil.rmtree(root / part, ignore_errors=True)
        save_featurizer_artifact(self.featurizer, root / "featurizer")
        save_sae_artifact(self.sae, root / "sae", {"source": "codebook"})
        files = [root / CODEBOOK_NAME, root / "config.yaml", root / "README.md"]
        atomic_write_json(root / CODEBOOK_NAME, self._marker())
        atomic_write_text(root / "config.yaml", _dump_config(_publishable_config(self.config)))
        if self.report is not None:
            atomic_write_json(root / "report.json", _publishable_report(self.report))
            files.append(root / "report.json")
        atomic_write_text(root / "README.md", card)
        write_manifest(root, files, {"kind": "codebook"})
        return root

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        token: str | None = None,
        revision: str | None = None,
        commit_message: str = "Upload textsae codebook",
    ) -> str:
        """Save the codebook and upload it to the Hugging Face Hub as model repository ``repo_id``.

        Returns:
            The URL of the commit.

        Raises:
            HubUnreachableError: The hub cannot be reached (one line naming the local alternative).
        """
        from huggingface_hub import HfApi

        _require_hub(
            f"push codebook to {repo_id!r}",
            "save it to a folder instead (`textsae export RUN --to codebook --out DIR`, or save_pretrained(DIR))",
        )
        with tempfile.TemporaryDirectory(prefix="textsae-codebook-") as folder:
            saved = self.save_pretrained(Path(folder) / "codebook", repo_id=repo_id)  # before the repo exists
            api = HfApi(token=token)
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=str(saved),
                repo_type="model",
                revision=revision,
                commit_message=commit_message,
                delete_patterns=["*"],  # files of an earlier upload that this codebook does not have go
            )
        return str(getattr(commit, "commit_url", commit))

    def model_card(self, repo_id: str | None = None) -> str:
        """The README.md of the codebook: hub metadata, what it is, its measured quality and how to use it."""
        report = _publishable_report(self.report) if self.report is not None else None
        return render_model_card(self._marker(), _publishable_config(self.config), report, repo_id=repo_id)

    def _marker(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "textsae_version": __version__,
            "featurizer_kind": _featurizer_kind(self.featurizer),
            "model": getattr(self.featurizer, "model", None),
            "model_is_local_folder": _is_local_folder(getattr(self.featurizer, "model", None)),
            "architecture": self.sae.cfg.architecture,
            "d_in": self.sae.d_in,
            "n_latents": self.sae.n_latents,
            "k": self.sae.cfg.code_k,
        }


def from_pretrained(
    repo_id_or_dir: str | Path,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    cache_dir: str | Path | None = None,
    token: str | None = None,
) -> Codebook:
    """Load a codebook from a local folder (a run directory or a saved codebook) or a Hugging Face Hub model id.

    Args:
        repo_id_or_dir: A folder, or a hub id such as ``"me/imdb-codebook"``.
        revision: Hub branch, tag or commit (hub ids only).
        trust_remote_code: Let a hidden-states featurizer's model run code from its repository (never taken from
            the downloaded files).
        allow_pickle: Let it load pickle-only weights (likewise).
        cache_dir: Where hub downloads are kept (default: the hub library's cache).
        token: Hub token for private repositories.

    Raises:
        HubUnreachableError: A hub id while the hub cannot be reached (within 5 s, one line).
        UserError: The folder or download is not a complete, unchanged codebook.
    """
    location = Path(repo_id_or_dir).expanduser()
    if location.is_dir():
        return Codebook.load(location, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    repo_id = str(repo_id_or_dir)
    if location.exists() or not _looks_like_hub_id(repo_id):
        raise UserError(
            f"{repo_id!r}: no such folder{' (it is a file)' if location.is_file() else ''}. Expected a codebook or run "
            "folder, or a hub id like 'org/name'."
        )
    from huggingface_hub import snapshot_download

    _require_hub(f"download codebook {repo_id!r}", "pass the folder of a saved codebook or run instead")
    folder = snapshot_download(
        repo_id, revision=revision, cache_dir=str(cache_dir) if cache_dir else None, token=token, repo_type="model"
    )
    logger.info("Downloaded codebook %s to %s", repo_id, folder)
    return Codebook.load(folder, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)


def verify_codebook_folder(root: Path) -> set[str] | None:
    """Check a folder that has a top-level manifest or marker as a codebook (every top-level file listed and
    unchanged, the marker of this format); returns the names listed, or None for a run directory (neither file).

    Raises:
        UserError: One of the two without the other, a file the manifest does not list, a changed file, or a
            marker of another format.
    """
    has_manifest, has_marker = (root / MANIFEST_NAME).is_file(), (root / CODEBOOK_NAME).exists()
    if not has_manifest and not has_marker:
        return None
    hint = "save the codebook again (save_pretrained or `textsae export RUN --to codebook`)"
    if not has_manifest or not has_marker:
        missing = MANIFEST_NAME if not has_manifest else CODEBOOK_NAME
        raise UserError(f"{root} is an incomplete codebook: it has no {missing}. {hint[0].upper()}{hint[1:]}.")
    manifest = read_manifest(root, verify_hashes=True, resume_hint=hint)
    listed = {entry["name"] for entry in manifest["files"]}
    unlisted = sorted(
        p.name
        for p in root.iterdir()
        if p.is_file() and p.name not in listed | {MANIFEST_NAME} and not p.name.startswith(".")
    )
    if unlisted or CODEBOOK_NAME not in listed:
        what = unlisted or [CODEBOOK_NAME]
        raise UserError(f"{root}: {what} {'are' if len(what) > 1 else 'is'} not listed in its {MANIFEST_NAME}; {hint}.")
    _check_marker(root)
    return listed


def _holds_codebook(root: Path) -> bool:
    """Whether ``root`` holds a codebook marker of this format (so saving there may replace it)."""
    try:
        _check_marker(root)
    except UserError:
        return False
    return True


def _looks_like_hub_id(text: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _is_local_folder(model: Any) -> bool:
    return isinstance(model, str) and Path(model).expanduser().is_dir()


def _publishable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config without the folders of the machine that trained it: ``run.dir`` unset, ``data.path`` and a local
    ``featurizer.model`` cut to their last part."""
    published = copy.deepcopy(config) if isinstance(config, dict) else {}
    for section, key in (("run", "dir"), ("data", "path"), ("featurizer", "model")):
        part = published.get(section)
        value = part.get(key) if isinstance(part, dict) else None
        if not isinstance(part, dict) or not isinstance(value, str):
            continue
        if section == "run":
            part[key] = None
        elif section == "data" or value.startswith(("/", ".", "~")) or _is_local_folder(value):  # not a hub id
            part[key] = Path(value).name
    return published


def _publishable_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the trainer's folders (see :func:`_publishable_config`)."""
    published = {key: copy.deepcopy(value) for key, value in report.items() if key != "run_dir"}
    if isinstance(published.get("config"), dict):
        published["config"] = _publishable_config(published["config"])
    dataset = published.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("source"), str):
        dataset["source"] = re.sub(r"(?<![\w.])/[^\s,()]+", lambda m: Path(m.group(0)).name, dataset["source"])
    return published


def _featurizer_kind(featurizer: Featurizer) -> str:
    module = type(featurizer).__module__
    return str(getattr(sys.modules[module], "KIND", type(featurizer).__name__))


def _require_hub(what: str, alternative: str) -> None:
    from textsae.data.hub import hub_reachable, offline_requested

    if offline_requested() or not hub_reachable(HUB_TIMEOUT_S):
        raise HubUnreachableError(f"Cannot reach the Hugging Face Hub to {what} (offline?); {alternative}.")


def _check_marker(root: Path) -> None:
    marker = read_json_checked(root / CODEBOOK_NAME, "codebook marker")
    if not isinstance(marker, dict) or marker.get("format") != FORMAT:
        raise UserError(f"{root / CODEBOOK_NAME} is not a textsae codebook marker (expected format {FORMAT!r}).")
    version = marker.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise UserError(
            f"{root / CODEBOOK_NAME} has format_version={version!r}; this textsae reads <= {FORMAT_VERSION}. "
            "Upgrade textsae."
        )


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml

    try:
        config = load_yaml(path.read_text(encoding="utf-8"))
    except (YamlLimitError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not a readable recipe config ({' '.join(str(error).split())[:200]}).") from None
    return config if isinstance(config, dict) else {}


def _dump_config(config: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
