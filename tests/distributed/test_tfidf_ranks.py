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


BAD_SCRIPT = """
import time
from textsae.distributed import setup
from textsae.errors import UserError
from textsae.featurize.tfidf import TfidfFeaturizer
w = setup("cpu")
docs = ["a good film"] * 40
docs[31] = None  # in rank 1's half
try:
    TfidfFeaturizer(min_df=1).fit_stream(docs, batch_docs=7)
except UserError as error:
    print(f"rank {w.rank}: {error}", flush=True)
    if w.rank == 1:
        time.sleep(3)  # rank 0 exits first; torchrun then stops this rank, whose line is already out
    raise SystemExit(3)
"""


def test_a_bad_document_on_one_rank_stops_every_rank_with_its_message(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text(BAD_SCRIPT, encoding="utf-8")
    result = torchrun(2, [str(script)], check=False)
    assert result.returncode != 0
    for rank in (0, 1):
        assert f"rank {rank}: TfidfFeaturizer.fit: document 31 is NoneType None" in result.stdout
