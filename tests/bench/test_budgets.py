"""``bench budgets``: quality reports of one dataset from two sources in one byte-budget table, by hand and via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.quality_reports import report as _report
from tests.bench.quality_reports import row as _row
from textsae.bench.budgets import combine_reports, source_label
from textsae.bench.quality import budget_table
from textsae.bench.quality_report import BestCell, QualityReport
from textsae.cli.main import main

TFIDF = _report(
    "tfidf",
    [
        _row("tfidf", "tfidf", 700, 0.90),
        _row("tfidf_top", "tfidf_top-12", 48, 0.79),
        _row("lsa", "lsa-24", 48, 0.82),
        _row("lsa", "lsa-48", 96, 0.84),
        _row("sae", "sae-k12", 48, 0.80),
        _row("sae", "sae-k24", 96, 0.83),
    ],
)
MINILM = _report(
    "hidden_states",
    [
        _row("fp32", "fp32", 1536, 0.91),
        _row("binary", "binary", 48, 0.78),
        _row("pca", "pca-24", 48, 0.81),
        _row("pca", "pca-48", 96, 0.88),
        _row("sae", "sae-k12", 48, 0.86),
        _row("sae_per_k", "sae_per_k-k24", 96, 0.87),
    ],
)


def test_either_source_table_by_hand() -> None:
    combined = combine_reports([(Path("a.json"), TFIDF), (Path("b.json"), MINILM)], [20, 48, 96])
    table = {entry.budget: entry for entry in combined.budgets}
    assert table[20].best == {} and table[20].sae_wins is None
    # 48 B: MiniLM's codes (0.86) beat TF-IDF's LSA (0.82), which beats TF-IDF's own codes (0.80)
    assert table[48].best["sae"] == BestCell(name="minilm/sae-k12", accuracy=0.86, bytes_per_doc=48, source="minilm")
    assert table[48].best["sae"].to_json() == {
        "name": "minilm/sae-k12",
        "accuracy": 0.86,
        "bytes_per_doc": 48,
        "source": "minilm",
    }
    assert set(table[48].best) == {"sae", "tfidf/tfidf_top", "tfidf/lsa", "minilm/binary", "minilm/pca"}
    assert table[48].best["tfidf/lsa"].name == "tfidf/lsa-24" and table[48].sae_wins is True
    assert budget_table(TFIDF.rows, [48])[0].sae_wins is False  # TF-IDF alone does not make it
    # 96 B: per-k SAE codes count as SAE codes, but MiniLM's PCA (0.88) beats them (0.87)
    assert table[96].best["sae"].name == "minilm/sae_per_k-k24" and table[96].best["minilm/pca"].accuracy == 0.88
    assert table[96].sae_wins is False
    assert [s.label for s in combined.sources] == ["tfidf", "minilm"]
    assert {row.source for row in combined.rows} == {"tfidf", "minilm"} and len(combined.rows) == 12


def test_source_labels_and_duplicates() -> None:
    assert source_label(TFIDF) == "tfidf" and source_label(MINILM) == "minilm"
    assert source_label(_report("hidden_states", [], model="/models/bert-base-uncased/")) == "bert-base-uncased"
    assert (
        source_label(_report("hidden_states", [], model="sentence-transformers/all-mpnet-base-v2"))
        == "all-mpnet-base-v2"
    )
    combined = combine_reports([(Path("a"), MINILM), (Path("b"), MINILM)], [48])
    assert [s.label for s in combined.sources] == ["minilm", "minilm-2"]


def _write(path: Path, report: QualityReport | dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json() if isinstance(report, QualityReport) else report))
    return path


def test_bench_budgets_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run_tfidf"
    _write(run_dir / "bench" / "quality" / "report.json", TFIDF)  # a run dir is accepted, and so is a report file
    minilm = _write(tmp_path / "minilm" / "report.json", MINILM)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- textsae:budgets-table -->\nold\n<!-- /textsae:budgets-table -->\nend\n")
    out = tmp_path / "out"
    assert (
        main(
            [
                "bench",
                "budgets",
                str(run_dir),
                str(minilm),
                "--out",
                str(out),
                "--budgets",
                "48",
                "96",
                "--readme",
                str(readme),
                "-q",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| 48 | 0.8600 (minilm/sae-k12) |" in printed and "best tfidf/lsa" in printed
    report = json.loads((out / "report.json").read_text())
    assert [(entry["budget"], entry["sae_wins"]) for entry in report["budgets"]] == [(48, True), (96, False)]
    assert report["sources"][0]["report"] == str(run_dir / "bench" / "quality" / "report.json")
    assert (out / "accuracy_vs_bytes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| budget B" in (out / "report.md").read_text()
    text = readme.read_text()
    assert (
        "\nold\n" not in text and "minilm/sae-k12" in text and text.endswith("<!-- /textsae:budgets-table -->\nend\n")
    )
    assert (tmp_path / "docs" / "budgets_imdb.png").is_file()


@pytest.mark.parametrize(
    "other",
    [
        _report("hidden_states", [], dataset="sst2"),
        _report("hidden_states", [], protocol="fit on train (10 documents), scored once on test (5 documents)"),
    ],
)
def test_bench_budgets_refuses_different_datasets(
    other: QualityReport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = _write(tmp_path / "a.json", TFIDF), _write(tmp_path / "b.json", other)
    assert main(["bench", "budgets", str(first), str(second), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(first) in err and str(second) in err and "same dataset" in err
    assert not (tmp_path / "out").exists()


def test_bench_budgets_names_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "budgets", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "bench/quality/report.json" in capsys.readouterr().err
    report = _write(tmp_path / "a.json", TFIDF)
    assert main(["bench", "budgets", str(report), "--out", str(tmp_path / "out"), "--metric", "linear_svc"]) == 2
    assert "no linear_svc accuracy" in capsys.readouterr().err
    not_quality = _write(tmp_path / "other.json", {"rows": []})
    assert main(["bench", "budgets", str(not_quality), "--out", str(tmp_path / "out")]) == 2
    assert "not a `textsae bench quality` report" in capsys.readouterr().err
    incomplete = {key: value for key, value in TFIDF.to_json().items() if key != "compression"}
    assert main(["bench", "budgets", str(_write(tmp_path / "cut.json", incomplete)), "--out", str(tmp_path)]) == 2
    assert "not a complete `textsae bench quality` report (a quality report has no 'compression'.)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["bench", "budgets", "x", "--out", "y", "--budgets", "48", "0"], "--budgets"),
        (["bench", "tfidf", "--repeats", "0"], "--repeats"),
        (["bench", "featurize", "--batch-size", "0"], "--batch-size"),
        (["score", "RUN", "docs.csv", "--batch-size", "0"], "--batch-size"),
    ],
)
def test_count_options_below_one_stop_before_any_work(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"argument {flag}: expected an int >= 1, got 0" in err, err
