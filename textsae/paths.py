"""Every file name and folder of a run directory, derived in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textsae._io import stable_hash
from textsae.config.schema import RecipeConfig, to_dict

REPORT_JSON_NAME = "report.json"
"""Report file for machines (everything), written by :func:`textsae.eval.report.write_report`."""
REPORT_MD_NAME = "report.md"
"""Report file for people (the results table)."""

# Keys that do not change results and so do not change the default run directory.
_HASH_EXCLUDED = {
    ("run",),
    ("store",),
    ("bench",),
    ("runtime", "progress"),
    ("runtime", "threads"),
    ("runtime", "reuse_memory"),
    ("runtime", "native_kernels"),  # the order of float sums, like threads
    ("runtime", "shard_dictionary"),  # where the weights live, not what is computed
    ("data", "streaming"),  # how the corpus is read, not which documents: the same run either way
}

# Keys added after 0.2.0 that leave their default out of the hash, so run directories made before them keep their names.
_HASH_OMITTED_AT_DEFAULT = {
    ("eval", "max_docs"): 200_000,
    ("featurizer", "max_candidate_terms"): 4_000_000,
}


@dataclass(frozen=True)
class RunPaths:
    """Paths inside one run directory.

    Layout::

        RUN_DIR/config.yaml          resolved config
        RUN_DIR/featurizer/          fitted featurizer (config.json + files)
        RUN_DIR/features/            cached source features: TF-IDF CSR shards in train/ and eval/ named by
                                     shards.json (train.npz + eval.npz before them; vectors: train.npy +
                                     eval.npy), or store.json naming the feature-store entries (hidden
                                     states); manifest.json
        RUN_DIR/checkpoints/         resumable training state (checkpoint.safetensors), deleted once sae/ is saved
        RUN_DIR/sae/                 trained SAE (config.json + model.safetensors)
        RUN_DIR/metrics.jsonl        training metrics, one JSON object per line
        RUN_DIR/codes/{train,eval}/  sparse codes in shards + manifest.json
        RUN_DIR/report.json, report.md
    """

    root: Path
    sae_dir: Path | None = None
    """Where the trained SAE lives when it is shared (a universal codebook's per-dataset runs); default ``root/sae``."""

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def featurizer(self) -> Path:
        return self.root / "featurizer"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def checkpoint(self) -> Path:
        return self.checkpoints / "checkpoint.safetensors"

    @property
    def sae(self) -> Path:
        return self.sae_dir or self.root / "sae"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    def codes(self, split: str) -> Path:
        """Codes folder of one split (``train`` or ``eval``)."""
        return self.root / "codes" / split

    @property
    def report_json(self) -> Path:
        return self.root / REPORT_JSON_NAME

    @property
    def report_md(self) -> Path:
        return self.root / REPORT_MD_NAME


def config_hash(config: RecipeConfig) -> str:
    """Hash of everything in the config that can change results."""
    tree = to_dict(config)
    for path in _HASH_EXCLUDED:
        node = tree
        for part in path[:-1]:
            node = node[part]
        node.pop(path[-1], None)
    for (section, key), default in _HASH_OMITTED_AT_DEFAULT.items():
        if tree.get(section, {}).get(key, default) == default:
            tree.get(section, {}).pop(key, None)
    return stable_hash(tree, length=10)


def store_root(config: RecipeConfig) -> Path:
    """The feature store folder: ``store.dir`` if set, else ``<run.root>/_store``."""
    return Path(config.store.dir or Path(config.run.root) / "_store").resolve()


# Config sections that the artefacts in these folders depend on: a finished folder is reused as it is.
_DEPENDENCIES = {
    ("data", "featurizer", "runtime"): ("featurizer", "features"),
    ("sae", "train", "train_data", "runtime"): ("checkpoints", "sae"),
}


def check_same_run(config: RecipeConfig, paths: RunPaths) -> None:
    """Refuse a run directory whose saved ``config.yaml`` differs in a setting its artefacts depend on.

    A stage reuses the finished artefacts it finds, so reusing ``run.dir`` with another corpus or
    featurizer (once features exist), or another SAE or training setting (once a checkpoint or SAE
    exists), would silently mix outputs of two configs. Keys that only one side has (a setting
    added by a newer textsae) are not compared.

    Raises:
        UserError: Naming the differing keys and what to do.
    """
    import yaml

    from textsae.config.safe_yaml import load_yaml
    from textsae.errors import UserError

    if not paths.config.is_file():
        return
    try:
        saved = load_yaml(paths.config.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(
            f"{paths.config} is not readable YAML ({error}); delete {paths.root} or choose another run.dir."
        ) from None
    current = to_dict(config)
    differing = []
    for sections, folders in _DEPENDENCIES.items():
        if not any((paths.root / folder).exists() for folder in folders):
            continue  # nothing of these stages to reuse yet
        for section in sections:
            old, new = (saved or {}).get(section) or {}, current[section]
            differing += [
                f"{section}.{key}"
                for key in sorted(set(old) & set(new))
                if old[key] != new[key] and (section, key) not in _HASH_EXCLUDED
            ]
    if differing:
        raise UserError(
            f"{paths.root} holds a run with another config (it differs in {', '.join(differing)}), whose finished stages would be "
            "reused. Choose another run.dir (or leave it unset), or delete that folder to start again."
        )


def run_paths(config: RecipeConfig) -> RunPaths:
    """The run directory: ``run.dir`` if set, else ``<run.root>/<recipe name>/<config hash>``.

    When that folder does not exist but a sibling made by an earlier textsae holds the same config (earlier versions
    laid the config out differently, so its hash differs), that folder is used, with one note line: upgrading
    textsae never silently trains again what a run already holds.
    """
    if config.run.dir:
        return RunPaths(Path(config.run.dir).resolve())
    digest = config_hash(config)
    root = (Path(config.run.root) / config.name / digest).resolve()
    if not root.exists():
        earlier = _earlier_layout_run(root.parent, digest)
        if earlier is not None:
            from textsae._io import logger

            logger.warning(
                "note: reusing %s, a run directory an earlier textsae made for this same config (its folder name "
                "is the hash of the earlier config layout).",
                earlier,
            )
            return RunPaths(earlier)
    return RunPaths(root)


def _earlier_layout_run(recipe_dir: Path, digest: str) -> Path | None:
    """A folder under ``recipe_dir`` whose saved config, read as an earlier version's layout, hashes to ``digest``."""
    import yaml

    from textsae.config.compose import build_saved_config
    from textsae.config.safe_yaml import YamlLimitError, load_yaml
    from textsae.errors import ConfigError

    if not recipe_dir.is_dir():
        return None
    for candidate in sorted(recipe_dir.iterdir()):
        saved = candidate / "config.yaml"
        if candidate.name == digest or not saved.is_file():
            continue
        try:
            if config_hash(build_saved_config(load_yaml(saved.read_text(encoding="utf-8")))) == digest:
                return candidate
        except (ConfigError, YamlLimitError, yaml.YAMLError, OSError, UnicodeDecodeError):
            continue  # not a run of this layout, or damaged: never reused
    return None
