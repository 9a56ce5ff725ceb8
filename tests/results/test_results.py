"""Typed results: each serialises to the JSON the code wrote before it was typed, and reads back to itself."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from tests.bench.quality_reports import report as quality_report
from tests.bench.quality_reports import row as quality_row
from tests.eval.test_eval import sample_report
from tests.results.report_keys import CONFIG_SECTIONS, GOLDEN, key_structure
from textsae.bench.machine import Machine
from textsae.bench.quality_report import (
    BestCell,
    BudgetRow,
    ClassifierScores,
    CompressionRow,
    MultiVsPerK,
    QualityReport,
)
from textsae.results import Report, RepresentationResult, UniversalEntry, UniversalReport

KEYS = json.loads((Path(__file__).parent / GOLDEN).read_text(encoding="utf-8"))
"""Key structures of reports written by the code before the typed results (run, quality bench, universal codebook),
with the same inputs as the fixtures and tests that write them now."""


def _through_json(data: dict) -> dict:
    """``data`` written and read back as a file would be."""
    return json.loads(json.dumps(data))


def test_a_real_runs_report_json_has_the_keys_it_had_before_and_reads_back(tiny_run_dir: Path) -> None:
    written = json.loads((tiny_run_dir / "report.json").read_text(encoding="utf-8"))
    assert key_structure(written, CONFIG_SECTIONS["run"]) == KEYS["run"]
    report = Report.from_json(written)
    assert report.to_json() == written and set(report.eval) == {"source", "codes", "truncated"}
    assert report.eval["codes"].disk_bytes_per_doc is not None and report.eval["truncated"].entries_per_doc == 4


def test_a_report_round_trips() -> None:
    report = sample_report()
    assert Report.from_json(report.to_json()) == report
    assert Report.from_json(_through_json(report.to_json())) == report


def test_nan_is_written_as_null_in_a_run_report_and_read_back_as_nan() -> None:
    report = sample_report()
    report = replace(report, sae=replace(report.sae, fvu=float("nan"), top1_top2_median=float("inf")))
    written = report.to_json()
    assert written["sae"]["fvu"] is None and written["sae"]["top1_top2_median"] is None
    json.dumps(written, allow_nan=False)  # strict JSON
    back = Report.from_json(_through_json(written))
    assert math.isnan(back.sae.fvu) and math.isnan(back.sae.top1_top2_median)
    assert back.sae.training_steps == 1000 and back.sae.k == 32  # None stays None only where None is a value
    assert back.to_json() == written


def test_a_representations_unset_size_keys_are_left_out_in_order() -> None:
    result = RepresentationResult(0.9, 0.8, 1.0, 0.85, 10, 5, 0.1, 16.0, index_bytes=2, entries_per_doc=4)
    assert list(result.to_json()) == [
        "accuracy",
        "macro_f1",
        "C",
        "cv_accuracy",
        "n_train",
        "n_test",
        "fit_seconds",
        "bytes_per_doc",
        "index_bytes",
        "entries_per_doc",
    ]
    assert RepresentationResult.from_json(result.to_json()) == result


def test_a_universal_report_round_trips_and_writes_its_numbers_as_they_are() -> None:
    report = sample_report()
    summary = UniversalReport(
        recipe="universal",
        run_dir="runs/universal/abc",
        trained_on=("data/a", "data/b"),
        datasets={
            "a": UniversalEntry.of(report, seen_in_training=True),
            "c": UniversalEntry.of(report, seen_in_training=False),
        },
    )
    written = summary.to_json()
    assert list(written) == ["recipe", "run_dir", "trained_on", "datasets"]
    assert list(written["datasets"]["a"]) == ["dataset", "eval", "sae", "seen_in_training"]
    assert UniversalReport.from_json(_through_json(written)) == summary
    unmeasured = replace(summary.datasets["c"], sae=replace(report.sae, fvu=float("nan")))
    with_nan = replace(summary, datasets={**summary.datasets, "c": unmeasured}).to_json()
    assert math.isnan(with_nan["datasets"]["c"]["sae"]["fvu"])  # not null: the summary always wrote NaN as it is


def _full_quality_report() -> QualityReport:
    """A report with every optional part set: CV means (accuracy_std, n_folds), stored sizes, sources."""
    cv_scores = ClassifierScores(accuracy=0.8, macro_f1=0.79, C=1.0, cv_accuracy=0.78, accuracy_std=0.01)
    rows = [
        quality_row("tfidf", "tfidf", 700.0, 0.9, disk_bytes_per_doc=720.5, n_folds=2),
        replace(quality_row("sae", "sae-k8", 32.0, 0.8, n_folds=2), scores={"logreg": cv_scores}, source="tfidf"),
    ]
    report = quality_report("tfidf", rows)
    return replace(
        report,
        budgets=(BudgetRow(32, {"sae": BestCell("sae-k8", 0.8, 32.0, source="tfidf")}, True), BudgetRow(8, {}, None)),
        multi_vs_per_k=(MultiVsPerK(8, 0.8, 0.81, 0.4, None),),
        compression=(CompressionRow("raw text", "text", 50.0, 20.0, None, None),),
    )


def test_a_quality_report_round_trips_with_every_optional_part() -> None:
    report = _full_quality_report()
    assert QualityReport.from_json(report.to_json()) == report
    assert QualityReport.from_json(_through_json(report.to_json())) == report
    rows = report.to_json()["rows"]
    assert list(rows[0]) == [
        "family",
        "name",
        "bytes_per_doc",
        "l0",
        "fvu",
        "cosine",
        "encode_docs_per_s",
        "params",
        "logreg",
        "disk_bytes_per_doc",
        "n_folds",
    ]
    assert list(rows[1])[-3:] == ["logreg", "n_folds", "source"]
    assert list(rows[1]["logreg"]) == ["accuracy", "macro_f1", "C", "cv_accuracy", "accuracy_std"]
    assert report.to_json()["budgets"][0]["best"]["sae"] == {
        "name": "sae-k8",
        "accuracy": 0.8,
        "bytes_per_doc": 32.0,
        "source": "tfidf",
    }


def test_machine_facts_round_trip() -> None:
    machine = Machine.current()
    assert list(machine.to_json()) == ["machine", "cpu_count", "python", "torch", "gpu"]
    assert Machine.from_json(machine.to_json()) == machine
