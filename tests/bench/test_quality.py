"""The quality bench: the byte-budget comparison by hand, CV folds, dense families, and the CLI end to end."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from textsae.bench.quality import _cv_corpora, _evaluate, budget_table
from textsae.cli.main import main
from textsae.config.compose import load_recipe
from textsae.config.schema import SAEConfig
from textsae.data.corpus import Corpus, Split
from textsae.paths import RunPaths
from textsae.pipeline import Features
from textsae.sae import build_sae

REPO = Path(__file__).resolve().parents[2]


def _row(family: str, name: str, size: float, accuracy: float) -> dict:
    return {"family": family, "name": name, "bytes_per_doc": size, "logreg": {"accuracy": accuracy}}


def test_budget_table_by_hand() -> None:
    rows = [
        _row("sae", "sae-k12", 48, 0.80),
        _row("sae", "sae-k24", 96, 0.83),
        _row("sae_per_k", "sae_per_k-k24", 96, 0.85),
        _row("lsa", "lsa-24", 48, 0.82),
        _row("lsa", "lsa-48", 96, 0.84),
        _row("tfidf_top", "tfidf_top-12", 48, 0.79),
        _row("tfidf", "tfidf", 700, 0.90),
    ]
    table = {entry["budget"]: entry for entry in budget_table(rows, [40, 48, 96])}
    assert table[40]["best"] == {} and table[40]["sae_wins"] is None
    assert table[48]["best"]["sae"]["name"] == "sae-k12" and table[48]["best"]["lsa"]["accuracy"] == 0.82
    assert table[48]["sae_wins"] is False  # LSA 0.82 beats the SAE's 0.80 at 48 B
    assert table[96]["best"]["sae"]["name"] == "sae_per_k-k24"  # per-k SAEs count as SAE codes
    assert table[96]["sae_wins"] is True and "tfidf" not in table[96]["best"]


def test_cv_folds_partition_the_pooled_corpus_stratified() -> None:
    labels = np.array([0] * 6 + [1] * 4)
    texts = [f"doc {i}" for i in range(10)]
    corpus = Corpus("c", Split("train", texts[:7], labels[:7]), Split("test", texts[7:], labels[7:]), None, "here")
    folds = _cv_corpora(corpus, 2, seed=0)
    tested = sorted(t for fold in folds for t in fold.eval.texts)
    assert tested == sorted(texts)  # every document is scored exactly once
    for fold in folds:
        assert not set(fold.train.texts) & set(fold.eval.texts)
        assert sorted(np.bincount(fold.eval.labels).tolist()) == [2, 3]  # 6:4 split in half per class


def test_dense_source_gets_the_dense_families(tmp_path: Path) -> None:
    """A stand-in pipeline with dense (hidden-state-like) features: fp32/fp16/int8/binary/PCA and SAE codes."""
    config = load_recipe(
        REPO / "recipes" / "quickstart.yaml",
        [
            "eval.cv_folds=2",
            "eval.C_grid=[1.0]",
            "bench.ks=[2,4]",
            "bench.pca_widths=[2,4,999]",
            "bench.classifiers=[linear_svc]",
            "bench.budgets=[8]",
        ],
    )
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    x = (rng.normal(size=(60, 12)) + y[:, None] * 0.8).astype(np.float32)
    corpus = Corpus(
        "dense",
        Split("train", ["t"] * 40, np.concatenate([y[:20], y[40:]])),
        Split("test", ["t"] * 20, y[20:40]),
        None,
        "synthetic",
    )
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=16, k=2, input_scaling="none"), 12)
    pipeline = SimpleNamespace(
        config=config,
        corpus=corpus,
        paths=RunPaths(tmp_path / "run"),
        featurize=lambda: Features(np.concatenate([x[:20], x[40:]]), x[20:40]),
        train=lambda features: sae,
    )
    result = _evaluate(pipeline, tmp_path / "work", compression=True)
    names = [row["name"] for row in result["rows"]]
    assert names == [
        "fp32",
        "fp16",
        "int8-dimension",
        "binary",
        "pca-2",
        "pca-4",
        "sae-k2",
        "sae-k4",
    ]  # width 999 > d is skipped
    sizes = {row["name"]: row["bytes_per_doc"] for row in result["rows"]}
    assert (sizes["fp32"], sizes["fp16"], sizes["int8-dimension"], sizes["binary"], sizes["pca-4"]) == (
        48,
        24,
        12,
        2,
        8,
    )
    assert result["source_kind"] == "dense"
    assert any(row["what"] == "dense fp16 .npy" for row in result["compression"])
    assert (tmp_path / "work" / "stored" / "binary.npy").stat().st_size > 0


def test_ks_not_above_the_dense_latents_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_recipe(
        REPO / "recipes" / "quickstart.yaml",
        ["eval.cv_folds=2", "eval.C_grid=[1.0]", "bench.ks=[2,4]", "bench.classifiers=[logreg]", "bench.budgets=[8]"],
    )
    config = dataclasses.replace(config, bench=dataclasses.replace(config.bench, truncate_entries=[], lsa_widths=[]))
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    x = sp.csr_matrix(np.abs(rng.normal(size=(60, 12)) + y[:, None] * 0.8).astype(np.float32))
    corpus = Corpus(
        "sparse",
        Split("train", ["t"] * 40, np.concatenate([y[:20], y[40:]])),
        Split("test", ["t"] * 20, y[20:40]),
        None,
        "synthetic",
    )
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=16, k=3, dense_latents=2, input_scaling="none"), 12)
    pipeline = SimpleNamespace(
        config=config,
        corpus=corpus,
        paths=RunPaths(tmp_path / "run"),
        featurize=lambda: Features(sp.vstack([x[:20], x[40:]]).tocsr(), x[20:40]),
        train=lambda features: sae,
    )
    with caplog.at_level(logging.WARNING, logger="textsae"):
        result = _evaluate(pipeline, tmp_path / "work", compression=False)
    assert [row["name"] for row in result["rows"] if row["family"] == "sae"] == ["sae-k4"]
    assert "k = 2 skipped" in caplog.text and "dense_latents = 2" in caplog.text


def test_bench_quality_cli_end_to_end(
    tiny_corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- textsae:quality-table -->\nold\n<!-- /textsae:quality-table -->\nend\n")
    out = tmp_path / "bench"
    args = [
        "bench",
        "quality",
        str(REPO / "recipes" / "quickstart.yaml"),
        f"data.path={tiny_corpus_dir}",
        "~data.bundled",
        f"run.dir={tmp_path / 'run'}",
        "sae.n_latents=64",
        "sae.k=4",
        "sae.multi_topk=true",
        "train.epochs=1",
        "train.batch_size=100",
        "featurizer.min_df=1",
        "eval.cv_folds=2",
        "eval.C_grid=[1.0]",
        "bench.per_k=[2]",
        "bench.truncate_entries=[2]",
        "bench.lsa_widths=[2]",
        "bench.budgets=[8,16]",
        "bench.throughput_docs=20",
        "bench.classifiers=[logreg]",
        "--k",
        "2,8",
        "--out",
        str(out),
        "--readme",
        str(readme),
        "-q",
    ]
    assert main(args) == 0
    assert "budget B" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert {"tfidf", "tfidf_top-2", "lsa-2", "sae-k2", "sae-k8", "sae_per_k-k2"} == set(rows)
    for k in (2, 8):  # the SAE is trained at k = 4 and read at 2 and 8
        assert rows[f"sae-k{k}"]["bytes_per_doc"] <= 4 * k + 1e-9 and rows[f"sae-k{k}"]["l0"] <= k
        assert 0 <= rows[f"sae-k{k}"]["logreg"]["accuracy"] <= 1 and rows[f"sae-k{k}"]["fvu"] >= 0
    assert rows["tfidf"]["encode_docs_per_s"] > 0 and rows["tfidf"]["disk_bytes_per_doc"] > 0
    assert [entry["budget"] for entry in report["budgets"]] == [8, 16]
    assert report["multi_vs_per_k"][0]["k"] == 2
    assert (
        report["compression"][0]["what"].startswith("raw text") and report["compression"][0]["gzip_bytes_per_doc"] > 0
    )
    for name in report["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "report.md").read_text()
    assert "## Byte budgets" in markdown and "## Corpus compression" in markdown
    text = readme.read_text()
    assert "\nold\n" not in text and "| budget B" in text and text.endswith("<!-- /textsae:quality-table -->\nend\n")
    assert (tmp_path / "docs" / f"quality_{report['dataset']['name']}.png").is_file()


def test_bench_quality_refuses_a_readme_without_markers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert main(["bench", "quality", str(REPO / "recipes" / "quickstart.yaml"), "--readme", str(readme)]) == 2
    assert "needs the markers" in capsys.readouterr().err
