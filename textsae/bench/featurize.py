"""Hidden-states extraction speed: textsae's featurizer (into the feature store) vs a plain Hugging Face loop.

The plain loop is what most scripts do: batches in corpus order, every batch padded to
``max_length``, fp32, mean pooling. textsae tokenizes each chunk in one call, batches by length,
uses the requested autocast dtype, and writes shards to a feature store. Both run in the same
process on the same documents, after one warm-up batch each; their outputs are compared by cosine.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from textsae.featurize.hidden_states import HiddenStatesFeaturizer
from textsae.store.features import extract_to_store

__all__ = ["plain_loop", "run_featurize_bench"]


def plain_loop(model: Any, tokenizer: Any, texts: list[str], *, max_length: int, batch_size: int, device: str) -> np.ndarray:
    """Mean-pooled, L2-normalised last-layer states: corpus order, padded to ``max_length``, fp32."""
    import torch

    out = []
    with torch.inference_mode():
        for begin in range(0, len(texts), batch_size):
            batch = tokenizer(texts[begin : begin + batch_size], padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
            batch = {key: value.to(device) for key, value in batch.items()}
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
    return np.concatenate(out)


def run_featurize_bench(
    texts: list[str], *, model: str | None = None, max_length: int = 128, batch_size: int = 64, dtype: str = "auto", device: str = "auto"
) -> dict[str, Any]:
    """Time the plain loop and textsae's extraction on ``texts``; nothing is printed.

    Returns:
        ``{"n_docs", "n_tokens", "plain": {...}, "textsae": {...}, "speedup", "min_cosine", ...}``
        where each side has ``seconds``, ``docs_per_s`` and ``tokens_per_s`` (real, non-padding tokens).
    """
    featurizer = HiddenStatesFeaturizer(model=model, max_length=max_length, batch_size=batch_size, dtype=dtype, device=device, progress=False).fit()
    hf_model, tokenizer, resolved_device = featurizer.load_model()
    n_tokens = int(sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]))
    warmup = texts[:batch_size]
    plain_loop(hf_model, tokenizer, warmup, max_length=max_length, batch_size=batch_size, device=resolved_device)
    featurizer.transform(warmup)
    _sync(resolved_device)
    start = time.perf_counter()
    plain = plain_loop(hf_model, tokenizer, texts, max_length=max_length, batch_size=batch_size, device=resolved_device)
    _sync(resolved_device)
    plain_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as store:
        start = time.perf_counter()
        ours = extract_to_store(featurizer, texts, Path(store) / "entry").to_array()
        _sync(resolved_device)
        ours_s = time.perf_counter() - start
    cosine = np.sum(plain * ours, axis=1) / (np.linalg.norm(plain, axis=1) * np.linalg.norm(ours, axis=1))

    def side(seconds: float) -> dict[str, float]:
        return {"seconds": seconds, "docs_per_s": len(texts) / seconds, "tokens_per_s": n_tokens / seconds}

    return {
        "n_docs": len(texts),
        "n_tokens": n_tokens,
        "model": featurizer.model_id,
        "max_length": max_length,
        "batch_size": batch_size,
        "device": resolved_device,
        "textsae_dtype": featurizer.compute_dtype(resolved_device),
        "plain": side(plain_s),
        "textsae": side(ours_s),
        "speedup": plain_s / ours_s,
        "min_cosine": float(cosine.min()),
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
