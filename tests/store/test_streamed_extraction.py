"""Hidden-state extraction of a streamed split reads its texts one chunk (shard) at a time, never the whole split, and
writes the same store entry, byte for byte, as from a list of the same texts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from tests.conftest import make_texts
from textsae.data.stream import LazyTexts, index_file
from textsae.featurize.hidden_states import HiddenStatesFeaturizer
from textsae.store.features import extract_to_store


class OnlySliced(LazyTexts):
    """A streamed split that refuses to be read whole and records the slices read."""

    slices: list[tuple[int, int]]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the whole split was read")

    def _read(self, start: int, stop: int) -> list[str]:
        self.slices.append((start, stop))
        return super()._read(start, stop)


def test_extraction_slices_a_streamed_split_per_shard_with_the_same_bytes(tiny_bert_dir: Path, tmp_path: Path) -> None:
    texts, _ = make_texts(50, seed=4)
    pd.DataFrame({"text": texts}).to_parquet(tmp_path / "docs.parquet", row_group_size=9)
    indexed = index_file(tmp_path / "docs.parquet", label_column=None).texts
    streamed = OnlySliced(indexed.reader, indexed.rows, indexed.offsets)
    streamed.slices = []
    featurizer = HiddenStatesFeaturizer(model=str(tiny_bert_dir), progress=False, device="cpu", batch_size=8)
    extract_to_store(featurizer, texts, tmp_path / "from_list", shard_docs=16)
    extract_to_store(featurizer, streamed, tmp_path / "streamed", shard_docs=16)
    assert streamed.slices == [(0, 16), (16, 32), (32, 48), (48, 50)]
    files = sorted(p.name for p in (tmp_path / "from_list").iterdir() if p.name != ".lock")
    assert len([name for name in files if name.startswith("shard-")]) == 4
    for name in files:
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "from_list" / name).read_bytes(), name
