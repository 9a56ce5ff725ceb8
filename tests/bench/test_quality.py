"""The quality bench: the byte-budget comparison by hand, CV folds, dense families, and the CLI end to end."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.bench.quality_reports import row as _row
from tests.results.report_keys import CONFIG_SECTIONS, GOLDEN, key_structure
from textsae.bench.quality import _cv_corpora, budget_table
from textsae.bench.quality_report import QualityReport
from textsae.cli.main import main
from textsae.data.corpus import Corpus, Split

REPO = Path(__file__).resolve().parents[2]


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
    table = {entry.budget: entry for entry in budget_table(rows, [40, 48, 96])}
    assert table[40].best == {} and table[40].sae_wins is None
    assert table[48].best["sae"].name == "sae-k12" and table[48].best["lsa"].accuracy == 0.82
    assert table[48].sae_wins is False  # LSA 0.82 beats the SAE's 0.80 at 48 B
    assert table[96].best["sae"].name == "sae_per_k-k24"  # per-k SAEs count as SAE codes
    assert table[96].sae_wins is True and "tfidf" not in table[96].best


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


def test_dense_source_gets_the_dense_families(
    tmp_path: Path, tiny_corpus_dir: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`textsae bench quality` on hidden states of a tiny local BERT (hidden size 32), through the real command line:
    fp32/fp16/int8/binary/PCA and SAE codes at their stored sizes."""
    recipe = tmp_path / "dense.yaml"
    recipe.write_text(
        "defaults: [sae/topk, train/cpu_small, eval/dense_probe]\n"
        f"data:\n  path: {tiny_corpus_dir}\n"
        f"featurizer:\n  kind: hidden_states\n  model: {tiny_bert_dir}\n  batch_size: 64\n"
        "sae:\n  n_latents: 16\n  k: 2\n"
        "train:\n  epochs: 1\n  batch_size: 64\n"
        "eval:\n  cv_folds: 2\n  C_grid: [1.0]\n"
    )
    out = tmp_path / "bench"
    argv = ["bench", "quality", str(recipe), f"run.dir={tmp_path / 'run'}", f"store.dir={tmp_path / 'store'}"]
    argv += ["bench.pca_widths=[2,4,999]", "bench.classifiers=[linear_svc]", "bench.budgets=[8]"]
    argv += ["bench.throughput_docs=20", "--k", "2,4", "--out", str(out), "-q"]
    assert main(argv) == 0
    assert "budget B" in capsys.readouterr().out
    result = json.loads((out / "report.json").read_text())
    assert result["source_kind"] == "dense" and result["sae"]["d_in"] == 32
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
    ]  # 999 > d: skipped
    sizes = {row["name"]: row["bytes_per_doc"] for row in result["rows"]}
    assert (sizes["fp32"], sizes["fp16"], sizes["int8-dimension"], sizes["binary"], sizes["pca-2"], sizes["pca-4"]) == (
        128,
        64,
        32,
        4,
        4,
        8,
    )
    assert all(set(row) >= {"linear_svc"} and "logreg" not in row for row in result["rows"])  # bench.classifiers
    assert "dense fp16 .npy" in [row["what"] for row in result["compression"]]
    binary = np.load(out / "stored" / "binary.npy")
    assert binary.shape == (200, 4) and binary.dtype == np.uint8  # 32 sign bits of each test document


def test_ks_not_above_the_dense_latents_are_skipped_with_a_warning(
    tiny_recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "quality", str(tiny_recipe), f"run.dir={tmp_path / 'run'}", "sae.n_latents=16", "sae.k=3"]
    argv += ["sae.dense_latents=2", "train.epochs=1", "eval.cv_folds=2", "eval.C_grid=[1.0]", "bench.ks=[2,4]"]
    argv += ["bench.truncate_entries=[]", "bench.lsa_widths=[]", "bench.classifiers=[logreg]", "bench.budgets=[8]"]
    argv += ["bench.throughput_docs=10", "--out", str(tmp_path / "bench"), "-q"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "k = 2 skipped" in err and "dense_latents = 2" in err
    rows = json.loads((tmp_path / "bench" / "report.json").read_text())["rows"]
    assert [row["name"] for row in rows] == ["tfidf", "sae-k4"]


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
    golden = json.loads((REPO / "tests" / "results" / GOLDEN).read_text())
    assert key_structure(report, CONFIG_SECTIONS["quality"]) == golden["quality"]  # the keys written before typing
    assert QualityReport.from_json(report).to_json() == report
    rows = {row["name"]: row for row in report["rows"]}
    assert {"tfidf", "tfidf_top-2", "lsa-2", "sae-k2", "sae-k8", "sae_per_k-k2"} == set(rows)
    for k in (2, 8):  # the SAE is trained at k = 4 and read at 2 and 8
        assert rows[f"sae-k{k}"]["bytes_per_doc"] <= 4 * k + 1e-9 and rows[f"sae-k{k}"]["l0"] <= k
        assert 0 <= rows[f"sae-k{k}"]["logreg"]["accuracy"] <= 1 and rows[f"sae-k{k}"]["fvu"] >= 0
    assert rows["tfidf"]["encode_docs_per_s"] > 0
    for name in ("tfidf", "sae-k2", "sae-k8"):  # the stored test rows on disk, per test document
        shards = [p for p in (out / "stored" / name).iterdir() if p.name != "manifest.json"]
        assert rows[name]["disk_bytes_per_doc"] == sum(p.stat().st_size for p in shards) / 200, name
    assert [entry["budget"] for entry in report["budgets"]] == [8, 16]
    assert report["multi_vs_per_k"][0]["k"] == 2
    raw_text = "\n".join(pd.read_parquet(tiny_corpus_dir / "test.parquet")["text"]).encode("utf-8")
    text_row = report["compression"][0]
    assert text_row["what"].startswith("raw text") and text_row["bytes_per_doc"] == len(raw_text) / 200
    assert text_row["gzip_bytes_per_doc"] == len(gzip.compress(raw_text, 9, mtime=0)) / 200
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


def test_per_k_saes_of_a_recipe_of_another_architecture_are_plain_topk(tiny_recipe: Path, tmp_path: Path) -> None:
    argv = ["bench", "quality", str(tiny_recipe), f"run.dir={tmp_path / 'run'}", "sae.architecture=relu_l1"]
    argv += ["sae.n_latents=16", "train.epochs=1", "eval.cv_folds=2", "eval.C_grid=[1.0]", "bench.ks=[4]"]
    argv += ["bench.per_k=[3]", "bench.truncate_entries=[]", "bench.lsa_widths=[]", "bench.classifiers=[logreg]"]
    argv += ["bench.budgets=[8]", "bench.throughput_docs=10", "--out", str(tmp_path / "bench"), "-q"]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "bench" / "report.json").read_text())["rows"]
    assert "sae_per_k-k3" in [row["name"] for row in rows]
