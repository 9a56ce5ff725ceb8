"""``textsae encode``: a trained run + a corpus → sparse codes on disk."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textsae.cli.main import add_model_trust_options, positive_int


def add_parsers(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``encode`` verb to ``subparsers`` (``common``: the shared ``--debug``/``--quiet`` options)."""
    parser = subparsers.add_parser(
        "encode",
        help="encode a corpus into sparse codes with a trained run",
        description="Featurizes DATA with the run's fitted featurizer and writes the SAE's sparse codes in\n"
        "shards plus a manifest (written last). An interrupted encode resumes from the last complete shard.\n"
        "Load the result in Python with textsae.load_codes(OUT) -> scipy.sparse.csr_matrix, or\n"
        "textsae.load_codes(OUT, with_ids=True) -> (codes, doc_ids, labels): doc_ids are the 0-based data rows of DATA\n"
        "(rows dropped for empty text leave gaps, and the manifest lists them), or the values of --id-column; labels its\n"
        "class ids when it has a label column.\n"
        "A .parquet, .jsonl or .csv DATA file streams: memory holds one batch of texts, never the whole file. Under\n"
        "torchrun each process encodes its own part of the shards and the result is the same files as one process writes.",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae encode runs/quickstart/1a2b3c4d5e reviews.parquet --out codes/reviews\n"
        "  textsae encode RUN_DIR ../shared/data/imdb/test.parquet --out imdb_test_codes --format parquet\n"
        "  torchrun --nproc-per-node 2 -m textsae encode RUN_DIR big.parquet --out codes/big",
    )
    parser.add_argument("run_dir", help="a run directory holding featurizer/ and sae/ (printed by `textsae run`)")
    parser.add_argument(
        "data", help="documents: a .parquet/.csv/.jsonl/.txt file, or a dataset folder (its reported split)"
    )
    parser.add_argument("--out", required=True, help="output folder for the codes")
    parser.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    parser.add_argument(
        "--id-column",
        help="column holding each document's id, stored with its code (unique; default: the 0-based data row)",
    )
    parser.add_argument("--format", choices=["npz", "parquet"], default="npz", help="shard format (default: npz)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=1024, help="documents encoded at once (default: 1024)"
    )
    parser.add_argument("--shard-docs", type=positive_int, default=50_000, help="documents per shard (default: 50000)")
    parser.add_argument(
        "--k",
        type=positive_int,
        help="active latents per document in the written codes, the k largest (default: the SAE's own code); a TopK "
        "SAE may be read at a larger k than it was trained with (made for sae.multi_topk=true)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    add_model_trust_options(parser)
    parser.add_argument(
        "--empty-text",
        choices=["drop", "error"],
        default="drop",
        help="documents that are empty, whitespace-only or missing: drop them with one warning (default; the codes then "
        "have fewer rows than DATA) or stop with an error",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace earlier codes in --out (finished, or interrupted with other settings)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="if another job is writing to --out, wait for it (default: exit 2 naming its PID)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Encode ``args.data`` with the run in ``args.run_dir`` into ``args.out``; returns the exit code.

    Under ``torchrun`` every rank encodes its own shards (see :func:`textsae.encode.encode_rows`); rank 0 reads the
    file's index, holds the ``--out`` lock for the group, writes the manifest and prints.
    """
    from textsae._io import resolve_device
    from textsae.artifacts import (
        is_complete,
        load_featurizer_artifact,
        load_sae_artifact,
        sae_fingerprint,
    )
    from textsae.codebook import verify_codebook_folder
    from textsae.config.schema import EncodeConfig
    from textsae.distributed import rank_device, setup
    from textsae.encode import encode_texts
    from textsae.errors import UserError
    from textsae.featurize.vectors import VectorsFeaturizer
    from textsae.locks import group_lock
    from textsae.paths import RunPaths
    from textsae.store.codes import codes_info

    paths = RunPaths(Path(args.run_dir))
    if args.id_column is not None and not args.id_column.strip():
        raise UserError("--id-column needs a column name; leave it out to keep each document's 0-based data row.")
    verify_codebook_folder(paths.root)  # a codebook folder is checked whole; a run directory has nothing to check
    out = Path(args.out)
    device = rank_device(resolve_device(args.device))
    current = setup(device)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; expected a folder for the codes (it is created if missing).")
    _refuse_run_parts(out, paths)
    if is_complete(out):
        codes_info(out)  # refuses a finished folder that is not codes (e.g. a run's sae/) before touching it
    _refuse_finished(out, args.overwrite)  # before the models load; again under the lock
    featurizer = load_featurizer_artifact(
        paths.featurizer, trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle
    )
    sae = load_sae_artifact(paths.sae)
    vector_column = featurizer.vector_column if isinstance(featurizer, VectorsFeaturizer) else None
    documents = _read_documents(args, vector_column)
    cfg = EncodeConfig(batch_size=args.batch_size, shard_docs=args.shard_docs, format=args.format, k=args.k)
    meta = {
        "run_dir": str(paths.root.resolve()),
        "data": str(Path(args.data).resolve()),
        "split": documents.name,
        "sae_sha256": sae_fingerprint(paths.sae),
        # an interrupted encode never resumes on edited documents (or edited vectors)
        "texts_sha256": documents.texts_sha256,
        "dropped_rows": documents.dropped.tolist(),  # 0-based data rows with no text
    }
    with group_lock(out, what=f"--out folder {out}", wait=args.wait):
        _refuse_finished(out, args.overwrite)
        encode_texts(
            featurizer,
            sae,
            documents.inputs,
            out,
            cfg,
            device=device,
            meta=meta,
            progress=not args.quiet,
            overwrite=args.overwrite,
            doc_ids=documents.doc_ids,
            labels=documents.labels,
        )
    if current.is_main:
        print(f"wrote codes for {len(documents.inputs)} documents to {out}")
    return 0


@dataclass
class _Documents:
    """What ``encode`` reads from DATA: the featurizer's inputs (texts, streamed from a Parquet, JSONL or CSV file,
    or vectors) and each document's id, label and the fingerprint a resume checks."""

    name: str
    inputs: Any
    doc_ids: Any
    labels: Any
    dropped: Any
    texts_sha256: str


def _read_documents(args: argparse.Namespace, vector_column: str | None) -> _Documents:
    """Texts in a ``.parquet``, ``.jsonl`` or ``.csv`` file stream (rank 0 indexes the file, every rank reads its own
    documents); vectors, and other formats, are read whole. Both as ``load_split`` reads them."""
    import numpy as np

    from textsae.data.corpus import load_split, split_file
    from textsae.data.stream import STREAM_SUFFIXES
    from textsae.distributed import on_main

    def load(streaming: bool) -> Any:
        return load_split(
            args.data,
            text_column=args.text_column,
            require_labels=False,
            empty_text=args.empty_text,
            empty_text_option="--empty-text",
            text_column_option="--text-column",
            vector_column=vector_column,
            id_column=args.id_column,
            streaming=streaming,
        )

    def streamed() -> Any:
        streams = vector_column is None and split_file(args.data).suffix.lower() in STREAM_SUFFIXES
        return load(True) if streams else None

    # a streamed split is its index (rows, ids, labels): small, so rank 0 reads it for every rank
    split = on_main(streamed)
    if split is None:
        split = load(False)
    return _Documents(
        split.name,
        split.vectors if split.vectors is not None else split.texts,
        split.doc_ids,
        split.labels,
        np.zeros(0, np.int64) if split.dropped is None else split.dropped,
        split.texts_sha256 or _texts_fingerprint(split.texts, split.vectors),
    )


def _refuse_run_parts(out: Path, paths: Any) -> None:
    """``--out`` must not be the run directory or one of the folders the run itself writes (its codes included)."""
    from textsae.errors import UserError

    target, root = out.resolve(), paths.root.resolve()
    parts = [root / name for name in ("codes", "sae", "featurizer", "features", "checkpoints")]
    if target == root or any(target == part or part in target.parents for part in parts):
        raise UserError(
            f"--out {out} is the run directory or a folder the run writes itself; choose a folder outside "
            f"{paths.root}/{{codes,sae,featurizer,features,checkpoints}}."
        )


def _refuse_finished(out: Path, overwrite: bool) -> None:
    from textsae.artifacts import is_complete
    from textsae.errors import UserError

    if is_complete(out) and not overwrite:
        raise UserError(
            f"{out} already holds finished codes; pass --overwrite to replace them or choose another --out."
        )


def _texts_fingerprint(texts: Iterable[str], vectors: Any = None) -> str:
    """:func:`~textsae.data.stream.texts_sha256` of the texts, followed by the vectors' bytes when there are any."""
    from textsae.data.stream import add_texts

    digest = hashlib.sha256()
    add_texts(digest, texts)
    if vectors is not None:
        digest.update(memoryview(vectors.astype("float32", copy=False)).tobytes())
    return digest.hexdigest()
