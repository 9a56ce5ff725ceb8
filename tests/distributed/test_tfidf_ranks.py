"""Rank-split TF-IDF counting: 2 gloo ranks, each counting its slice of a streamed file, save the same featurizer,
byte for byte, as one process (and as the in-memory fit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.distributed.launch import torchrun
from textsae.data.stream import index_file
from textsae.featurize.tfidf import TfidfFeaturizer

SETTINGS = {"ngram_range": (1, 2), "min_df": 2, "max_features": 300}

SCRIPT = """
import sys
from textsae.data.stream import index_file
from textsae.distributed import setup
from textsae.featurize.tfidf import TfidfFeaturizer
w = setup("cpu")
texts = index_file(sys.argv[1]).texts
featurizer = TfidfFeaturizer(ngram_range=(1, 2), min_df=2, max_features=300).fit_stream(texts, batch_docs=50)
featurizer.save_pretrained(sys.argv[2] + f"/rank{w.rank}")
"""


def _corpus(path: Path, n_docs: int = 701) -> Path:
    """Zipf-like word draws, so that many terms tie at the max_features cut and rare ones sit at min_df."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(400)]
    weights = 1.0 / np.arange(1, 401)
    docs = [" ".join(rng.choice(words, size=rng.integers(3, 40), p=weights / weights.sum())) for _ in range(n_docs)]
    docs[5] = ""  # dropped by the reader on every rank alike
    pq.write_table(pa.table({"text": docs, "label": [i % 2 for i in range(n_docs)]}), path, row_group_size=97)
    return path


def test_two_ranks_save_the_same_featurizer_as_one(tmp_path: Path) -> None:
    data = _corpus(tmp_path / "docs.parquet")
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT, encoding="utf-8")
    torchrun(2, [str(script), str(data), str(tmp_path / "two")])
    texts = index_file(data).texts
    TfidfFeaturizer(**SETTINGS).fit_stream(texts, batch_docs=50).save_pretrained(tmp_path / "one")
    TfidfFeaturizer(**SETTINGS).fit(list(texts)).save_pretrained(tmp_path / "memory")
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == ["config.json", "idf.safetensors", "vocab.json"]
    for name in names:
        one = (tmp_path / "one" / name).read_bytes()
        assert (tmp_path / "two" / "rank0" / name).read_bytes() == one, name
        assert (tmp_path / "two" / "rank1" / name).read_bytes() == one, name
        assert (tmp_path / "memory" / name).read_bytes() == one, name
