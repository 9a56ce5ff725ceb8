"""Hidden-state extraction under torchrun: 2 gloo ranks write the same store entry, byte for byte, as 1, and an
extraction killed on 2 ranks is finished by 1 with the same bytes, keeping the shards the killed run completed."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.conftest import REPO, make_texts
from tests.distributed.launch import torchrun
from textsae.featurize.hidden_states import HiddenStatesFeaturizer
from textsae.store.features import extract_to_store

SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.conftest import make_texts
from textsae.featurize.hidden_states import HiddenStatesFeaturizer
from textsae.store.features import extract_to_store
texts, _ = make_texts(95, seed=3)
f = HiddenStatesFeaturizer(model=sys.argv[1], progress=False, device="cpu", batch_size=4)
features = extract_to_store(f, texts, Path(sys.argv[2]), shard_docs=10, meta={{"note": "test"}})
assert features.shape[0] == 95
"""


def _extract_here(model: Path, out: Path) -> None:
    """The one-process extraction, in this process with one thread as each torchrun rank has."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        f = HiddenStatesFeaturizer(model=str(model), progress=False, device="cpu", batch_size=4)
        extract_to_store(f, make_texts(95, seed=3)[0], out, shard_docs=10, meta={"note": "test"})
    finally:
        torch.set_num_threads(threads)


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.name != ".lock"}


def _run(tmp_path: Path, nproc: int, model: Path, out: Path, **kwargs: object):
    script = tmp_path / "extract.py"
    script.write_text(SCRIPT.format(repo=str(REPO)))
    return torchrun(nproc, [str(script), str(model), str(out)], **kwargs)  # type: ignore[arg-type]


def test_two_ranks_write_the_store_entry_of_one_and_resume_what_each_other_left(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _extract_here(tiny_bert_dir, one)
    _run(tmp_path, 2, tiny_bert_dir, two)
    reference = _files(one)
    assert sorted(reference) == sorted([*(f"shard-{i:05d}.npy" for i in range(10)), "manifest.json", "stats.json"])
    assert _files(two) == reference  # same shards, statistics and manifest

    # rank 1 (shards 5-9) dies as it is about to put shard 7 in place; torchrun stops rank 0 too
    killed = tmp_path / "killed"
    result = _run(
        tmp_path, 2, tiny_bert_dir, killed, env={"TEXTSAE_TEST_KILL_AT": "write:shard-00007.npy"}, check=False
    )
    assert result.returncode != 0 and not (killed / "manifest.json").exists()
    left = {p.name: p.stat().st_ino for p in killed.glob("shard-*.npy")}
    assert {"shard-00005.npy", "shard-00006.npy"} <= set(left) and "shard-00007.npy" not in left
    _extract_here(tiny_bert_dir, killed)  # one process finishes what two began
    assert _files(killed) == reference
    assert all((killed / name).stat().st_ino == inode for name, inode in left.items())  # kept, not written again
