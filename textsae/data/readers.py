"""File-format readers and column extraction for local corpora.

One reader per format turns a file into a :class:`Table` (a ``pandas.DataFrame`` plus where it came
from and how to name its rows in messages). :func:`extract_texts` and :func:`extract_labels` then
check one column each and return plain Python/NumPy values; they raise :class:`UserError` that names
the file, the column and the first offending rows.

Row references in messages:

* ``line N`` for ``.txt``, ``.jsonl`` and ``.csv`` files (the physical line, from 1, where the row
  starts; a CSV header is line 1);
* ``row N`` otherwise (data rows counted from 1; for a JSON list, the N-th record).
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import difflib
import io
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from textsae._io import logger
from textsae.errors import UserError

SUPPORTED_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json", ".txt")
"""File types :func:`read_table` reads, by suffix."""

_MAX_LISTED = 5  # rows named in one error message
_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


@dataclass
class Table:
    """A file (or hub split) read into a data frame.

    Attributes:
        origin: What to call it in messages: a file path, or e.g. ``Hugging Face dataset 'imdb', split 'test'``.
        frame: The rows; only the columns that were asked for when the format allows reading a subset.
        columns: Every column the source has (for "did you mean" messages).
        line_numbers: Physical line of each row (from 1) when it is exact, else ``None``.
        plain_text: ``True`` for ``.txt`` files: one document per line, a single ``text`` column, no labels.
        untyped: ``True`` when every value was read as a string (CSV): labels that look like numbers
            are parsed as numbers.
        first_row: Data rows of the source before :attr:`frame`'s first (a batch of a streamed file), so that
            ``row N`` names the row of the whole file.
    """

    origin: str
    frame: pd.DataFrame
    columns: list[str] = field(default_factory=list)
    line_numbers: np.ndarray | None = None
    plain_text: bool = False
    untyped: bool = False
    first_row: int = 0

    def row_ref(self, position: int) -> str:
        """Human name of the row at 0-based ``position`` of :attr:`frame`: ``line N`` or ``row N``."""
        if self.line_numbers is not None:
            return f"line {int(self.line_numbers[position])}"
        return f"row {self.first_row + position + 1}"

    def rows_ref(self, positions: Sequence[int] | np.ndarray) -> str:
        """Name the first few of ``positions`` and how many there are, e.g. ``3 rows: row 2, row 9, row 11``."""
        positions = [int(p) for p in positions]
        shown = ", ".join(self.row_ref(p) for p in positions[:_MAX_LISTED])
        more = ", ..." if len(positions) > _MAX_LISTED else ""
        noun = "row" if len(positions) == 1 else "rows"
        return f"{len(positions)} {noun}: {shown}{more}"


@dataclass
class RawLabels:
    """Label values of one split after type checks, before they are mapped to class ids.

    Attributes:
        kind: ``"int"`` (non-negative class ids) or ``"str"`` (class names).
        values: ``int64`` array for ``"int"``, an object array of ``str`` for ``"str"``; shape ``(n,)``.
        origin: Where they came from (for messages).
    """

    kind: Literal["int", "str"]
    values: np.ndarray
    origin: str


# ----------------------------------------------------------------------------------------------
# Readers
# ----------------------------------------------------------------------------------------------


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> Table:
    """Read one file into a :class:`Table`, by its suffix.

    Args:
        path: A ``.parquet``, ``.csv``, ``.jsonl``, ``.json`` or ``.txt`` file. ``.json`` holds a list
            of objects, an object of equal-length column lists, or JSON Lines.
        columns: The columns that will be used; Parquet reads only these (when present). Other
            formats read every column.

    Returns:
        The table. CSV values are all read as strings (so a text such as ``42`` or ``NA`` stays
        text); only empty CSV fields count as missing.

    Raises:
        UserError: The path is missing, the suffix unsupported, the file not valid UTF-8 (CSV, JSONL,
            JSON, TXT), a CSV row ragged, the JSON malformed or the Parquet file corrupt.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"No such file or folder: {path}{cwd_hint(path)}")
    if path.is_dir():
        raise UserError(f"{path} is a folder; expected one {'/'.join(SUPPORTED_SUFFIXES)} file.")
    if not path.is_file():  # a FIFO would block for ever, a device such as /dev/zero never ends
        raise UserError(f"{path} is not a regular file (a pipe, socket or device); save the data to a file first.")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path, list(dict.fromkeys(columns)) if columns is not None else None)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".jsonl":
        return _read_jsonl(path, _decode_utf8(path))
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".txt":
        return _read_txt(path)
    raise UserError(
        f"Unsupported file type {path.suffix!r} for {path}. Expected one of {', '.join(SUPPORTED_SUFFIXES)}."
    )


def cwd_hint(path: Path) -> str:
    """`` (relative to the current directory ...)`` for a relative path, else ``""``."""
    return "" if path.is_absolute() else f" (relative to the current directory {Path.cwd()})"


_COMPRESSED = {b"\x1f\x8b": ("gzip", "gunzip -c"), b"PK\x03\x04": ("zip", "unzip -p"), b"BZh": ("bzip2", "bunzip2 -c")}
"""Leading bytes of compressed files: a text reader would otherwise report a UTF-8 error with a wrong hint."""


def _decode_utf8(path: Path) -> str:
    """Decode a whole file as UTF-8 (a leading BOM is dropped); name the first bad byte on failure."""
    data = path.read_bytes()
    for magic, (kind, command) in _COMPRESSED.items():
        if data.startswith(magic):
            plain = f"plain{path.suffix}"
            raise UserError(
                f"{path} is {kind}-compressed; decompress it first, e.g. `{command} {path.name} > {plain}`."
            )
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = bom + err.start
        line = data.count(b"\n", 0, offset) + 1
        raise UserError(
            f"{path} is not valid UTF-8: byte 0x{data[offset]:02x} at byte offset {offset} (line {line}). "
            "Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
        ) from None


def _read_parquet(path: Path, columns: Sequence[str] | None) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = list(pq.read_schema(path).names)
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            where = [i for i, name in enumerate(names) if name == repeated[0]]
            raise UserError(
                f"Parquet file {path}: column name {repeated[0]!r} is used by columns {where} (counting from 0); "
                "every column needs its own name. Rename or drop the extra one."
            )
        wanted = [c for c in columns if c in names] if columns is not None else None
        frame = pq.read_table(path, columns=wanted).to_pandas()
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"Cannot read Parquet file {path}: it is corrupt or not Parquet ({err}).") from None
    return Table(origin=str(path), frame=frame.reset_index(drop=True), columns=names)


def _read_csv(path: Path) -> Table:
    """Parse with the ``csv`` module (quoted fields may span lines) so that every record's field count is checked.

    pandas would silently take an extra field in every row as an index column, or pad short rows
    with missing values; both shift a column and train on garbage, so a ragged row is an error.
    """
    text = _decode_utf8(path)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # the default, 128 KiB per field, is shorter than a long document
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str | None]] = []
    line_numbers: list[int] = []
    header: list[str] | None = None
    header_line = 1
    previous_end = 0
    try:
        for record in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not record:  # a blank line
                continue
            if header is None:
                header, header_line = record, start
                continue
            if len(record) != len(header):
                raise UserError(
                    f"{path}: line {start} has {len(record)} fields but the header has {len(header)} (line {header_line}). "
                    'Quote fields that contain commas ("like, this"), or fix the row.'
                )
            rows.append([field or None for field in record])  # only an empty field is missing: "NA" stays text
            line_numbers.append(start)
    except csv.Error as err:
        raise UserError(
            f"Cannot parse CSV file {path}: {err} (near line {reader.line_num}). Check its quoting."
        ) from None
    if header is None:
        raise UserError(f"{path} is empty: expected a header line (e.g. `text,label`) and data rows.")
    check_csv_header(path, header)
    frame = (
        pd.DataFrame(rows, columns=header, dtype=object)
        if rows
        else pd.DataFrame({name: pd.Series(dtype=object) for name in header})
    )
    return Table(
        origin=str(path),
        frame=frame,
        columns=list(header),
        line_numbers=np.asarray(line_numbers, dtype=np.int64),
        untyped=True,
    )


def check_csv_header(path: Path, header: list[str]) -> None:
    """Refuse a CSV header that shows a tab-separated file or names a column twice, in one line naming ``path``."""
    if len(header) == 1 and "\t" in header[0]:
        raise UserError(
            f"{path} looks tab-separated (its header {header[0]!r} holds tabs), but a .csv file is read comma-separated: "
            "save it with commas, or as .jsonl or .parquet."
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise UserError(
            f"{path}: the header names the columns {duplicates} more than once; column names must be unique."
        )


def _read_jsonl(path: Path, text: str) -> Table:
    records: list[dict[str, Any]] = []
    line_numbers: list[int] = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 may sit inside a JSON string
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: line {number} is not valid JSON ({err.msg} at column {err.colno}).") from None
        if not isinstance(record, dict):
            raise UserError(
                f"{path}: line {number} holds a JSON {type(record).__name__}; expected one object per line, "
                'e.g. {"text": "...", "label": 0}.'
            )
        _check_encodable(record, f"{path}: line {number}")
        records.append(record)
        line_numbers.append(number)
    if not records:
        raise UserError(f'{path} is empty: expected one JSON object per line, e.g. {{"text": "...", "label": 0}}.')
    frame = pd.DataFrame.from_records(records)
    return Table(
        origin=str(path), frame=frame, columns=[str(c) for c in frame.columns], line_numbers=np.asarray(line_numbers)
    )


def _check_encodable(record: dict[str, Any], where: str) -> None:
    """A UserError when a string of ``record`` holds a lone surrogate (a ``\\ud800`` escape), which no file can store."""
    for key, value in record.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise UserError(
                    f"{where}: field {key!r} holds a lone surrogate (U+{ord(value[err.start]):04X}), half of a character "
                    "pair, which is not text; fix the \\u escape in that line."
                ) from None


def _read_json(path: Path) -> Table:
    text = _decode_utf8(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several top-level values: JSON Lines under a .json name
            return _read_jsonl(path, text)
        raise UserError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}.") from None
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        for position, record in enumerate(data):
            _check_encodable(record, f"{path}: record {position + 1}")
        frame = pd.DataFrame.from_records(data)
    elif isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) != 1:
            raise UserError(f"{path}: the column lists have different lengths {lengths}; they must be equal.")
        for key, column in data.items():
            for position, value in enumerate(column):
                _check_encodable({key: value}, f"{path}: row {position + 1}")
        frame = pd.DataFrame(data)
    else:
        raise UserError(
            f'{path}: expected a JSON list of objects ([{{"text": ..., "label": ...}}, ...]) or an object of '
            f'equal-length column lists ({{"text": [...], "label": [...]}}). Got a {type(data).__name__} instead.'
        )
    if frame.empty:
        raise UserError(f"{path} holds no rows.")
    return Table(origin=str(path), frame=frame, columns=[str(c) for c in frame.columns])


def _read_txt(path: Path) -> Table:
    lines = _decode_utf8(path).split("\n")
    if lines and lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    texts = [line[:-1] if line.endswith("\r") else line for line in lines]
    frame = pd.DataFrame({"text": pd.Series(texts, dtype=object)})
    return Table(
        origin=str(path), frame=frame, columns=["text"], line_numbers=np.arange(1, len(texts) + 1), plain_text=True
    )


# ----------------------------------------------------------------------------------------------
# Columns
# ----------------------------------------------------------------------------------------------


def closest_column(table: Table, column: str, cutoff: float = 0.5) -> str | None:
    """The column of ``table`` whose name is closest to ``column`` (difflib ratio >= ``cutoff``, or equal ignoring
    case), or None."""
    present = table.columns or [str(c) for c in table.frame.columns]
    close = difflib.get_close_matches(column, present, n=1, cutoff=cutoff)
    if not close:  # case-insensitive fallback, e.g. 'Text' for 'text'
        close = [c for c in present if c.lower() == column.lower()][:1]
    return close[0] if close else None


def require_column(table: Table, column: str, role: Literal["text", "label"], option: str) -> None:
    """Raise if ``column`` is not in ``table``, naming the columns present and the closest match.

    Args:
        table: The table to check.
        column: The configured column name.
        role: ``"text"`` or ``"label"`` (used in the message).
        option: The setting that chooses the column, e.g. ``data.text_column``.

    Raises:
        UserError: The column is missing.
    """
    if column in table.frame.columns:
        return
    present = table.columns or [str(c) for c in table.frame.columns]
    close = closest_column(table, column)
    if close:
        advice = f"Closest match: {close!r}. Set {_setting(option, close)}."
    else:
        advice = f"Set {_setting(option, 'NAME')} to one of the columns present."
    raise UserError(f"{table.origin} has no {role} column {column!r}. Columns present: {present}. {advice}")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def extract_texts(
    table: Table,
    column: str,
    empty_text: Literal["drop", "error"],
    option: str = "data.text_column",
    policy_option: str = "data.empty_text",
) -> tuple[list[str], np.ndarray]:
    """Check a text column and apply the empty-text policy.

    Texts must be strings. A number or other non-string value in a typed format (Parquet, JSON) is an
    error rather than being converted with ``str``: it usually means the wrong column was chosen
    (e.g. the label column), and training on ``"0"``/``"1"`` would pass silently. CSV and TXT values
    are always strings.

    Args:
        table: The table.
        column: Text column name.
        empty_text: ``drop``: remove rows whose text is missing, empty or whitespace-only, with one
            ``logger.warning`` that counts them; ``error``: raise on the first such rows.
        option: The setting that names the column (for messages).
        policy_option: The setting that chooses ``empty_text`` (for messages).

    Returns:
        The kept texts and their 0-based positions in ``table.frame`` (``int64``, shape ``(n_kept,)``).

    Raises:
        UserError: The column is missing, holds non-strings, holds empty texts under ``error``, or
            no text is left.
    """
    require_column(table, column, "text", option)
    if len(table.frame) == 0:
        raise UserError(
            f"{table.origin} holds no documents (0 rows): expected a header and at least one row per split."
        )
    texts, positions, empty = check_texts(table, column, empty_text, option, policy_option)
    if len(empty) == len(table.frame):
        raise UserError(f"{table.origin}: no non-empty text in column {column!r} ({len(table.frame)} rows).")
    if empty:
        _report_dropped(f"{table.origin} ({table.rows_ref(empty)})", len(empty), policy_option)
    return texts, positions


def check_texts(
    table: Table,
    column: str,
    empty_text: Literal["drop", "error"],
    option: str = "data.text_column",
    policy_option: str = "data.empty_text",
) -> tuple[list[str], np.ndarray, list[int]]:
    """The checks of :func:`extract_texts` that one batch of a file can make on its own (the column is present).

    Returns:
        The kept texts, their 0-based positions in ``table.frame`` (``int64``) and the positions of the empty
        texts that were dropped.

    Raises:
        UserError: Non-string texts, or empty texts under ``empty_text="error"``, naming the rows.
    """
    values = table.frame[column].tolist()
    bad = [i for i, v in enumerate(values) if not isinstance(v, str) and not _is_missing(v)]
    if bad:
        first = values[bad[0]]
        raise UserError(
            f"{table.origin}: text column {column!r} holds non-string values in {table.rows_ref(bad)} "
            f"(first: {first!r}, a {type(first).__name__}). Texts must be strings; check {option} "
            "or store the column as text."
        )
    empty = [i for i, v in enumerate(values) if _is_missing(v) or not v.strip()]
    if empty and empty_text == "error":
        raise UserError(
            f"{table.origin}: text column {column!r} is missing, empty or whitespace-only in {table.rows_ref(empty)}. "
            f"Fix those rows, or set {_setting(policy_option, 'drop')} to skip them."
        )
    keep = np.ones(len(values), dtype=bool)
    keep[empty] = False
    positions = np.flatnonzero(keep).astype(np.int64)
    return [values[i] for i in positions], positions, empty


def report_dropped(origin: str, count: int, policy_option: str = "data.empty_text") -> None:
    """Warn (or collect, inside :func:`one_drop_warning`) that ``count`` rows of ``origin`` were dropped for empty text."""
    _report_dropped(origin, count, policy_option)


_DROPPED: contextvars.ContextVar[list[tuple[str, int, str]] | None] = contextvars.ContextVar(
    "textsae_dropped", default=None
)


def _setting(option: str, value: str) -> str:
    return f"{option} {value}" if option.startswith("--") else f"{option}={value}"


def _report_dropped(origin: str, count: int, policy_option: str) -> None:
    collected = _DROPPED.get()
    if collected is not None:
        collected.append((origin, count, policy_option))
    else:
        _warn_dropped([(origin, count, policy_option)])


def _warn_dropped(dropped: list[tuple[str, int, str]]) -> None:
    total = sum(count for _, count, _ in dropped)
    where = "; ".join(f"{count} from {origin}" for origin, count, _ in dropped)
    option = dropped[0][2]
    logger.warning(
        "Dropped %d rows with missing, empty or whitespace-only text (%s); %s stops instead.",
        total,
        where,
        _setting(option, "error"),
    )


@contextlib.contextmanager
def one_drop_warning() -> Iterator[None]:
    """Within the block, texts dropped by :func:`extract_texts` from several files are reported in one warning line at the end."""
    token = _DROPPED.set([])
    try:
        yield
        dropped = _DROPPED.get()
    finally:
        _DROPPED.reset(token)
    if dropped:
        _warn_dropped(dropped)


def extract_ids(table: Table, column: str, positions: np.ndarray, option: str = "--id-column") -> np.ndarray:
    """The document ids of the kept rows from a column the user names: ``int64`` for an integer column, else text.

    Raises:
        UserError: The column is missing, an id is missing, or two rows share an id (naming both rows).
    """
    if column not in table.frame.columns:
        present = table.columns or [str(c) for c in table.frame.columns]
        raise UserError(f"{table.origin} has no id column {column!r} ({option}). Columns present: {present}.")
    series = table.frame[column]
    values = series.tolist()
    missing = [int(p) for p in positions if _is_missing(values[p])]
    if missing:
        raise UserError(
            f"{table.origin}: id column {column!r} is missing in {table.rows_ref(missing)}; every row needs an id."
        )
    kept = series.iloc[positions]
    nested = [int(p) for p, v in zip(positions, kept.tolist(), strict=True) if isinstance(v, (list, dict, np.ndarray))]
    if nested:
        raise UserError(
            f"{table.origin}: id column {column!r} holds lists or objects in {table.rows_ref(nested)}; ids are single values."
        )
    numeric = pd.api.types.is_numeric_dtype(kept) and not pd.api.types.is_bool_dtype(kept)
    integral = numeric and bool(np.all(np.mod(kept.to_numpy(dtype=np.float64), 1) == 0))
    fits = integral and float(kept.max()) <= np.iinfo(np.int64).max and float(kept.min()) >= np.iinfo(np.int64).min
    if fits and pd.api.types.is_integer_dtype(kept):
        ids = kept.to_numpy(dtype=np.int64)
    elif fits and len(kept) and float(np.abs(kept.to_numpy(dtype=np.float64)).max()) < 2**53:  # ints read as floats
        ids = kept.to_numpy(dtype=np.float64).astype(np.int64)
    else:
        ids = np.asarray([str(v) for v in kept])
    seen: dict[Any, int] = {}
    for position, value in zip(positions, ids.tolist(), strict=True):
        if value in seen:
            raise UserError(
                f"{table.origin}: id {value!r} in column {column!r} is used by {table.row_ref(seen[value])} and "
                f"{table.row_ref(int(position))}; ids must be unique."
            )
        seen[value] = int(position)
    if ids.dtype.kind == "i" and ids.size and int(ids.min()) < 0:
        return np.asarray([str(v) for v in ids.tolist()])  # negative ints are kept, as text
    return ids


def extract_vectors(
    table: Table, column: str, positions: np.ndarray, option: str | None = "featurizer.vector_column"
) -> np.ndarray:
    """The precomputed vectors of the kept rows: a list column of equal-length, finite numbers.

    Parquet list columns and JSON arrays are read as they are; a CSV cell holds a JSON list such as ``[0.1, 0.2]``.

    Args:
        table: The table.
        column: The vector column's name.
        positions: The kept rows (from :func:`extract_texts`).
        option: The setting that names the column (for messages); None when a trained run fixes it.

    Returns:
        ``float32`` array ``(len(positions), dim)``.

    Raises:
        UserError: The column is missing, a cell is not a list of numbers, lengths differ, or a value is not finite;
            naming the row.
    """
    if column not in table.frame.columns:
        present = table.columns or [str(c) for c in table.frame.columns]
        advice = (
            f"Set {_setting(option, 'NAME')} to the column holding one list of numbers per row."
            if option
            else f"The run was trained on vectors from a column named {column!r}: give yours that name."
        )
        raise UserError(f"{table.origin} has no vector column {column!r}. Columns present: {present}. {advice}")
    values = table.frame[column].tolist()
    rows: list[np.ndarray] = []
    for position in positions:
        cell = shown = values[position]
        if isinstance(cell, str):
            try:
                cell = json.loads(cell)
            except ValueError:
                cell = None
        try:
            row = np.asarray(cell, dtype=np.float64)
        except (TypeError, ValueError):
            row = np.zeros((0, 0))
        if row.ndim != 1 or row.size == 0:
            raise UserError(
                f"{table.origin}: {table.row_ref(int(position))}: vector column {column!r} holds {str(shown)[:60]!r}; "
                "expected a list of numbers, e.g. [0.12, -0.5, 0.33]."
            )
        if rows and row.size != rows[0].size:
            raise UserError(
                f"{table.origin}: {table.row_ref(int(position))}: vector column {column!r} holds {row.size} numbers, "
                f"but earlier rows hold {rows[0].size}; every vector needs the same length."
            )
        if not np.isfinite(row).all() or np.abs(row).max() > np.finfo(np.float32).max:
            raise UserError(
                f"{table.origin}: {table.row_ref(int(position))}: vector column {column!r} holds NaN, inf or a value "
                "beyond float32; fix or drop that row."
            )
        rows.append(row)
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), rows[0].size if rows else 0)


def extract_labels(table: Table, column: str, positions: np.ndarray, option: str = "data.label_column") -> RawLabels:
    """Check a label column (at the kept ``positions``) and classify its values as ids or names.

    Ints (and floats with integral values, and bools) are class ids and must be >= 0; strings are
    class names. A column that mixes numbers and strings, holds non-integral floats, or has missing
    values is an error.

    Args:
        table: The table.
        column: Label column name.
        positions: 0-based rows of ``table.frame`` to read (those whose text was kept).
        option: The setting that names the column (for messages).

    Returns:
        The values, typed.

    Raises:
        UserError: Naming the file, column and first offending rows.
    """
    require_column(table, column, "label", option)
    series = table.frame[column].iloc[positions]
    values = series.tolist()
    refs = np.asarray(positions)
    missing = [i for i, v in enumerate(values) if _is_missing(v)]
    if missing:
        raise UserError(
            f"{table.origin}: label column {column!r} is missing (None/NaN/empty) in "
            f"{table.rows_ref(refs[missing])}. Every document of a labeled split needs a label."
        )
    if table.untyped:
        values = [_parse_number(v) if isinstance(v, str) else v for v in values]
    kinds = [_label_kind(v) for v in values]
    if "other" in kinds:
        i = kinds.index("other")
        raise UserError(
            f"{table.origin}: label column {column!r} holds {values[i]!r} (a {type(values[i]).__name__}) at "
            f"{table.row_ref(int(refs[i]))}. Labels must be class ids (ints >= 0) or class names (strings)."
        )
    if "str" in kinds and "num" in kinds:
        i, j = kinds.index("num"), kinds.index("str")
        raise UserError(
            f"{table.origin}: label column {column!r} mixes numbers and strings, e.g. {values[i]!r} at "
            f"{table.row_ref(int(refs[i]))} and {values[j]!r} at {table.row_ref(int(refs[j]))}. "
            "Use class ids (ints >= 0) or class names (strings) throughout."
        )
    if "str" in kinds:
        return RawLabels("str", np.asarray(values, dtype=object), table.origin)
    return RawLabels("int", _as_class_ids(table, column, values, refs), table.origin)


def _parse_number(value: str) -> Any:
    """CSV fields are strings: read ``'3'`` as 3 and ``'3.5'`` as 3.5; leave names alone."""
    stripped = value.strip()
    if _INT_RE.fullmatch(stripped):
        return int(stripped)
    if _FLOAT_RE.fullmatch(stripped):
        return float(stripped)
    return value


def _label_kind(value: Any) -> str:
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bool, np.bool_, int, np.integer, float, np.floating)):
        return "num"
    return "other"


def _as_class_ids(table: Table, column: str, values: list[Any], refs: np.ndarray) -> np.ndarray:
    numbers = np.asarray(values, dtype=np.float64) if values else np.zeros(0)
    non_integral = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
    if non_integral.size:
        i = int(non_integral[0])
        raise UserError(
            f"{table.origin}: label column {column!r} holds {values[i]!r} at {table.row_ref(int(refs[i]))} "
            f"({table.rows_ref(refs[non_integral])} are not whole numbers). Labels must be class ids "
            "(ints >= 0) or class names (strings); regression targets are not supported."
        )
    too_large = [i for i, v in enumerate(values) if not -(2**63) <= int(v) < 2**63]
    if too_large:
        i = too_large[0]
        raise UserError(
            f"{table.origin}: label column {column!r} holds {values[i]!r} at {table.row_ref(int(refs[i]))}, too large for "
            "a class id; use class ids 0, 1, 2, ... or class names (strings)."
        )
    ids = np.asarray([int(v) for v in values], dtype=np.int64)
    negative = np.flatnonzero(ids < 0)
    if negative.size:
        i = int(negative[0])
        hint = (
            " Hub datasets mark hidden labels with -1 (e.g. a GLUE test split): choose a labeled split with "
            "data.eval_split=validation."
            if bool(np.all(ids == -1))
            else ""
        )
        raise UserError(
            f"{table.origin}: label column {column!r} holds {int(ids[i])} at {table.row_ref(int(refs[i]))} "
            f"(negative in {table.rows_ref(refs[negative])}). Class ids must be ints >= 0.{hint}"
        )
    return ids
