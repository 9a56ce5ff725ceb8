"""Encode under torchrun: 2 gloo ranks write the same codes folders, byte for byte, as 1 process (features in memory,
`textsae encode` on texts through the featurizer, `Pipeline.encode`), and an encode killed on 2 ranks is finished by
1 process with the same bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import torch

from tests.conftest import make_texts
from tests.distributed import encode_work
from tests.distributed.launch import torchrun

SPLITS = ("train", "eval")


def _inputs(tiny_run_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    texts, labels = make_texts(45, seed=11)
    frame = pd.DataFrame({"text": texts, "label": labels, "doc_id": [f"d{i}" for i in range(45)]})
    frame.loc[[4, 20], "text"] = ""  # dropped: ids and rows keep their places
    data = tmp_path / "docs.parquet"
    frame.to_parquet(data, row_group_size=10)
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run_dir, ignore=shutil.ignore_patterns(".lock"))
    return run_dir, data


def _pipeline_copy(run_dir: Path, where: Path) -> Path:
    copy = where / "pipeline_run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("codes", ".lock"))
    return copy


def _encode_here(run_dir: Path, data: Path, out: Path) -> Path:
    """One process, one thread (as each torchrun rank has); returns the pipeline run it encoded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        copy = out / "pipeline_run" if (out / "pipeline_run").exists() else _pipeline_copy(run_dir, out)
        encode_work.work(run_dir, copy, data, out)
    finally:
        torch.set_num_threads(threads)
    return copy


def _encode_on_ranks(nproc: int, run_dir: Path, data: Path, out: Path, **kwargs: object):
    out.mkdir(parents=True, exist_ok=True)
    copy = _pipeline_copy(run_dir, out)
    args = [encode_work.__file__, str(run_dir), str(copy), str(data), str(out)]
    return torchrun(nproc, args, **kwargs)  # type: ignore[arg-type]


def _folders(out: Path) -> dict[str, dict[str, bytes]]:
    folders = [out / "in_memory", out / "cli", *(out / "pipeline_run" / "codes" / split for split in SPLITS)]
    return {
        str(folder.relative_to(out)): {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lock"}
        for folder in folders
    }


def test_two_ranks_encode_the_bytes_of_one_and_one_finishes_what_two_began(tiny_run_dir: Path, tmp_path: Path) -> None:
    run_dir, data = _inputs(tiny_run_dir, tmp_path)
    _encode_here(run_dir, data, tmp_path / "one")
    reference = _folders(tmp_path / "one")
    assert sorted(reference["in_memory"]) == sorted(
        [*(f"shard-{i:05d}.npz" for i in range(6)), "doc_ids.npy", "labels.npy", "manifest.json"]
    )
    assert sorted(n for n in reference["cli"] if n.startswith("shard-")) == [f"shard-{i:05d}.npz" for i in range(6)]
    assert sorted(reference["pipeline_run/codes/train"]) == sorted(
        [*(f"shard-{i:05d}.npz" for i in range(7)), "manifest.json"]
    )

    _encode_on_ranks(2, run_dir, data, tmp_path / "two")
    assert _folders(tmp_path / "two") == reference

    killed = (
        tmp_path / "killed"
    )  # each rank dies at its third batch (shards of 4 in batches of 3 + 1): in its 2nd shard
    result = _encode_on_ranks(2, run_dir, data, killed, env={"TEXTSAE_TEST_KILL_AT": "encode-batch#3"}, check=False)
    assert result.returncode != 0 and not (killed / "in_memory" / "manifest.json").exists()
    left = {p.name for p in (killed / "in_memory").glob("shard-*.npz")}
    assert left and left <= {"shard-00000.npz", "shard-00003.npz"}  # each rank's first shard, maybe with a gap
    _encode_here(run_dir, data, killed)
    assert _folders(killed) == reference
