"""Shared fixtures: a tiny synthetic labelled corpus on disk, and the shared-data location."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from textsae import native
from textsae.config.schema import RuntimeConfig, SAEConfig
from textsae.sae import SAE_REGISTRY

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]

QUIET_CPU = RuntimeConfig(progress=False, device="cpu")
"""The runtime of most tests: on the CPU, no progress bars."""

ARCHITECTURES = sorted(SAE_REGISTRY)
"""Every registered SAE architecture: the contract tests run on each, so a new one is covered by registering it."""


def sae_config(architecture: str = "topk", **fields: Any) -> SAEConfig:
    """An ``SAEConfig`` of ``architecture`` with those of ``fields`` that its architecture has (the contract tests
    give every architecture ``k``, which only the TopK family reads)."""
    keys = {f.name for f in dataclasses.fields(SAEConfig.variant(architecture))}
    return SAEConfig(architecture=architecture, **{key: value for key, value in fields.items() if key in keys})


SHARED_DATA = REPO.parent / "shared" / "data"

_POSITIVE = ["great", "wonderful", "superb", "moving", "brilliant", "delightful", "charming", "excellent"]
_NEGATIVE = ["awful", "boring", "dull", "terrible", "clumsy", "tedious", "bland", "dreadful"]
_NEUTRAL = [
    "film",
    "movie",
    "plot",
    "actor",
    "scene",
    "story",
    "director",
    "music",
    "camera",
    "script",
    "ending",
    "cast",
]


def make_texts(n_docs: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Short reviews whose label is carried by a few sentiment words among neutral ones."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n_docs)
    texts = []
    for label in labels:
        polar = _POSITIVE if label == 1 else _NEGATIVE
        words = list(rng.choice(_NEUTRAL, size=rng.integers(6, 12))) + list(rng.choice(polar, size=rng.integers(1, 4)))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, labels.astype(np.int64)


@pytest.fixture
def torch_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run on torch's kernels only (:mod:`textsae.native` off): the paths of users without a C compiler."""
    monkeypatch.setattr(native, "_enabled", False)


@pytest.fixture
def native_kernels() -> None:
    """Skip unless textsae's native CPU kernels are built (they need a C compiler)."""
    if not native.available():
        pytest.skip("textsae's native kernels could not be built here (no C compiler?)")


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset folder with train.parquet (400 docs) and test.parquet (200 docs)."""
    folder = tmp_path_factory.mktemp("tiny_corpus")
    for split, n_docs, seed in (("train", 400, 1), ("test", 200, 2)):
        texts, labels = make_texts(n_docs, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_parquet(folder / f"{split}.parquet")
    return folder


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def save_tiny_bert(folder: Path, *, safetensors: bool = True) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with a WordPiece fast tokenizer over the tiny corpus' words.

    ``safetensors=False`` leaves only pickle weights (``pytorch_model.bin``), as old hub models ship them.
    """
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = sorted(set(_POSITIVE + _NEGATIVE + _NEUTRAL))
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = BertModel(config).eval()
    model.save_pretrained(folder)
    if not safetensors:
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local model folder (safetensors weights) small enough for fast hidden-states tests."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


TINY_RECIPE = (
    "# Tiny end-to-end recipe for tests.\n"
    "defaults: [featurizer/tfidf_small, sae/topk, train/cpu_small, eval/linear_probe]\n"
    "featurizer:\n  min_df: 1\n"
    "sae:\n  n_latents: 64\n  k: 4\n"
    "runtime:\n  progress: false\ntrain:\n  epochs: 3\n  batch_size: 32\n"
    "eval:\n  cv_folds: 3\n  C_grid: [1.0, 4.0]\n"
)
"""Recipe for a run that takes a few seconds on the tiny corpus (``data.path`` is added by the fixtures)."""


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_corpus_dir: Path) -> Path:
    """:data:`TINY_RECIPE` on the tiny corpus, as a YAML file."""
    path = tmp_path_factory.mktemp("tiny_recipe") / "tiny.yaml"
    path.write_text(TINY_RECIPE + f"data:\n  path: {tiny_corpus_dir}\n")
    return path


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_recipe: Path) -> Path:
    """A finished run of :func:`tiny_recipe` (featurizer, SAE, codes, report); treat it as read-only."""
    from textsae.config.compose import load_recipe
    from textsae.pipeline import Pipeline

    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    Pipeline(load_recipe(tiny_recipe, [f"run.dir={run_dir}"])).run()
    return run_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` with a reason when this machine has no CUDA device (torch is imported only then)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is false on this machine")
    for item in gpu_items:
        item.add_marker(skip)
