"""featurizer.kind=vectors: your own precomputed vectors, read from a column of the data, through run/encode/score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import textsae
from tests.conftest import make_texts
from textsae.cli.main import main
from textsae.errors import UserError
from textsae.featurize.base import load_featurizer
from textsae.featurize.vectors import VectorsFeaturizer
from textsae.inspection.latents import inspect_run
from textsae.store.codes import load_codes

DIM = 12


def _frame(n_docs: int, seed: int) -> pd.DataFrame:
    texts, labels = make_texts(n_docs, seed)
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n_docs, DIM)).astype(np.float32)
    vectors[:, 0] += 2.0 * labels - 1.0  # the label is in the vectors, not only in the words
    return pd.DataFrame({"text": texts, "label": labels, "vector": list(vectors)})


@pytest.fixture(scope="module")
def vectors_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vectors_corpus")
    _frame(300, 1).to_parquet(folder / "train.parquet")
    _frame(120, 2).to_parquet(folder / "test.parquet")
    return folder


def _recipe(folder: Path, data: Path) -> Path:
    recipe = folder / "vectors.yaml"
    recipe.write_text(
        "defaults: [sae/topk, train/cpu_small, eval/dense_probe]\n"
        f"data:\n  path: {data}\nfeaturizer:\n  kind: vectors\n"
        "sae:\n  n_latents: 48\n  k: 4\n"
        "runtime:\n  progress: false\ntrain:\n  epochs: 3\n  batch_size: 32\n"
        "eval:\n  cv_folds: 3\n  C_grid: [1.0]\n",
        encoding="utf-8",
    )
    return recipe


@pytest.fixture(scope="module")
def vectors_run(tmp_path_factory: pytest.TempPathFactory, vectors_corpus: Path) -> Path:
    folder = tmp_path_factory.mktemp("vectors_run")
    assert main(["run", str(_recipe(folder, vectors_corpus)), f"run.dir={folder / 'run'}", "-q"]) == 0
    return folder / "run"


def test_a_run_on_own_vectors_reports_like_a_dense_source(vectors_run: Path) -> None:
    import json

    report = json.loads((vectors_run / "report.json").read_text(encoding="utf-8"))
    assert {"source", "codes", "truncated", "binary"} <= set(report["eval"])
    assert report["eval"]["source"]["bytes_per_doc"] == DIM * 4
    assert report["eval"]["source"]["accuracy"] > 0.7  # the label signal in dimension 0 is found
    assert json.loads((vectors_run / "featurizer" / "config.json").read_text())["kind"] == "vectors"


def test_inspect_reads_a_vectors_run_and_shows_its_top_documents(vectors_run: Path) -> None:
    inspection = inspect_run(vectors_run, top_docs=3)
    shown = [latent for latent in inspection.latents if latent.docs]
    assert shown and all(len(latent.docs) <= 3 for latent in shown)  # documents, without terms to highlight


def test_encode_score_and_the_codebook_read_the_same_column(
    vectors_run: Path, vectors_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "codes"
    assert main(["encode", str(vectors_run), str(vectors_corpus / "test.parquet"), "--out", str(out), "-q"]) == 0
    assert (load_codes(out) != load_codes(vectors_run / "codes" / "eval")).nnz == 0
    assert (
        main(
            [
                "score",
                str(vectors_run),
                str(vectors_corpus / "test.parquet"),
                "--out",
                str(tmp_path / "s.parquet"),
                "-q",
            ]
        )
        == 0
    )
    assert len(pd.read_parquet(tmp_path / "s.parquet")) == 120
    vectors = np.stack(pd.read_parquet(vectors_corpus / "test.parquet")["vector"].to_numpy())
    codes = textsae.from_pretrained(vectors_run).encode(vectors)
    stored = load_codes(vectors_run / "codes" / "eval")
    assert np.array_equal((codes != 0).toarray(), (stored != 0).toarray())
    assert abs(codes - stored).max() < 1e-2  # stored codes are float16


def test_csv_cells_hold_json_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for split, n, seed in (("train", 120, 3), ("test", 60, 4)):
        frame = _frame(n, seed)
        frame["vector"] = [str([round(float(v), 5) for v in row]) for row in frame["vector"]]
        frame.to_csv(tmp_path / f"{split}.csv", index=False)
    recipe = _recipe(tmp_path, tmp_path)
    assert main(["featurize", str(recipe), f"run.dir={tmp_path / 'run'}", "-q"]) == 0


BAD_VECTORS = {
    "ragged": ([[0.1, 0.2], [0.3]], "holds 1 numbers, but earlier rows hold 2"),
    "not a list": (["oops", "also"], "expected a list of numbers"),
    "nan": ([[0.1, float("nan")], [0.3, 0.4]], "holds NaN, inf or a value beyond float32"),
}


@pytest.mark.parametrize("case", list(BAD_VECTORS))
def test_bad_vectors_are_one_line_naming_the_row(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cells, message = BAD_VECTORS[case]
    frame = pd.DataFrame(
        {"text": ["good film", "bad film"] * 6, "label": [1, 0] * 6, "vector": [*cells] + [[0.5, 0.5]] * 10}
    )
    frame.to_json(tmp_path / "data.jsonl", orient="records", lines=True)
    code = main(["featurize", str(_recipe(tmp_path, tmp_path / "data.jsonl")), f"run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and "data.jsonl" in err[0], err


def test_missing_column_and_sources_without_vectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"text": ["good film", "bad film"] * 6, "label": [1, 0] * 6}).to_csv(tmp_path / "d.csv", index=False)
    recipe = _recipe(tmp_path, tmp_path / "d.csv")
    assert main(["featurize", str(recipe), f"run.dir={tmp_path / 'r1'}"]) == 2
    assert "has no vector column 'vector'" in capsys.readouterr().err
    assert (
        main(["featurize", str(recipe), "~data.path", "data.bundled=movie_reviews", f"run.dir={tmp_path / 'r2'}"]) == 2
    )
    assert "reads its vectors from local files" in capsys.readouterr().err


def test_vectors_featurizer_round_trip_and_checks(tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).normal(size=(5, 3))
    featurizer = VectorsFeaturizer(vector_column="emb").fit(vectors)
    featurizer.save_pretrained(tmp_path)
    loaded = load_featurizer(tmp_path)
    assert isinstance(loaded, VectorsFeaturizer) and loaded.n_features == 3 and loaded.vector_column == "emb"
    np.testing.assert_array_equal(loaded.transform(vectors), vectors.astype(np.float32))
    with pytest.raises(UserError, match="have 4 numbers each, but the featurizer was fitted on 3"):
        loaded.transform(np.zeros((2, 4)))
    with pytest.raises(UserError, match="takes precomputed vectors, not texts"):
        loaded.transform(["a text"])
    with pytest.raises(UserError, match="Vector 1 .* holds NaN or inf"):
        loaded.transform([[0, 0, 0], [0, np.inf, 0]])
