"""Corpus → sparse codes, streamed in shards with bounded memory, resumable after an interruption, and shared out
over the ranks of a ``torchrun`` job (each rank encodes whole shards; the result is the same bytes as one process)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from textsae._io import kill_point, logger
from textsae.config.schema import EncodeConfig
from textsae.distributed import barrier, on_main, rank_device, rank_slice, setup
from textsae.errors import UserError
from textsae.featurize.base import Featurizer
from textsae.rows import FeatureMatrix, check_finite, rows_to_tensor
from textsae.runtime import autocast, sae_uses_bf16
from textsae.sae import SparseAutoencoder
from textsae.store.codes import finish_codes_folder, shard_count, start_codes_folder, write_codes_shard


@torch.no_grad()
def sparse_codes(sae: SparseAutoencoder, x: torch.Tensor, *, bf16: bool = False, k: int | None = None) -> sp.csr_matrix:
    """Inference codes of one batch as a float32 CSR matrix (only the non-zero latents are kept); ``k``: see ``SparseAutoencoder.encode``."""
    with autocast(x.device, "bf16" if bf16 else "fp32"):
        codes = sae.encode(x, k=k)  # (B, n_latents), zeros where inactive
    with warnings.catch_warnings():  # torch warns that CSR support is "beta"; we use only its stable parts
        warnings.simplefilter("ignore", UserWarning)
        csr = codes.float().to_sparse_csr().cpu()
    return sp.csr_matrix(
        (csr.values().numpy(), csr.col_indices().numpy().astype(np.int32), csr.crow_indices().numpy().astype(np.int64)),
        shape=tuple(codes.shape),
    )


def encode_in_memory(
    featurizer: Featurizer,
    sae: SparseAutoencoder,
    texts: Sequence[str],
    *,
    batch_size: int = 1024,
    device: str = "auto",
    k: int | None = None,
) -> sp.csr_matrix:
    """Sparse codes of ``texts`` in memory: ``(n_texts, n_latents)`` float32 CSR, one row per text in order.

    A text with no words (empty or whitespace) gets an empty row, not what the SAE makes of a zero or special-token
    row. For a ``vectors`` featurizer, ``texts`` are the vectors (a ``(n, dim)`` array). ``k``: see
    ``SparseAutoencoder.encode``.
    """
    from textsae._io import resolve_device

    if texts is None or isinstance(texts, (str, bytes)):
        raise UserError(
            f"encode takes a list of texts (or an (n, dim) array of vectors), not {type(texts).__name__}; wrap a single "
            "text in a list: [text]."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be an int >= 1. Got {batch_size!r} instead.")
    texts = list(texts)
    target = resolve_device(device)
    sae.eval().to(target)
    blocks = []
    for begin in range(0, len(texts), batch_size):
        features = featurizer.transform(texts[begin : begin + batch_size])
        blocks.append(sparse_codes(sae, rows_to_tensor(features, slice(None), target), k=k))
    if not blocks:
        return sp.csr_matrix((0, sae.n_latents), dtype=np.float32)
    codes = sp.vstack(blocks, format="csr")
    empty = [i for i, text in enumerate(texts) if isinstance(text, str) and not text.strip()]
    if empty:
        logger.warning(
            "%d of %d texts have no words (first: position %d); their codes are empty rows.",
            len(empty),
            len(texts),
            empty[0],
        )
        keep = np.ones(len(texts), dtype=np.float32)
        keep[empty] = 0.0
        codes = sp.csr_matrix(sp.diags(keep) @ codes)
        codes.eliminate_zeros()
    return codes


def encode_rows(
    sae: SparseAutoencoder,
    n_rows: int,
    get_rows: Callable[[int, int], FeatureMatrix],
    out_dir: Path,
    cfg: EncodeConfig,
    *,
    device: str = "cpu",
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    bf16: bool | None = None,
    doc_ids: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> Path:
    """Encode ``n_rows`` documents, fetched in slices by ``get_rows(begin, end)``, into ``out_dir``.

    Shard ``i`` holds documents ``i*cfg.shard_docs ..``, encoded in batches of ``cfg.batch_size`` that start at the
    shard's first document, so its bytes depend only on its own documents. Under ``torchrun`` every rank (all must
    call this) encodes its :func:`~textsae.distributed.rank_slice` of whole shards and writes them; rank 0 prepares
    the folder first and writes the row files and the manifest last, after every rank is done: N processes write the
    same folder, byte for byte, as one. Complete shards of an interrupted run (of any number of processes) are kept;
    the manifest is written last, so a folder without one is never taken for a finished output. ``n_rows`` is
    recorded in the meta (``input_docs``), so an interrupted folder is never resumed with other input.

    Args:
        sae: The trained SAE.
        n_rows: Documents to encode.
        get_rows: ``get_rows(begin, end)`` returns the features of rows ``begin .. end-1`` (each rank asks only for
            rows of its own shards, in increasing order).
        out_dir: Output folder (see :class:`~textsae.store.codes.CodesWriter`).
        cfg: Batch size, shard size, format and inference ``k``.
        device: Where the SAE runs (plain ``cuda`` is each rank's own GPU under ``torchrun``).
        meta: Extra manifest keys; a resumed run must pass the same.
        progress: Show a progress bar (on a terminal; rank 0 only).
        overwrite: Delete earlier codes (complete or not) in ``out_dir`` first.
        bf16: bf16 autocast while encoding; default: on CUDA only (match what the SAE was trained with).
        doc_ids: Each document's id, stored beside the codes (``load_codes(out_dir, with_ids=True)``).
        labels: Each document's class id, stored likewise.

    Returns:
        ``out_dir``.

    Raises:
        UserError: ``out_dir`` holds complete codes and ``overwrite`` is false, or an interrupted
            run written with other settings or other input.
    """
    for name, values in (("doc_ids", doc_ids), ("labels", labels)):
        if values is not None and len(values) != n_rows:
            raise UserError(f"encode_rows: {name} has {len(values)} entries for {n_rows} documents; expected one each.")
    device = rank_device(device)
    current = setup(device)
    sae.eval().to(device)
    bf16 = sae_uses_bf16("auto", device) if bf16 is None else bf16
    meta = {**(meta or {}), "input_docs": int(n_rows)}
    if cfg.k is not None:
        sae.check_inference_k(cfg.k)
        meta["k"] = cfg.k
    folder: dict[str, Any] = {
        "n_latents": sae.n_latents,
        "n_docs": int(n_rows),
        "fmt": cfg.format,
        "shard_docs": cfg.shard_docs,
    }
    done = set(on_main(lambda: start_codes_folder(out_dir, **folder, meta=meta, overwrite=overwrite)))
    part = rank_slice(n_rows, align=cfg.shard_docs)
    todo = [i for i in range(part.start // cfg.shard_docs, shard_count(part.stop, cfg.shard_docs)) if i not in done]
    remaining = sum(min(cfg.shard_docs, n_rows - i * cfg.shard_docs) for i in todo)
    mine = len(range(n_rows)[part])  # this rank's documents
    if remaining < mine and current.is_main:
        logger.info("Resuming encode of %s: %d of this process's %d documents left", out_dir, remaining, mine)
    with _progress(progress and current.is_main, mine, out_dir.name) as bar:
        bar.update(mine - remaining)
        for index in todo:
            begin, end = index * cfg.shard_docs, min((index + 1) * cfg.shard_docs, n_rows)
            blocks = []
            for lo in range(begin, end, cfg.batch_size):
                hi = min(lo + cfg.batch_size, end)
                block = get_rows(lo, hi)
                check_finite(block, "features to encode", first_row=lo)
                blocks.append(sparse_codes(sae, rows_to_tensor(block, slice(None), device), bf16=bf16, k=cfg.k))
                kill_point("encode-batch")
                bar.update(hi - lo)
            write_codes_shard(out_dir, index, sp.vstack(blocks, format="csr"), n_latents=sae.n_latents, fmt=cfg.format)
    barrier()
    on_main(lambda: finish_codes_folder(out_dir, **folder, meta=meta, doc_ids=doc_ids, labels=labels))
    return out_dir


def _progress(show: bool, total: int, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"encode {name}", unit="doc", disable=None if show else True, leave=False)


def encode_features(
    sae: SparseAutoencoder, features: FeatureMatrix, out_dir: Path, cfg: EncodeConfig, **kwargs: Any
) -> Path:
    """Encode an in-memory feature matrix (see :func:`encode_rows`)."""
    if features.ndim != 2 or features.shape[1] != sae.d_in:
        raise UserError(
            f"The features to encode have shape {tuple(features.shape)} but the SAE expects d_in={sae.d_in} columns: the SAE was "
            "trained on other features (another featurizer or run). Train it again on these features (delete the run's sae/ "
            "and checkpoints/ folders and re-run), or use the run directory that produced both."
        )
    return encode_rows(sae, features.shape[0], lambda begin, end: features[begin:end], out_dir, cfg, **kwargs)


def encode_texts(
    featurizer: Featurizer,
    sae: SparseAutoencoder,
    texts: Sequence[str] | np.ndarray,
    out_dir: Path,
    cfg: EncodeConfig,
    **kwargs: Any,
) -> Path:
    """Featurize and encode ``texts`` one batch at a time, so memory stays bounded by the batch size (see :func:`encode_rows`).

    ``texts`` are the documents, or for the ``vectors`` featurizer their vectors ``(n_docs, dim)``."""
    if featurizer.n_features != sae.d_in:
        raise UserError(
            f"The featurizer produces {featurizer.n_features} features but the SAE expects d_in={sae.d_in}: the run's featurizer/ "
            "and sae/ come from different runs. Use a run directory whose SAE was trained on its own featurizer's output."
        )
    if len(texts):
        featurizer.transform(
            list(texts[:1])
        )  # input the featurizer refuses (e.g. vectors of another width) fails here,
        # before the output folder holds anything to resume
    return encode_rows(
        sae, len(texts), lambda begin, end: featurizer.transform(list(texts[begin:end])), out_dir, cfg, **kwargs
    )
