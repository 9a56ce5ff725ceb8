"""The encode work the distributed encode tests run on 1 process (in the test) and on 2 gloo ranks (torchrun):
features given in memory, `textsae encode` on a Parquet file through the run's featurizer, and `Pipeline.encode`.

Usage (one rank of torchrun): ``python encode_work.py RUN_DIR PIPELINE_RUN_DIR DATA.parquet OUT``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from textsae.cli.main import main
from textsae.config.compose import load_recipe
from textsae.config.schema import EncodeConfig, SAEConfig
from textsae.distributed import end_job
from textsae.encode import encode_features
from textsae.pipeline import Pipeline
from textsae.sae import build_sae


def work(run_dir: Path, pipeline_dir: Path, data: Path, out: Path) -> None:
    """Write ``out/in_memory`` and ``out/cli``, and the codes of ``pipeline_dir`` (whose codes/ was removed)."""
    rng = np.random.default_rng(0)
    features = sp.csr_matrix((rng.random((23, 12)) * (rng.random((23, 12)) < 0.4)).astype(np.float32))
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=16, k=3), 12).eval()
    ids, labels = np.arange(23) * 7, np.arange(23) % 3
    cfg = EncodeConfig(batch_size=3, shard_docs=4)  # 6 shards: 3 per rank, batches cut at each shard's end
    encode_features(sae, features, out / "in_memory", cfg, progress=False, doc_ids=ids, labels=labels)
    argv = ["encode", str(run_dir), str(data), "--out", str(out / "cli"), "--id-column", "doc_id", "-q"]
    assert main([*argv, "--shard-docs", "8", "--batch-size", "5", "--device", "cpu"]) == 0
    config = load_recipe(run_dir / "config.yaml", [f"run.dir={pipeline_dir}", "encode.shard_docs=64"])
    Pipeline(config).encode()


if __name__ == "__main__":
    work(*(Path(arg) for arg in sys.argv[1:5]))
    end_job(0)  # as `textsae` commands end under torchrun: no interpreter teardown after a gloo group
