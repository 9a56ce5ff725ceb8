"""The spine: corpus → featurizer → SAE → codes → evaluation, one stage at a time.

Each stage reads only the previous stage's artefact in the run directory and skips itself when its
own output is already complete, so any stage can be re-run alone and an interrupted run resumes
where it stopped.

Under ``torchrun`` (several processes, :mod:`textsae.distributed`) every rank runs the same stages: the SAE trains
with data parallelism, and rank 0 alone writes the run directory (config, ``sae/``, report) while the others wait at
a collective and get its result; an error on rank 0 stops every rank.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from textsae import distributed, native
from textsae._io import (
    atomic_write_json,
    atomic_write_text,
    logger,
    read_json_checked,
    resolve_device,
)
from textsae.artifacts import (
    is_complete,
    load_feature_matrices,
    load_featurizer_artifact,
    load_sae_artifact,
    sae_fingerprint,
    save_feature_matrices,
    save_featurizer_artifact,
    save_sae_artifact,
)
from textsae.config.compose import dump_yaml
from textsae.config.schema import RecipeConfig, TrainConfig, to_dict
from textsae.data.corpus import Corpus, Split, load_corpus, stratified_subsample
from textsae.distributed import on_main
from textsae.encode import encode_features
from textsae.errors import UserError
from textsae.eval.classify import evaluate_representation, fit_probe, require_fold_sizes
from textsae.eval.health import MAX_TOP_RATIO, health_warnings, top1_top2_ratios
from textsae.eval.report import write_report
from textsae.eval.sizes import (
    bytes_per_doc,
    entries_for_bytes,
    index_bytes_needed,
    truncate_rows,
)
from textsae.featurize.base import build_featurizer
from textsae.featurize.tfidf import TfidfFeaturizer
from textsae.paths import RunPaths, check_same_run, run_paths, store_root
from textsae.results import DatasetInfo, Report, RepresentationResult, SAEStats, StoredSize
from textsae.runtime import sae_uses_bf16
from textsae.sae import SparseAutoencoder
from textsae.sae.reconstruction import reconstruction_metrics
from textsae.store.codes import codes_info, load_codes
from textsae.store.features import (
    ShardedFeatures,
    extract_to_store,
    open_features,
    store_key,
)
from textsae.store.manifest import MANIFEST_NAME, read_manifest, write_manifest
from textsae.store.sparse_features import ShardedCSR, open_sparse_features, write_sparse_features
from textsae.train.orchestrate import take_rows as take_rows  # re-exported: where it lived before
from textsae.train.orchestrate import train_sae

SPLITS = ("train", "eval")

T = TypeVar("T")


STORE_POINTER_NAME = "store.json"
"""File in ``RUN_DIR/features/`` naming the feature-store entries of a dense (hidden-states) run."""
SHARDS_POINTER_NAME = "shards.json"
"""File in ``RUN_DIR/features/`` of a TF-IDF run: the CSR-shard entry of each split (``features/<split>/``) and the
SHA-256 of its manifest, so the run's manifest vouches for the entries."""


@dataclass
class Features:
    """Source features of the training split and the reported split: CSR shards for TF-IDF (an in-memory CSR matrix in
    run directories written before them), stored dense rows for hidden states, an array for own vectors."""

    train: sp.csr_matrix | ShardedCSR | ShardedFeatures | np.ndarray
    eval: sp.csr_matrix | ShardedCSR | ShardedFeatures | np.ndarray


def as_matrix(matrix: sp.csr_matrix | ShardedCSR | ShardedFeatures | np.ndarray) -> sp.csr_matrix | np.ndarray:
    """An in-memory matrix for scikit-learn (stored features are read into one array or CSR matrix)."""
    if isinstance(matrix, ShardedCSR):
        return matrix.to_matrix()
    return matrix.to_array() if isinstance(matrix, ShardedFeatures) else matrix


def take_some(matrix: Any, rows: np.ndarray | None) -> Any:
    """``rows`` of a feature or code matrix (a view for stored features); all of it when ``rows`` is None."""
    if rows is None or matrix is None:
        return matrix
    subset = getattr(matrix, "subset", None)
    return subset(rows) if callable(subset) else matrix[rows]


class Pipeline:
    """Runs the stages of one recipe in its run directory.

    Args:
        config: The resolved recipe.
        paths: Run directory layout; default derived from the config.
        corpus: Use this corpus instead of loading ``config.data`` (e.g. one fold of a cross-validation).
    """

    def __init__(self, config: RecipeConfig, paths: RunPaths | None = None, *, corpus: Corpus | None = None) -> None:
        self.config = config
        self.paths = paths or run_paths(config)
        if corpus is not None:
            self.__dict__["corpus"] = corpus  # fills the cached_property

    def prepare(self) -> None:
        """Create the run directory and save the resolved config into it (refusing a directory of another config).

        Under ``torchrun`` this also joins the process group; rank 0 writes, the others wait for it.
        """
        self._join_ranks()

        def write() -> None:
            check_same_run(self.config, self.paths)
            self.paths.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.paths.config, dump_yaml(self.config))

        distributed.on_main(write)

    @cached_property
    def corpus(self) -> Corpus:
        corpus = load_corpus(self.config.data, vector_column=self.config.featurizer.vector_column)
        if corpus.train.labels is not None:
            require_fold_sizes(corpus.train.labels, self.config.eval.cv_folds)  # before featurizing, not after
        return corpus

    @cached_property
    def corpus_fingerprint(self) -> str:
        """:meth:`Corpus.fingerprint` of this run's corpus, hashed once per pipeline."""
        return self.corpus.fingerprint()

    # --- stages ---------------------------------------------------------------------------------

    def featurize(self) -> Features:
        """Fit the featurizer on the training split and cache both splits' features.

        Under ``torchrun`` every rank calls it: TF-IDF and hidden states share the work out by rank; other featurizers
        run on rank 0 while the others wait, then load what it wrote.
        """
        self._join_ranks()
        if is_complete(self.paths.features) and is_complete(self.paths.featurizer):
            self._check_same_corpus()
            logger.info("Reusing features in %s", self.paths.features)
            return self.load_features()
        if self.config.featurizer.stored:
            return self._featurize_to_store()
        featurizer = build_featurizer(self.config.featurizer, self.config.runtime)
        if isinstance(featurizer, TfidfFeaturizer):
            return self._featurize_to_shards(featurizer)
        return self._rank0_then_load(functools.partial(self._featurize_whole, featurizer), self.load_features)

    def _featurize_whole(self, featurizer: Any) -> Features:
        """Own vectors: both splits' matrices in memory, saved whole."""
        corpus, start = self.corpus, time.perf_counter()
        train = featurizer.fit_transform(featurizer_inputs(corpus.train))
        evaluation = featurizer.transform(featurizer_inputs(corpus.eval))
        save_featurizer_artifact(featurizer, self.paths.featurizer)
        save_feature_matrices(
            self.paths.features,
            {"train": train, "eval": evaluation},
            {"n_features": featurizer.n_features, "corpus_sha256": self.corpus_fingerprint},
        )
        logger.info(
            "Featurized %d + %d documents into %d features in %.1f s",
            train.shape[0],
            evaluation.shape[0],
            featurizer.n_features,
            time.perf_counter() - start,
        )
        return Features(train, evaluation)

    def _featurize_to_shards(self, featurizer: TfidfFeaturizer) -> Features:
        """TF-IDF: fit in one streaming counting pass, then write each split's rows as CSR shards in ``features/<split>/``.

        Under torchrun every rank counts its part of the training documents (the counts are reduced, so every rank
        has the same vocabulary), transforms and writes its own ``rank_slice`` of shards, and rank 0 saves the
        featurizer and writes the manifests: N ranks write the bytes one process writes. Documents are read one shard
        at a time (a streamed split never holds its texts). A kill resumes after the complete shards.
        """
        start = time.perf_counter()
        corpus = self.corpus
        on_main(lambda: _start_rewrite(self.paths.features))
        if is_complete(self.paths.featurizer):
            fitted = load_featurizer_artifact(self.paths.featurizer)
        else:  # one counting pass in batches; under torchrun each rank counts its part (a collective)
            fitted = featurizer.fit_stream(corpus.train.texts, batch_docs=self.config.store.shard_docs)
            on_main(lambda: save_featurizer_artifact(fitted, self.paths.featurizer))
        identity = {"featurizer_sha256": _folder_sha256(self.paths.featurizer)}
        entries = {}
        for split in SPLITS:
            texts = featurizer_inputs(getattr(corpus, split))
            entries[split] = self.paths.features / split
            write_sparse_features(
                _transformer(fitted, texts),
                len(texts),
                fitted.n_features,
                entries[split],
                shard_docs=self.config.store.shard_docs,
                meta=identity,
            )

        def finish() -> None:
            pointer = {
                split: {"dir": split, "manifest_sha256": _folder_sha256(path)} for split, path in entries.items()
            }
            atomic_write_json(self.paths.features / SHARDS_POINTER_NAME, pointer)
            write_manifest(
                self.paths.features,
                [self.paths.features / SHARDS_POINTER_NAME],
                {"kind": "features", "n_features": fitted.n_features, "corpus_sha256": self.corpus_fingerprint},
            )

        on_main(finish)
        features = self.load_features()
        logger.info(
            "Featurized %d + %d documents into %d features (CSR shards of %d documents) in %.1f s",
            features.train.shape[0],
            features.eval.shape[0],
            fitted.n_features,
            self.config.store.shard_docs,
            time.perf_counter() - start,
        )
        return features

    def _featurize_to_store(self) -> Features:
        """Hidden states: extract each split into the shared feature store (or reuse it), then point the run at it."""
        from textsae.featurize.hidden_states import HiddenStatesFeaturizer

        featurizer = build_featurizer(self.config.featurizer, self.config.runtime)
        if not isinstance(featurizer, HiddenStatesFeaturizer):  # the only kind whose config is `stored`
            raise TypeError(f"featurizer.kind={self.config.featurizer.kind} does not extract into the feature store")
        on_main(functools.partial(self._save_featurizer, featurizer))  # every rank then extracts its own part
        entries, opened = {}, {}
        for split in SPLITS:
            texts = getattr(self.corpus, split).texts
            entries[split] = stored_features_dir(self.config, featurizer, texts)
            logger.info("Features of %s (%d documents): %s", split, len(texts), entries[split])
            opened[split] = extract_to_store(
                featurizer,
                texts,
                entries[split],
                shard_docs=self.config.store.shard_docs,
                meta={"featurizer": featurizer.get_params(), "model": featurizer.model_id},
            )
        on_main(lambda: self._point_at_store(entries, featurizer.n_features))
        return Features(opened["train"], opened["eval"])

    def _save_featurizer(self, featurizer: Any) -> None:
        if not is_complete(self.paths.featurizer):
            save_featurizer_artifact(featurizer.fit(), self.paths.featurizer)

    def _point_at_store(self, entries: dict[str, Path], n_features: int) -> None:
        """Write ``features/store.json`` (each split's store entry) and its manifest."""
        self.paths.features.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            self.paths.features / STORE_POINTER_NAME, {split: str(path) for split, path in entries.items()}
        )
        write_manifest(
            self.paths.features,
            [self.paths.features / STORE_POINTER_NAME],
            {"kind": "features", "n_features": n_features, "corpus_sha256": self.corpus_fingerprint},
        )

    def _check_same_corpus(self) -> None:
        """Refuse to reuse a run directory whose features were made from other texts or labels (e.g. a file edited in place)."""
        recorded = read_manifest(self.paths.features).get("corpus_sha256")
        if recorded is not None and recorded != self.corpus_fingerprint:
            raise UserError(
                f"The corpus ({self.corpus.source}) changed since the run in {self.paths.root} featurized it: its texts or labels differ, "
                "so that run's features, SAE and codes belong to the old data. "
                f"Give this corpus its own run directory (run.dir=...), or delete {self.paths.root} to start over."
            )

    def load_features(self) -> Features:
        """The cached features of this run: TF-IDF CSR shards (memory-mapped), the feature-store entries it points at,
        or the whole matrices of run directories written before shards."""
        shards = self.paths.features / SHARDS_POINTER_NAME
        if shards.exists():
            return self._load_shards(shards)
        pointer = self.paths.features / STORE_POINTER_NAME
        if pointer.exists():
            read_manifest(self.paths.features, verify_hashes=True, resume_hint="re-run `textsae featurize`")
            entries = read_json_checked(pointer, "the feature-store entries of each split")
            return Features(open_features(Path(entries["train"])), open_features(Path(entries["eval"])))
        matrices = load_feature_matrices(self.paths.features)
        return Features(matrices["train"], matrices["eval"])

    def _load_shards(self, pointer: Path) -> Features:
        """Open the CSR-shard entries ``features/shards.json`` names, after checking it against the run's manifest."""
        read_manifest(self.paths.features, verify_hashes=True, resume_hint="re-run `textsae featurize`")
        entries = read_json_checked(pointer, "the CSR-shard entry of each split")
        opened = {}
        for split in SPLITS:
            entry = entries.get(split) if isinstance(entries, dict) else None
            if not isinstance(entry, dict) or entry.get("dir") != split:
                raise UserError(
                    f"{pointer}: expected {{{split!r}: {{'dir': {split!r}, 'manifest_sha256': ...}}}} for each split. "
                    f"Got {entry!r}. Delete {self.paths.features} and re-run `textsae featurize`."
                )
            directory = self.paths.features / split
            opened[split] = open_sparse_features(directory)
            if _folder_sha256(directory) != entry.get("manifest_sha256"):
                raise UserError(
                    f"{directory / MANIFEST_NAME} changed after {pointer} was written. "
                    f"Delete {self.paths.features} and re-run `textsae featurize`."
                )
        return Features(opened["train"], opened["eval"])

    def train(self, features: Features | None = None) -> SparseAutoencoder:
        """Train the SAE (resuming from a checkpoint if one exists) and save it to ``sae/``.

        Under ``torchrun`` every rank trains its part of each batch; rank 0 saves ``sae/`` and every rank returns the
        trained SAE.
        """
        self._join_ranks()
        if distributed.on_main(lambda: is_complete(self.paths.sae)):
            logger.info("Reusing trained SAE in %s", self.paths.sae)
            return load_sae_artifact(self.paths.sae)
        features = features if features is not None else self.featurize()
        sae, summary = train_sae(
            self.config.sae,
            self.train_config,
            features.train,
            labels=self.train_labels(),
            runtime=self.config.runtime,
            fit_probe=lambda rows, labels: distributed.on_main(
                lambda: fit_probe(as_matrix(rows), labels, self.config.eval)
            ),
            run_dir=self.paths.root,
            checkpoint_path=self.paths.checkpoint,
            metrics_path=self.paths.metrics,
            data_fingerprint=self.corpus_fingerprint,  # a checkpoint of another corpus is never resumed here
        )
        distributed.on_main(lambda: self._save_trained(sae, summary))
        return sae

    def _save_trained(self, sae: SparseAutoencoder, summary: Any) -> None:
        """Write ``sae/`` (from a CPU copy: under ``torchrun`` the SAE stays on its rank's device), drop the
        checkpoint and log the outcome."""
        cpu_sae = sae.cpu()
        save_sae_artifact(
            cpu_sae,
            self.paths.sae,
            {
                "steps": summary.steps,
                "budget": summary.budget,
                "converged_at": summary.converged_at,
                "validation": summary.validation,
            },
        )
        _discard_checkpoint(self.paths)
        logger.info(
            "Trained %s SAE for %s in %.1f s; validation %s",
            self.config.sae.architecture,
            summary.budget,
            summary.seconds,
            _fmt(summary.validation),
        )

    def encode(
        self, sae: SparseAutoencoder | None = None, features: Features | None = None
    ) -> dict[str, sp.csr_matrix]:
        """Write the codes of both splits (skipping complete outputs) and load them back."""
        self._join_ranks()
        codes = {}
        for split in SPLITS:
            out_dir = self.paths.codes(split)
            fingerprint = sae_fingerprint(self.paths.sae)
            stale, ready = on_main(
                functools.partial(self._codes_state, out_dir, fingerprint)
            )  # one branch for all ranks
            if stale or not ready:
                sae = sae if sae is not None else load_sae_artifact(self.paths.sae)
                features = features if features is not None else self.featurize()
                device = resolve_device(self.config.runtime.device)
                meta = {"split": split, "recipe": self.config.name, "sae_sha256": fingerprint}
                encode_features(  # under torchrun: each rank its own shards, rank 0 the manifest
                    sae,
                    getattr(features, split),
                    out_dir,
                    self.config.encode,
                    device=device,
                    meta=meta,
                    progress=self.config.runtime.progress,
                    overwrite=stale,
                    bf16=sae_uses_bf16(self.config.runtime.precision, device),
                )
            codes[split] = load_codes(out_dir)
        return codes

    def _codes_state(self, out_dir: Path, fingerprint: str) -> tuple[bool, bool]:
        """``(stale, complete)`` of a split's codes: stale when damaged or written by another SAE or ``encode.k``."""
        damaged = (out_dir / MANIFEST_NAME).exists() and not is_complete(out_dir)
        info = codes_info(out_dir) if is_complete(out_dir) else None
        stale = damaged or (
            info is not None and (info.get("sae_sha256"), info.get("k")) != (fingerprint, self.config.encode.k)
        )
        if damaged:
            logger.warning(
                "Codes in %s are damaged (a shard listed in its manifest is missing or changed); encoding them again",
                out_dir,
            )
        elif stale:
            logger.info("Codes in %s came from another SAE or encode.k; re-encoding", out_dir)
        return stale, info is not None

    def evaluate(self, features: Features | None = None, codes: dict[str, sp.csr_matrix] | None = None) -> Report:
        """Classify with the source features, the codes and the truncated baseline; write the report.

        Under ``torchrun`` rank 0 alone evaluates and writes the report; every rank returns it.
        """
        self._join_ranks()
        features = features if features is not None else self.featurize()
        if codes is None:
            codes = self.encode(features=features)  # rank-aware: every rank encodes its part
        done = codes
        return distributed.on_main(lambda: self._evaluate(features, done))

    def _evaluate(self, features: Features, codes: dict[str, sp.csr_matrix]) -> Report:
        cfg = self.config.eval
        corpus = self.corpus
        y_train, y_eval = corpus.train.labels, corpus.eval.labels
        every_code = codes
        keep = {split: self._evaluated_rows(split) for split in SPLITS}  # eval.max_docs; None: every document
        features = Features(take_some(features.train, keep["train"]), take_some(features.eval, keep["eval"]))
        codes = {split: take_some(codes[split], keep[split]) for split in SPLITS}
        y_train, y_eval = take_some(y_train, keep["train"]), take_some(y_eval, keep["eval"])
        sae = load_sae_artifact(self.paths.sae)
        index_bytes = max(cfg.index_bytes, index_bytes_needed(sae.n_latents))
        results: dict[str, RepresentationResult] = {}
        codes_bytes = bytes_per_doc(codes["eval"], index_bytes=index_bytes, value_bytes=cfg.value_bytes)
        source_index_bytes = max(cfg.index_bytes, index_bytes_needed(features.train.shape[1]))
        source = (as_matrix(features.train), as_matrix(features.eval)) if set(cfg.representations) - {"codes"} else None
        notes = self._size_notes(source[1] if source is not None else features.eval, codes_bytes, source_index_bytes)
        if keep["train"] is not None or keep["eval"] is not None:
            notes.append(
                f"The classifiers and reconstruction statistics used {features.train.shape[0]:,} of "
                f"{len(corpus.train.texts):,} training and {features.eval.shape[0]:,} of {len(corpus.eval.texts):,} "
                f"{corpus.eval.name} documents (eval.max_docs={self.config.eval.max_docs:,}, stratified by label); "
                "codes were written for every document."
            )
            logger.info("%s", notes[-1])
        if y_train is None or y_eval is None:
            notes.append("The corpus has no labels, so the classifier evaluation was skipped; the codes are in codes/.")
            logger.warning("%s", notes[-1])
        for name in cfg.representations if y_train is not None and y_eval is not None else ():
            x_train, x_eval, size = self._representation(name, source, codes, codes_bytes, source_index_bytes)
            logger.info("Evaluating %s (%d × %d)", name, *x_train.shape)
            result = evaluate_representation(
                x_train, y_train, x_eval, y_eval, cfg, scale=name == "codes" and cfg.code_scaling == "maxabs"
            )
            results[name] = RepresentationResult(**vars(result), **vars(size))
        if "codes" in results:
            disk_bytes = codes_info(self.paths.codes("eval"))["disk_bytes"] / max(every_code["eval"].shape[0], 1)
            results["codes"] = dataclasses.replace(results["codes"], disk_bytes_per_doc=disk_bytes)
        report = Report(
            recipe=self.config.name,
            run_dir=str(self.paths.root),
            dataset=DatasetInfo(
                name=corpus.name,
                source=corpus.source,
                train_docs=len(corpus.train.texts),
                eval_split=corpus.eval.name,
                eval_docs=len(corpus.eval.texts),
                n_classes=len(np.unique(y_train)) if y_train is not None else 0,
                train_docs_evaluated=None if keep["train"] is None else len(keep["train"]),
                eval_docs_evaluated=None if keep["eval"] is None else len(keep["eval"]),
            ),
            eval=results,
            sae=self._sae_stats(sae, features, every_code),
            notes=tuple(notes),
            config=to_dict(self.config),
        )
        write_report(self.paths.root, report)
        return report

    def run(self) -> Report:
        """All stages in order; returns the report (on every rank under ``torchrun``)."""
        self.prepare()
        features = self.featurize()  # rank-aware: every rank takes part
        sae = self.train(features)
        codes = self.encode(sae, features)  # rank-aware: every rank encodes its part
        return self.evaluate(features, codes)

    def _join_ranks(self) -> None:
        """Under ``torchrun``, join the process group (once) before a stage's first collective; nothing otherwise.
        Every stage starts here, so it also applies ``runtime.native_kernels``."""
        native.set_enabled(self.config.runtime.native_kernels)
        distributed.setup(resolve_device(self.config.runtime.device))

    def _rank0_then_load(self, produce: Callable[[], T], load: Callable[[], T]) -> T:
        """``produce()`` on rank 0 while the other ranks wait, then ``load()`` of what it wrote on the others.

        For work that is not shared out by rank (a featurizer of the corpus's own vectors); one process just calls
        ``produce()``. An error on rank 0 is raised on every rank.
        """
        made: list[T] = []
        distributed.on_main(lambda: made.append(produce()))
        return made[0] if made else load()

    # --- helpers ----------------------------------------------------------------------------

    def train_labels(self) -> np.ndarray | None:
        """Class ids of the SAE's training rows (for the optional label-aware loss); None for an unlabeled corpus."""
        return self.corpus.train.labels

    @cached_property
    def train_config(self) -> TrainConfig:
        """``config.train``, less what needs labels when the corpus has none (the label loss, the probe's latents)."""
        cfg = self.config.train
        if self.train_labels() is not None or (cfg.label_loss_weight <= 0 and cfg.dense_init != "probe"):
            return cfg
        logger.warning(
            "The corpus has no labels: the SAE trains without them (train.label_loss_weight=0, train.dense_init=learned)."
        )
        return dataclasses.replace(cfg, label_loss_weight=0.0, dense_init="learned")

    def _representation(
        self,
        name: str,
        source: tuple[Any, Any] | None,
        codes: dict[str, sp.csr_matrix],
        codes_bytes: float,
        source_index_bytes: int,
    ) -> tuple[Any, Any, StoredSize]:
        """Train/eval matrices of one evaluated representation (from the in-memory source or the codes) and its size."""
        cfg = self.config.eval
        if name == "codes":
            index_bytes = max(cfg.index_bytes, index_bytes_needed(codes["train"].shape[1]))
            return codes["train"], codes["eval"], StoredSize(codes_bytes, index_bytes=index_bytes)
        if source is None:  # built whenever a representation other than codes is asked for
            raise ValueError(f"representation {name!r} needs the source features")
        x_train, x_eval = source
        if name == "source":
            if not sp.issparse(x_train):
                return x_train, x_eval, StoredSize(float(4 * x_eval.shape[1]), dtype="float32")
            size = bytes_per_doc(x_eval, index_bytes=source_index_bytes, value_bytes=cfg.value_bytes)
            return x_train, x_eval, StoredSize(size, index_bytes=source_index_bytes)
        if name == "binary":  # one sign bit per dimension; the classifier sees ±1
            signs = [np.where(x >= 0, 1.0, -1.0).astype(np.float32) for x in (x_train, x_eval)]
            return signs[0], signs[1], StoredSize(float(-(-x_eval.shape[1] // 8)), dtype="sign bits")
        # truncated: the source's largest-magnitude entries, as many as fit in the codes' bytes
        keep = entries_for_bytes(codes_bytes, index_bytes=source_index_bytes, value_bytes=cfg.value_bytes)
        x_train, x_eval = (truncate_rows(sp.csr_matrix(x), keep) for x in (x_train, x_eval))
        size = bytes_per_doc(x_eval, index_bytes=source_index_bytes, value_bytes=cfg.value_bytes)
        return x_train, x_eval, StoredSize(size, index_bytes=source_index_bytes, entries_per_doc=keep)

    def _size_notes(self, source_eval: Any, codes_bytes: float, source_index_bytes: int) -> list[str]:
        """Says so when the codes of a sparse source take more bytes per document than the source itself."""
        if not sp.issparse(source_eval):
            return []
        source_bytes = bytes_per_doc(
            source_eval, index_bytes=source_index_bytes, value_bytes=self.config.eval.value_bytes
        )
        if codes_bytes <= source_bytes:
            return []
        note = (
            f"The codes take {codes_bytes:.1f} bytes per document on the {self.corpus.eval.name} split, more than the source's {source_bytes:.1f}: "
            + (
                "set sae.adaptive_k=auto (each code at most its document's source non-zeros) and fewer sae.dense_latents, or a smaller sae.k."
                if hasattr(self.config.sae, "adaptive_k")
                else f"a stronger sparsity penalty for sae.architecture={self.config.sae.architecture}, or sae.architecture=topk with sae.k=auto."
            )
        )
        logger.warning("%s", note)
        return [note]

    def _evaluated_rows(self, split: str) -> np.ndarray | None:
        """The documents of ``split`` that evaluation uses: ``eval.max_docs`` of them, stratified by label and seeded,
        when the split is larger; ``None`` for all of them."""
        cap, data = self.config.eval.max_docs, getattr(self.corpus, split)
        if cap is None or len(data.texts) <= cap:
            return None
        strata = data.labels if data.labels is not None else np.zeros(len(data.texts), dtype=np.int64)
        return stratified_subsample(strata, cap, np.random.default_rng([self.config.eval.seed, SPLITS.index(split)]))

    def _sae_stats(self, sae: SparseAutoencoder, features: Features, codes: dict[str, sp.csr_matrix]) -> SAEStats:
        """Sizes, reconstruction on both splits (on the documents evaluation uses), dead latents and how latents spread
        over documents (on every code), and health warnings."""
        device = resolve_device(self.config.runtime.device)
        k = self.config.encode.k
        recon = reconstruction_metrics(sae, features.eval, device=device, k=k)
        recon_train = reconstruction_metrics(sae, features.train, device=device, k=k)
        fired_train = np.zeros(sae.n_latents, dtype=bool)
        fired_train[np.unique(codes["train"].indices)] = True
        ratios = top1_top2_ratios(codes["train"])
        ratio_median = float(np.median(ratios)) if ratios.size else float("nan")
        dead_fraction = float(1.0 - fired_train.mean())
        meta = read_manifest(self.paths.sae)
        stats = SAEStats(
            architecture=sae.architecture,
            n_latents=int(sae.n_latents),
            d_in=sae.d_in,
            k=k or sae.cfg.code_k,
            adaptive_k=getattr(sae.cfg, "adaptive_k", None),
            fvu=recon["fvu"],
            l0=float(codes["eval"].getnnz(axis=1).mean()),
            dead_fraction=dead_fraction,
            fvu_train=recon_train["fvu"],
            l0_train=float(codes["train"].getnnz(axis=1).mean()),
            top1_top2_median=ratio_median,
            top1_top2_above_3=float((ratios > MAX_TOP_RATIO).mean()) if ratios.size else float("nan"),
            labels_shaped_codes=self.train_config.label_loss_weight > 0 or self.train_config.dense_init == "probe",
            training_steps=meta.get("steps"),
            training_budget=meta.get("budget"),
            warnings=tuple(
                health_warnings(
                    fvu=recon["fvu"],
                    dead_fraction=dead_fraction,
                    top_ratio_median=ratio_median,
                    eval_split=self.corpus.eval.name,
                )
            ),
        )
        for line in stats.warnings:
            logger.warning("%s", line)
        return stats


def stored_features_dir(config: RecipeConfig, featurizer: Any, texts: list[str]) -> Path:
    """The feature-store entry of ``texts`` under ``featurizer`` (hash of both)."""
    return store_root(config) / store_key(texts, featurizer.get_params(), featurizer.model_id)


def featurizer_inputs(split: Split) -> Any:
    """What a featurizer reads from a split: its own vectors (``featurizer.vector_column``), else its texts."""
    return split.vectors if split.vectors is not None else split.texts


def _transformer(featurizer: Any, texts: Any) -> Any:
    """``transform(begin, end)``: the featurizer's rows of ``texts[begin:end]``."""
    return lambda begin, end: featurizer.transform(texts[begin:end])


def _folder_sha256(directory: Path) -> str:
    """SHA-256 of an artefact folder's manifest file: it names every file's hash, so it identifies the folder."""
    from textsae._io import sha256_file

    return sha256_file(directory / MANIFEST_NAME)


def _start_rewrite(directory: Path) -> None:
    """Create ``directory`` and drop its manifest, so it reads as incomplete until it is written again."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST_NAME).unlink(missing_ok=True)


def _discard_checkpoint(paths: RunPaths) -> None:
    """Delete the resumable training state once the finished SAE is saved.

    Later stages read only ``sae/``; the checkpoint holds the SAE plus Adam's two moments (three times
    its size: ~3 GB for 30k terms × 4,096 latents) and would only fill the disk, run after run.
    """
    paths.checkpoint.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # still holds something (a stray temporary file): leave it
        paths.checkpoints.rmdir()


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()) or "n/a"
