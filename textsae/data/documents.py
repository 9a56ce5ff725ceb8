"""One split file's documents without holding their texts: a scanning pass that keeps only what is small per document
(its row, id and label), then the texts of any range of documents read back in bounded batches.

``textsae encode`` uses it so that its memory does not grow with the corpus: :func:`scan_documents` checks the file
as :func:`~textsae.data.corpus.load_split` does (text, label and id columns, the empty-text policy) one batch of rows
at a time, and :class:`StreamedTexts` is the list of kept texts, read from the file when sliced. Parquet files stream
(by row group and record batch); for other formats :func:`scan_documents` returns ``None`` and the caller reads the
whole split with ``load_split``: this module is the one place where that choice is made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from textsae._io import logger
from textsae.data.corpus import encode_labels
from textsae.data.readers import RawLabels, Table, extract_ids, extract_labels, extract_texts, require_column
from textsae.errors import UserError

__all__ = ["DocumentIndex", "StreamedTexts", "scan_documents"]

BATCH_ROWS = 8192
"""Rows read from the file at a time (the texts of one batch are in memory, never the whole file's)."""


@dataclass(frozen=True)
class DocumentIndex:
    """What a pass over a split file learned about its documents, without their texts.

    Attributes:
        path: The file.
        name: The split's name (the file stem).
        text_column: The column the texts are in.
        positions: ``int64 (n_docs,)``: the 0-based data row of each kept document.
        doc_ids: ``(n_docs,)`` ids: the rows, or the values of the id column (``int64`` or text).
        labels: ``int64 (n_docs,)`` class ids when the file has the label column, else ``None``.
        dropped: ``int64`` rows dropped for missing, empty or whitespace-only text.
        texts_sha256: SHA-256 of the kept texts (each UTF-8, then a NUL byte), in order.
    """

    path: Path
    name: str
    text_column: str
    positions: np.ndarray
    doc_ids: np.ndarray
    labels: np.ndarray | None
    dropped: np.ndarray
    texts_sha256: str

    def __len__(self) -> int:
        return len(self.positions)


@dataclass
class _BatchTable(Table):
    """A batch of a file's rows; messages name rows by their place in the whole file."""

    first_row: int = 0

    def row_ref(self, position: int) -> str:
        return f"row {self.first_row + position + 1}"


def _blank(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and bool(np.isnan(value)))


def scan_documents(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    empty_text: Literal["drop", "error"] = "drop",
    id_column: str | None = None,
    text_column_option: str = "text_column",
    empty_text_option: str = "empty_text",
    batch_rows: int = BATCH_ROWS,
) -> DocumentIndex | None:
    """Check a split file batch by batch and index its documents; ``None`` when the file does not stream (not a
    ``.parquet`` file: read it whole with ``load_split``).

    Int labels are kept as they are and string labels become ids in sorted order, as ``load_split`` does for a file.

    Raises:
        UserError: As ``load_split``: a missing column, non-string or (under ``error``) empty texts, no text at all,
            bad labels, missing or repeated ids; naming the file and rows.
    """
    path = Path(path)
    if path.suffix.lower() != ".parquet" or not path.is_file():
        return None
    names, batches = _parquet_batches(path, [text_column, label_column, *([id_column] if id_column else [])], 0)
    first = _BatchTable(origin=str(path), frame=pd.DataFrame(columns=names), columns=names)
    require_column(first, text_column, "text", text_column_option)
    digest = hashlib.sha256()
    positions, dropped, ids, label_parts = [], [], [], _Labels(str(path))
    n_rows = 0
    for frame in batches(batch_rows):
        table = _BatchTable(origin=str(path), frame=frame, columns=names, first_row=n_rows)
        kept = _kept_rows(table, text_column, empty_text, text_column_option, empty_text_option)
        for text in frame[text_column].iloc[kept].tolist():
            digest.update(text.encode("utf-8"))
            digest.update(b"\0")
        positions.append(kept + n_rows)
        dropped.append(np.setdiff1d(np.arange(len(frame)), kept) + n_rows)
        if id_column and len(kept):
            ids.append(extract_ids(table, id_column, kept))
        if label_column in names and len(kept):
            label_parts.add(extract_labels(table, label_column, kept))
        n_rows += len(frame)
    kept_rows = np.concatenate(positions).astype(np.int64, copy=False) if positions else np.zeros(0, np.int64)
    lost = np.concatenate(dropped).astype(np.int64, copy=False) if dropped else np.zeros(0, np.int64)
    if not n_rows:
        raise UserError(f"{path} holds no documents (0 rows): expected a header and at least one row per split.")
    if not len(kept_rows):
        raise UserError(f"{path}: no non-empty text in column {text_column!r} ({n_rows} rows).")
    if len(lost):
        option = f"{empty_text_option} error" if empty_text_option.startswith("--") else f"{empty_text_option}=error"
        logger.warning(
            "Dropped %d rows with missing, empty or whitespace-only text (from %s); %s stops instead.",
            len(lost),
            path,
            option,
        )
    return DocumentIndex(
        path=path,
        name=path.stem,
        text_column=text_column,
        positions=kept_rows,
        doc_ids=_unique_ids(path, id_column, ids, kept_rows) if id_column else kept_rows,  # one array, not a copy
        labels=label_parts.ids(),
        dropped=lost,
        texts_sha256=digest.hexdigest(),
    )


def _kept_rows(
    table: _BatchTable, column: str, empty_text: Literal["drop", "error"], option: str, policy_option: str
) -> np.ndarray:
    """Rows of one batch whose text is kept; ``extract_texts`` raises the errors (a batch may be all blank)."""
    values = table.frame[column].tolist()
    blank = np.fromiter((_blank(v) for v in values), dtype=bool, count=len(values))
    if not any(not isinstance(v, str) and not _blank(v) for v in values) and not (
        blank.any() and empty_text == "error"
    ):
        return np.flatnonzero(~blank).astype(np.int64)
    extract_texts(table, column, empty_text, option, policy_option)  # raises: non-strings, or blanks under error
    raise AssertionError("extract_texts accepted a batch this scan refuses")  # pragma: no cover


class _Labels:
    """Labels of every batch, kept as small ints (names are coded as they come, then put in sorted order)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.kind: str | None = None
        self.parts: list[np.ndarray] = []
        self.names: dict[str, int] = {}

    def add(self, raw: RawLabels) -> None:
        if self.kind is not None and raw.kind != self.kind:
            raise UserError(
                f"{self.origin}: label column mixes class ids and class names between rows. Use one kind throughout."
            )
        self.kind = raw.kind
        if raw.kind == "int":
            self.parts.append(raw.values.astype(np.int64))
        else:
            self.parts.append(np.fromiter((self.names.setdefault(v, len(self.names)) for v in raw.values), np.int64))

    def ids(self) -> np.ndarray | None:
        if self.kind is None:
            return None
        values = np.concatenate(self.parts) if self.parts else np.zeros(0, np.int64)
        if self.kind == "str":
            first_seen = np.array(list(self.names), dtype=object)
            values = first_seen[values]
        (ids,), _ = encode_labels([RawLabels(self.kind, values, self.origin)], None, remap=False)  # type: ignore[arg-type]
        return ids


def _unique_ids(path: Path, column: str, parts: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The id column's values over all batches: one type (text when any batch's are text), each used once."""
    ids = (
        np.concatenate([part.astype(str) for part in parts])
        if any(part.dtype.kind != "i" for part in parts)
        else np.concatenate(parts)
    )
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        value = ids[first[np.flatnonzero(counts > 1)[0]]]
        where = np.flatnonzero(ids == value)[:2]
        raise UserError(
            f"{path}: id {value.item()!r} in column {column!r} is used by row {rows[where[0]] + 1} and "
            f"row {rows[where[1]] + 1}; ids must be unique."
        )
    return ids


def _parquet_batches(path: Path, wanted: Sequence[str], first_row: int) -> tuple[list[str], Any]:
    """The file's column names, and a function giving its rows from ``first_row`` on as data frames of the wanted
    columns present, ``batch_rows`` at a time (starting at the row group that holds ``first_row``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # pre_buffer=False: pyarrow would otherwise read every requested row group into memory up front
        handle = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"Cannot read Parquet file {path}: it is corrupt or not Parquet ({err}).") from None
    names = list(handle.schema_arrow.names)
    columns = [c for c in dict.fromkeys(wanted) if c in names]
    starts = np.cumsum([0] + [handle.metadata.row_group(i).num_rows for i in range(handle.num_row_groups)])
    group = max(int(np.searchsorted(starts, first_row, side="right")) - 1, 0)

    def batches(batch_rows: int) -> Iterator[pd.DataFrame]:
        row = int(starts[group]) if handle.num_row_groups else 0
        groups = list(range(group, handle.num_row_groups))
        reader = handle.iter_batches(batch_size=batch_rows, row_groups=groups, columns=columns)
        while True:
            try:
                batch = next(reader, None)
            except (pa.ArrowException, OSError) as err:
                raise UserError(f"Cannot read Parquet file {path}: it is corrupt or not Parquet ({err}).") from None
            if batch is None:
                return
            frame = batch.to_pandas()
            frame.attrs["first_row"] = row
            row += len(frame)
            yield frame

    return names, batches


class StreamedTexts(Sequence[str]):
    """The kept texts of a scanned file as a read-only list: slicing reads those documents' rows from the file.

    Reads move forward batch by batch; a slice before the current batch starts again at its row group. Memory holds
    one batch of rows (:data:`BATCH_ROWS`), whatever the file's size.
    """

    def __init__(self, index: DocumentIndex, *, batch_rows: int = BATCH_ROWS) -> None:
        self.documents = index
        self.batch_rows = batch_rows
        self._batches: Iterator[pd.DataFrame] | None = None
        self._texts: list[Any] = []
        self._first_row = 0

    def __len__(self) -> int:
        return len(self.documents)

    @overload
    def __getitem__(self, item: int) -> str: ...

    @overload
    def __getitem__(self, item: slice) -> list[str]: ...

    def __getitem__(self, item: int | slice) -> str | list[str]:
        if isinstance(item, slice):
            rows = self.documents.positions[item]
            return [self._row(int(row)) for row in rows]
        return self._row(int(self.documents.positions[item]))

    def _row(self, row: int) -> str:
        if self._batches is None or not self._first_row <= row < self._first_row + len(self._texts) + self.batch_rows:
            # before this batch, or beyond the next: start at the row group that holds the row
            _, batches = _parquet_batches(self.documents.path, [self.documents.text_column], row)
            self._batches, self._texts, self._first_row = batches(self.batch_rows), [], -1
        while row >= self._first_row + len(self._texts) or self._first_row < 0:
            frame = next(self._batches, None)
            if frame is None:
                raise UserError(f"{self.documents.path} has fewer rows than when it was read first; was it changed?")
            self._first_row, self._texts = int(frame.attrs["first_row"]), frame[self.documents.text_column].tolist()
        return str(self._texts[row - self._first_row])
