"""A saved featurizer folder cannot switch on remote code or pickle: only the caller can."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from textsae.cli.main import main
from textsae.errors import UserError
from textsae.featurize import load_featurizer
from textsae.featurize.hidden_states import HiddenStatesFeaturizer
from textsae.store.manifest import MANIFEST_NAME, write_manifest

PAYLOAD = """
from pathlib import Path
Path(MARKER).write_text("yes")
from transformers import BertConfig, BertModel
class EvilConfig(BertConfig):
    model_type = "bert"
class EvilModel(BertModel):
    config_class = EvilConfig
"""


@pytest.fixture
def evil_name() -> Iterator[str]:
    """A fresh folder name: transformers caches remote code by folder name, across runs, in its modules cache."""
    from transformers.dynamic_module_utils import HF_MODULES_CACHE

    name = f"evil_{uuid.uuid4().hex[:12]}"
    yield name
    shutil.rmtree(Path(HF_MODULES_CACHE) / "transformers_modules" / name, ignore_errors=True)


def _evil_model(tiny_bert_dir: Path, tmp_path: Path, name: str) -> Path:
    """The tiny BERT with an ``auto_map`` pointing at a module that leaves a marker file when imported."""
    folder = tmp_path / name
    shutil.copytree(tiny_bert_dir, folder)
    # transformers imports a copy from its modules cache, so the marker path is written into the code
    (folder / "evil.py").write_text(PAYLOAD.replace("MARKER", repr(str(folder / "PAYLOAD_RAN"))), encoding="utf-8")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def _plant(config_path: Path) -> None:
    """Switch the saved opt-ins on, keeping the file's size (a manifest checks sizes)."""
    text = config_path.read_text(encoding="utf-8")
    for name in ("trust_remote_code", "allow_pickle"):
        assert f'"{name}": false' in text
        text = text.replace(f'"{name}": false', f'"{name}": true ')
    config_path.write_text(text, encoding="utf-8")


def test_planted_opt_ins_are_not_permission(tiny_bert_dir: Path, tmp_path: Path, evil_name: str) -> None:
    model = _evil_model(tiny_bert_dir, tmp_path, evil_name)
    saved = tmp_path / "featurizer"
    HiddenStatesFeaturizer(model=str(model), device="cpu").save_pretrained(saved)
    _plant(saved / "config.json")
    featurizer = load_featurizer(saved)
    assert featurizer.trust_remote_code is False and featurizer.allow_pickle is False
    with pytest.raises(UserError, match=r"--trust-remote-code and --allow-pickle") as caught:
        featurizer.transform(["a good film"])
    assert "\n" not in str(caught.value)
    assert not (model / "PAYLOAD_RAN").exists()
    trusted = load_featurizer(saved, trust_remote_code=True, allow_pickle=True)
    assert trusted.trust_remote_code is True and trusted.allow_pickle is True
    trusted.transform(["a good film"])  # the caller's permission: the repository's code does run
    assert (model / "PAYLOAD_RAN").exists()


def test_encode_of_a_planted_run_refuses_and_runs_nothing(
    tiny_bert_dir: Path, tiny_corpus_dir: Path, tmp_path: Path, evil_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _evil_model(tiny_bert_dir, tmp_path, evil_name)
    recipe = tmp_path / "dense.yaml"
    recipe.write_text(
        "name: dense\n"
        f"data:\n  path: {tiny_corpus_dir}\n"
        f"featurizer:\n  kind: hidden_states\n  model: {tiny_bert_dir}\n  batch_size: 32\n"
        "sae:\n  n_latents: 32\n  k: 4\n"
        "runtime:\n  progress: false\n  device: cpu\ntrain:\n  steps: 5\n  batch_size: 32\n"
        "eval:\n  cv_folds: 2\n  C_grid: [1.0]\n",
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    assert main(["run", str(recipe), f"run.dir={run_dir}", f"store.dir={tmp_path / 'store'}", "-q"]) == 0
    config_path = run_dir / "featurizer" / "config.json"
    text = config_path.read_text(encoding="utf-8").replace(json.dumps(str(tiny_bert_dir)), json.dumps(str(model)))
    config_path.write_text(text, encoding="utf-8")  # the attacker's model
    _plant(config_path)
    # A manifest is a checksum, not a signature: whoever can write the folder can rewrite it too.
    (run_dir / "featurizer" / MANIFEST_NAME).unlink()
    files = sorted(p for p in (run_dir / "featurizer").iterdir() if p.name != MANIFEST_NAME)
    write_manifest(run_dir / "featurizer", files, {"kind": "featurizer"})
    docs = tmp_path / "docs.txt"
    docs.write_text("a good film\na bad film\n", encoding="utf-8")
    capsys.readouterr()
    code = main(["encode", str(run_dir), str(docs), "--out", str(tmp_path / "codes"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--trust-remote-code" in err and "textsae takes that permission only from you" in err
    assert not (model / "PAYLOAD_RAN").exists()
