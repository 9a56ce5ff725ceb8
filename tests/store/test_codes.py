"""Sharded codes: round trips, resume after a kill, and refusal of incomplete or changed folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from textsae.errors import IncompleteArtifactError, UserError
from textsae.store import (
    MANIFEST_NAME,
    WRITER_STATE_NAME,
    CodesWriter,
    codes_info,
    load_codes,
    read_manifest,
    write_manifest,
)


def random_codes(n_docs: int, n_latents: int, seed: int = 0) -> sp.csr_matrix:
    """Random CSR codes with every third row empty and values in a range float16 holds."""
    rng = np.random.default_rng(seed)
    codes = sp.random(
        n_docs, n_latents, density=min(1.0, 6 / n_latents), format="csr", random_state=rng, dtype=np.float32
    )
    codes.data = (codes.data * 20 - 10).astype(np.float32)
    mask = np.ones(n_docs)
    mask[::3] = 0
    codes = sp.csr_matrix(sp.diags(mask) @ codes)
    codes.eliminate_zeros()
    return codes


def fp16(codes: sp.csr_matrix) -> sp.csr_matrix:
    rounded = codes.copy()
    rounded.data = rounded.data.astype(np.float16).astype(np.float32)
    return rounded


def shard_bytes(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("shard-*"))}


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
@pytest.mark.parametrize("n_latents", [50, 70_000])
def test_round_trip(tmp_path, fmt, n_latents):
    codes = random_codes(23, n_latents)
    with CodesWriter(tmp_path / "codes", n_latents=n_latents, fmt=fmt, shard_docs=10, meta={"sae": "abc"}) as writer:
        writer.write(codes[:7])
        writer.write(codes[7:7])  # zero rows: a no-op
        writer.write(codes[7:])
    loaded = load_codes(tmp_path / "codes", verify_hashes=True)
    assert loaded.dtype == np.float32 and loaded.indices.dtype == np.int32
    assert loaded.shape == codes.shape
    assert (loaded != fp16(codes)).nnz == 0
    assert np.array_equal(loaded.indptr, codes.indptr)  # empty rows survive
    info = codes_info(tmp_path / "codes")
    assert info["n_docs"] == 23 and info["n_latents"] == n_latents and info["sae"] == "abc"
    assert info["index_dtype"] == ("uint16" if n_latents <= 65_536 else "int32")
    assert [s["rows"] for s in info["shards"]] == [10, 10, 3]
    assert info["nnz"] == codes.nnz
    assert info["disk_bytes"] == sum(p.stat().st_size for p in (tmp_path / "codes").glob("shard-*"))
    assert not (tmp_path / "codes" / WRITER_STATE_NAME).exists()


def test_npz_shard_layout_readable_by_numpy(tmp_path):
    codes = random_codes(5, 300)
    with CodesWriter(tmp_path, n_latents=300, shard_docs=8) as writer:
        writer.write(codes)
    with np.load(tmp_path / "shard-00000.npz") as archive:
        assert archive["data"].dtype == np.float16
        assert archive["indices"].dtype == np.uint16
        assert archive["indptr"].dtype == np.int64
        assert archive["shape"].tolist() == [5, 300]


def test_duplicates_and_unsorted_indices_are_canonicalised(tmp_path):
    codes = sp.csr_matrix((np.array([1.0, 2.0, 3.0], np.float32), np.array([4, 1, 4]), np.array([0, 3])), shape=(1, 6))
    with CodesWriter(tmp_path, n_latents=6) as writer:
        writer.write(codes)
    loaded = load_codes(tmp_path)
    assert loaded.indices.tolist() == [1, 4] and loaded.data.tolist() == [2.0, 4.0]


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, fmt):
    codes, shard_docs = random_codes(25, 40, seed=1), 10
    with CodesWriter(tmp_path / "once", n_latents=40, fmt=fmt, shard_docs=shard_docs) as writer:
        writer.write(codes)

    killed = CodesWriter(tmp_path / "resumed", n_latents=40, fmt=fmt, shard_docs=shard_docs)
    for start in range(0, 25, 5):  # 2.5 shards reach the writer, then the process "dies"
        killed.write(codes[start : start + 5])
    del killed
    (tmp_path / "resumed" / f".tmp-shard-00002.{fmt}.x1y2").write_bytes(b"half a shard")
    with pytest.raises(IncompleteArtifactError, match="interrupted. Re-run the same command to resume."):
        load_codes(tmp_path / "resumed")

    with CodesWriter(tmp_path / "resumed", n_latents=40, fmt=fmt, shard_docs=shard_docs) as writer:
        assert writer.completed_docs == 2 * shard_docs
        writer.write(codes[writer.completed_docs :])
    assert shard_bytes(tmp_path / "resumed") == shard_bytes(tmp_path / "once")
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == sorted(
        p.name for p in (tmp_path / "once").iterdir()
    )
    files = lambda d: read_manifest(d, verify_hashes=True)["files"]  # noqa: E731
    assert files(tmp_path / "resumed") == files(tmp_path / "once")


def test_kill_inside_close_redoes_short_last_shard(tmp_path):
    codes = random_codes(13, 30)
    with CodesWriter(tmp_path / "once", n_latents=30, shard_docs=5) as writer:
        writer.write(codes)
    writer = CodesWriter(tmp_path / "cut", n_latents=30, shard_docs=5)
    writer.write(codes)
    writer._flush(final=True)  # the short shard is on disk, the manifest is not
    del writer
    with CodesWriter(tmp_path / "cut", n_latents=30, shard_docs=5) as writer:
        assert writer.completed_docs == 10
        writer.write(codes[10:])
    assert shard_bytes(tmp_path / "cut") == shard_bytes(tmp_path / "once")


def test_exception_inside_block_leaves_folder_resumable(tmp_path):
    codes = random_codes(12, 30)
    with pytest.raises(KeyboardInterrupt), CodesWriter(tmp_path, n_latents=30, shard_docs=5) as writer:
        writer.write(codes[:7])
        raise KeyboardInterrupt
    assert not (tmp_path / MANIFEST_NAME).exists()
    assert CodesWriter(tmp_path, n_latents=30, shard_docs=5).completed_docs == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shard_docs": 4}, r"shard_docs=5 \(this writer: 4\)"),
        ({"n_latents": 31}, r"n_latents=30 \(this writer: 31\)"),
        ({"meta": {"sae": "other"}}, "meta="),
        ({"fmt": "parquet"}, "holds npz shards.*fmt='npz' to resume"),
    ],
)
def test_resume_refuses_other_settings(tmp_path, kwargs, match):
    writer = CodesWriter(tmp_path, n_latents=30, shard_docs=5, meta={"sae": "one"})
    writer.write(random_codes(7, 30))
    del writer
    settings = {"n_latents": 30, "shard_docs": 5, "meta": {"sae": "one"}, **kwargs}
    with pytest.raises(UserError, match=match):
        CodesWriter(tmp_path, **settings)
    CodesWriter(tmp_path, **settings, overwrite=True)  # overwrite starts again instead


def test_existing_complete_output_needs_overwrite(tmp_path):
    with CodesWriter(tmp_path, n_latents=30, shard_docs=5) as writer:
        writer.write(random_codes(12, 30))
    with pytest.raises(UserError, match="already holds complete codes.*overwrite=True"):
        CodesWriter(tmp_path, n_latents=30, shard_docs=5)
    with CodesWriter(tmp_path, n_latents=30, shard_docs=5, overwrite=True) as writer:
        assert writer.completed_docs == 0
        writer.write(random_codes(3, 30, seed=2))
    assert load_codes(tmp_path).shape == (3, 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME, "shard-00000.npz"]


def test_missing_shard_is_named(tmp_path):
    with CodesWriter(tmp_path, n_latents=30, shard_docs=5) as writer:
        writer.write(random_codes(12, 30))
    (tmp_path / "shard-00001.npz").unlink()
    with pytest.raises(IncompleteArtifactError, match="shard-00001.npz is listed in manifest.json but missing"):
        load_codes(tmp_path)


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_truncated_shard_is_refused(tmp_path, fmt):
    with CodesWriter(tmp_path, n_latents=30, fmt=fmt, shard_docs=5) as writer:
        writer.write(random_codes(12, 30))
    shard = tmp_path / f"shard-00000.{fmt}"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(IncompleteArtifactError, match=f"shard-00000.{fmt} has .* bytes; manifest.json expects"):
        load_codes(tmp_path)


def test_changed_shard_of_same_size_needs_hash_check(tmp_path):
    with CodesWriter(tmp_path, n_latents=30, shard_docs=5) as writer:
        writer.write(random_codes(12, 30))
    shard = tmp_path / "shard-00000.npz"
    raw = bytearray(shard.read_bytes())
    raw[-30] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(IncompleteArtifactError, match="SHA-256"):
        load_codes(tmp_path, verify_hashes=True)


def test_missing_manifest_gives_resume_hint(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"123")
    with pytest.raises(
        IncompleteArtifactError, match="has no manifest.json.*interrupted. Re-run `textsae encode r.yaml` to resume."
    ):
        read_manifest(tmp_path, resume_hint="re-run `textsae encode r.yaml` to resume")  # capitalised in the message
    write_manifest(tmp_path, [tmp_path / "a.bin"], {"kind": "test"})
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["format_version"] == 1 and manifest["complete"] is True and manifest["kind"] == "test"
    assert manifest["files"][0]["name"] == "a.bin" and manifest["files"][0]["bytes"] == 3
    assert read_manifest(tmp_path, verify_hashes=True)["kind"] == "test"


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(UserError, match="'fmt' parameter of CodesWriter must be 'npz' or 'parquet'. Got 'csv'"):
        CodesWriter(tmp_path, n_latents=4, fmt="csv")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="may not use the keys \\['n_docs'\\]"):
        CodesWriter(tmp_path, n_latents=4, meta={"n_docs": 1})
    writer = CodesWriter(tmp_path, n_latents=4)
    with pytest.raises(UserError, match="have 5 columns; expected n_latents=4"):
        writer.write(sp.csr_matrix((2, 5)))
    with pytest.raises(UserError, match="float16 range"):
        writer.write(sp.csr_matrix(np.array([[0.0, 1e6, 0.0, 0.0]])))
    with pytest.raises(TypeError, match="2-D scipy sparse matrix or numpy array. Got list"):
        writer.write([[0.0, 1.0, 0.0, 0.0]])  # type: ignore[arg-type]


def test_manifest_accepts_paths_joined_with_a_relative_folder(tmp_path, monkeypatch) -> None:
    from pathlib import Path

    from textsae.store.manifest import read_manifest, write_manifest

    monkeypatch.chdir(tmp_path)
    folder = Path("runs") / "x"
    folder.mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"abc")
    write_manifest(folder, [folder / "a.bin", Path("a.bin")], {})
    assert [f["name"] for f in read_manifest(folder)["files"]] == ["a.bin", "a.bin"]


def _tampered(tmp_path, change) -> object:
    folder = tmp_path / "codes"
    with CodesWriter(folder, n_latents=16, shard_docs=10) as writer:
        writer.write(random_codes(25, 16))
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    change(manifest)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def _swap_first_shards(manifest: dict) -> None:
    shards = manifest["shards"]
    shards[0], shards[1] = shards[1], shards[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(nnz=-5), "must be ints >= 0"),
        (lambda m: m.update(n_docs=10**15), "the shards hold 25 rows"),
        (lambda m: m["shards"][0].update(rows=10**15), "the shards hold"),
        (lambda m: m["shards"][1].update(nnz="many"), "shard entry 1"),
        (_swap_first_shards, "shard entry 0 is named 'shard-00001.npz'; expected shard-00000.npz"),
        (lambda m: m.update(n_latents=0), "more than n_docs × n_latents"),
    ],
)
def test_manifest_numbers_are_checked_before_allocating(tmp_path, change, message):
    folder = _tampered(tmp_path, change)
    with pytest.raises(IncompleteArtifactError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_codes(folder)


def test_counts_that_add_up_but_exceed_memory_are_refused(tmp_path, monkeypatch):
    import textsae.store.codes as codes_module

    folder = _tampered(tmp_path, lambda m: None)
    monkeypatch.setattr(codes_module, "available_memory", lambda device: 100)
    with pytest.raises(UserError, match="GiB in memory, but 0.0 GiB is free"):
        load_codes(folder)


def test_doc_ids_and_labels_travel_with_the_codes(tmp_path):
    codes = random_codes(12, 40)
    doc_ids = np.array([0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 12, 14])  # rows 2, 7 and 13 of the input were dropped
    labels = np.arange(12) % 3
    with CodesWriter(tmp_path / "codes", n_latents=40, shard_docs=5) as writer:
        writer.write(codes)
        writer.close(doc_ids=doc_ids, labels=labels)
    loaded = load_codes(tmp_path / "codes", with_ids=True, verify_hashes=True)
    assert (loaded.codes != fp16(codes)).nnz == 0
    assert loaded.doc_ids.dtype == np.int64 and np.array_equal(loaded.doc_ids, doc_ids)
    assert np.array_equal(loaded.labels, labels)
    assert codes_info(tmp_path / "codes")["row_files"] == ["doc_ids.npy", "labels.npy"]

    with CodesWriter(tmp_path / "plain", n_latents=40) as writer:  # written without ids: rows are their own ids
        writer.write(codes)
    plain = load_codes(tmp_path / "plain", with_ids=True)
    assert np.array_equal(plain.doc_ids, np.arange(12)) and plain.labels is None


@pytest.mark.parametrize(
    ("doc_ids", "message"),
    [(np.arange(11), "one int per code row"), (np.arange(12) - 1, "ints >= 0"), (np.zeros(12) + 0.5, "one int")],
)
def test_doc_ids_that_do_not_fit_the_rows_are_refused(tmp_path, doc_ids, message):
    with pytest.raises(UserError, match=message), CodesWriter(tmp_path / "codes", n_latents=40) as writer:
        writer.write(random_codes(12, 40))
        writer.close(doc_ids=doc_ids)
    assert not (tmp_path / "codes" / MANIFEST_NAME).exists()


def test_a_doc_ids_file_of_the_wrong_length_is_refused_on_load(tmp_path):
    with CodesWriter(tmp_path / "codes", n_latents=40) as writer:
        writer.write(random_codes(12, 40))
        writer.close(doc_ids=np.arange(12))
    path = tmp_path / "codes" / "doc_ids.npy"
    np.save(path, np.arange(10, dtype=np.int64))
    with pytest.raises(IncompleteArtifactError, match="doc_ids.npy"):
        load_codes(tmp_path / "codes", with_ids=True)  # a size check (or, same size, the row count) catches it
    with CodesWriter(tmp_path / "codes", n_latents=40, overwrite=True) as writer:  # overwrite removes old row files
        writer.write(random_codes(12, 40))
    assert not path.exists()


def test_a_shard_whose_indices_leave_the_code_is_refused_even_with_a_consistent_manifest(tmp_path):
    with CodesWriter(tmp_path, n_latents=30, shard_docs=50) as writer:
        writer.write(random_codes(12, 30))
    shard = tmp_path / "shard-00000.npz"
    with np.load(shard) as archive:
        arrays = dict(archive)
    arrays["indices"] = arrays["indices"].copy()
    arrays["indices"][0] = 60000  # would make scipy read out of bounds
    np.savez(shard, **arrays)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    meta = {k: v for k, v in manifest.items() if k not in ("format_version", "complete", "files")}
    write_manifest(tmp_path, [tmp_path / entry["name"] for entry in manifest["files"]], meta)
    with pytest.raises(IncompleteArtifactError, match="column indices leave 0"):
        load_codes(tmp_path)
