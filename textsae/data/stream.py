"""Corpora larger than memory: documents read from their files in bounded batches, on demand.

A streamed split holds, per document, only its data row in the file (``int64``), the byte offset where that row
starts (line formats) and its label (``int64``): 24 bytes a document, plus its id when an id column is read. Its texts are a :class:`LazyTexts`, a
``Sequence[str]`` that reads them from the file again each time they are iterated, in batches of
``batch_docs`` documents, so memory follows the batch, not the corpus.

Reading is in two passes:

1. **Index** (:func:`index_file`): one pass over the file in batches checks every row as the in-memory readers do
   (:mod:`textsae.data.readers`: the same checks, the same one-line errors naming the file, the line or row and the
   column; a bad row in the seventh batch is named by its line in the whole file) and keeps the rows whose text is
   kept, their labels, their ids (an id column, each id used once in the whole file), the SHA-256 of their texts
   and, for JSONL and CSV, their byte offsets.
2. **Read** (:meth:`LazyTexts.iter_batches`): Parquet through ``pyarrow.parquet.ParquetFile.iter_batches`` from
   the row group that holds the first row asked for; JSONL and CSV by seeking to the first row's byte offset. A
   file that changed between the passes (size or modification time) is refused.

The documents, their order and the labels are those of the in-memory load (:func:`textsae.data.corpus.load_corpus`),
so :meth:`textsae.data.corpus.Corpus.fingerprint` gives the same value for the same files.

Hugging Face datasets stream through the same :class:`LazyTexts` (:mod:`textsae.data.hub`, ``streaming=True``).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from textsae.data.readers import (
    _COMPRESSED,
    RawLabels,
    Table,
    _check_encodable,
    check_csv_header,
    check_texts,
    closest_column,
    cwd_hint,
    extract_ids,
    extract_labels,
    report_dropped,
    require_column,
)
from textsae.errors import UserError

__all__ = [
    "DEFAULT_BATCH_DOCS",
    "STREAM_SUFFIXES",
    "IndexedFile",
    "LazyTexts",
    "TextReader",
    "add_texts",
    "index_file",
    "index_tables",
    "texts_sha256",
]

DEFAULT_BATCH_DOCS = 4096
"""Documents per batch when reading a streamed split (a few MB of text for typical documents)."""
STREAM_SUFFIXES = (".parquet", ".jsonl", ".csv")
"""File types that can be streamed (``.json`` and ``.txt`` are read whole)."""

_MAX_LISTED = 5


def texts_sha256(texts: Iterable[str]) -> str:
    """SHA-256 of documents, each UTF-8 then a NUL byte, in order (the fingerprint an interrupted encode checks)."""
    digest = hashlib.sha256()
    add_texts(digest, texts)
    return digest.hexdigest()


def add_texts(digest: Any, texts: Iterable[str]) -> None:
    """Feed documents into a ``hashlib`` digest as :func:`texts_sha256` does (so a digest fed in parts gives it too)."""
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")


class TextReader:
    """Reads the texts of given data rows of one source, in order (a file, a Hugging Face dataset)."""

    origin: str
    """What to call the source in messages."""

    def row_ref(self, row: int, offset: int | None) -> str:
        """Human name of the 0-based data ``row`` (that starts at byte ``offset`` in a line format)."""
        return f"row {row + 1}"

    def read(self, rows: np.ndarray, offsets: np.ndarray | None) -> Iterator[str]:
        """The texts of the 0-based data ``rows`` (strictly increasing), in that order.

        Args:
            rows: Data rows of the source.
            offsets: Byte offset where each of ``rows`` starts (line formats), else ``None``.
        """
        raise NotImplementedError


class LazyTexts(Sequence[str]):
    """The documents of a streamed split: a read-only sequence of str that reads its file on demand.

    ``len`` is known without reading; iterating, slicing (``texts[a:b]``, a list) and indexing read the file. Use
    :meth:`iter_batches` to read in bounded batches, e.g. one rank's slice: ``texts.iter_batches(4096, start=a,
    stop=b)``. Slices read in order (``texts[0:512]``, then ``texts[512:1024]``...) continue one pass over the file;
    any other slice starts a new one at the row group or line of its first document.
    """

    def __init__(self, reader: TextReader, rows: np.ndarray, offsets: np.ndarray | None = None) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size > 1 and not bool(np.all(np.diff(rows) > 0)):
            raise ValueError("LazyTexts rows must be strictly increasing (file order)")
        self.reader = reader
        self.rows = rows
        self.offsets = None if offsets is None else np.asarray(offsets, dtype=np.int64)
        self._cursor: tuple[int, Iterator[str]] | None = None  # the next document of the pass slices continue

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cursor": None}  # an open pass over the file does not travel (to other ranks)

    def __len__(self) -> int:
        return int(self.rows.size)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._read(start, stop)
        position = int(index) + (len(self) if int(index) < 0 else 0)
        if not 0 <= position < len(self):
            raise IndexError(f"document {index} of {len(self)}")
        return self._read(position, position + 1)[0]

    def _read(self, start: int, stop: int) -> list[str]:
        """Documents ``start..stop-1``, continuing the last pass when it stopped at ``start``."""
        if start >= stop:
            return []
        cursor, self._cursor = self._cursor, None  # a read that fails leaves no half-read pass behind
        if cursor is None or cursor[0] != start:
            offsets = None if self.offsets is None else self.offsets[start:]
            cursor = (start, self.reader.read(self.rows[start:], offsets))
        texts = list(itertools.islice(cursor[1], stop - start))
        if len(texts) != stop - start:
            raise UserError(f"{self.reader.origin} has fewer documents than when it was indexed; was it changed?")
        if stop < len(self):
            self._cursor = (stop, cursor[1])
        return texts

    def __iter__(self) -> Iterator[str]:
        for batch in self.iter_batches():
            yield from batch

    def __repr__(self) -> str:
        return f"LazyTexts({self.reader.origin}, {len(self)} documents)"

    def iter_batches(
        self, batch_docs: int | None = None, *, start: int = 0, stop: int | None = None
    ) -> Iterator[list[str]]:
        """Documents ``start..stop-1`` in lists of at most ``batch_docs``, in order.

        Args:
            batch_docs: Documents per list (memory: one list at a time); default :data:`DEFAULT_BATCH_DOCS`.
            start: First document (0-based, in this split).
            stop: One past the last document; ``None`` reads to the end.
        """
        batch_docs = batch_docs or DEFAULT_BATCH_DOCS
        if batch_docs < 1:
            raise ValueError(f"batch_docs must be >= 1, got {batch_docs}")
        stop = len(self) if stop is None else min(stop, len(self))
        if start >= stop:
            return
        rows = self.rows[start:stop]
        offsets = None if self.offsets is None else self.offsets[start:stop]
        batch: list[str] = []
        for text in self.reader.read(rows, offsets):
            batch.append(text)
            if len(batch) == batch_docs:
                yield batch
                batch = []
        if batch:
            yield batch

    def take(self, indices: np.ndarray) -> LazyTexts:
        """The documents at ``indices`` (increasing), still lazy."""
        indices = np.asarray(indices, dtype=np.int64)
        offsets = None if self.offsets is None else self.offsets[indices]
        return LazyTexts(self.reader, self.rows[indices], offsets)


@dataclass
class IndexedFile:
    """What the index pass keeps of one file or split.

    Attributes:
        texts: The kept documents, lazy.
        labels: Their raw labels, or ``None`` when the source has no label column.
        columns: Every column the source has (union over its batches).
        n_rows: Data rows read, kept or not.
        doc_ids: The id column's value for each kept document (``int64``, or text when any is not an integer),
            when an id column was read; else ``None``.
        texts_sha256: :func:`texts_sha256` of the kept texts.
    """

    texts: LazyTexts
    labels: RawLabels | None
    columns: list[str]
    n_rows: int = 0
    doc_ids: np.ndarray | None = None
    texts_sha256: str = ""

    @property
    def dropped(self) -> np.ndarray:
        """``int64`` 0-based data rows dropped for missing, empty or whitespace-only text."""
        return np.setdiff1d(np.arange(self.n_rows, dtype=np.int64), self.texts.rows)


# ----------------------------------------------------------------------------------------------
# The index pass
# ----------------------------------------------------------------------------------------------


def index_file(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    empty_text: Literal["drop", "error"] = "drop",
    id_column: str | None = None,
    batch_docs: int | None = None,
    text_option: str = "data.text_column",
    label_option: str = "data.label_column",
    policy_option: str = "data.empty_text",
    id_option: str = "--id-column",
) -> IndexedFile:
    """Check a ``.parquet``, ``.jsonl`` or ``.csv`` file batch by batch and index its kept documents.

    Args:
        path: The file.
        text_column: Column holding the text.
        label_column: Column holding the labels (``None``: read none). A file without it is unlabeled.
        empty_text: ``drop`` rows whose text is missing, empty or whitespace-only (one warning), or ``error``.
        id_column: Column holding each document's id (present in every kept row, each id used once), or ``None``.
        batch_docs: Rows per batch of the index pass (default :data:`DEFAULT_BATCH_DOCS`).
        text_option: The setting that names the text column (for messages); likewise ``label_option``,
            ``policy_option`` and ``id_option``.

    Returns:
        The lazy texts, the raw labels, the ids, the texts' fingerprint and the file's columns.

    Raises:
        UserError: As the in-memory readers, naming the file, the line or row and the column.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"No such file or folder: {path}{cwd_hint(path)}")
    if not path.is_file():
        raise UserError(f"{path} is not a regular file (a pipe, socket or device); save the data to a file first.")
    suffix = path.suffix.lower()
    if suffix not in STREAM_SUFFIXES:
        raise UserError(
            f"{path}: {suffix or 'a file without suffix'} cannot be streamed; data.streaming reads "
            f"{', '.join(STREAM_SUFFIXES)} files (set data.streaming=false to read it whole)."
        )
    columns = [text_column, *(c for c in (label_column, id_column) if c)]
    batch_docs = batch_docs or DEFAULT_BATCH_DOCS
    reader: _FileReader
    if suffix == ".parquet":
        reader = _ParquetReader(path, text_column)
        tables: Iterable[Table] = reader.tables(columns, batch_docs)
    elif suffix == ".jsonl":
        reader = _JsonlReader(path, text_column)
        tables = reader.tables(columns, batch_docs)
    else:
        reader = _CsvReader(path, text_column)
        tables = reader.tables(columns, batch_docs)
    return index_tables(
        tables,
        reader,
        text_column=text_column,
        label_column=label_column,
        empty_text=empty_text,
        id_column=id_column,
        text_option=text_option,
        label_option=label_option,
        policy_option=policy_option,
        id_option=id_option,
    )


def index_tables(
    tables: Iterable[Table],
    reader: TextReader,
    *,
    text_column: str,
    label_column: str | None,
    empty_text: Literal["drop", "error"],
    id_column: str | None = None,
    text_option: str = "data.text_column",
    label_option: str = "data.label_column",
    policy_option: str = "data.empty_text",
    id_option: str = "--id-column",
) -> IndexedFile:
    """The index pass over batches of one source (see :func:`index_file`); ``reader`` reads the texts back.

    Each table is one batch: its ``first_row`` counts the data rows before it and, for line formats, its
    ``line_numbers`` are lines of the whole file; an ``offsets`` column (dropped here) holds each row's byte offset.
    """
    index = _Index(text_column, label_column, empty_text, text_option, label_option, policy_option)
    index.id_column, index.id_option = id_column, id_option
    for table in tables:
        index.add(table)
    return index.finish(reader)


class _Index:
    """Accumulates the index pass: kept rows, offsets, labels, ids, the texts' digest, dropped rows, label presence."""

    def __init__(
        self,
        text_column: str,
        label_column: str | None,
        empty_text: Literal["drop", "error"],
        text_option: str,
        label_option: str,
        policy_option: str,
    ) -> None:
        self.text_column, self.label_column, self.empty_text = text_column, label_column, empty_text
        self.text_option, self.label_option, self.policy_option = text_option, label_option, policy_option
        self.rows: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.label_kind: tuple[str, str] | None = None  # kind, and a row that has it (for the mixed-kinds message)
        self.unlabeled_row: str | None = None  # first kept row of a batch without the label column
        self.columns: dict[str, None] = {}
        self.n_rows = 0
        self.dropped = 0
        self.dropped_refs: list[str] = []
        self.origin = ""
        self.first_table: Table | None = None
        self.interned: dict[str, str] = {}
        self.id_column: str | None = None
        self.id_option = "--id-column"
        self.ids: list[np.ndarray] = []
        self.digest = hashlib.sha256()

    def add(self, table: Table) -> None:
        self.origin = table.origin
        self.columns.update(dict.fromkeys(table.columns))
        offsets = table.frame.pop("__offset__").to_numpy(np.int64) if "__offset__" in table.frame.columns else None
        if self.first_table is None:
            self.first_table = table
        if self.text_column not in table.frame.columns:
            if len(table.frame) and self.text_column in self.columns:  # JSONL: only other rows hold it
                table.frame[self.text_column] = None
            else:
                require_column(table, self.text_column, "text", self.text_option)
        texts, positions, empty = check_texts(
            table, self.text_column, self.empty_text, self.text_option, self.policy_option
        )
        add_texts(self.digest, texts)
        self.n_rows += len(table.frame)
        if empty:
            self.dropped += len(empty)
            room = _MAX_LISTED + 1 - len(self.dropped_refs)
            self.dropped_refs.extend(table.row_ref(p) for p in empty[:room])
        self.rows.append(positions + table.first_row)
        if offsets is not None:
            self.offsets.append(offsets[positions])
        if self.label_column is not None and positions.size:
            self._add_labels(table, positions)
        if self.id_column is not None and positions.size:
            if self.id_column not in table.frame.columns and self.id_column in self.columns:
                table.frame[self.id_column] = None  # JSONL: only other rows hold it (named as missing here)
            self.ids.append(extract_ids(table, self.id_column, positions, self.id_option))

    def _add_labels(self, table: Table, positions: np.ndarray) -> None:
        assert self.label_column is not None
        if self.label_column not in table.frame.columns:
            if self.unlabeled_row is None:
                self.unlabeled_row = table.row_ref(int(positions[0]))
            return
        raw = extract_labels(table, self.label_column, positions, self.label_option)
        values = raw.values
        if raw.kind == "str":  # one object per distinct name: 8 bytes a document, as for int ids
            values = np.asarray([self.interned.setdefault(v, v) for v in values], dtype=object)
        where = table.row_ref(int(positions[0]))
        if self.label_kind is None:
            self.label_kind = (raw.kind, where)
        elif self.label_kind[0] != raw.kind:
            (_, num_at), (_, name_at) = sorted([self.label_kind, (raw.kind, where)])
            raise UserError(
                f"{table.origin}: label column {self.label_column!r} mixes numbers and strings, e.g. a number at "
                f"{num_at} and a string at {name_at}. "
                "Use class ids (ints >= 0) or class names (strings) throughout."
            )
        self.labels.append(values)

    def finish(self, reader: TextReader) -> IndexedFile:
        columns = list(self.columns)
        whole = Table(origin=self.origin or reader.origin, frame=pd.DataFrame(), columns=columns)
        if self.first_table is None or self.n_rows == 0:
            raise UserError(
                f"{whole.origin} holds no documents (0 rows): expected a header and at least one row per split."
            )
        if self.text_column not in self.columns:
            require_column(self.first_table, self.text_column, "text", self.text_option)
        rows = np.concatenate(self.rows)
        if rows.size == 0:
            raise UserError(f"{whole.origin}: no non-empty text in column {self.text_column!r} ({self.n_rows} rows).")
        if self.dropped:
            shown = ", ".join(self.dropped_refs[:_MAX_LISTED]) + (", ..." if self.dropped > _MAX_LISTED else "")
            noun = "row" if self.dropped == 1 else "rows"
            report_dropped(f"{whole.origin} ({self.dropped} {noun}: {shown})", self.dropped, self.policy_option)
        offsets = np.concatenate(self.offsets) if self.offsets else None
        labels = self._labels(whole)
        ids = self._unique_ids(whole, reader, rows, offsets) if self.id_column is not None else None
        texts = LazyTexts(reader, rows, offsets)
        return IndexedFile(texts, labels, columns, self.n_rows, doc_ids=ids, texts_sha256=self.digest.hexdigest())

    def _unique_ids(self, whole: Table, reader: TextReader, rows: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
        """The ids of every batch as one array (text when any batch's are), each used once in the whole source
        (each batch checked its own; a repeat across batches is found here, by sorting)."""
        text = any(part.dtype.kind != "i" for part in self.ids)
        ids = np.concatenate([part.astype(str) if text else part for part in self.ids])
        _, first, counts = np.unique(ids, return_index=True, return_counts=True)
        if (counts > 1).any():
            value = ids[first[np.flatnonzero(counts > 1)[0]]]
            a, b = (int(i) for i in np.flatnonzero(ids == value)[:2])
            refs = [reader.row_ref(int(rows[i]), None if offsets is None else int(offsets[i])) for i in (a, b)]
            raise UserError(
                f"{whole.origin}: id {value.item()!r} in column {self.id_column!r} is used by {refs[0]} and "
                f"{refs[1]}; ids must be unique."
            )
        return ids

    def _labels(self, whole: Table) -> RawLabels | None:
        if self.label_column is None or self.label_kind is None:
            return None
        if self.unlabeled_row is not None:
            raise UserError(
                f"{whole.origin}: label column {self.label_column!r} is missing (None/NaN/empty) in "
                f"{self.unlabeled_row}. Every document of a labeled split needs a label."
            )
        kind: Literal["int", "str"] = "str" if self.label_kind[0] == "str" else "int"
        values = np.concatenate(self.labels) if self.labels else np.zeros(0, np.int64)
        return RawLabels(kind, values, whole.origin)


# ----------------------------------------------------------------------------------------------
# File readers: batches of rows for the index pass, texts of given rows for the read pass
# ----------------------------------------------------------------------------------------------


class _FileReader(TextReader):
    """A file and the size and modification time it had at the index pass."""

    def __init__(self, path: Path, text_column: str) -> None:
        self.path = path
        self.origin = str(path)
        self.text_column = text_column
        stat = path.stat()
        self.stamp = (stat.st_size, stat.st_mtime_ns)

    def check_unchanged(self) -> None:
        try:
            stat = self.path.stat()
        except OSError:
            raise UserError(f"{self.path} was removed while its documents were being read.") from None
        if (stat.st_size, stat.st_mtime_ns) != self.stamp:
            raise UserError(
                f"{self.path} changed while its documents were being read (streamed corpora are read more than once): "
                "leave the file alone during a run, or start the run again."
            )


def _row_group_batches(parquet: Any, groups: range, batch_docs: int, columns: list[str]) -> Iterator[Any]:
    """Record batches of ``groups``, one row group at a time: pyarrow's ``iter_batches`` over many row groups keeps
    what it read ahead (282 MB of Arrow memory over a 275 MB, 50-group file of 1M documents; 14 MB this way)."""
    for group in groups:
        yield from parquet.iter_batches(batch_size=batch_docs, columns=columns, row_groups=[group])


class _ParquetReader(_FileReader):
    def _file(self) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            # buffered, not pre-buffered: a column chunk is read in 1 MB pieces, never a row group's whole up front
            return pq.ParquetFile(self.path, buffer_size=1 << 20, pre_buffer=False)
        except (pa.ArrowException, OSError) as err:
            raise UserError(f"Cannot read Parquet file {self.path}: it is corrupt or not Parquet ({err}).") from None

    def tables(self, columns: Sequence[str], batch_docs: int) -> Iterator[Table]:
        import pyarrow as pa

        parquet = self._file()
        names = list(parquet.schema_arrow.names)
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            where = [i for i, name in enumerate(names) if name == repeated[0]]
            raise UserError(
                f"Parquet file {self.path}: column name {repeated[0]!r} is used by columns {where} (counting from 0); "
                "every column needs its own name. Rename or drop the extra one."
            )
        wanted = [c for c in dict.fromkeys(columns) if c in names]
        first_row = 0
        try:
            for batch in _row_group_batches(parquet, range(parquet.num_row_groups), batch_docs, wanted):
                frame = batch.to_pandas()
                yield Table(origin=self.origin, frame=frame, columns=names, first_row=first_row)
                first_row += len(frame)
        except (pa.ArrowException, OSError) as err:
            raise UserError(f"Cannot read Parquet file {self.path}: it is corrupt or not Parquet ({err}).") from None
        if first_row == 0:
            yield Table(origin=self.origin, frame=pd.DataFrame({c: [] for c in wanted}), columns=names)

    def read(self, rows: np.ndarray, offsets: np.ndarray | None) -> Iterator[str]:
        self.check_unchanged()
        parquet = self._file()
        group_rows = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
        group_starts = np.concatenate(([0], np.cumsum(group_rows)))
        first_group = int(np.searchsorted(group_starts, rows[0], side="right")) - 1
        last_group = int(np.searchsorted(group_starts, rows[-1], side="right")) - 1
        position = int(group_starts[first_group])
        done = 0
        batches = _row_group_batches(
            parquet, range(first_group, last_group + 1), DEFAULT_BATCH_DOCS, [self.text_column]
        )
        for batch in batches:
            end = position + batch.num_rows
            upto = int(np.searchsorted(rows, end, side="left"))
            if upto > done:
                texts = batch.column(0).take(rows[done:upto] - position).to_pylist()
                yield from texts
                done = upto
            position = end
            if done == rows.size:
                return


class _LineReader(_FileReader):
    """JSONL and CSV: decoded lines with their line numbers and byte offsets, from any byte offset."""

    def row_ref(self, row: int, offset: int | None) -> str:
        if offset is None:
            return super().row_ref(row, offset)
        newlines = 0
        with self.path.open("rb") as handle:  # only for an error message: count the lines before the row
            while offset > 0:
                chunk = handle.read(min(offset, 1 << 20))
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                offset -= len(chunk)
        return f"line {newlines + 1}"

    def _lines(self, handle: Any, offset: int, line: int) -> Iterator[tuple[str, int, int]]:
        """``(text, line number, byte offset)`` of each physical line (its ``\\n`` kept) from ``offset``."""
        for raw in handle:
            if offset == 0 and line == 1:
                for magic, (kind, command) in _COMPRESSED.items():
                    if raw.startswith(magic):
                        raise UserError(
                            f"{self.path} is {kind}-compressed; decompress it first, e.g. "
                            f"`{command} {self.path.name} > plain{self.path.suffix}`."
                        )
            bom = 3 if offset == 0 and raw.startswith(b"\xef\xbb\xbf") else 0
            try:
                text = raw[bom:].decode("utf-8")
            except UnicodeDecodeError as err:
                at = offset + bom + err.start
                raise UserError(
                    f"{self.path} is not valid UTF-8: byte 0x{raw[bom + err.start]:02x} at byte offset {at} "
                    f"(line {line}). Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
                ) from None
            yield text, line, offset
            offset += len(raw)
            line += 1

    def read(self, rows: np.ndarray, offsets: np.ndarray | None) -> Iterator[str]:
        assert offsets is not None
        self.check_unchanged()
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # runs of consecutive rows: one seek each
        with self.path.open("rb") as handle:
            for a, b in zip(np.concatenate(([0], breaks)), np.concatenate((breaks, [rows.size])), strict=True):
                handle.seek(int(offsets[a]))
                records = self._records(handle, int(offsets[a]))
                for _ in range(int(b - a)):
                    yield next(records)

    def _records(self, handle: Any, offset: int) -> Iterator[str]:
        """The text of each data row from a row start at ``offset``."""
        raise NotImplementedError


class _JsonlReader(_LineReader):
    def tables(self, columns: Sequence[str], batch_docs: int) -> Iterator[Table]:
        records: list[dict[str, Any]] = []
        numbers: list[int] = []
        offsets: list[int] = []
        first_row = 0
        with self.path.open("rb") as handle:
            for text, number, offset in self._lines(handle, 0, 1):
                if not text.strip():
                    continue
                records.append(self._parse(text, number))
                numbers.append(number)
                offsets.append(offset)
                if len(records) == batch_docs:
                    yield self._table(records, numbers, offsets, first_row)
                    first_row += len(records)
                    records, numbers, offsets = [], [], []
        if records:
            yield self._table(records, numbers, offsets, first_row)
        elif first_row == 0:
            raise UserError(
                f'{self.path} is empty: expected one JSON object per line, e.g. {{"text": "...", "label": 0}}.'
            )

    def _parse(self, text: str, number: int) -> dict[str, Any]:
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(
                f"{self.path}: line {number} is not valid JSON ({err.msg} at column {err.colno})."
            ) from None
        if not isinstance(record, dict):
            raise UserError(
                f"{self.path}: line {number} holds a JSON {type(record).__name__}; expected one object per line, "
                'e.g. {"text": "...", "label": 0}.'
            )
        _check_encodable(record, f"{self.path}: line {number}")
        return record

    def _table(self, records: list[dict[str, Any]], numbers: list[int], offsets: list[int], first_row: int) -> Table:
        frame = pd.DataFrame.from_records(records)
        columns = [str(c) for c in frame.columns]
        frame["__offset__"] = offsets
        return Table(
            origin=self.origin,
            frame=frame,
            columns=columns,
            line_numbers=np.asarray(numbers, dtype=np.int64),
            first_row=first_row,
        )

    def _records(self, handle: Any, offset: int) -> Iterator[str]:
        for text, _, _ in self._lines(handle, offset, 2):
            if text.strip():
                value = json.loads(text).get(self.text_column)
                yield value if isinstance(value, str) else ""


class _CsvReader(_LineReader):
    """CSV read as :func:`textsae.data.readers.read_table` reads it (the ``csv`` module, every field a string)."""

    header: list[str] | None = None

    def tables(self, columns: Sequence[str], batch_docs: int) -> Iterator[Table]:
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        rows: list[list[str | None]] = []
        numbers: list[int] = []
        offsets: list[int] = []
        first_row = 0
        with self.path.open("rb") as handle:
            pending: deque[tuple[int, int]] = deque()  # (line, offset) of lines the parser has read

            def lines() -> Iterator[str]:
                for text, number, offset in self._lines(handle, 0, 1):
                    pending.append((number, offset))
                    yield text

            reader = csv.reader(lines(), strict=True)
            header_line, previous_end = 1, 0
            try:
                for record in reader:
                    start, previous_end = previous_end + 1, reader.line_num
                    while pending and pending[0][0] < start:
                        pending.popleft()
                    offset = pending[0][1] if pending else 0
                    if not record:
                        continue
                    if self.header is None:
                        self.header, header_line = self._check_header(record), start
                        continue
                    if len(record) != len(self.header):
                        raise UserError(
                            f"{self.path}: line {start} has {len(record)} fields but the header has {len(self.header)} "
                            f"(line {header_line}). "
                            'Quote fields that contain commas ("like, this"), or fix the row.'
                        )
                    rows.append([field or None for field in record])
                    numbers.append(start)
                    offsets.append(offset)
                    if len(rows) == batch_docs:
                        yield self._table(rows, numbers, offsets, first_row)
                        first_row += len(rows)
                        rows, numbers, offsets = [], [], []
            except csv.Error as err:
                raise UserError(
                    f"Cannot parse CSV file {self.path}: {err} (near line {reader.line_num}). Check its quoting."
                ) from None
        if self.header is None:
            raise UserError(f"{self.path} is empty: expected a header line (e.g. `text,label`) and data rows.")
        if rows or first_row == 0:
            yield self._table(rows, numbers, offsets, first_row)

    def _check_header(self, header: list[str]) -> list[str]:
        check_csv_header(self.path, header)
        return header

    def _table(self, rows: list[list[str | None]], numbers: list[int], offsets: list[int], first_row: int) -> Table:
        assert self.header is not None
        frame = (
            pd.DataFrame(rows, columns=self.header, dtype=object)
            if rows
            else pd.DataFrame({name: pd.Series(dtype=object) for name in self.header})
        )
        frame["__offset__"] = np.asarray(offsets, dtype=np.int64)
        return Table(
            origin=self.origin,
            frame=frame,
            columns=list(self.header),
            line_numbers=np.asarray(numbers, dtype=np.int64),
            untyped=True,
            first_row=first_row,
        )

    def _records(self, handle: Any, offset: int) -> Iterator[str]:
        assert self.header is not None
        column = self.header.index(self.text_column)
        for record in csv.reader((text for text, _, _ in self._lines(handle, offset, 2)), strict=True):
            if record:
                yield record[column]


# ----------------------------------------------------------------------------------------------
# Helpers for the corpus loaders
# ----------------------------------------------------------------------------------------------


def files_bytes(paths: Iterable[Path]) -> int:
    """Total size of ``paths`` on disk."""
    return sum(os.path.getsize(p) for p in paths if Path(p).is_file())


def missing_label_column_is_typo(columns: list[str], label_column: str, origin: str) -> bool:
    """Whether a missing ``label_column`` looks like a typo of a column present (as the in-memory loader decides)."""
    table = Table(origin=origin, frame=pd.DataFrame(), columns=columns)
    return closest_column(table, label_column, cutoff=0.75) is not None
