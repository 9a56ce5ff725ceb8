"""TF-IDF features as CSR shards under torchrun: 2 gloo ranks write the bytes 1 rank writes, and a killed rank resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.distributed.launch import torchrun

SCRIPT = """
import sys
from textsae.config.compose import load_recipe
from textsae.distributed import setup
from textsae.pipeline import Pipeline

setup("cpu")
recipe, run_dir = sys.argv[1], sys.argv[2]
pipeline = Pipeline(load_recipe(recipe, [f"run.dir={run_dir}", "store.shard_docs=64"]))
features = pipeline.featurize()
assert features.train.shape[0] == 400 and features.eval.shape[0] == 200, features.train.shape
"""


def _files(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.parts[-2] in ("features", "featurizer", "train", "eval")
    }


@pytest.fixture
def featurize_script(tmp_path: Path) -> Path:
    script = tmp_path / "featurize.py"
    script.write_text(SCRIPT)
    return script


def test_two_ranks_write_the_same_shards_as_one_and_resume_after_a_kill(
    tmp_path: Path, tiny_recipe: Path, featurize_script: Path
) -> None:
    one, two, killed = tmp_path / "one", tmp_path / "two", tmp_path / "killed"
    torchrun(1, [str(featurize_script), str(tiny_recipe), str(one)])
    torchrun(2, [str(featurize_script), str(tiny_recipe), str(two)])
    files = _files(one)
    assert "features/train/data-00006.npy" in files and "features/eval/manifest.json" in files  # 7 + 4 shards
    assert files == _files(two)

    wrapper = tmp_path / "kill_rank1.py"
    wrapper.write_text(  # rank 1 dies after its 2nd shard; torchrun then stops rank 0
        "import os, runpy\n"
        "if os.environ['RANK'] == '1':\n"
        "    os.environ['TEXTSAE_TEST_KILL_AT'] = 'features-shard#2'\n"
        f"runpy.run_path({str(featurize_script)!r}, run_name='__main__')\n"
    )
    failed = torchrun(2, [str(wrapper), str(tiny_recipe), str(killed)], check=False)
    assert failed.returncode != 0
    assert not (killed / "features" / "manifest.json").exists()
    torchrun(2, [str(featurize_script), str(tiny_recipe), str(killed)])
    assert _files(killed) == files
