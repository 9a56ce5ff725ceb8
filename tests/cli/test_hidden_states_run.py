"""A hidden-states recipe end to end on the tiny corpus with a tiny local BERT: store reuse, dense baselines, encode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.results.report_keys import CONFIG_SECTIONS, GOLDEN, by_position, key_structure
from textsae.cli.main import main
from textsae.errors import UserError
from textsae.results import UniversalReport
from textsae.store.codes import load_codes


@pytest.fixture
def dense_recipe(tmp_path: Path, tiny_corpus_dir: Path, tiny_bert_dir: Path) -> Path:
    path = tmp_path / "tiny_dense.yaml"
    path.write_text(
        "defaults: [sae/topk, train/cpu_small, eval/dense_probe]\n"
        f"data:\n  path: {tiny_corpus_dir}\n"
        f"featurizer:\n  kind: hidden_states\n  model: {tiny_bert_dir}\n  batch_size: 32\n"
        "sae:\n  n_latents: 64\n  k: 4\n  decoder_init: data\n"
        "runtime:\n  progress: false\n  device: cpu\ntrain:\n  epochs: 3\n  batch_size: 32\n"
        "eval:\n  cv_folds: 3\n  C_grid: [1.0, 4.0]\n"
    )
    return path


def test_dense_run_reports_source_codes_truncated_binary_and_reuses_the_store(
    dense_recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(dense_recipe), f"run.dir={run_a}", f"store.dir={store}", "-q"]) == 0
    report = json.loads((run_a / "report.json").read_text())
    assert set(report["eval"]) == {"source", "codes", "truncated", "binary"}
    assert report["eval"]["source"]["bytes_per_doc"] == 32 * 4  # hidden 32, fp32
    assert report["eval"]["binary"]["bytes_per_doc"] == 4  # 32 sign bits
    assert report["eval"]["codes"]["bytes_per_doc"] <= 4 * 4 + 1e-9
    assert report["eval"]["truncated"]["entries_per_doc"] == 4
    assert 0.0 <= report["sae"]["fvu"] < 1.0
    entries = json.loads((run_a / "features" / "store.json").read_text())
    assert set(entries) == {"train", "eval"} and all(Path(p).parent == store.resolve() for p in entries.values())

    # Another SAE over the same corpus and featurizer reuses the stored features.
    capsys.readouterr()
    assert main(["run", str(dense_recipe), f"run.dir={run_b}", f"store.dir={store}", "sae.k=8"]) == 0
    assert "Reusing stored features" in capsys.readouterr().err
    assert len(list(store.iterdir())) == 2

    docs = tmp_path / "docs.csv"
    pd.DataFrame({"text": ["great film", "boring plot and dull actor"]}).to_csv(docs, index=False)
    assert main(["encode", str(run_a), str(docs), "--out", str(tmp_path / "codes"), "-q"]) == 0
    codes = load_codes(tmp_path / "codes")
    assert codes.shape == (2, 64) and np.all(codes.getnnz(axis=1) <= 4)


def test_binary_with_tfidf_and_token_pooling_are_refused_before_any_work(
    tiny_corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "recipes/quickstart.yaml", "eval.representations=[source,binary]"]) == 2
    assert "'binary' (sign bits) needs a dense source" in capsys.readouterr().err
    assert main(["validate", "recipes/sst2_minilm_topk.yaml", "featurizer.pooling=none"]) == 2
    assert "featurizer.pooling=none" in capsys.readouterr().err


def test_universal_codebook_trains_once_and_evaluates_a_dataset_it_never_saw(
    tmp_path: Path, tiny_corpus_dir: Path, tiny_bert_dir: Path
) -> None:
    from tests.conftest import make_texts

    other, unseen = tmp_path / "other", tmp_path / "unseen.csv"
    other.mkdir()
    for split, seed in (("train", 11), ("validation", 12)):
        texts, labels = make_texts(120, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_parquet(other / f"{split}.parquet")
    texts, labels = make_texts(150, 13)
    pd.DataFrame({"text": texts, "label": np.where(labels == 1, "pos", "neg")}).to_csv(unseen, index=False)
    recipe = tmp_path / "universal.yaml"
    recipe.write_text(
        "defaults: [sae/topk, train/cpu_small, eval/dense_probe]\n"
        f"train_data:\n  paths: [{tiny_corpus_dir}, {other}]\n"
        f"featurizer:\n  kind: hidden_states\n  model: {tiny_bert_dir}\n"
        "sae:\n  n_latents: 64\n  k: 4\n"
        "runtime:\n  progress: false\n  device: cpu\ntrain:\n  epochs: 2\n  batch_size: 64\n  label_loss_weight: 1.0\n"
        "eval:\n  cv_folds: 3\n  C_grid: [1.0]\n"
    )
    run = tmp_path / "run"
    assert (
        main(["run", str(recipe), f"run.dir={run}", f"store.dir={tmp_path / 'store'}", f"data.path={unseen}", "-q"])
        == 0
    )
    summary = json.loads((run / "report.json").read_text())
    golden = json.loads((Path(__file__).parents[1] / "results" / GOLDEN).read_text())
    assert key_structure(by_position(summary), CONFIG_SECTIONS["universal"]) == golden["universal"]  # as before typing
    assert UniversalReport.from_json(summary).to_json() == summary
    assert list(summary["datasets"]) == [tiny_corpus_dir.name, "other", "unseen"]
    assert [d["seen_in_training"] for d in summary["datasets"].values()] == [True, True, False]
    assert summary["datasets"]["unseen"]["dataset"]["eval_docs"] == 30  # 20% of 150, stratified
    assert {"source", "codes", "truncated", "binary"} == set(summary["datasets"]["unseen"]["eval"])
    assert not (run / "datasets" / "unseen" / "sae").exists()  # every dataset uses the one shared SAE
    assert (run / "sae" / "manifest.json").exists() and "NOT seen in training" in (run / "report.md").read_text()


def test_bench_featurize_reports_both_sides_and_agreement(
    tiny_corpus_dir: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tiny_corpus_dir / "train.parquet")
    assert (
        main(
            [
                "bench",
                "featurize",
                "--data",
                data,
                "--max-docs",
                "40",
                "--model",
                str(tiny_bert_dir),
                "--max-length",
                "32",
                "--batch-size",
                "8",
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["n_docs"] == 40 and result["textsae_dtype"] == "fp32"
    from transformers import AutoTokenizer

    texts = pd.read_parquet(data)["text"].tolist()[:40]
    n_tokens = sum(
        map(len, AutoTokenizer.from_pretrained(tiny_bert_dir)(texts, truncation=True, max_length=32)["input_ids"])
    )
    assert result["n_tokens"] == n_tokens  # real tokens, [CLS] and [SEP] included, no padding
    for name in ("plain", "textsae"):  # rates are of the fastest round
        side = result[name]
        assert side["seconds"] == min(side["rounds_s"])
        assert side["docs_per_s"] == pytest.approx(40 / side["seconds"]), name
        assert side["tokens_per_s"] == pytest.approx(n_tokens / side["seconds"]), name
    assert result["min_cosine"] > 0.9999  # same model, same precision: padding and order must not matter
    assert result["command"].startswith("textsae ") and "cpu_count" in result


def test_bench_featurize_repeats_take_turns_and_keep_each_sides_fastest_round(
    tiny_corpus_dir: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import textsae.bench.featurize as bench

    calls: list[str] = []
    real_plain, real_extract = bench.plain_loop, bench.extract_to_store

    def plain(*args: object, **kwargs: object) -> np.ndarray:
        calls.append("plain")
        return real_plain(*args, **kwargs)

    def extract(*args: object, **kwargs: object) -> object:
        calls.append("textsae")
        return real_extract(*args, **kwargs)

    monkeypatch.setattr(bench, "plain_loop", plain)
    monkeypatch.setattr(bench, "extract_to_store", extract)
    texts = pd.read_parquet(tiny_corpus_dir / "train.parquet")["text"].tolist()[:16]
    result = bench.run_featurize_bench(
        texts, model=str(tiny_bert_dir), max_length=16, batch_size=8, device="cpu", repeats=3, sides=("plain",)
    )
    assert calls == [
        "plain",
        "textsae",
        "plain",
        "textsae",
        "textsae",
        "plain",
        "plain",
        "textsae",
    ]  # warm-up of each, then rounds P-T, T-P, P-T
    assert result.sentence_transformers is None and result.skipped == {}
    for side in (result.plain, result.textsae):
        assert side is not None and len(side.rounds_s) == 3 and side.seconds == min(side.rounds_s)
    assert result.plain is not None
    assert result.speedup == pytest.approx(result.plain.seconds / result.textsae.seconds)
    with pytest.raises(UserError, match="repeats"):
        bench.run_featurize_bench(texts, model=str(tiny_bert_dir), device="cpu", repeats=0)


def test_bench_featurize_runs_sentence_transformers_on_the_same_folder(
    tiny_corpus_dir: Path, tiny_bert_dir: Path
) -> None:
    pytest.importorskip("sentence_transformers")
    import textsae.bench.featurize as bench

    texts = pd.read_parquet(tiny_corpus_dir / "train.parquet")["text"].tolist()[:24]
    result = bench.run_featurize_bench(
        texts, model=str(tiny_bert_dir), max_length=16, batch_size=8, device="cpu", repeats=2
    )
    peer = result.sentence_transformers
    assert peer is not None
    assert len(peer.rounds_s) == 2 and peer.docs_per_s == pytest.approx(24 / min(peer.rounds_s))
    assert peer.min_cosine > 0.9999  # the same mean pooling of the same model in fp32
    assert result.speedup_vs_sentence_transformers == pytest.approx(peer.seconds / result.textsae.seconds)
    with pytest.raises(UserError, match="Unknown featurize bench side"):
        bench.run_featurize_bench(texts, model=str(tiny_bert_dir), device="cpu", sides=("sparsify",))


def test_bench_featurize_names_a_missing_sentence_transformers(
    tiny_corpus_dir: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    import textsae.bench.featurize as bench

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        bench.importlib.util,
        "find_spec",
        lambda name: None if name == "sentence_transformers" else real_find_spec(name),
    )
    texts = pd.read_parquet(tiny_corpus_dir / "train.parquet")["text"].tolist()[:8]
    result = bench.run_featurize_bench(texts, model=str(tiny_bert_dir), max_length=16, batch_size=8, device="cpu")
    assert result.sentence_transformers is None
    assert "pip install sentence-transformers" in result.skipped["sentence_transformers"]
    with pytest.raises(UserError, match="pip install sentence-transformers"):
        bench.run_featurize_bench(texts, model=str(tiny_bert_dir), device="cpu", sides=("sentence_transformers",))
