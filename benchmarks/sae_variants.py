"""Compare SAE variants on the cached features of one run: train, encode, classify.

Usage (after `textsae featurize RECIPE ... run.dir=RUN_DIR`):

    python benchmarks/sae_variants.py RUN_DIR [key=value ...] [--baselines]

Each call trains one SAE with the run's config plus the overrides, encodes both splits, and prints one
JSON line: LogisticRegression accuracy of the codes (C by 3-fold CV on train, MaxAbs-scaled), FVU on
the reported split, L0, dead fraction, training seconds. ``--baselines`` also prints the source
features and the source truncated to its 32 / 64 largest entries per document (and, for a dense
hidden-states source, its sign bits), with the same classifier. Works for TF-IDF and hidden-states runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from textsae.config.compose import load_recipe
from textsae.config.schema import EvalConfig
from textsae.data.corpus import load_corpus
from textsae.encode import sparse_codes
from textsae.eval.classify import evaluate_representation
from textsae.eval.sizes import truncate_rows
from textsae.paths import RunPaths
from textsae.pipeline import Pipeline, as_matrix
from textsae.rows import rows_to_tensor
from textsae.sae import build_sae
from textsae.sae.reconstruction import reconstruction_metrics
from textsae.train.trainer import Trainer

EVAL = EvalConfig(cv_folds=3, C_grid=[0.5, 2.0, 8.0])


def encode_all(sae: torch.nn.Module, features: sp.csr_matrix, batch: int = 2048) -> sp.csr_matrix:
    return sp.vstack(
        [
            sparse_codes(sae, rows_to_tensor(features, slice(b, b + batch), "cpu"))
            for b in range(0, features.shape[0], batch)
        ],
        format="csr",
    )


def main(argv: list[str]) -> None:
    run_dir, args = Path(argv[0]), argv[1:]
    baselines = "--baselines" in args
    overrides = [a for a in args if a != "--baselines"]
    cfg = load_recipe(run_dir / "config.yaml", [*overrides, "train.progress=false"])
    features = Pipeline(cfg, RunPaths(run_dir)).load_features()
    x_train, x_eval = as_matrix(features.train), as_matrix(features.eval)
    corpus = load_corpus(cfg.data)
    y_train, y_eval = corpus.train.labels, corpus.eval.labels
    torch.manual_seed(cfg.train.seed)
    sae = build_sae(cfg.sae, x_train.shape[1])
    start = time.perf_counter()
    labels = y_train if cfg.train.label_loss_weight > 0 else None
    Trainer(sae, cfg.train, x_train, labels=labels).train()
    seconds = time.perf_counter() - start
    sae.eval()
    codes_train, codes_eval = encode_all(sae, x_train), encode_all(sae, x_eval)
    result = evaluate_representation(codes_train, y_train, codes_eval, y_eval, EVAL, scale=True)
    fired = np.zeros(sae.n_latents, dtype=bool)
    fired[np.unique(codes_train.indices)] = True
    print(
        json.dumps(
            {
                "overrides": overrides,
                "accuracy": round(result.accuracy, 4),
                "C": result.C,
                "fvu": round(reconstruction_metrics(sae, x_eval)["fvu"], 3),
                "l0": round(float(codes_eval.getnnz(axis=1).mean()), 1),
                "dead": round(float(1 - fired.mean()), 3),
                "train_s": round(seconds),
            }
        ),
        flush=True,
    )
    if baselines:
        sparse_train, sparse_eval = sp.csr_matrix(x_train), sp.csr_matrix(x_eval)
        variants = {
            "source": (x_train, x_eval),
            "truncated64": (truncate_rows(sparse_train, 64), truncate_rows(sparse_eval, 64)),
            "truncated32": (truncate_rows(sparse_train, 32), truncate_rows(sparse_eval, 32)),
        }
        if not sp.issparse(x_train):
            variants["binary"] = (np.where(x_train >= 0, 1.0, -1.0), np.where(x_eval >= 0, 1.0, -1.0))
        for name, (base_train, base_eval) in variants.items():
            baseline = evaluate_representation(base_train, y_train, base_eval, y_eval, EVAL)
            print(json.dumps({"baseline": name, "accuracy": round(baseline.accuracy, 4), "C": baseline.C}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
