"""Codebooks: saved, reloaded from a folder and from a hub download (mocked: the hub is out of reach here), pushed
(mocked), with a model card that shows the run's metrics; what is read back is verified."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import textsae
import textsae.codebook
from textsae.cli.main import main
from textsae.errors import HubUnreachableError, UserError
from textsae.store.codes import load_codes


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_corpus_dir: Path) -> Path:
    """A finished TF-IDF run (featurized, trained, encoded and evaluated) on the tiny corpus."""
    folder = tmp_path_factory.mktemp("codebook")
    recipe = folder / "tiny.yaml"
    recipe.write_text(
        "defaults: [featurizer/tfidf_small, sae/topk, train/cpu_small, eval/linear_probe]\n"
        f"data:\n  path: {tiny_corpus_dir}\n"
        "featurizer:\n  min_df: 1\n"
        "sae:\n  n_latents: 32\n  k: 4\n"
        "runtime:\n  progress: false\n  device: cpu\ntrain:\n  steps: 20\n  batch_size: 64\n"
        "eval:\n  cv_folds: 2\n  C_grid: [1.0]\n",
        encoding="utf-8",
    )
    assert main(["run", str(recipe), f"run.dir={folder / 'run'}", "-q"]) == 0
    return folder / "run"


@pytest.fixture(scope="module")
def texts(tiny_corpus_dir: Path) -> list[str]:
    return [*pd.read_parquet(tiny_corpus_dir / "test.parquet")["text"].tolist()[:40], "", "   "]


def test_saved_and_reloaded_codebooks_give_the_runs_codes(
    run_dir: Path, texts: list[str], tmp_path: Path, tiny_corpus_dir: Path
) -> None:
    from_run = textsae.from_pretrained(run_dir)
    codes = from_run.encode(texts)
    assert codes.shape == (len(texts), 32) and codes.getnnz(axis=1)[-2:].tolist() == [0, 0]  # empty texts: empty rows
    saved = from_run.save_pretrained(tmp_path / "codebook")
    assert sorted(p.name for p in saved.iterdir()) == [
        "README.md",
        "codebook.json",
        "config.yaml",
        "featurizer",
        "manifest.json",
        "report.json",
        "sae",
    ]
    reloaded = textsae.from_pretrained(saved)
    assert (reloaded.encode(texts) != codes).nnz == 0
    run_report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert reloaded.config["sae"]["n_latents"] == 32
    assert reloaded.report["eval"] == run_report["eval"] and reloaded.report["sae"] == run_report["sae"]  # the run's
    assert "run_dir" not in reloaded.report  # a shared card does not show the trainer's local folder

    # The same documents through the run's stored codes (float16 values) and through `textsae encode CODEBOOK`.
    stored = load_codes(run_dir / "codes" / "eval")
    assert np.array_equal((stored[:40] != 0).toarray(), (codes[:40] != 0).toarray())
    out = tmp_path / "encoded"
    assert main(["encode", str(saved), str(tiny_corpus_dir / "test.parquet"), "--out", str(out), "-q"]) == 0
    assert (load_codes(out)[:40] != stored[:40]).nnz == 0


def test_the_model_card_carries_hub_metadata_and_the_runs_metrics(run_dir: Path, tmp_path: Path) -> None:
    codebook = textsae.from_pretrained(run_dir)
    card = codebook.save_pretrained(tmp_path / "cb").joinpath("README.md").read_text(encoding="utf-8")
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    metadata = yaml.safe_load(front)
    assert metadata["library_name"] == "textsae" and "sparse-autoencoder" in metadata["tags"]
    assert "base_model" not in metadata  # TF-IDF: no base model
    accuracy = metadata["model-index"][0]["results"][0]["metrics"][0]
    assert accuracy["type"] == "accuracy" and accuracy["value"] == round(
        codebook.report["eval"]["codes"]["accuracy"], 4
    )
    assert "| codes | " in body and "textsae.from_pretrained(" in body and "32 latents" in body


def test_hidden_state_cards_name_the_base_model() -> None:
    from textsae.model_card import BUNDLED_MODEL_HUB_ID, render_model_card

    marker = {"featurizer_kind": "hidden_states", "model": None, "architecture": "topk", "d_in": 384, "n_latents": 8}
    card = render_model_card(marker, {"name": "x", "data": {"name": "imdb"}}, None, repo_id="me/x")
    metadata = yaml.safe_load(card.split("---\n")[1])
    assert metadata["base_model"] == BUNDLED_MODEL_HUB_ID and metadata["datasets"] == ["imdb"]
    assert "model-index" not in metadata and "saved without an evaluation report" in card
    assert 'from_pretrained("me/x")' in card
    local = render_model_card({**marker, "model": "/home/me/model"}, {}, None)
    assert "base_model" not in yaml.safe_load(local.split("---\n")[1])  # a local folder is no hub id


@pytest.mark.parametrize("damaged", ["sae/model.safetensors", "README.md", "codebook.json"])
def test_a_changed_file_in_a_saved_codebook_is_refused(run_dir: Path, tmp_path: Path, damaged: str) -> None:
    folder = textsae.from_pretrained(run_dir).save_pretrained(tmp_path / "cb")
    path = folder / damaged
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # same size
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="SHA-256"):
        textsae.from_pretrained(folder)


def test_save_pretrained_refuses_a_folder_that_holds_something_else(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(UserError, match="not empty and holds no codebook"):
        textsae.from_pretrained(run_dir).save_pretrained(tmp_path)
    assert (tmp_path / "mine.txt").read_text(encoding="utf-8") == "keep me"


def test_a_hub_id_offline_fails_fast_naming_the_local_alternative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError, match="Cannot reach the Hugging Face Hub to download codebook 'me/cb'"):
        textsae.from_pretrained("me/cb")
    assert time.perf_counter() - start < 5


def test_a_path_that_does_not_exist_is_not_taken_for_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such folder"):
        textsae.from_pretrained(str(tmp_path / "missing"))


def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("textsae.data.hub.offline_requested", lambda: False)
    monkeypatch.setattr("textsae.data.hub.hub_reachable", lambda timeout_s: True)


def test_from_pretrained_with_a_hub_id_loads_the_download_and_verifies_it(
    run_dir: Path, texts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = textsae.from_pretrained(run_dir).save_pretrained(tmp_path / "hub_snapshot")
    calls: list[dict[str, Any]] = []

    def snapshot_download(repo_id: str, **kwargs: Any) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        return str(published)

    _online(monkeypatch)
    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    codebook = textsae.from_pretrained("me/cb", revision="v1")
    assert calls[0]["repo_id"] == "me/cb" and calls[0]["revision"] == "v1"
    assert (codebook.encode(texts) != textsae.from_pretrained(run_dir).encode(texts)).nnz == 0
    (published / "sae" / "model.safetensors").write_bytes(b"not weights")  # a tampered download is refused
    with pytest.raises(UserError, match="sae"):
        textsae.from_pretrained("me/cb")


def test_push_to_hub_uploads_the_saved_folder(run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    uploaded: dict[str, Any] = {}

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            uploaded["token"] = token

        def create_repo(self, repo_id: str, **kwargs: Any) -> None:
            uploaded["created"] = (repo_id, kwargs["private"])

        def upload_folder(self, *, repo_id: str, folder_path: str, **kwargs: Any) -> Any:
            uploaded["files"] = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*"))
            uploaded["card"] = (Path(folder_path) / "README.md").read_text(encoding="utf-8")
            return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()

    _online(monkeypatch)
    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert main(["push", str(run_dir), "me/cb", "--private"]) == 0
    assert uploaded["created"] == ("me/cb", True)
    assert {"README.md", "manifest.json", "sae/model.safetensors", "featurizer/manifest.json"} <= set(uploaded["files"])
    assert "library_name: textsae" in uploaded["card"]
    assert "https://huggingface.co/me/cb/commit/abc" in capsys.readouterr().out


def test_push_offline_is_one_line(run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", str(run_dir), "me/cb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "Cannot reach the Hugging Face Hub to push codebook" in err[0] and "--to codebook" in err[0]
    )


def test_export_to_codebook(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    assert main(["export", str(run_dir), "--to", "codebook", "--out", str(out), "-q"]) == 0
    assert (out / textsae.codebook.CODEBOOK_NAME).is_file()
    assert textsae.from_pretrained(out).sae.n_latents == 32


def test_a_resave_replaces_the_earlier_codebook_whole(run_dir: Path, tmp_path: Path) -> None:
    codebook = textsae.from_pretrained(run_dir)
    folder = codebook.save_pretrained(tmp_path / "cb")
    textsae.Codebook(codebook.featurizer, codebook.sae, {"name": "other"}, None).save_pretrained(folder)
    again = textsae.from_pretrained(folder)
    assert again.report is None and not (folder / "report.json").exists() and again.config == {"name": "other"}


@pytest.mark.parametrize("attack", ["marker removed", "report added", "sae manifest emptied"])
def test_what_a_codebook_manifest_does_not_vouch_for_is_refused(run_dir: Path, tmp_path: Path, attack: str) -> None:
    import json

    from textsae.store.manifest import MANIFEST_NAME

    folder = textsae.from_pretrained(run_dir).save_pretrained(tmp_path / "cb")
    if attack == "marker removed":  # the top-level manifest would otherwise be skipped
        (folder / "codebook.json").unlink()
    elif attack == "report added":
        (folder / "report.json").unlink()
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        manifest["files"] = [f for f in manifest["files"] if f["name"] != "report.json"]
        (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
        (folder / "report.json").write_text('{"eval": {"codes": {"accuracy": 0.999}}}')
    else:
        manifest = json.loads((folder / "sae" / MANIFEST_NAME).read_text())
        manifest["files"] = []
        (folder / "sae" / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(UserError):
        textsae.from_pretrained(folder)


def test_odd_inputs_to_codebooks_are_one_line_errors(run_dir: Path, tmp_path: Path) -> None:
    codebook = textsae.from_pretrained(run_dir)
    with pytest.raises(UserError, match="wrap a single text in a list"):
        codebook.encode("a quietly moving film")
    with pytest.raises(UserError, match="batch_size must be an int >= 1"):
        codebook.encode(["a film"], batch_size=0)
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    with pytest.raises(UserError, match="is a file"):
        codebook.save_pretrained(tmp_path / "a_file")
    with pytest.raises(UserError, match="neither a trained run nor a saved codebook"):
        textsae.from_pretrained(tmp_path)  # a folder without featurizer/ and sae/
    with pytest.raises(UserError, match="no such folder"):
        textsae.from_pretrained("mycodebook")  # no org/name: a missing folder, not a hub id


def test_published_copies_leave_out_local_folders_and_survive_odd_reports(run_dir: Path, tmp_path: Path) -> None:
    codebook = textsae.from_pretrained(run_dir)
    folder = codebook.save_pretrained(tmp_path / "cb")
    published = (folder / "config.yaml").read_text(encoding="utf-8") + (folder / "report.json").read_text()
    assert str(run_dir) not in published and str(run_dir.parent) not in published
    odd = textsae.Codebook(codebook.featurizer, codebook.sae, {"data": "x"}, {"eval": [], "dataset": "sst2", "sae": 3})
    card = odd.save_pretrained(tmp_path / "odd").joinpath("README.md").read_text(encoding="utf-8")
    assert "saved without an evaluation report" in card


def test_hostile_yaml_numbers_and_nesting_are_refused() -> None:
    from textsae.config.safe_yaml import YamlLimitError, load_yaml

    with pytest.raises(YamlLimitError, match="a value cannot be read"):
        load_yaml("n: 1" + "0" * 5000)
    with pytest.raises(YamlLimitError, match="nesting too deep"):
        load_yaml("a: " + "[" * 5000 + "]" * 5000)
