"""``textsae bench quality``: how useful each representation of one corpus is, at its stored size.

For one recipe (corpus + featurizer + SAE) the bench builds every representation of the reported
split that :mod:`textsae.eval.representations` knows for the source's kind, and the SAE's codes at
several inference k; it then fits the linear classifiers on each, measures reconstruction and size,
and writes ``report.json``, ``report.md`` and two plots into ``<run dir>/bench/quality/``.

Protocol. With a train/eval split (the default) every fit — vocabulary, LSA/PCA bases, quantiser
scales, the SAE, the classifiers' C by CV — uses the training split only; the eval split is scored
once. With ``bench.cv_folds=K`` the corpus's splits are pooled and split into K stratified folds;
each fold runs the whole chain from the text (a fresh featurizer, SAE and classifiers fitted on the
other K − 1 folds) and the report gives means and standard deviations over folds.

Sources. A sparse source (TF-IDF) gets: itself (``tfidf``), its top-n entries (``tfidf_top``) and
LSA. A dense source (hidden states) gets: ``fp32``, ``fp16``, ``int8``, ``binary`` and ``pca``.
Both get ``sae`` (one SAE read at each ``bench.ks``) and optionally ``sae_per_k`` (one SAE trained
per k, ``bench.per_k``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from textsae._io import atomic_path, atomic_write_json, atomic_write_text, logger
from textsae.artifacts import is_complete, load_featurizer_artifact
from textsae.bench.compression import (
    compressed_sizes,
    files_bytes,
    save_stored,
    text_bytes,
    zstd_available,
)
from textsae.bench.machine import Machine
from textsae.bench.quality_report import (
    BestCell,
    BudgetRow,
    ClassifierScores,
    CompressionRow,
    MultiVsPerK,
    QualityDataset,
    QualityReport,
    QualityRow,
    QualitySAE,
)
from textsae.config.schema import RecipeConfig, SAEConfig, to_dict
from textsae.data.corpus import Corpus, Split, take
from textsae.errors import UserError
from textsae.eval import representations as reps
from textsae.eval.classify import CLASSIFIERS, Classifier, evaluate_representation
from textsae.eval.representations import Representation
from textsae.markdown import markdown_table
from textsae.paths import RunPaths
from textsae.pipeline import Features, as_matrix
from textsae.sae.topk import TopKConfig

__all__ = ["QUALITY_DIR", "SAE_FAMILIES", "budget_table", "format_budget_table", "run_quality_bench"]

QUALITY_DIR = "bench/quality"
"""Where the quality bench writes inside a run directory."""
COMPRESSED_FAMILIES = ("tfidf", "fp16", "sae", "sae_per_k")
"""Families whose stored files also get gzip/zstd sizes in the compression table."""
SAE_FAMILIES = ("sae", "sae_per_k")


def run_quality_bench(config: RecipeConfig, out_dir: Path | None = None, *, command: str = "") -> QualityReport:
    """Run the quality bench for one recipe and write its report and plots.

    Args:
        config: The resolved recipe (``bench`` section: see :class:`~textsae.config.schema.BenchConfig`).
        out_dir: Output folder; default ``<run dir>/bench/quality``.
        command: The command line, recorded in the report.

    Returns:
        The report (also written to ``out_dir/report.json``).
    """
    from textsae.bench.plots import write_plots
    from textsae.pipeline import Pipeline

    pipeline = Pipeline(config)
    pipeline.prepare()
    out_dir = Path(out_dir) if out_dir is not None else pipeline.paths.root / QUALITY_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = pipeline.corpus
    start = time.perf_counter()
    if config.bench.cv_folds:
        folds = _cv_corpora(corpus, config.bench.cv_folds, config.eval.seed)
        results = [
            _evaluate(
                Pipeline(config, RunPaths(out_dir / f"fold{i}"), corpus=fold), out_dir / f"fold{i}", compression=i == 0
            )
            for i, fold in enumerate(folds)
        ]
        rows = _aggregate([r.rows for r in results])
        protocol = (
            f"stratified {config.bench.cv_folds}-fold cross-validation over the {len(corpus.train) + len(corpus.eval)} pooled documents; "
            "vocabulary, LSA/PCA, quantiser scales, SAE and classifiers are all fit inside each fold's training part"
        )
    else:
        results = [_evaluate(pipeline, out_dir, compression=True)]
        rows = results[0].rows
        protocol = f"fit on {corpus.train.name} ({len(corpus.train)} documents), scored once on {corpus.eval.name} ({len(corpus.eval)} documents)"
    first = results[0]
    report = QualityReport(
        recipe=config.name,
        dataset=QualityDataset(
            name=corpus.name,
            source=corpus.source,
            n_classes=_n_classes(corpus),
        ),
        protocol=protocol,
        source_kind=first.source_kind,
        rows=tuple(rows),
        budgets=tuple(budget_table(rows, config.bench.budgets)),
        multi_vs_per_k=tuple(_multi_vs_per_k(rows, config.bench.per_k)),
        compression=tuple(first.compression),
        sae=dataclasses.replace(first.sae, config=to_dict(config.sae)),
        featurizer=to_dict(config.featurizer),
        bench=to_dict(config.bench),
        eval=to_dict(config.eval),
        train=to_dict(config.train),
        zstd=zstd_available(),
        seconds=time.perf_counter() - start,
        machine=Machine.current(),
        command=command,
        out_dir=str(out_dir),
    )
    report = dataclasses.replace(report, plots=tuple(write_plots(report, out_dir)))
    atomic_write_json(out_dir / "report.json", report.to_json())
    atomic_write_text(out_dir / "report.md", render_quality_report(report))
    return report


# --------------------------------------------------------------------------------------- one split


@dataclass(frozen=True)
class _SplitResult:
    """What one train/eval split gives the report: its rows, compression table, source kind and SAE."""

    rows: list[QualityRow]
    compression: list[CompressionRow]
    source_kind: str
    sae: QualitySAE


def _evaluate(pipeline: Any, work: Path, *, compression: bool) -> _SplitResult:
    """Every representation of one train/eval split, scored; plus the compression table and SAE facts."""
    config = pipeline.config
    corpus = pipeline.corpus
    stored = pipeline.featurize()
    features = Features(
        as_matrix(stored.train), as_matrix(stored.eval)
    )  # dense hidden states are read into memory once
    y_train, y_test = corpus.train.labels, corpus.eval.labels
    sparse = sp.issparse(features.train)
    reused = is_complete(pipeline.paths.sae)
    start = time.perf_counter()
    sae = pipeline.train(features)
    sae_seconds = None if reused else time.perf_counter() - start
    source_rate = _source_throughput(pipeline, config.bench.throughput_docs)
    rows: list[QualityRow] = []
    stored_files: dict[str, list[Path]] = {}
    for make in _representations(pipeline, features, sae, sparse, work):
        rep = make()
        row, files = _score(rep, y_train, y_test, config, work / "stored")
        if rep.family in ("tfidf", "fp32"):
            row = dataclasses.replace(row, encode_docs_per_s=source_rate)
        rows.append(row)
        stored_files[rep.name] = files
        logger.info(
            "%-16s %8.1f B/doc  accuracy %s",
            rep.name,
            row.bytes_per_doc,
            {c: round(row.scores[c].accuracy, 4) for c in config.bench.classifiers},
        )
    table = (
        _compression_table(corpus.eval.texts, features.eval, rows, stored_files, work / "stored") if compression else []
    )
    sae_facts = QualitySAE(
        n_latents=sae.n_latents,
        d_in=sae.d_in,
        train_k=sae.cfg.code_k,
        multi_topk=getattr(sae.cfg, "multi_topk", False),
        train_seconds=sae_seconds,
    )
    return _SplitResult(rows, table, "sparse" if sparse else "dense", sae_facts)


def _representations(
    pipeline: Any, features: Any, sae: Any, sparse: bool, work: Path
) -> Iterator[Callable[[], Representation]]:
    """Thunks, so that only one representation is held in memory at a time."""
    bench = pipeline.config.bench
    train, test = features.train, features.eval
    if sparse:
        yield lambda: reps.sparse_source(train, test)
        for n in bench.truncate_entries:
            yield partial(reps.truncated_sparse, train, test, n)
        for width in bench.lsa_widths:
            if width < min(train.shape):
                yield partial(reps.lsa, train, test, width, seed=pipeline.config.eval.seed)
    else:
        yield lambda: reps.dense_fp32(train, test)
        yield lambda: reps.dense_fp16(train, test)
        yield lambda: reps.int8_quantized(train, test, scale=bench.int8_scale)
        yield lambda: reps.binary_sign(train, test)
        for width in bench.pca_widths:
            if width <= min(train.shape):
                yield partial(reps.pca, train, test, width, seed=pipeline.config.eval.seed)
    dense_latents = sae.cfg.always_on_latents
    for k in bench.ks:
        if k <= dense_latents:
            logger.warning(
                "bench.ks: k = %d skipped, a code needs more entries than its sae.dense_latents = %d always-on latents",
                k,
                dense_latents,
            )
        elif k <= sae.n_latents:
            yield partial(reps.sae_codes, sae, train, test, k, batch_size=pipeline.config.encode.batch_size)
    for k in bench.per_k:
        yield partial(_per_k_codes, pipeline, features, k, work / "per_k" / f"k{k}")


def _per_k_codes(pipeline: Any, features: Any, k: int, root: Path) -> Representation:
    """Codes of a plain TopK SAE trained at ``k``, kept (and reused) in ``root``."""
    from textsae.pipeline import Pipeline

    config = pipeline.config
    if isinstance(config.sae, TopKConfig):  # the recipe's own TopK settings, read at one k
        sae_cfg: SAEConfig = dataclasses.replace(config.sae, k=k, multi_topk=False)
    else:  # another architecture: a plain TopK SAE with the keys every architecture shares
        shared = {f.name: getattr(config.sae, f.name) for f in dataclasses.fields(SAEConfig)}
        sae_cfg = SAEConfig(**{**shared, "architecture": "topk", "k": k})
    sae = Pipeline(dataclasses.replace(config, sae=sae_cfg), RunPaths(root), corpus=pipeline.corpus).train(features)
    rep = reps.sae_codes(sae, features.train, features.eval, None, batch_size=config.encode.batch_size)
    return dataclasses.replace(rep, family="sae_per_k", name=f"sae_per_k-k{k}", params={**rep.params, "k": k})


def _score(
    rep: Representation, y_train: np.ndarray, y_test: np.ndarray, config: RecipeConfig, stored_dir: Path
) -> tuple[QualityRow, list[Path]]:
    """Classifier scores, sizes and reconstruction of one representation; its stored test rows are written to disk."""
    scale = rep.family in SAE_FAMILIES and config.eval.code_scaling == "maxabs"
    scores = {}
    for classifier in config.bench.classifiers:
        result = evaluate_representation(
            rep.train, y_train, rep.test, y_test, config.eval, scale=scale, classifier=_classifier(classifier)
        )
        scores[classifier] = ClassifierScores(result.accuracy, result.macro_f1, result.C, result.cv_accuracy)
    files: list[Path] = []
    disk_bytes_per_doc = None
    if rep.stored is not None:
        stored_dir.mkdir(parents=True, exist_ok=True)
        files = save_stored(rep.stored, stored_dir / rep.name)
        disk_bytes_per_doc = sum(f.stat().st_size for f in files) / rep.test.shape[0]
    row = QualityRow(
        family=rep.family,
        name=rep.name,
        bytes_per_doc=rep.bytes_per_doc,
        l0=rep.l0,
        fvu=rep.fvu,
        cosine=rep.cosine,
        encode_docs_per_s=rep.test.shape[0] / rep.encode_seconds if rep.encode_seconds > 0 else None,
        params=rep.params,
        scores=scores,
        disk_bytes_per_doc=disk_bytes_per_doc,
    )
    return row, files


def _classifier(name: str) -> Classifier:
    """A ``bench.classifiers`` entry as the name :func:`evaluate_representation` takes (BenchConfig allows no other)."""
    for known in CLASSIFIERS:
        if name == known:
            return known
    raise ValueError(f"Unknown classifier {name!r}. Expected one of {list(CLASSIFIERS)}.")


def _source_throughput(pipeline: Any, n_docs: int) -> float | None:
    """Documents per second of the fitted featurizer's ``transform`` on up to ``n_docs`` eval texts."""
    if not is_complete(pipeline.paths.featurizer):
        return None
    recipe = pipeline.config.featurizer  # the recipe, not the run directory, grants the opt-ins
    featurizer = load_featurizer_artifact(
        pipeline.paths.featurizer,
        trust_remote_code=getattr(recipe, "trust_remote_code", False),  # only featurizers that load a model have these
        allow_pickle=getattr(recipe, "allow_pickle", False),
    )
    texts = pipeline.corpus.eval.texts[:n_docs]
    start = time.perf_counter()
    featurizer.transform(texts)
    seconds = time.perf_counter() - start
    return len(texts) / seconds if seconds > 0 else None


# ------------------------------------------------------------------------------------ compression


def _compression_table(
    texts: list[str], source: Any, rows: list[QualityRow], stored: dict[str, list[Path]], work: Path
) -> list[CompressionRow]:
    """Bytes per document of the eval split as raw text, the source arrays and the stored codes; raw, gzip -9, zstd -19."""
    n = len(texts)
    accuracy = {row.name: row.scores["logreg"].accuracy if "logreg" in row.scores else None for row in rows}
    reference = "tfidf" if sp.issparse(source) else "fp32"
    table = [
        _compression_row(
            "raw text (UTF-8, one document per line)", "text", compressed_sizes(text_bytes(texts)), n, None
        )
    ]
    if sp.issparse(source):
        work.mkdir(parents=True, exist_ok=True)
        npz = work / "source_scipy.npz"
        with atomic_path(npz) as tmp, open(tmp, "wb") as handle:
            sp.save_npz(handle, sp.csr_matrix(source), compressed=False)
        table.append(
            _compression_row(
                "TF-IDF CSR .npz (scipy: float32 values, int32 indices)",
                "tfidf",
                compressed_sizes(npz.read_bytes()),
                n,
                accuracy.get(reference),
            )
        )
    for row in rows:
        if row.family in COMPRESSED_FAMILIES and stored.get(row.name):
            what = {"tfidf": "TF-IDF, codes format (uint16 index + fp16 value)", "fp16": "dense fp16 .npy"}.get(
                row.family, f"SAE codes folder, {row.name}"
            )
            table.append(
                _compression_row(
                    what, row.name, compressed_sizes(files_bytes(stored[row.name])), n, accuracy.get(row.name)
                )
            )
    return table


def _compression_row(
    what: str, name: str, sizes: dict[str, int | None], n_docs: int, accuracy: float | None
) -> CompressionRow:
    per_doc = {key: (None if value is None else value / n_docs) for key, value in sizes.items()}
    return CompressionRow(what, name, per_doc["raw"], per_doc["gzip"], per_doc["zstd"], accuracy)


# ---------------------------------------------------------------------------------------- summary


def budget_table(
    rows: Sequence[QualityRow],
    budgets: Sequence[int],
    *,
    metric: str = "logreg",
    family_key: Callable[[QualityRow], str] | None = None,
) -> list[BudgetRow]:
    """For each budget B: the best SAE code with ``bytes_per_doc <= B`` and the best point of every other family within B.

    Accuracy is the ``metric`` classifier's test accuracy. ``sae_wins`` is True when the best SAE
    code is at least as accurate as every other family's best within B (None when no SAE code fits).

    Args:
        rows: Rows of quality reports (a row's ``source``, when set, is copied into the table).
        budgets: The budgets B in bytes per document.
        metric: Which classifier's accuracy to compare; rows without it are left out.
        family_key: The column a row competes in; must return ``"sae"`` for SAE codes. Default: the
            row's family, with every SAE family (``sae``, ``sae_per_k``) as ``"sae"``.
    """
    family_key = family_key or _sae_or_family
    table = []
    for budget in budgets:
        best: dict[str, QualityRow] = {}
        for row in rows:
            if row.bytes_per_doc > budget + 1e-9 or metric not in row.scores:
                continue
            family = family_key(row)
            if family not in best or row.scores[metric].accuracy > best[family].scores[metric].accuracy:
                best[family] = row
        others = [r.scores[metric].accuracy for f, r in best.items() if f != "sae"]
        sae_wins = None if "sae" not in best else all(best["sae"].scores[metric].accuracy >= a for a in others)
        table.append(BudgetRow(budget, {f: _best_cell(r, metric) for f, r in best.items()}, sae_wins))
    return table


def _sae_or_family(row: QualityRow) -> str:
    """``"sae"`` for every SAE family, else the row's family: the columns of one report's budget table."""
    return "sae" if row.family in SAE_FAMILIES else row.family


def _best_cell(row: QualityRow, metric: str) -> BestCell:
    return BestCell(row.name, row.scores[metric].accuracy, row.bytes_per_doc, row.source)


def _multi_vs_per_k(rows: Sequence[QualityRow], per_k: Sequence[int]) -> list[MultiVsPerK]:
    by_name = {row.name: row for row in rows}
    out = []
    for k in per_k:
        multi, single = by_name.get(f"sae-k{k}"), by_name.get(f"sae_per_k-k{k}")
        if multi and single:
            out.append(
                MultiVsPerK(
                    k=k,
                    multi_accuracy=multi.scores["logreg"].accuracy if "logreg" in multi.scores else None,
                    per_k_accuracy=single.scores["logreg"].accuracy if "logreg" in single.scores else None,
                    multi_fvu=multi.fvu,
                    per_k_fvu=single.fvu,
                )
            )
    return out


def _n_classes(corpus: Corpus) -> int:
    """Classes of ``corpus``: its label names, else its distinct training labels (scored by the time this is asked)."""
    if corpus.label_names:
        return len(corpus.label_names)
    if corpus.train.labels is None:
        raise UserError(f"The quality bench needs a labelled corpus; {corpus.name} has no labels.")
    return len(np.unique(corpus.train.labels))


def _cv_corpora(corpus: Corpus, n_folds: int, seed: int) -> list[Corpus]:
    """The pooled splits of ``corpus``, cut into ``n_folds`` stratified train/test corpora."""
    from sklearn.model_selection import StratifiedKFold

    texts = [*corpus.train.texts, *corpus.eval.texts]
    labels = np.concatenate([corpus.train.labels, corpus.eval.labels])
    pool = Split("pool", texts, labels, label_names=corpus.label_names)
    folds = []
    for i, (train_rows, test_rows) in enumerate(
        StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    ):
        train, test = take(pool, train_rows), take(pool, test_rows)
        train.name, test.name = "train", "test"
        folds.append(
            Corpus(
                f"{corpus.name}-fold{i}", train, test, corpus.label_names, f"{corpus.source}; CV fold {i + 1}/{n_folds}"
            )
        )
    return folds


def _aggregate(fold_rows: list[list[QualityRow]]) -> list[QualityRow]:
    """Mean of every number over folds (per representation name); ``accuracy_std`` beside each accuracy.

    A value is averaged when it is a number in every fold; otherwise the first fold's value is kept (names, and
    numbers a fold could not measure).
    """
    by_name: dict[str, list[QualityRow]] = {}
    for rows in fold_rows:
        for row in rows:
            by_name.setdefault(row.name, []).append(row)
    return [_mean_row(rows) for rows in by_name.values()]


def _mean_row(rows: list[QualityRow]) -> QualityRow:
    first = rows[0]
    return dataclasses.replace(
        first,
        bytes_per_doc=_mean([r.bytes_per_doc for r in rows]),
        l0=_mean([r.l0 for r in rows]),
        fvu=_mean([r.fvu for r in rows]),
        cosine=_mean([r.cosine for r in rows]),
        encode_docs_per_s=_mean([r.encode_docs_per_s for r in rows]),
        params=_mean_dicts([r.params for r in rows]),
        scores={name: _mean_scores([r.scores[name] for r in rows]) for name in first.scores},
        disk_bytes_per_doc=None if first.disk_bytes_per_doc is None else _mean([r.disk_bytes_per_doc for r in rows]),
        n_folds=len(rows),
    )


def _mean_scores(scores: list[ClassifierScores]) -> ClassifierScores:
    return ClassifierScores(
        accuracy=_mean([s.accuracy for s in scores]),
        macro_f1=_mean([s.macro_f1 for s in scores]),
        C=_mean([s.C for s in scores]),
        cv_accuracy=_mean([s.cv_accuracy for s in scores]),
        accuracy_std=float(np.std([s.accuracy for s in scores])),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mean(values: list[Any]) -> Any:
    """The mean of ``values`` when the first is a number and all are numbers (or booleans); else the first."""
    first = values[0]
    if _is_number(first) and all(isinstance(v, (int, float)) for v in values):
        return float(np.mean(values))
    return first


def _mean_dicts(items: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key, first in items[0].items():
        values: list[Any] = [item.get(key) for item in items]
        merged[key] = _mean_dicts(values) if isinstance(first, dict) else _mean(values)
    return merged


# ----------------------------------------------------------------------------------------- report


def render_quality_report(report: QualityReport) -> str:
    """``report.md``: tables of every representation, the byte-budget comparison and the compression table."""
    classifiers = report.bench["classifiers"]
    cv = bool(report.bench["cv_folds"])
    machine = report.machine
    lines = [
        f"# Quality bench: {report.dataset.name} ({report.recipe})",
        "",
        f"- Data: {report.dataset.source}; {report.dataset.n_classes} classes.",
        f"- Protocol: {report.protocol}.",
        f"- Source: {report.source_kind} ({report.featurizer.get('kind')}); SAE: {report.sae.config['architecture']}, "
        f"{report.sae.n_latents} latents, trained at k = {report.sae.train_k}"
        + (" with Multi-TopK (loss recon(k) + recon(4k)/8), read at each k below" if report.sae.multi_topk else "")
        + (
            f"; label-aware loss γ = {report.train['label_loss_weight']} (training labels only)"
            if report.train.get("label_loss_weight")
            else ""
        )
        + ".",
        f"- Classifiers: {', '.join(classifiers)}; C from {report.eval['C_grid']} by {report.eval['cv_folds']}-fold CV on the training part only.",
        "- bytes/doc: stored entries per document, uncompressed (sparse: non-zeros × (index + fp16 value) bytes; dense: values × "
        "bytes per value; per-corpus constants such as scales, means or bases not counted). disk B/doc: the file actually written.",
        "- FVU = Σ‖x − x̂‖² / Σ‖x − x̄‖² of the stored form's reconstruction against the source test rows; cosine: mean cos(x, x̂). "
        "docs/s: turning source features into the stored form (for the source row: featurizing text).",
        f"- Command: `{report.command}`; {report.seconds:.0f} s on {machine.machine} with {machine.cpu_count} cores"
        + (f", GPU {machine.gpu}" if machine.gpu else ", no GPU")
        + ".",
        "",
        "## Every representation",
        "",
    ]
    header = ["family", "representation", "bytes/doc", "disk B/doc", "L0"]
    for c in classifiers:
        header += [f"{c} acc" + (" (± sd)" if cv else ""), f"{c} macro-F1"]
    header += ["FVU", "cosine", "docs/s"]
    rows = []
    for row in sorted(report.rows, key=lambda r: (r.family, r.bytes_per_doc)):
        cells = [row.family, row.name, _num(row.bytes_per_doc, 1), _num(row.disk_bytes_per_doc, 1), _num(row.l0, 1)]
        for c in classifiers:
            scores = row.scores[c]
            std = scores.accuracy_std
            cells += [
                _num(scores.accuracy, 4) + (f" ± {std:.4f}" if cv and std is not None else ""),
                _num(scores.macro_f1, 4),
            ]
        cells += [_num(row.fvu, 3), _num(row.cosine, 3), _num(row.encode_docs_per_s, 0)]
        rows.append(cells)
    lines += [
        markdown_table(header, rows, rule="spaced"),
        "",
        "## Byte budgets: best SAE code vs the best point of each other family",
        "",
        format_budget_table(report.budgets),
        "",
    ]
    if report.multi_vs_per_k:
        lines += [
            "## One Multi-TopK SAE read at k vs an SAE trained at k",
            "",
            markdown_table(
                ["k", "multi-k accuracy", "per-k accuracy", "multi-k FVU", "per-k FVU"],
                [
                    [
                        str(item.k),
                        _num(item.multi_accuracy, 4),
                        _num(item.per_k_accuracy, 4),
                        _num(item.multi_fvu, 3),
                        _num(item.per_k_fvu, 3),
                    ]
                    for item in report.multi_vs_per_k
                ],
                rule="spaced",
            ),
            "",
        ]
    if report.compression:
        zstd_note = "" if report.zstd else " (zstandard not installed: `pip install zstandard` for the zstd column)"
        lines += [f"## Corpus compression (the reported split{', first fold' if cv else ''}){zstd_note}", ""]
        lines += [
            markdown_table(
                ["stored form", "B/doc", "gzip -9 B/doc", "zstd -19 B/doc", "logreg accuracy"],
                [
                    [
                        item.what,
                        _num(item.bytes_per_doc, 1),
                        _num(item.gzip_bytes_per_doc, 1),
                        _num(item.zstd_bytes_per_doc, 1),
                        _num(item.accuracy, 4),
                    ]
                    for item in report.compression
                ],
                rule="spaced",
            ),
            "",
        ]
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in report.plots]
    return "\n".join(lines) + "\n"


def format_budget_table(budgets: Sequence[BudgetRow]) -> str:
    """The byte-budget comparison as a Markdown table (accuracy, representation name)."""
    families = sorted({f for entry in budgets for f in entry.best if f != "sae"})
    header = ["budget B (bytes/doc)", "best SAE code"] + [f"best {f}" for f in families] + ["SAE ≥ every other family?"]
    rows = []
    for entry in budgets:

        def cell(family: str, entry: BudgetRow = entry) -> str:
            best = entry.best.get(family)
            return "–" if best is None else f"{best.accuracy:.4f} ({best.name})"

        verdict = {True: "yes", False: "**no**", None: "no SAE code fits"}[entry.sae_wins]
        rows.append([str(entry.budget), cell("sae")] + [cell(f) for f in families] + [verdict])
    return markdown_table(header, rows, rule="spaced")


def _num(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}" if digits == 0 else f"{value:.{digits}f}"
