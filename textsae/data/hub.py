"""Hugging Face Hub datasets, with a fast check that the hub can be reached.

``datasets.load_dataset`` retries an unreachable hub for about 23 s before it fails. So before
calling it we open one TCP connection to the hub endpoint (``HF_ENDPOINT``, default
``https://huggingface.co``; through a proxy, an HTTP ``CONNECT`` to it) from a daemon thread that
is joined with a timeout, so a hanging DNS lookup cannot hold us longer either. When that fails, or
when ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` is set, the dataset is loaded from the
local cache only (the libraries' offline flags are set for the call) and a miss raises
:class:`~textsae.errors.HubUnreachableError` with one line that points at a local copy.

With ``data.streaming=true`` the dataset is opened with ``streaming=True`` (an ``IterableDataset``: nothing is
downloaded whole) and its splits become streamed splits (:mod:`textsae.data.stream`): one checking pass keeps the
labels and which rows have text, and the texts are streamed again whenever they are read.
:func:`stream_dataset_split` does the same for local files through ``datasets``' own ``parquet``, ``json`` and
``csv`` builders (``data_files=``), with no hub involved.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import pandas as pd

from textsae._io import logger
from textsae.config.schema import DataConfig
from textsae.data.corpus import (
    DEFAULT_EVAL_SPLITS,
    Corpus,
    Split,
    build_corpus,
    choose_eval_split,
    labeled_columns,
    split_labels,
)
from textsae.data.readers import Table
from textsae.data.stream import DEFAULT_BATCH_DOCS, IndexedFile, TextReader, index_tables
from textsae.errors import HubUnreachableError, UserError

DEFAULT_ENDPOINT = "https://huggingface.co"
"""Hub address when ``HF_ENDPOINT`` is unset."""
PROBE_TIMEOUT_S = 3.0
"""Seconds the reachability probe waits for a TCP connection (DNS included)."""
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
"""Environment variables that ask for offline mode (values 1/ON/YES/TRUE)."""
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


def offline_requested() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value."""
    return any(os.environ.get(var, "").strip().upper() in _TRUE_VALUES for var in OFFLINE_VARIABLES)


def hub_endpoint() -> tuple[str, int]:
    """Host and port of the hub: ``HF_ENDPOINT`` (scheme default port) or ``huggingface.co:443``."""
    url = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    parsed = urlsplit(url if "://" in url else f"https://{url}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    return parsed.hostname or "huggingface.co", port or (80 if parsed.scheme == "http" else 443)


def probe_route() -> tuple[tuple[str, int], tuple[str, int] | None]:
    """Where a request to the hub connects first, and what it tunnels to.

    Returns:
        ``((host, port), None)`` for a direct connection to the hub, or ``((proxy_host, proxy_port),
        (hub_host, hub_port))`` when an ``HTTPS_PROXY`` / ``HTTP_PROXY`` variable applies to the hub.
    """
    hub = hub_endpoint()
    scheme = urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).scheme or "https"
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme)
    if proxy and not urllib.request.proxy_bypass(hub[0]):
        parsed = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        try:
            proxy_port = parsed.port
        except ValueError:
            proxy_port = None
        if parsed.hostname:
            return (parsed.hostname, proxy_port or (443 if parsed.scheme == "https" else 80)), hub
    return hub, None


def hub_reachable(timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the hub answers a TCP connection (through the proxy, if one is set) within ``timeout_s``.

    The probe runs in a daemon thread joined with the timeout, so a DNS lookup that hangs (which
    ``socket`` timeouts do not cover) cannot block the caller past it. Through a proxy it sends an
    HTTP ``CONNECT`` to the hub and needs a ``200`` answer, since a proxy that answers is not proof
    that the hub does.

    Args:
        timeout_s: Seconds to wait in all.

    Returns:
        ``True`` if the hub answered in time.
    """
    address, tunnel = probe_route()
    outcome: dict[str, Any] = {}

    def connect() -> None:
        try:
            with socket.create_connection(address, timeout=timeout_s) as sock:
                if tunnel is None:
                    outcome["ok"] = True
                    return
                target = f"{tunnel[0]}:{tunnel[1]}"
                sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode("ascii"))
                status_line = sock.recv(256).split(b"\r\n", 1)[0]
                parts = status_line.split()
                outcome["ok"] = len(parts) > 1 and parts[1] == b"200"
                outcome["error"] = f"proxy answered {status_line[:80]!r}"
        except OSError as err:
            outcome["error"] = err

    thread = threading.Thread(target=connect, name="textsae-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome.get("ok"):
        where = f"{address[0]}:{address[1]}" + (f" (proxy to {tunnel[0]}:{tunnel[1]})" if tunnel else "")
        logger.debug("Hub probe %s failed: %s", where, outcome.get("error", f"no answer in {timeout_s:g} s"))
    return bool(outcome.get("ok"))


@contextlib.contextmanager
def forced_offline() -> Iterator[None]:
    """Set the offline flags of ``datasets`` and ``huggingface_hub`` (and the variables) for a block."""
    import datasets.config as datasets_config
    import huggingface_hub.constants as hub_constants

    patched = [
        (module, attr)
        for module, attr in (
            (datasets_config, "HF_HUB_OFFLINE"),
            (datasets_config, "HF_DATASETS_OFFLINE"),
            (hub_constants, "HF_HUB_OFFLINE"),
        )
        if hasattr(module, attr)
    ]
    saved_attrs = [getattr(module, attr) for module, attr in patched]
    saved_env = {var: os.environ.get(var) for var in OFFLINE_VARIABLES}
    try:
        for module, attr in patched:
            setattr(module, attr, True)
        os.environ.update(dict.fromkeys(OFFLINE_VARIABLES, "1"))
        yield
    finally:
        for (module, attr), value in zip(patched, saved_attrs, strict=True):
            setattr(module, attr, value)
        for var, value in saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def unreachable_message(name: str, config_name: str | None = None) -> str:
    """The one-line message of :class:`HubUnreachableError` for dataset ``name``."""
    example = config_name or name.split("/")[-1]
    return (
        f"Cannot reach the Hugging Face Hub to load dataset {name!r} (offline?). Use a local copy instead: "
        f"data.path=DIR (a folder with train/test Parquet files, e.g. ../shared/data/{example})."
    )


def load_hub_dataset(
    name: str, config_name: str | None = None, *, timeout_s: float = PROBE_TIMEOUT_S, streaming: bool = False
) -> Any:
    """``datasets.load_dataset(name, config_name)``, failing fast when the hub is out of reach.

    Args:
        name: Dataset id, e.g. ``imdb``.
        config_name: Dataset configuration, e.g. ``sst2`` for ``glue``.
        timeout_s: Reachability probe timeout.
        streaming: Open it with ``streaming=True`` (an ``IterableDatasetDict``, read as it is iterated).

    Returns:
        The ``datasets.DatasetDict`` (``IterableDatasetDict`` when streaming).

    Raises:
        HubUnreachableError: Offline (or no answer) and the dataset is not in the local cache.
        UserError: The dataset does not exist, or needs a configuration name.
    """
    try:
        import datasets
        from datasets.exceptions import DatasetNotFoundError, DatasetsError
    except ImportError:
        raise UserError("data.name (a hub dataset) needs the `datasets` package: `pip install datasets`.") from None
    if offline_requested() or not hub_reachable(timeout_s):
        with forced_offline():
            try:
                return _load(datasets, name, config_name, streaming)
            except (OSError, DatasetsError) as err:  # ConnectionError, DatasetNotFoundError, a cache miss
                logger.debug("Offline load of %r failed: %r", name, err)
                raise HubUnreachableError(unreachable_message(name, config_name)) from None
    try:
        return _load(datasets, name, config_name, streaming)
    except DatasetNotFoundError:
        raise UserError(
            f"Dataset {name!r} was not found on the Hugging Face Hub (or it is private or gated). Check data.name, "
            "or use a local copy: data.path=DIR."
        ) from None
    except ConnectionError:
        raise HubUnreachableError(unreachable_message(name, config_name)) from None


def _load(datasets: Any, name: str, config_name: str | None, streaming: bool = False) -> Any:
    try:
        if streaming:
            return datasets.load_dataset(name, config_name, streaming=True)
        return datasets.load_dataset(name, config_name)
    except ValueError as err:
        if "config" in str(err).lower():
            raise UserError(f"Hub dataset {name!r}: {err} Set data.hub_config=NAME.") from None
        raise


def _hub_table(dataset: Any, where: str, split: str, cfg: DataConfig) -> Table:
    columns = list(dataset.column_names)
    text_column = cfg.hub_text_column or cfg.text_column
    present = [c for c in (text_column, cfg.label_column) if c in columns]
    frame = dataset.select_columns(present).to_pandas()
    if text_column != cfg.text_column and text_column in frame.columns:
        frame = frame.rename(columns={text_column: cfg.text_column})
        columns = [cfg.text_column if c == text_column else c for c in columns]
    return Table(origin=f"{where}, split {split!r}", frame=frame, columns=columns)


def _all_hidden(table: Table, cfg: DataConfig) -> bool:
    """Hub test splits whose labels are all -1 (e.g. GLUE) have no usable labels."""
    if cfg.label_column not in table.frame.columns:
        return False
    labels = table.frame[cfg.label_column]
    return len(labels) > 0 and bool((labels == -1).all())


def load_hub_corpus(cfg: DataConfig) -> Corpus:
    """Load ``cfg.name`` from the hub; splits chosen as for a local folder.

    The report split is ``cfg.eval_split`` if set, else ``test`` if present and labeled, else
    ``validation``; a test split whose labels are all -1 (hidden, as in GLUE) is skipped.

    Raises:
        HubUnreachableError: See :func:`load_hub_dataset`.
        UserError: A missing split or column, or bad labels.
    """
    if not cfg.name:
        raise UserError("data.name is not set: give a Hugging Face dataset id, e.g. data.name=imdb.")
    if cfg.streaming is True:
        return _load_streamed_hub_corpus(cfg)
    dataset_dict = load_hub_dataset(cfg.name, cfg.hub_config)
    where = f"Hugging Face dataset {cfg.name!r}" + (f" (config {cfg.hub_config!r})" if cfg.hub_config else "")
    available = list(dataset_dict.keys())
    if cfg.train_split not in available:
        raise UserError(
            f"{where} has no split {cfg.train_split!r} (data.train_split): it has {available}. "
            "Set data.train_split to one of them."
        )
    tables = {cfg.train_split: _hub_table(dataset_dict[cfg.train_split], where, cfg.train_split, cfg)}
    candidates = available
    if cfg.eval_split is None:
        for split in DEFAULT_EVAL_SPLITS:
            if split in available and split != cfg.train_split:
                tables[split] = _hub_table(dataset_dict[split], where, split, cfg)
                if _all_hidden(tables[split], cfg):
                    logger.info("%s: split %r has hidden labels (all -1); skipped.", where, split)
                    candidates = [s for s in candidates if s != split]
    eval_name = choose_eval_split(candidates, cfg, where, str(available))
    if eval_name not in tables:
        tables[eval_name] = _hub_table(dataset_dict[eval_name], where, eval_name, cfg)
    feature = dataset_dict[cfg.train_split].features.get(cfg.label_column)
    names = list(feature.names) if getattr(feature, "names", None) else None
    train_texts, train_raw, _ = labeled_columns(tables[cfg.train_split], cfg)
    eval_texts, eval_raw, _ = labeled_columns(tables[eval_name], cfg)
    (train_ids, eval_ids), names = split_labels([train_raw, eval_raw], [cfg.train_split, eval_name], names)
    return build_corpus(
        cfg,
        name=cfg.name,
        train=Split(cfg.train_split, train_texts, train_ids),
        eval=Split(eval_name, eval_texts, eval_ids),
        label_names=names,
        source=f"Hugging Face Hub dataset {cfg.name!r}"
        + (f", config {cfg.hub_config!r}" if cfg.hub_config else "")
        + f" (splits {cfg.train_split} + {eval_name})",
    )


# ----------------------------------------------------------------------------------------------
# Streaming (IterableDataset)
# ----------------------------------------------------------------------------------------------


class _IterableReader(TextReader):
    """Texts of given rows of an ``IterableDataset``: streamed again from its first wanted row each time."""

    def __init__(self, dataset: Any, text_column: str, origin: str) -> None:
        self.dataset = dataset
        self.text_column = text_column
        self.origin = origin

    def read(self, rows: Any, offsets: Any) -> Iterator[str]:
        first, done = int(rows[0]), 0
        stream = self.dataset.select_columns([self.text_column]).skip(first)
        for position, record in enumerate(stream, start=first):
            if position == rows[done]:
                yield record[self.text_column]
                done += 1
                if done == len(rows):
                    return


def _iterable_tables(dataset: Any, origin: str, text_column: str, columns: Sequence[str], batch_docs: int) -> Any:
    names = list(dataset.column_names or [])
    present = [c for c in dict.fromkeys(columns) if c in names] if names else list(columns)
    first_row = 0
    for batch in dataset.select_columns(present).iter(batch_size=batch_docs):
        frame = pd.DataFrame(batch)
        yield Table(origin=origin, frame=frame, columns=names or list(frame.columns), first_row=first_row)
        first_row += len(frame)


def index_iterable(
    dataset: Any,
    origin: str,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    empty_text: Literal["drop", "error"] = "drop",
    batch_docs: int = DEFAULT_BATCH_DOCS,
) -> IndexedFile:
    """The index pass (:func:`textsae.data.stream.index_tables`) over one split of an ``IterableDataset``.

    Returns:
        Lazy texts that stream the dataset again when read, the raw labels (``None`` without the label column) and
        the columns.
    """
    columns = [text_column, *([label_column] if label_column else [])]
    tables = _iterable_tables(dataset, origin, text_column, columns, batch_docs)
    return index_tables(
        tables,
        _IterableReader(dataset, text_column, origin),
        text_column=text_column,
        label_column=label_column,
        empty_text=empty_text,
    )


def stream_dataset_split(
    name: str,
    split: str,
    *,
    config_name: str | None = None,
    data_files: str | Sequence[str] | dict[str, Any] | None = None,
    text_column: str = "text",
    label_column: str | None = "label",
    empty_text: Literal["drop", "error"] = "drop",
    batch_docs: int = DEFAULT_BATCH_DOCS,
) -> IndexedFile:
    """One split of a Hugging Face dataset opened with ``streaming=True``, indexed and streamed.

    Args:
        name: A hub id (through :func:`load_hub_dataset`: fails fast offline), or a ``datasets`` builder for local
            files, ``parquet``, ``json`` or ``csv``, with ``data_files`` (no hub involved).
        split: The split, e.g. ``train``.
        config_name: Hub dataset configuration.
        data_files: The local files of a builder (as ``datasets.load_dataset`` takes them).
        text_column: Column holding the text; likewise ``label_column`` (``None``: no labels).
        empty_text: ``drop`` or ``error`` on empty texts.
        batch_docs: Rows per batch of the checking pass.

    Raises:
        HubUnreachableError: A hub id, and the hub cannot be reached.
        UserError: A missing split or column, or bad rows (named by their row in the split).
    """
    if data_files is not None:
        import datasets

        dataset_dict = datasets.load_dataset(name, config_name, data_files=data_files, streaming=True)
        where = f"{name} files {data_files!r}"
    else:
        dataset_dict = load_hub_dataset(name, config_name, streaming=True)
        where = f"Hugging Face dataset {name!r}" + (f" (config {config_name!r})" if config_name else "")
    if split not in dataset_dict:
        raise UserError(f"{where} has no split {split!r}: it has {list(dataset_dict)}.")
    return index_iterable(
        dataset_dict[split],
        f"{where}, split {split!r}",
        text_column=text_column,
        label_column=label_column,
        empty_text=empty_text,
        batch_docs=batch_docs,
    )


def _first_labels_hidden(dataset: Any, label_column: str) -> bool:
    """Whether the first batch of a split has labels that are all -1 (a hub test split with hidden labels)."""
    if label_column not in (dataset.column_names or []):
        return False
    first: dict[str, list[Any]] = next(
        iter(dataset.select_columns([label_column]).iter(batch_size=256)), {label_column: []}
    )
    values = first[label_column]
    return len(values) > 0 and all(v == -1 for v in values)


def _load_streamed_hub_corpus(cfg: DataConfig) -> Corpus:
    assert cfg.name
    dataset_dict = load_hub_dataset(cfg.name, cfg.hub_config, streaming=True)
    where = f"Hugging Face dataset {cfg.name!r}" + (f" (config {cfg.hub_config!r})" if cfg.hub_config else "")
    available = list(dataset_dict.keys())
    if cfg.train_split not in available:
        raise UserError(
            f"{where} has no split {cfg.train_split!r} (data.train_split): it has {available}. "
            "Set data.train_split to one of them."
        )
    candidates = available
    if cfg.eval_split is None:
        hidden = [
            s for s in DEFAULT_EVAL_SPLITS if s in available and _first_labels_hidden(dataset_dict[s], cfg.label_column)
        ]
        for split in hidden:
            logger.info("%s: split %r has hidden labels (all -1); skipped.", where, split)
        candidates = [s for s in available if s not in hidden]
    eval_name = choose_eval_split(candidates, cfg, where, str(available))
    text_column = cfg.hub_text_column or cfg.text_column
    indexed = [
        index_iterable(
            dataset_dict[split],
            f"{where}, split {split!r}",
            text_column=text_column,
            label_column=cfg.label_column,
            empty_text=cfg.empty_text,
        )
        for split in (cfg.train_split, eval_name)
    ]
    feature: Any = (dataset_dict[cfg.train_split].features or {}).get(cfg.label_column)
    names = list(feature.names) if getattr(feature, "names", None) else None
    (train_ids, eval_ids), names = split_labels(
        [indexed[0].labels, indexed[1].labels], [cfg.train_split, eval_name], names
    )
    return build_corpus(
        cfg,
        name=cfg.name,
        train=Split(cfg.train_split, indexed[0].texts, train_ids),
        eval=Split(eval_name, indexed[1].texts, eval_ids),
        label_names=names,
        source=f"Hugging Face Hub dataset {cfg.name!r}"
        + (f", config {cfg.hub_config!r}" if cfg.hub_config else "")
        + f" (splits {cfg.train_split} + {eval_name}, streamed)",
    )
