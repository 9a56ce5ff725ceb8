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
_HASH_EXCLUDED = {("run",), ("bench",), ("train", "progress")}


@dataclass(frozen=True)
class RunPaths:
    """Paths inside one run directory.

    Layout::

        RUN_DIR/config.yaml          resolved config
        RUN_DIR/featurizer/          fitted featurizer (config.json + files)
        RUN_DIR/features/            cached source features (train.npz, eval.npz, manifest.json)
        RUN_DIR/checkpoints/         resumable training state (checkpoint.safetensors)
        RUN_DIR/sae/                 trained SAE (config.json + model.safetensors)
        RUN_DIR/metrics.jsonl        training metrics, one JSON object per line
        RUN_DIR/codes/{train,eval}/  sparse codes in shards + manifest.json
        RUN_DIR/report.json, report.md
    """

    root: Path

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
        return self.root / "sae"

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
    return stable_hash(tree, length=10)


def run_paths(config: RecipeConfig) -> RunPaths:
    """The run directory: ``run.dir`` if set, else ``<run.root>/<recipe name>/<config hash>``."""
    if config.run.dir:
        return RunPaths(Path(config.run.dir).resolve())
    return RunPaths((Path(config.run.root) / config.name / config_hash(config)).resolve())
