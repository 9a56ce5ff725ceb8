"""Hidden-states extraction speed: textsae's featurizer (into the feature store) vs a plain Hugging Face loop and
``SentenceTransformer.encode``.

The plain loop is what most scripts do: batches in corpus order, every batch padded to
``max_length``, fp32, mean pooling. ``SentenceTransformer.encode`` (when sentence-transformers is
installed) is the strongest common peer: it sorts by length and pads per batch; it runs the same
folder with its weights cast to textsae's compute dtype (bf16 on CUDA) and the same batch size.
textsae tokenizes each chunk in one call, batches by length, uses the requested autocast dtype,
and writes shards to a feature store. All sides run in the same process on the same documents,
after one warm-up batch each; their outputs are compared by cosine to textsae's. With ``repeats``
> 1 the order of the sides rotates every round, so none always meets a cold cache or a busier
machine, and each side's fastest round counts.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from textsae.bench.machine import BenchProvenance
from textsae.errors import UserError
from textsae.featurize.hidden_states import HiddenStatesFeaturizer
from textsae.results import JSONObject
from textsae.store.features import extract_to_store

__all__ = [
    "FEATURIZE_SIDES",
    "FeaturizeBenchResult",
    "FeaturizeSide",
    "plain_loop",
    "run_featurize_bench",
    "sentence_transformers_encoder",
]

FEATURIZE_SIDES = ("plain", "textsae", "sentence_transformers")
ST_INSTALL_HINT = "pip install sentence-transformers"


@dataclass(frozen=True)
class FeaturizeSide:
    """How fast one side extracted the documents, and how close its vectors are to textsae's."""

    seconds: float
    """The fastest round."""
    rounds_s: tuple[float, ...]
    """Every round, in order."""
    docs_per_s: float
    tokens_per_s: float
    """Real (non-padding) tokens per second."""
    min_cosine: float
    """Lowest cosine of this side's vectors to textsae's."""

    def to_json(self) -> JSONObject:
        """``{"seconds", "rounds_s", "docs_per_s", "tokens_per_s", "min_cosine"}``."""
        return {**dataclasses.asdict(self), "rounds_s": list(self.rounds_s)}


@dataclass(frozen=True)
class FeaturizeBenchResult:
    """``bench featurize``'s result: the settings, each side's speed, the speed-ups and the agreement."""

    n_docs: int
    n_tokens: int
    model: str
    max_length: int
    batch_size: int
    device: str
    textsae_dtype: str
    repeats: int
    plain: FeaturizeSide | None
    textsae: FeaturizeSide
    sentence_transformers: FeaturizeSide | None
    """``None`` for a side not run."""
    speedup: float | None
    speedup_vs_sentence_transformers: float | None
    min_cosine: float | None
    """Lowest cosine between the plain loop's vectors and textsae's."""
    skipped: dict[str, str]
    provenance: BenchProvenance | None = None
    """The data, command line and machine, added by ``textsae bench featurize``."""

    def side(self, name: str) -> FeaturizeSide | None:
        """The side called ``name`` (one of :data:`FEATURIZE_SIDES`)."""
        side: FeaturizeSide | None = getattr(self, name)
        return side

    def to_json(self) -> JSONObject:
        """The result as ``--json`` prints it."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "provenance"}
        for name in FEATURIZE_SIDES:
            values[name] = None if values[name] is None else values[name].to_json()
        return {**values, **(self.provenance.to_json() if self.provenance else {})}


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


def sentence_transformers_encoder(
    folder: str, *, max_length: int, batch_size: int, device: str, dtype: str
) -> Callable[[list[str]], np.ndarray]:
    """``SentenceTransformer(folder).encode`` at ``max_length`` tokens, weights in ``dtype`` (``fp32``/``bf16``/``fp16``).

    A folder without a sentence-transformers ``modules.json`` gets its default mean pooling.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device=device)
    model.max_seq_length = max_length
    model.to({"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype, torch.float32))

    def encode(texts: list[str]) -> np.ndarray:
        embeddings = model.encode(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
        return embeddings.float().cpu().numpy()

    return encode


def run_featurize_bench(
    texts: list[str],
    *,
    model: str | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    dtype: str = "auto",
    device: str = "auto",
    repeats: int = 1,
    sides: tuple[str, ...] | None = None,
) -> FeaturizeBenchResult:
    """Time the plain loop, textsae's extraction and ``SentenceTransformer.encode`` on ``texts``; nothing is printed.

    Args:
        repeats: Rounds of all sides, the order rotating every round; each side's fastest round counts.
        sides: Which of :data:`FEATURIZE_SIDES` to run; default: all, sentence-transformers only when installed
            (``skipped`` in the result then says why). ``textsae`` always runs.

    Returns:
        The settings, each side's :class:`FeaturizeSide` (``None`` for a side not run), the speed-ups of textsae
        over the plain loop and sentence-transformers, the lowest cosine between the plain loop's vectors and
        textsae's, and the sides skipped with why.

    Raises:
        UserError: ``repeats`` < 1, an unknown side, or sentence-transformers asked for but not installed.
    """
    if repeats < 1:
        raise UserError(f"The 'repeats' parameter of run_featurize_bench must be an int >= 1. Got {repeats!r} instead.")
    unknown = sorted(set(sides or ()) - set(FEATURIZE_SIDES))
    if unknown:
        raise UserError(f"Unknown featurize bench side(s) {unknown}; expected some of {', '.join(FEATURIZE_SIDES)}.")
    skipped: dict[str, str] = {}
    wanted = ["textsae", *[name for name in FEATURIZE_SIDES if name != "textsae" and (sides is None or name in sides)]]
    if "sentence_transformers" in wanted and importlib.util.find_spec("sentence_transformers") is None:
        if sides is not None:
            raise UserError(f"The sentence_transformers side needs sentence-transformers: {ST_INSTALL_HINT}.")
        wanted.remove("sentence_transformers")
        skipped["sentence_transformers"] = f"not installed ({ST_INSTALL_HINT})"
    featurizer = HiddenStatesFeaturizer(
        model=model, max_length=max_length, batch_size=batch_size, dtype=dtype, device=device, progress=False
    ).fit()
    hf_model, tokenizer, resolved_device = featurizer.load_model()
    n_tokens = int(sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]))
    warmup = texts[:batch_size]
    dtype_used = featurizer.compute_dtype(resolved_device)

    def run_plain(batch: list[str]) -> np.ndarray:
        return plain_loop(
            hf_model, tokenizer, batch, max_length=max_length, batch_size=batch_size, device=resolved_device
        )

    def run_ours(batch: list[str]) -> np.ndarray:
        with tempfile.TemporaryDirectory() as store:
            return extract_to_store(featurizer, batch, Path(store) / "entry").to_array()

    runners: dict[str, Callable[[list[str]], np.ndarray]] = {"plain": run_plain, "textsae": run_ours}
    if "sentence_transformers" in wanted:
        runners["sentence_transformers"] = sentence_transformers_encoder(
            featurizer.model_id, max_length=max_length, batch_size=batch_size, device=resolved_device, dtype=dtype_used
        )
    order = [name for name in FEATURIZE_SIDES if name in wanted]
    for name in order:
        runners[name](warmup)
    rounds: dict[str, list[float]] = {name: [] for name in order}
    outputs: dict[str, np.ndarray] = {}
    for round_index in range(repeats):
        shift = round_index % len(order)
        for name in order[shift:] + order[:shift]:
            outputs[name], seconds = _timed(partial(runners[name], texts), resolved_device)
            rounds[name].append(seconds)

    def side(name: str) -> FeaturizeSide:
        seconds = min(rounds[name])
        return FeaturizeSide(
            seconds=seconds,
            rounds_s=tuple(rounds[name]),
            docs_per_s=len(texts) / seconds,
            tokens_per_s=n_tokens / seconds,
            min_cosine=_min_cosine(outputs[name], outputs["textsae"]),
        )

    def speedup(over: str) -> float | None:
        return min(rounds[over]) / min(rounds["textsae"]) if over in rounds else None

    def side_if_run(name: str) -> FeaturizeSide | None:
        return side(name) if name in rounds else None

    return FeaturizeBenchResult(
        n_docs=len(texts),
        n_tokens=n_tokens,
        model=featurizer.model_id,
        max_length=max_length,
        batch_size=batch_size,
        device=resolved_device,
        textsae_dtype=dtype_used,
        repeats=repeats,
        plain=side_if_run("plain"),
        textsae=side("textsae"),  # always run
        sentence_transformers=side_if_run("sentence_transformers"),
        speedup=speedup("plain"),
        speedup_vs_sentence_transformers=speedup("sentence_transformers"),
        min_cosine=_min_cosine(outputs["plain"], outputs["textsae"]) if "plain" in outputs else None,
        skipped=skipped,
    )


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cosine.min())


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
