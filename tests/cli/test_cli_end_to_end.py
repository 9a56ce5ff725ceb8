"""The CLI end to end on a tiny corpus: run, show, validate, encode, and one-line errors."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from textsae.cli.main import main
from textsae.store.codes import codes_info, load_codes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def recipe(tmp_path: Path, tiny_corpus_dir: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "# Tiny end-to-end recipe for tests.\n"
        "defaults: [featurizer/tfidf_small, sae/topk, train/cpu_small, eval/linear_probe]\n"
        f"data:\n  path: {tiny_corpus_dir}\n"
        "featurizer:\n  min_df: 1\n"
        "sae:\n  n_latents: 64\n  k: 4\n"
        "runtime:\n  progress: false\ntrain:\n  epochs: 3\n  batch_size: 32\n"
        "eval:\n  cv_folds: 3\n  C_grid: [1.0, 4.0]\n"
    )
    return path


def test_run_writes_report_and_prints_table(recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["run", str(recipe), f"run.dir={run_dir}", "-q"]) == 0
    out = capsys.readouterr().out
    assert "codes" in out and "source" in out and "truncated" in out
    report = json.loads((run_dir / "report.json").read_text())
    for name in ("source", "codes", "truncated"):
        assert {"accuracy", "macro_f1", "bytes_per_doc"} <= set(report["eval"][name])
    assert report["eval"]["codes"]["bytes_per_doc"] <= 4 * 4 + 1e-9  # k=4 entries × 4 B
    assert {"fvu", "l0", "dead_fraction"} <= set(report["sae"])
    assert report["eval"]["source"]["accuracy"] > 0.9  # the synthetic labels are easy
    assert (run_dir / "report.md").exists() and (run_dir / "config.yaml").exists()
    assert not (run_dir / "checkpoints").exists()  # the resumable state (SAE + Adam moments) goes once sae/ is saved

    # A second run reuses every finished stage and gives the same report.
    assert main(["run", str(recipe), f"run.dir={run_dir}", "-q"]) == 0
    again = json.loads((run_dir / "report.json").read_text())
    assert again["eval"]["codes"]["accuracy"] == report["eval"]["codes"]["accuracy"]

    # Encode a new corpus with the trained run.
    docs = tmp_path / "docs.csv"
    pd.DataFrame({"text": ["great film", "boring plot and dull actor", "superb"]}).to_csv(docs, index=False)
    out_dir = tmp_path / "codes"
    assert main(["encode", str(run_dir), str(docs), "--out", str(out_dir), "-q"]) == 0
    codes = load_codes(out_dir)
    assert codes.shape == (3, 64) and codes.getnnz(axis=1).max() <= 4
    assert main(["encode", str(run_dir), str(docs), "--out", str(out_dir), "-q"]) == 2  # exists: needs --overwrite
    for inside in (run_dir, run_dir / "codes" / "eval"):  # the run's own folders are never an --out
        assert main(["encode", str(run_dir), str(docs), "--out", str(inside), "--overwrite", "-q"]) == 2
    assert main(["encode", str(run_dir), str(docs), "--out", str(out_dir), "--overwrite", "-q"]) == 0
    assert (load_codes(out_dir) != codes).nnz == 0
    # Rows keep their identity: an empty text is dropped, and the ids and labels say which row each code is.
    labelled = tmp_path / "labelled.csv"
    pd.DataFrame({"text": ["great film", " ", "dull plot", "superb"], "label": [1, 0, 0, 1]}).to_csv(
        labelled, index=False
    )
    assert main(["encode", str(run_dir), str(labelled), "--out", str(tmp_path / "ids"), "-q"]) == 0
    with_ids = load_codes(tmp_path / "ids", with_ids=True)
    assert with_ids.codes.shape[0] == 3
    assert with_ids.doc_ids.tolist() == [0, 2, 3] and with_ids.labels.tolist() == [1, 0, 1]
    assert codes_info(tmp_path / "ids")["dropped_rows"] == [1]  # the manifest lists what was dropped
    # Or the ids of a column the user names: text or integers, unique.
    named = tmp_path / "named.csv"
    pd.DataFrame({"doc_id": ["a7", "b2", "c9", "d1"], "text": ["great film", " ", "dull plot", "superb"]}).to_csv(
        named, index=False
    )
    argv = ["encode", str(run_dir), str(named), "--id-column", "doc_id", "-q"]
    assert main([*argv, "--out", str(tmp_path / "named")]) == 0
    assert load_codes(tmp_path / "named", with_ids=True).doc_ids.tolist() == ["a7", "c9", "d1"]
    pd.DataFrame({"doc_id": [10, 20, 30], "text": ["great film", "dull plot", "superb"]}).to_parquet(
        tmp_path / "n.parquet"
    )
    assert (
        main(
            [
                "encode",
                str(run_dir),
                str(tmp_path / "n.parquet"),
                "--id-column",
                "doc_id",
                "--out",
                str(tmp_path / "n"),
                "-q",
            ]
        )
        == 0
    )
    loaded_ids = load_codes(tmp_path / "n", with_ids=True).doc_ids
    assert loaded_ids.dtype == np.int64 and loaded_ids.tolist() == [10, 20, 30]
    pd.DataFrame({"doc_id": ["x", "x"], "text": ["great film", "superb"]}).to_csv(named, index=False)
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "dup")]) == 2
    assert "id 'x' in column 'doc_id' is used by line 2 and line 3" in capsys.readouterr().err
    # --k keeps the k largest entries of each code.
    assert main(["encode", str(run_dir), str(docs), "--out", str(tmp_path / "k2"), "--k", "2", "-q"]) == 0
    top2 = load_codes(tmp_path / "k2")
    assert top2.getnnz(axis=1).max() <= 2 and (top2 - codes.multiply(top2 != 0)).nnz == 0
    assert main(["encode", str(run_dir), str(docs), "--out", str(tmp_path / "k0"), "--k", "0", "-q"]) == 2
    # A finished folder that is not codes is refused, even with --overwrite, and left as it was.
    sae_files = sorted(p.name for p in (run_dir / "sae").iterdir())
    assert main(["encode", str(run_dir), str(docs), "--out", str(run_dir / "sae"), "--overwrite", "-q"]) == 2
    assert "a folder the run writes itself" in capsys.readouterr().err
    assert sorted(p.name for p in (run_dir / "sae").iterdir()) == sae_files
    other = Path(shutil.copytree(run_dir / "sae", tmp_path / "other_sae"))
    assert main(["encode", str(run_dir), str(docs), "--out", str(other), "--overwrite", "-q"]) == 2
    assert "not one of sparse codes" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == sae_files


def test_show_and_validate(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(recipe), "sae.k=8"]) == 0
    assert "k: 8" in capsys.readouterr().out
    assert main(["validate", str(recipe)]) == 0
    assert main(["validate", str(REPO / "recipes" / "quickstart.yaml")]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no/such/recipe.yaml"], "Recipe file not found"),
        (["show", "{recipe}", "sae.kk=3"], "did you mean 'sae.k'"),
        (["show", "{recipe}", "sae.k=0"], "sae.k must be auto or an int"),
        (["run", "{recipe}", "data.path=/no/such/folder"], "No such file or folder"),
        (["encode", "/no/such/run", "{recipe}", "--out", "x"], "No fitted featurizer"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    args: list[str], message: str, recipe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{recipe}", str(recipe)) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("textsae: error:") and message in err[0]


VERBS = ("run", "featurize", "train", "eval", "sweep", "encode", "export", "push", "score", "inspect", "bench")
VERBS += ("show", "validate", "ls")
BENCH_VERBS = ("tfidf", "featurize", "anomaly", "quality", "budgets", "train")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1, f"{parser.prog} has {len(actions)} groups of subcommands"
    return dict(actions[0].choices)


def test_every_verb_is_a_subcommand_with_its_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Each verb (and each `bench` verb) is an argparse subcommand with a handler and its own --help; naming it in the
    top-level help epilog is not enough, and every verb the epilog's examples use must exist."""
    from textsae.cli.main import build_parser

    parser = build_parser()
    verbs = _subcommands(parser)
    assert set(VERBS) <= set(verbs), sorted(set(VERBS) - set(verbs))
    bench_verbs = _subcommands(verbs["bench"])
    assert set(BENCH_VERBS) <= set(bench_verbs), sorted(set(BENCH_VERBS) - set(bench_verbs))
    in_examples = set(re.findall(r"^ +textsae ([a-z]+)", parser.epilog or "", flags=re.M))
    assert len(in_examples) >= 5 and in_examples <= set(verbs), sorted(in_examples - set(verbs))
    commands = [[verb] for verb in VERBS] + [["bench", verb] for verb in BENCH_VERBS]
    for argv in commands:
        sub = verbs[argv[0]] if len(argv) == 1 else bench_verbs[argv[1]]
        assert callable(sub.get_default("handler")), argv
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--help"])
        assert exit_info.value.code == 0, argv
        out = capsys.readouterr().out
        assert out.startswith(f"usage: textsae {' '.join(argv)} "), out[:80]  # this verb's own parser printed it


def test_run_with_relative_default_run_dir(recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default run directory is relative (runs/<recipe>/<hash>); artefact manifests must still resolve."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(recipe), "train.epochs=1", "-q"]) == 0
    manifests = list((tmp_path / "runs" / "tiny").glob("*/sae/manifest.json"))
    assert len(manifests) == 1


def test_changing_encode_k_re_encodes_the_codes(recipe: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    fast = ["sae.multi_topk=true", "eval.representations=[codes]", "eval.C_grid=[1.0]", "-q"]
    assert main(["run", str(recipe), f"run.dir={run_dir}", *fast]) == 0
    assert load_codes(run_dir / "codes" / "eval").getnnz(axis=1).max() <= 4
    assert main(["eval", str(recipe), f"run.dir={run_dir}", "encode.k=9", *fast]) == 0
    assert load_codes(run_dir / "codes" / "eval").getnnz(axis=1).max() == 9  # read at k = 9 > the training k = 4
    assert json.loads((run_dir / "report.json").read_text())["sae"]["k"] == 9


def test_a_corpus_edited_in_place_is_refused_instead_of_reusing_stale_stages(
    recipe: Path, tmp_path: Path, tiny_corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.parquet").write_bytes((tiny_corpus_dir / f"{split}.parquet").read_bytes())
    run_dir = tmp_path / "run"
    fast = [
        f"data.path={data}",
        f"run.dir={run_dir}",
        "train.epochs=1",
        "eval.representations=[codes]",
        "eval.C_grid=[1.0]",
        "-q",
    ]
    assert main(["run", str(recipe), *fast]) == 0
    assert main(["run", str(recipe), *fast]) == 0  # unchanged corpus: every stage is reused
    report = (run_dir / "report.json").read_bytes()
    capsys.readouterr()

    test = pd.read_parquet(data / "test.parquet")
    test.loc[0, "label"] = 1 - test.loc[0, "label"]  # one label corrected in place
    test.to_parquet(data / "test.parquet")
    assert main(["run", str(recipe), *fast]) == 2
    err = capsys.readouterr().err
    assert (
        "changed since the run" in err
        and str(run_dir) in err
        and "run.dir=" in err
        and len(err.strip().splitlines()) == 1
    )
    assert (run_dir / "report.json").read_bytes() == report  # nothing of the old run was touched


def test_a_diverging_run_exits_2_and_saves_no_sae(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "diverged"
    code = main(["run", str(recipe), f"run.dir={run_dir}", "train.lr=1e12", "train.checkpoint_every=1"])
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("textsae: error")]
    assert len(err) == 1 and "Training diverged at step" in err[0] and "train.lr=1e+12" in err[0]
    assert not (run_dir / "sae").exists() and not list(run_dir.glob("checkpoints/*"))


def test_output_into_a_closed_pipe_is_quiet(recipe: Path) -> None:
    """`textsae show RECIPE | head -1`: the reader leaves early; no "Broken pipe" error, exit 0."""
    import shlex
    import subprocess
    import sys

    command = f"{shlex.quote(sys.executable)} -m textsae show {shlex.quote(str(recipe))} | true"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.stderr == "" and done.returncode == 0


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_debug_before_or_after_the_verb_shows_the_traceback(before: bool, tmp_path: Path) -> None:
    from textsae.errors import ConfigError

    missing = str(tmp_path / "missing.yaml")
    argv = ["--debug", "show", missing] if before else ["show", missing, "--debug"]
    with pytest.raises(ConfigError, match="Recipe file not found"):
        main(argv)


def test_quiet_before_the_verb_is_accepted(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "show", str(recipe)]) == 0
    assert "name:" in capsys.readouterr().out


def test_a_corpus_without_labels_trains_encodes_and_skips_the_classifier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """recipes/tfidf_auto.yaml uses the label loss and the probe's latents: without labels it trains without them."""
    import json

    from tests.conftest import REPO, make_texts

    texts, _ = make_texts(300, seed=7)
    data = tmp_path / "unlabelled.csv"
    pd.DataFrame({"text": texts}).to_csv(data, index=False)
    run = tmp_path / "run"
    argv = ["run", str(REPO / "recipes" / "tfidf_auto.yaml"), f"data.path={data}", f"run.dir={run}", "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "no classifier evaluation: the corpus has no labels" in out
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["eval"] == {} and report["dataset"]["n_classes"] == 0
    assert report["sae"]["labels_shaped_codes"] is False and report["sae"]["fvu"] < 1
    assert any("classifier evaluation was skipped" in note for note in report["notes"])
    assert load_codes(run / "codes" / "train").shape[0] == 240 and load_codes(run / "codes" / "eval").shape[0] == 60
