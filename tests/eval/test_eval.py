"""Sizes, truncation, the linear probe and the report."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from textsae.config.schema import EvalConfig
from textsae.errors import UserError
from textsae.eval import (
    BYTES_NOTE,
    bytes_per_doc,
    entries_for_bytes,
    evaluate_representation,
    format_eval_table,
    index_bytes_needed,
    render_report,
    truncate_rows,
    write_report,
)
from textsae.results import DatasetInfo, Report, RepresentationResult, SAEStats

# ------------------------------------------------------------------------------------ sizes


def test_bytes_per_doc_by_hand():
    X = sp.csr_matrix(np.array([[1.0, 0, 2.0], [0, 0, 0], [0, -3.0, 0], [4.0, 5.0, 6.0]]))  # 6 non-zeros, 4 docs
    assert bytes_per_doc(X) == 6 * 4 / 4
    assert bytes_per_doc(X, index_bytes=4, value_bytes=4) == 6 * 8 / 4
    assert bytes_per_doc(X.toarray()) == bytes_per_doc(X)  # dense counts its non-zeros the same way
    X.data[0] = 0.0  # an explicitly stored zero is not counted
    assert bytes_per_doc(X) == 5 * 4 / 4
    with pytest.raises(UserError, match="at least one document"):
        bytes_per_doc(sp.csr_matrix((0, 3)))


def test_entries_for_bytes_and_index_bytes():
    assert entries_for_bytes(128.0) == 32
    assert entries_for_bytes(127.99999999999) == 32  # rounding in a mean does not lose an entry
    assert entries_for_bytes(131.0) == 32
    assert entries_for_bytes(0.5) == 1
    assert entries_for_bytes(64.0, index_bytes=4, value_bytes=4) == 8
    assert [index_bytes_needed(n) for n in (10, 65_536, 65_537, 2**32, 2**32 + 1)] == [2, 2, 4, 4, 8]
    with pytest.raises(UserError, match="finite bytes_per_doc >= 0. Got -1"):
        entries_for_bytes(-1.0)


def test_truncate_rows_by_hand():
    X = sp.csr_matrix(
        np.array(
            [
                [0.5, -3.0, 0.0, 2.0, 1.0],  # keeps -3 and 2
                [1.0, 0.0, -1.0, 1.0, 0.0],  # three-way tie at |1|: lowest columns 0 and 2 win
                [0.0, 0.0, 0.0, 0.0, 0.0],  # empty stays empty
                [0.0, 0.0, 7.0, 0.0, 0.0],  # fewer than max_entries: unchanged
            ],
            dtype=np.float32,
        )
    )
    expected = np.array(
        [[0, -3.0, 0, 2.0, 0], [1.0, 0, -1.0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 7.0, 0, 0]], dtype=np.float32
    )
    before = X.copy()
    truncated = truncate_rows(X, 2)
    assert np.array_equal(truncated.toarray(), expected)
    assert truncated.dtype == np.float32 and truncated.has_sorted_indices
    assert np.diff(truncated.indptr).tolist() == [2, 2, 0, 1]
    assert np.array_equal(truncate_rows(X, 5).toarray(), X.toarray())  # max_entries >= row nnz: nothing dropped
    assert truncate_rows(X, 0).nnz == 0
    assert (before != X).nnz == 0 and X.nnz == 8  # input untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # float32 has its own fast path
def test_truncate_rows_matches_a_row_loop(dtype):
    rng = np.random.default_rng(0)
    X = sp.random(60, 40, density=0.3, format="csr", random_state=rng, dtype=np.float64)
    X.data = np.where(
        rng.random(X.nnz) < 0.5, np.round(X.data * 4) - 2, X.data * 1e-3 - 5e-4
    )  # ties, zeros, tiny values
    X = X.astype(dtype)
    for k in (1, 3, 8):
        reference = np.zeros(X.shape)
        for i, row in enumerate(X.toarray()):
            cols = sorted(np.flatnonzero(row), key=lambda c: (-abs(row[c]), c))[:k]
            reference[i, cols] = row[cols]
        assert np.array_equal(truncate_rows(X, k).toarray(), reference)


# ------------------------------------------------------------------------------- classifier

CFG = EvalConfig(C_grid=[0.1, 1.0, 10.0], cv_folds=3, seed=0)


def blobs(n: int, n_features: int, seed: int, *, separable: bool) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.random((n, n_features)) * (rng.random((n, n_features)) < 0.2)
    if separable:
        X[np.arange(n), y] = 5.0  # class c lights up feature c
    else:
        y = rng.permutation(y)
    return sp.csr_matrix(X), y


@pytest.mark.parametrize("scale", [False, True])
def test_separable_problem_is_solved(scale):
    X, y = blobs(90, 20, seed=0, separable=True)
    result = evaluate_representation(X[:60], y[:60], X[60:], y[60:], CFG, scale=scale, n_jobs=1)
    assert result.accuracy == 1.0 and result.macro_f1 == 1.0
    assert result.cv_accuracy == 1.0 and result.C == 0.1  # every C ties: the smallest wins
    assert (result.n_train, result.n_test) == (60, 30)


def test_fit_seconds_is_the_time_of_the_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake clock that only the fit (C by CV, then the refit) moves on: fit_seconds is exactly that time."""
    from types import SimpleNamespace

    from textsae.eval import classify

    now = [1000.0]  # a clock that does not start at 0: a timestamp reported as a duration would show
    real_fit = classify._fit_best

    def fit(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = real_fit(*args, **kwargs)
        now[0] += 2.5
        return result

    monkeypatch.setattr(classify, "_fit_best", fit)
    monkeypatch.setattr(classify, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    X, y = blobs(90, 20, seed=0, separable=True)
    assert evaluate_representation(X[:60], y[:60], X[60:], y[60:], CFG, n_jobs=1).fit_seconds == 2.5


def test_linear_svc_solves_the_separable_problem_and_unknown_classifier_is_refused():
    X, y = blobs(90, 20, seed=0, separable=True)
    result = evaluate_representation(X[:60], y[:60], X[60:], y[60:], CFG, n_jobs=1, classifier="linear_svc")
    assert result.accuracy == 1.0 and result.cv_accuracy == 1.0
    with pytest.raises(UserError, match="'classifier' parameter must be one of"):
        evaluate_representation(X[:60], y[:60], X[60:], y[60:], CFG, n_jobs=1, classifier="svm")


def test_random_labels_score_near_chance():
    X, y = blobs(300, 30, seed=1, separable=False)
    result = evaluate_representation(
        X[:200].toarray(), y[:200], X[200:].toarray(), y[200:], CFG, n_jobs=1
    )  # dense input
    assert 0.15 < result.accuracy < 0.55 and 0.15 < result.cv_accuracy < 0.55  # chance is 1/3


def test_test_labels_never_reach_model_selection():
    X, y = blobs(120, 20, seed=2, separable=False)
    y_test = y[80:]
    first = evaluate_representation(X[:80], y[:80], X[80:], y_test, CFG, n_jobs=1)
    second = evaluate_representation(
        X[:80], y[:80], X[80:], np.random.default_rng(0).permutation(y_test), CFG, n_jobs=1
    )
    assert (first.C, first.cv_accuracy) == (second.C, second.cv_accuracy)


def test_classifier_rejects_mismatched_inputs():
    X, y = blobs(30, 5, seed=0, separable=True)
    with pytest.raises(UserError, match="X_train has 30 rows but y_train has 29 labels"):
        evaluate_representation(X, y[:-1], X, y, CFG, n_jobs=1)
    with pytest.raises(UserError, match="X_test has 4 columns; expected 5"):
        evaluate_representation(X, y, X[:, :4], y, CFG, n_jobs=1)
    with pytest.raises(UserError, match="single class"):
        evaluate_representation(X, np.zeros(30), X, y, CFG, n_jobs=1)


# ----------------------------------------------------------------------------------- report


def sample_report() -> Report:
    def scores(accuracy: float, macro_f1: float, C: float, bytes_per_doc: float, **size: Any) -> RepresentationResult:
        return RepresentationResult(accuracy, macro_f1, C, 0.86, 1600, 400, 0.5, bytes_per_doc, **size)

    return Report(
        recipe="quickstart",
        run_dir="runs/quickstart/abc",
        dataset=DatasetInfo("movie_reviews", "bundled", train_docs=1600, eval_split="test", eval_docs=400, n_classes=2),
        eval={
            "source": scores(0.8725, 0.8719, 16.0, 612.5, index_bytes=2),
            "codes": scores(0.8312, 0.8301, 0.25, 128.0, index_bytes=2, disk_bytes_per_doc=131.7),
            "truncated": scores(0.7999, 0.7990, 4.0, 128.0, index_bytes=2, entries_per_doc=32),
        },
        sae=SAEStats(
            architecture="topk",
            n_latents=4096,
            d_in=30000,
            k=32,
            adaptive_k="input_nnz",
            fvu=0.2345,
            l0=32.0,
            dead_fraction=0.01,
            fvu_train=0.21,
            l0_train=32.0,
            top1_top2_median=1.4,
            top1_top2_above_3=0.02,
            labels_shaped_codes=False,
            training_steps=1000,
            training_budget="1000 steps (train.steps=1000)",
            warnings=(),
        ),
        config={"sae": {"k": 32}},
    )


def test_report_files_and_table(tmp_path):
    report = sample_report()
    table = format_eval_table(report)
    lines = table.splitlines()
    assert [cell.strip() for cell in lines[0].split("|")[1:-1]] == [
        "representation",
        "accuracy",
        "macro-F1",
        "bytes/doc",
        "on-disk bytes/doc",
        "C",
    ]
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["source", "codes", "truncated"]
    for number in ("0.8725", "0.8719", "612.5", "16", "0.8312", "131.7", "0.25", "0.7999"):
        assert number in table
    assert "–" in lines[2]  # source has no on-disk size

    write_report(tmp_path / "run", report)
    written = json.loads((tmp_path / "run" / "report.json").read_text())
    assert written == report.to_json() and Report.from_json(written) == report
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert markdown.startswith("# textsae report: quickstart")
    assert (
        "Dataset: movie_reviews (source=bundled, train_docs=1,600, eval_split=test, eval_docs=400, n_classes=2)"
        in markdown
    )
    assert table in markdown and BYTES_NOTE in markdown
    assert (
        "FVU on the reported split (fraction of variance unexplained): 0.2345" in markdown
        and "n_latents: 4,096" in markdown
    )
    assert not list((tmp_path / "run").glob(".tmp-*"))


def test_report_names_the_split_it_scores_on():
    report = sample_report()
    assert "scores on the test split" in render_report(report)
    on_validation = replace(report.dataset, eval_split="validation")  # a corpus without a test split
    assert "scores on the validation split" in render_report(replace(report, dataset=on_validation))


def test_table_without_disk_sizes_has_no_disk_column():
    report = sample_report()
    codes = replace(report.eval["codes"], disk_bytes_per_doc=None)
    assert "on-disk" not in format_eval_table(replace(report, eval={**report.eval, "codes": codes}))
    assert format_eval_table(replace(report, eval={})) == "(no classifier evaluation: the corpus has no labels)"


def test_an_fvu_without_variance_gets_the_undefined_warning():
    from textsae.eval.health import health_warnings
    from textsae.sae.losses import fvu_from_sums

    fvu = fvu_from_sums(error=0.5, square_sum=3.0, column_sum_sq=9.0, n_rows=3)  # three equal rows of norm 1
    [line] = health_warnings(fvu=fvu, dead_fraction=0.0, top_ratio_median=1.0, eval_split="test")
    assert line.startswith("The FVU of the test split is undefined")
