"""The one-process defaults of textsae.distributed, rank slices, and the collectives across 2 gloo ranks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.distributed.launch import torchrun
from textsae.distributed import World, all_reduce_, barrier, broadcast_object, on_main, rank_slice, world


def test_one_process_is_rank_0_of_1(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert world() == World(0, 1, 0)
    assert broadcast_object("x") == "x"
    assert on_main(lambda: 3) == 3
    barrier()


@pytest.mark.parametrize("n_items, align, size", [(10, 1, 3), (10, 4, 3), (3, 4, 2), (0, 2, 2), (101, 10, 4)])
def test_rank_slices_cover_every_item_once_at_block_starts(n_items: int, align: int, size: int) -> None:
    slices = [rank_slice(n_items, align=align, current=World(rank, size)) for rank in range(size)]
    covered = [i for part in slices for i in range(n_items)[part]]
    assert covered == list(range(n_items))
    assert all(part.start % align == 0 or part.start == n_items for part in slices)
    blocks = [-(-(part.stop - part.start) // align) for part in slices]
    assert max(blocks) - min(blocks) <= 1


def test_rank_slice_refuses_a_zero_alignment() -> None:
    with pytest.raises(ValueError, match="align"):
        rank_slice(5, align=0)


SCRIPT = """
import json, sys, torch
from textsae.distributed import setup, all_reduce_, broadcast_object, all_gather_objects, on_main, world
w = setup("cpu")
t = torch.tensor([float(w.rank + 1)])
all_reduce_(t, "sum")
m = torch.tensor([float(w.rank)])
all_reduce_(m, "max")
got = {
    "world": [w.rank, w.size],
    "sum": t.item(),
    "max": m.item(),
    "bcast": broadcast_object(f"from {w.rank}"),
    "gather": all_gather_objects(w.rank * 10),
    "main": on_main(lambda: f"computed on {world().rank}"),
}
with open(sys.argv[1] + f"/rank{w.rank}.json", "w") as f:
    json.dump(got, f)
"""


def test_two_gloo_ranks_agree(tmp_path: Path) -> None:
    script = tmp_path / "collectives.py"
    script.write_text(SCRIPT)
    torchrun(2, [str(script), str(tmp_path)])
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    for rank, got in enumerate(results):
        assert got["world"] == [rank, 2]
        assert got["sum"] == 3.0 and got["max"] == 1.0
        assert got["bcast"] == "from 0" and got["gather"] == [0, 10]
        assert got["main"] == "computed on 0"


def test_all_reduce_is_identity_in_one_process() -> None:
    import torch

    t = torch.tensor([2.0])
    assert all_reduce_(t, "mean").item() == 2.0
