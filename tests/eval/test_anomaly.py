"""Anomaly scores: LSA projection error by hand, SAE errors against the FVU, and the `score` CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from textsae.artifacts import (
    load_featurizer_artifact,
    load_sae_artifact,
)
from textsae.cli.main import main
from textsae.eval.anomaly import lsa_errors, reconstruction_errors
from textsae.sae.reconstruction import reconstruction_metrics
from textsae.store.sparse_features import open_sparse_features


def test_lsa_errors_by_hand() -> None:
    components = np.array([[1.0, 0.0, 0.0]])  # keeps the first coordinate only
    x = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert lsa_errors(components, x).tolist() == [16.0, 0.0, 0.0]
    assert lsa_errors(components, x, kind="relative").tolist() == [16 / 25, 0.0, 0.0]
    assert np.allclose(lsa_errors(components, sp.csr_matrix(x)), lsa_errors(components, x))
    diagonal = np.array([[1.0, 1.0, 0.0]]) / np.sqrt(2)  # x = e1 projects to x̂ = (0.5, 0.5, 0)
    e1 = sp.csr_matrix(np.array([[1.0, 0.0, 0.0]]))
    assert lsa_errors(diagonal, e1).tolist() == pytest.approx([0.5])
    assert lsa_errors(diagonal, e1, kind="support").tolist() == pytest.approx([0.25])  # only the missed part of x_1
    with pytest.raises(ValueError, match="'kind'"):
        lsa_errors(components, x, kind="cubic")  # type: ignore[arg-type]


def test_sae_errors_add_up_to_the_fvu(tiny_run_dir: Path) -> None:
    sae = load_sae_artifact(tiny_run_dir / "sae")
    features = open_sparse_features(tiny_run_dir / "features" / "eval").to_matrix()
    errors = reconstruction_errors(sae, features, batch_size=37)
    dense = features.toarray() * sae.input_scale.numpy()  # model space (the tiny run has no shift)
    total_variance = ((dense - dense.mean(axis=0)) ** 2).sum()
    assert errors.shape == (features.shape[0],) and (errors >= 0).all()
    assert errors.sum() / total_variance == pytest.approx(reconstruction_metrics(sae, features)["fvu"], rel=1e-4)
    relative = reconstruction_errors(sae, features, kind="relative")
    assert np.allclose(relative, errors / (dense**2).sum(axis=1))
    support = reconstruction_errors(sae, features, kind="support")
    with torch.no_grad():
        x_hat = (
            sae.decode(sae.encode(torch.from_numpy(features.toarray()).float())).double().numpy()
            * sae.input_scale.numpy()
        )
    assert np.allclose(support, (((dense - x_hat) ** 2) * (dense != 0)).sum(axis=1), rtol=1e-4)
    assert (support <= errors + 1e-9).all()


def test_score_cli_writes_one_score_per_document(
    tiny_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = pd.DataFrame(
        {
            "text": ["great film superb cast", "boring plot dull script", "quantum film chromodynamics"],
            "label": [1, 0, 0],
        }
    )
    docs.to_csv(tmp_path / "docs.csv", index=False)
    out = tmp_path / "scores.parquet"
    assert main(["score", str(tiny_run_dir), str(tmp_path / "docs.csv"), "--out", str(out), "-q"]) == 0
    table = pd.read_parquet(out)
    assert list(table.columns) == ["doc", "score", "label"] and table["doc"].tolist() == [0, 1, 2]
    sae = load_sae_artifact(tiny_run_dir / "sae")
    featurizer = load_featurizer_artifact(tiny_run_dir / "featurizer")
    assert np.allclose(
        table["score"], reconstruction_errors(sae, featurizer.transform(docs["text"].tolist()), kind="support")
    )
    assert (
        main(
            [
                "score",
                str(tiny_run_dir),
                str(tmp_path / "docs.csv"),
                "--out",
                str(tmp_path / "s.csv"),
                "--batch-size",
                "2",
                "-q",
            ]
        )
        == 0
    )
    assert np.allclose(pd.read_csv(tmp_path / "s.csv")["score"], table["score"])
    assert main(["score", str(tiny_run_dir), str(tmp_path / "docs.csv"), "--out", str(tmp_path / "s.txt"), "-q"]) == 2
    assert "--out must end in" in capsys.readouterr().err
