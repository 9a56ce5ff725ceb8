"""`textsae export --to sentence-transformers`: the reloaded SparseEncoder gives the run's own codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from textsae.cli.main import main
from textsae.store.codes import load_codes

pytest.importorskip("sentence_transformers")


def _recipe(tmp_path: Path, tiny_corpus_dir: Path, tiny_bert_dir: Path, sae: str) -> Path:
    path = tmp_path / "tiny_dense.yaml"
    path.write_text(
        "defaults: [sae/topk, train/cpu_small, eval/dense_probe]\n"
        f"data:\n  path: {tiny_corpus_dir}\n"
        f"featurizer:\n  kind: hidden_states\n  model: {tiny_bert_dir}\n  batch_size: 32\n"
        f"sae:\n  n_latents: 64\n  k: 6\n  decoder_init: data\n{sae}"
        "runtime:\n  progress: false\n  device: cpu\ntrain:\n  epochs: 3\n  batch_size: 32\n"
        "eval:\n  cv_folds: 3\n  C_grid: [1.0]\n"
    )
    return path


@pytest.mark.parametrize("sae", ["", "  dense_latents: 2\n"], ids=["topk", "dense_latents"])
def test_exported_sparse_encoder_gives_the_runs_codes(
    tmp_path: Path, tiny_corpus_dir: Path, tiny_bert_dir: Path, sae: str
) -> None:
    from sentence_transformers import SparseEncoder

    from textsae.artifacts import load_featurizer_artifact, load_sae_artifact

    run = tmp_path / "run"
    assert main(["run", str(_recipe(tmp_path, tiny_corpus_dir, tiny_bert_dir, sae)), f"run.dir={run}", "-q"]) == 0
    out = tmp_path / "exported"
    assert main(["export", str(run), "--to", "sentence-transformers", "--out", str(out), "-q"]) == 0

    texts = pd.read_parquet(tiny_corpus_dir / "test.parquet")["text"].tolist()[:50]
    featurizer, model = load_featurizer_artifact(run / "featurizer"), load_sae_artifact(run / "sae")
    import torch

    with torch.no_grad():
        ours = model.encode(torch.from_numpy(featurizer.transform(texts))).numpy()
    # With dense latents the folder names textsae's module class, which sentence-transformers imports only when told.
    loaded = SparseEncoder(str(out), device="cpu", trust_remote_code=bool(sae))
    theirs = loaded.encode(texts, convert_to_tensor=True).to_dense().numpy()
    assert theirs.shape == ours.shape == (50, 64)
    assert np.array_equal(theirs != 0, ours != 0)  # the same active latents in every document
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    if sae:  # the dense latents stay signed and always on
        assert (ours[:, :2] < 0).any() and (theirs[:, :2] != 0).all()

    docs = tmp_path / "docs.parquet"
    pd.DataFrame({"text": texts}).to_parquet(docs)
    assert main(["encode", str(run), str(docs), "--out", str(tmp_path / "codes"), "-q"]) == 0
    stored = load_codes(tmp_path / "codes").toarray()  # fp16 on disk
    np.testing.assert_allclose(theirs, stored, rtol=1e-3, atol=1e-3)


def test_a_tfidf_run_is_refused_in_one_line(
    tmp_path: Path, tiny_corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "defaults: [featurizer/tfidf_small, sae/topk, train/cpu_small, eval/linear_probe]\n"
        f"data:\n  path: {tiny_corpus_dir}\nfeaturizer:\n  min_df: 1\nsae:\n  n_latents: 32\n  k: 4\n"
        "runtime:\n  progress: false\n  device: cpu\ntrain:\n  epochs: 1\n  batch_size: 32\neval:\n  cv_folds: 3\n  C_grid: [1.0]\n"
    )
    run = tmp_path / "run"
    assert main(["run", str(recipe), f"run.dir={run}", "-q"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--to", "sentence-transformers", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Only hidden-states runs export" in err[0]
    assert not (tmp_path / "x").exists()
