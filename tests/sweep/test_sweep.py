"""Sweeps: grid parsing, the Pareto front, and a 2×2 sweep end to end on the tiny corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from textsae.cli.main import main
from textsae.errors import ConfigError
from textsae.sweep import Axis, expand_grid, pareto_front, parse_grid

CHEAP = ["train.epochs=1", "eval.cv_folds=2", "eval.C_grid=[1.0]"]


def test_bracketed_lists_are_axes_unless_the_key_holds_a_list() -> None:
    fixed, axes = parse_grid(
        ["sae.k=[8,32]", "train.lr=0.01", "featurizer.ngram_range=[1,2]", "eval.C_grid=[[1.0],[1.0,4.0]]", "~sae.l1"]
    )
    assert fixed == ["train.lr=0.01", "featurizer.ngram_range=[1,2]", "~sae.l1"]
    assert axes == [Axis("sae.k", (8, 32)), Axis("eval.C_grid", ([1.0], [1.0, 4.0]))]
    with pytest.raises(ConfigError, match="no values"):
        parse_grid(["sae.k=[]"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["sae.k=[1]", "sae.k=[2]"])


def test_grid_is_the_product_with_the_last_axis_fastest() -> None:
    points = expand_grid([Axis("a", (1, 2)), Axis("b", ("x", "y", "z"))])
    assert [p.assignments for p in points][:4] == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "z"},
        {"a": 2, "b": "x"},
    ]
    assert len(points) == 6 and points[5].overrides == ["a=2", 'b="z"']
    assert [p.assignments for p in expand_grid([])] == [{}]


def test_pareto_front_by_hand() -> None:
    costs, accuracy = [1, 2, 2, 3, 4], [0.5, 0.7, 0.6, 0.7, 0.9]
    assert pareto_front(costs, accuracy) == [0, 1, 4]  # 2 is beaten by 1 (same cost), 3 by 1 (same accuracy, cheaper)
    assert pareto_front([1, 2, 3], [0.3, 0.2, 0.25], maximize=False) == [0, 1]


def test_two_by_two_sweep_shares_features_and_never_sees_the_test_split(
    tiny_recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    assert (
        main(["sweep", str(tiny_recipe), "sae.k=[2,4]", "sae.n_latents=[16,32]", *CHEAP, "--out", str(out), "-q"]) == 0
    )
    result = json.loads((out / "sweep.json").read_text())
    assert [p["assignments"] for p in result["points"]] == [
        {"sae.k": 2, "sae.n_latents": 16},
        {"sae.k": 2, "sae.n_latents": 32},
        {"sae.k": 4, "sae.n_latents": 16},
        {"sae.k": 4, "sae.n_latents": 32},
    ]
    assert (out / "sweep.md").is_file() and (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(out.glob("features-*"))) == 1  # one featurization for the four points
    inodes = {(Path(p["run_dir"]) / "features" / "train" / "data-00000.npy").stat().st_ino for p in result["points"]}
    assert len(inodes) == 1  # hard links to the shared featurization
    for point in result["points"]:
        report = json.loads((Path(point["run_dir"]) / "report.json").read_text())
        assert report["dataset"]["eval_split"] == "validation"
        assert (report["dataset"]["train_docs"], report["dataset"]["eval_docs"]) == (
            320,
            80,
        )  # 400 train docs, test never loaded
        assert report["config"]["sae"]["k"] == point["assignments"]["sae.k"] and set(report["eval"]) == {"codes"}
        assert point["metrics"]["l0"] <= point["assignments"]["sae.k"]
    accuracies = [p["metrics"]["accuracy"] for p in result["points"]]
    best = result["best"]
    assert best["metrics"]["accuracy"] == max(accuracies)
    assert yaml.safe_load(best["config"])["sae"]["k"] == best["assignments"]["sae.k"]
    printed = capsys.readouterr().out
    assert f"point {best['index']}" in printed and "resolved config of the best point" in printed

    # Running it again reuses every finished point and gives the same numbers.
    assert (
        main(["sweep", str(tiny_recipe), "sae.k=[2,4]", "sae.n_latents=[16,32]", *CHEAP, "--out", str(out), "-q"]) == 0
    )
    again = json.loads((out / "sweep.json").read_text())
    assert np.allclose(accuracies, [p["metrics"]["accuracy"] for p in again["points"]])
    assert [p["run_dir"] for p in again["points"]] == [p["run_dir"] for p in result["points"]]

    # Another validation split in the same folder trains afresh instead of resuming the old points.
    assert (
        main(
            [
                "sweep",
                str(tiny_recipe),
                "sae.k=[2]",
                "sae.n_latents=16",
                *CHEAP,
                "--val-fraction",
                "0.25",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    other = json.loads((out / "sweep.json").read_text())["points"][0]
    assert other["run_dir"] not in {p["run_dir"] for p in result["points"]}
    assert json.loads((Path(other["run_dir"]) / "report.json").read_text())["dataset"]["eval_docs"] == 100


def test_bad_axis_value_is_reported_before_anything_runs(
    tiny_recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", str(tiny_recipe), "sae.k=[2,0]", "--out", str(tmp_path / "s"), "-q"]) == 2
    assert "sae.k must be auto or an int" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
