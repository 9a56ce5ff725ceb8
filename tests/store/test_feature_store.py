"""The feature store: shards + manifest, reuse, bounded reads, and resume after SIGKILL with identical files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, make_texts
from textsae.errors import IncompleteArtifactError
from textsae.featurize.hidden_states import HiddenStatesFeaturizer
from textsae.store.features import (
    ShardedFeatures,
    extract_to_store,
    open_features,
    store_key,
)
from textsae.store.manifest import MANIFEST_NAME

TEXTS, _ = make_texts(50, seed=9)


class ArrayFeaturizer:
    """Deterministic stand-in: document i becomes a row of i's; counts every chunk it extracts."""

    def __init__(self, width: int = 3) -> None:
        self.width = width
        self.chunks_extracted = 0

    def iter_chunks(self, docs, *, chunk_docs, start=0):
        for lo in range(start, len(docs), chunk_docs):
            ids = np.arange(lo, min(lo + chunk_docs, len(docs)))
            self.chunks_extracted += 1
            yield np.repeat(ids[:, None].astype(np.float32), self.width, axis=1), ids


def test_shards_manifest_stats_and_reuse(tmp_path: Path) -> None:
    featurizer = ArrayFeaturizer()
    features = extract_to_store(featurizer, TEXTS, tmp_path, shard_docs=16)
    assert sorted(p.name for p in tmp_path.glob("shard-*.npy")) == [f"shard-{i:05d}.npy" for i in range(4)]
    assert features.shape == (50, 3) and featurizer.chunks_extracted == 4
    np.testing.assert_array_equal(features.to_array()[:, 0], np.arange(50))
    assert features.stats["rows"] == 50 and features.stats["mean"][0] == pytest.approx(24.5)
    again = extract_to_store(featurizer, TEXTS, tmp_path, shard_docs=16)
    assert featurizer.chunks_extracted == 4 and again.shape == (50, 3)  # reused, nothing extracted


def test_resume_skips_complete_shards_and_drops_partial_files(tmp_path: Path) -> None:
    extract_to_store(ArrayFeaturizer(), TEXTS, tmp_path / "full", shard_docs=16)
    partial = tmp_path / "partial"
    extract_to_store(ArrayFeaturizer(), TEXTS, partial, shard_docs=16)
    (partial / MANIFEST_NAME).unlink()
    (partial / "stats.json").unlink()
    (partial / "shard-00003.npy").unlink()
    (partial / "shard-00002.npy").rename(partial / ".tmp-shard-00002.npy")  # an interrupted write
    with pytest.raises(IncompleteArtifactError, match="Re-run the same command to finish the extraction"):
        open_features(partial)
    featurizer = ArrayFeaturizer()
    extract_to_store(featurizer, TEXTS, partial, shard_docs=16)
    assert featurizer.chunks_extracted == 2 and not list(partial.glob(".tmp-*"))
    for name in ("shard-00000.npy", "shard-00002.npy", "stats.json"):
        assert (partial / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_sharded_reads_subsets_and_slices(tmp_path: Path) -> None:
    features = extract_to_store(ArrayFeaturizer(), TEXTS, tmp_path, shard_docs=7)
    assert isinstance(features.shards[0], np.memmap)
    rows = np.array([49, 0, 13, 14, 7, 6])
    np.testing.assert_array_equal(features[rows][:, 0], rows)
    view = features.subset(np.arange(10, 30))
    assert view.shape == (20, 3)
    np.testing.assert_array_equal(view[2:5][:, 0], [12, 13, 14])
    np.testing.assert_array_equal(view.subset(np.array([0, 19]))[np.array([1, 0])][:, 0], [29, 10])
    with pytest.raises(IndexError):
        view[np.array([20])]


def test_store_key_changes_with_texts_and_params_but_not_batching() -> None:
    params = {"pooling": "mean", "layers": [-1], "batch_size": 64}
    base = store_key(TEXTS, params, "m")
    assert store_key(TEXTS[:-1], params, "m") != base
    assert store_key(TEXTS, {**params, "pooling": "cls"}, "m") != base
    assert store_key(TEXTS, params, "other-model") != base
    assert store_key(TEXTS, {**params, "batch_size": 8}, "m") == base


def test_token_level_features_keep_document_ids(tiny_bert_dir: Path, tmp_path: Path) -> None:
    f = HiddenStatesFeaturizer(model=str(tiny_bert_dir), pooling="none", progress=False, device="cpu")
    stored = extract_to_store(f.fit(), TEXTS[:10], tmp_path, shard_docs=4)
    direct = f.transform_tokens(TEXTS[:10])
    np.testing.assert_array_equal(stored.doc_ids, direct.doc_ids)
    np.testing.assert_allclose(stored.to_array(), direct.vectors, atol=1e-6)


_EXTRACT_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.conftest import make_texts
from textsae.featurize.hidden_states import HiddenStatesFeaturizer
from textsae.store.features import extract_to_store
texts, _ = make_texts(160, seed=3)
f = HiddenStatesFeaturizer(model={model!r}, progress=False, device="cpu", batch_size=8)
extract_to_store(f.fit(), texts, Path({out!r}), shard_docs=10)
"""


def _extract(model: Path, out: Path) -> subprocess.Popen:
    script = _EXTRACT_SCRIPT.format(repo=str(REPO), model=str(model), out=str(out))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_midway_then_rerun_gives_an_identical_store(tiny_bert_dir: Path, tmp_path: Path) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert _extract(tiny_bert_dir, reference).wait(timeout=120) == 0
    process = _extract(tiny_bert_dir, killed)
    deadline = time.monotonic() + 120
    while len(list(killed.glob("shard-*.npy"))) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the extraction finished before it could be killed"
    assert not (killed / MANIFEST_NAME).exists()
    with pytest.raises(IncompleteArtifactError):
        open_features(killed)
    assert _extract(tiny_bert_dir, killed).wait(timeout=120) == 0
    ref_manifest, new_manifest = (json.loads((d / MANIFEST_NAME).read_text()) for d in (reference, killed))
    assert ref_manifest["files"] == new_manifest["files"]  # same names, sizes and SHA-256
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert isinstance(open_features(killed), ShardedFeatures)


SLOW_WRITER = """
import sys, time
import numpy as np
from pathlib import Path
from textsae.store.features import extract_to_store

class Slow:
    def iter_chunks(self, docs, *, chunk_docs, start=0):
        for lo in range(start, len(docs), chunk_docs):
            print("extracting", flush=True)
            time.sleep(0.5)
            ids = np.arange(lo, min(lo + chunk_docs, len(docs)))
            yield np.repeat(ids[:, None].astype(np.float32), 3, axis=1), ids

extract_to_store(Slow(), [f"doc {i}" for i in range(50)], Path(sys.argv[1]), shard_docs=16)
"""


class MustNotExtract:
    def iter_chunks(self, docs, *, chunk_docs, start=0):
        raise AssertionError("the second writer extracted although the first finished the entry")


def test_a_second_writer_waits_for_the_first_and_reuses_its_entry(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "extracting"
        features = extract_to_store(MustNotExtract(), [f"doc {i}" for i in range(50)], tmp_path, shard_docs=16)
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()
    np.testing.assert_array_equal(features.to_array()[:, 0], np.arange(50))


def test_a_same_size_edit_of_a_shard_is_refused_and_the_entry_extracted_again(tmp_path: Path) -> None:
    extract_to_store(ArrayFeaturizer(), TEXTS, tmp_path, shard_docs=16)
    shard = tmp_path / "shard-00001.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x80  # a sign bit: same size, still a valid array
    shard.write_bytes(bytes(data))
    with pytest.raises(IncompleteArtifactError, match="shard-00001.npy has SHA-256"):
        open_features(tmp_path)
    featurizer = ArrayFeaturizer()
    features = extract_to_store(featurizer, TEXTS, tmp_path, shard_docs=16)
    assert featurizer.chunks_extracted == 4  # every shard again: which of them was edited is not known
    np.testing.assert_array_equal(features.to_array()[:, 0], np.arange(50))


def test_a_resume_with_another_shard_size_keeps_the_interrupted_cut(tmp_path: Path) -> None:
    full = extract_to_store(ArrayFeaturizer(), TEXTS, tmp_path / "full", shard_docs=16).to_array()
    partial = tmp_path / "partial"
    extract_to_store(ArrayFeaturizer(), TEXTS, partial, shard_docs=16)
    (partial / MANIFEST_NAME).unlink()  # as if killed after three of four shards
    (partial / "shard-00003.npy").unlink()
    featurizer = ArrayFeaturizer()
    resumed = extract_to_store(featurizer, TEXTS, partial, shard_docs=5)  # the cut of the shards already there wins
    assert featurizer.chunks_extracted == 1
    np.testing.assert_array_equal(resumed.to_array(), full)
    (partial / MANIFEST_NAME).unlink()
    np.save(partial / "shard-00001.npy", np.zeros((5, 3), dtype=np.float32))  # shards of two cuts: start again
    featurizer = ArrayFeaturizer()
    np.testing.assert_array_equal(extract_to_store(featurizer, TEXTS, partial, shard_docs=5).to_array(), full)
    assert featurizer.chunks_extracted == 10
