"""Hidden-states extraction speed: textsae's featurizer (into the feature store) vs a plain Hugging Face loop.

The plain loop is what most scripts do: batches in corpus order, every batch padded to
``max_length``, fp32, mean pooling. textsae tokenizes each chunk in one call, batches by length,
uses the requested autocast dtype, and writes shards to a feature store. Both run in the same
process on the same documents, after one warm-up batch each; their outputs are compared by cosine.
With ``repeats`` > 1 the two sides take turns going first (plain first in odd rounds, textsae
first in even ones), so neither always meets a cold cache or a busier machine, and each side's
fastest round counts.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from textsae.errors import UserError
from textsae.featurize.hidden_states import HiddenStatesFeaturizer
from textsae.store.features import extract_to_store

__all__ = ["plain_loop", "run_featurize_bench"]


def plain_loop(
    model: Any, tokenizer: Any, texts: list[str], *, max_length: int, batch_size: int, device: str
) -> np.ndarray:
    """Mean-pooled, L2-normalised last-layer states: corpus order, padded to ``max_length``, fp32."""
    import torch

    out = []
    with torch.inference_mode():
        for begin in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[begin : begin + batch_size],
                padding="max_length",
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            batch = {key: value.to(device) for key, value in batch.items()}
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
    return np.concatenate(out)


def run_featurize_bench(
    texts: list[str],
    *,
    model: str | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    dtype: str = "auto",
    device: str = "auto",
    repeats: int = 1,
) -> dict[str, Any]:
    """Time the plain loop and textsae's extraction on ``texts``; nothing is printed.

    Args:
        repeats: Rounds of both sides, alternating which goes first; each side's fastest round counts.

    Returns:
        ``{"n_docs", "n_tokens", "plain": {...}, "textsae": {...}, "speedup", "min_cosine", ...}``
        where each side has ``seconds`` (fastest round), ``rounds_s`` (every round),
        ``docs_per_s`` and ``tokens_per_s`` (real, non-padding tokens).

    Raises:
        UserError: ``repeats`` < 1.
    """
    if repeats < 1:
        raise UserError(f"The 'repeats' parameter of run_featurize_bench must be an int >= 1. Got {repeats!r} instead.")
    featurizer = HiddenStatesFeaturizer(
        model=model, max_length=max_length, batch_size=batch_size, dtype=dtype, device=device, progress=False
    ).fit()
    hf_model, tokenizer, resolved_device = featurizer.load_model()
    n_tokens = int(sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]))
    warmup = texts[:batch_size]
    plain_loop(hf_model, tokenizer, warmup, max_length=max_length, batch_size=batch_size, device=resolved_device)
    featurizer.transform(warmup)

    def run_plain() -> np.ndarray:
        return plain_loop(
            hf_model, tokenizer, texts, max_length=max_length, batch_size=batch_size, device=resolved_device
        )

    def run_ours() -> np.ndarray:
        with tempfile.TemporaryDirectory() as store:
            return extract_to_store(featurizer, texts, Path(store) / "entry").to_array()

    sides: dict[str, Callable[[], np.ndarray]] = {"plain": run_plain, "textsae": run_ours}
    rounds: dict[str, list[float]] = {"plain": [], "textsae": []}
    outputs: dict[str, np.ndarray] = {}
    for round_index in range(repeats):
        order = ("plain", "textsae") if round_index % 2 == 0 else ("textsae", "plain")
        for name in order:
            outputs[name], seconds = _timed(sides[name], resolved_device)
            rounds[name].append(seconds)
    plain, ours = outputs["plain"], outputs["textsae"]
    cosine = np.sum(plain * ours, axis=1) / (np.linalg.norm(plain, axis=1) * np.linalg.norm(ours, axis=1))

    def side(name: str) -> dict[str, Any]:
        seconds = min(rounds[name])
        return {
            "seconds": seconds,
            "rounds_s": rounds[name],
            "docs_per_s": len(texts) / seconds,
            "tokens_per_s": n_tokens / seconds,
        }

    return {
        "n_docs": len(texts),
        "n_tokens": n_tokens,
        "model": featurizer.model_id,
        "max_length": max_length,
        "batch_size": batch_size,
        "device": resolved_device,
        "textsae_dtype": featurizer.compute_dtype(resolved_device),
        "repeats": repeats,
        "plain": side("plain"),
        "textsae": side("textsae"),
        "speedup": min(rounds["plain"]) / min(rounds["textsae"]),
        "min_cosine": float(cosine.min()),
    }


def _timed(run: Callable[[], np.ndarray], device: str) -> tuple[np.ndarray, float]:
    _sync(device)
    start = time.perf_counter()
    result = run()
    _sync(device)
    return result, time.perf_counter() - start


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
