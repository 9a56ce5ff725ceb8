"""Latent inspection: term spans, escaping, the summary of a tiny run, and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from textsae.cli.main import main
from textsae.inspection import (
    Inspection,
    LatentDoc,
    LatentSummary,
    Span,
    highlight_html,
    inspect_run,
    render_page,
    term_spans,
)
from textsae.store.codes import load_codes

HOSTILE = '</script><script>document.body.setAttribute("data-pwned","1")</script><img src=x onerror="document.body.setAttribute(\'data-pwned\',\'1\')">'
"""Text that would run script if the page did not escape it."""


def hostile_inspection(tmp_path: Path) -> Inspection:
    """An inspection whose terms and documents try to break out of the page."""
    doc = LatentDoc(3, 1.5, f"a great film {HOSTILE} truly great", [Span(2, 7, 1.0)])
    latents = [
        LatentSummary(7, 0.5, 1.2, [("great", 0.9), ('"><img src=x onerror=alert(1)>', 0.3)], [doc]),
        LatentSummary(2, 0.1, 0.8, [("boring", 0.7)], []),
    ]
    return Inspection(tmp_path, f"recipe{HOSTILE}", 10, 4, 8, latents, True)


def test_term_spans_cover_unigrams_and_bigrams_with_their_largest_weight() -> None:
    text = "A great film, truly GREAT acting."
    spans = term_spans(text, {"great": 1.0, "great acting": 0.5, "film": 0.25})
    assert [(text[s.start : s.end], s.weight) for s in spans] == [
        ("great", 1.0),
        ("film", 0.25),
        ("GREAT", 1.0),
        ("acting", 0.5),
    ]
    assert term_spans(text, {"great": 1.0}, lowercase=False) == [Span(2, 7, 1.0)]
    assert term_spans(text, {"great acting": 1.0}, max_n=1) == []


def test_highlight_marks_spans_and_escapes_everything_else() -> None:
    text = "<b>bold</b> & great"
    out = highlight_html(text, [Span(text.index("great"), len(text), 1.0)])
    assert out.startswith("&lt;b&gt;bold&lt;/b&gt; &amp; ") and out.endswith(">great</mark>")
    assert "<b>" not in out


def test_highlight_excerpt_starts_near_the_first_span() -> None:
    text = "x " * 1000 + "needle " + "y " * 1000
    out = highlight_html(text, [Span(2000, 2006, 1.0)], max_chars=120)
    assert out.startswith("…") and out.endswith("…") and ">needle</mark>" in out
    assert len(out) < 120 + 100


def test_page_escapes_hostile_text(tmp_path: Path) -> None:
    page = render_page(hostile_inspection(tmp_path))
    assert page.count("<script") == 1 and "<img" not in page
    assert "&lt;/script&gt;&lt;script&gt;" in page
    assert "default-src 'none'" in page  # nothing may be fetched
    assert not re.search(r"(src|href)=\"?(https?:)?//", page)


def test_inspect_run_summarises_live_latents(tiny_run_dir: Path) -> None:
    inspection = inspect_run(tiny_run_dir, top_terms=5, top_docs=2)
    codes = load_codes(tiny_run_dir / "codes" / "train")
    fired = np.asarray((codes != 0).sum(axis=0)).ravel()
    assert inspection.n_docs == codes.shape[0] and inspection.n_latents == codes.shape[1] == 64
    assert inspection.n_dead == int((fired == 0).sum())
    assert [latent.frequency for latent in inspection.latents] == sorted(
        (latent.frequency for latent in inspection.latents), reverse=True
    )
    first = inspection.latents[0]
    assert first.frequency == pytest.approx(fired[first.index] / codes.shape[0])
    for latent in inspection.latents:
        assert 0 < len(latent.terms) <= 5 and all(weight > 0 for _, weight in latent.terms)
        assert [w for _, w in latent.terms] == sorted((w for _, w in latent.terms), reverse=True)
        activations = [doc.activation for doc in latent.docs]
        assert activations == sorted(activations, reverse=True) and len(activations) <= 2
        column = np.abs(codes[:, latent.index].toarray().ravel())
        column = np.sort(column[column > 0])
        expected = column[-1] / column[-2] if column.size > 1 else np.inf
        assert latent.top_ratio == pytest.approx(expected, rel=1e-3)
        for doc in latent.docs:
            assert doc.activation == pytest.approx(codes[doc.row, latent.index], rel=1e-3)
            terms = {term for term, _ in latent.terms}
            assert all(doc.text[s.start : s.end].lower() in " ".join(terms) for s in doc.spans)


def test_cli_writes_page_into_run_dir_and_to_out(
    tiny_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "page.html"
    assert main(["inspect", str(tiny_run_dir), "--out", str(out), "--top-docs", "1", "-q"]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.count('<section class="latent"') == len(inspect_run(tiny_run_dir, top_docs=0).latents)
    assert "<mark" in page and "Median top-1/top-2 activation ratio" in page and "top-1/top-2 activation" in page
    assert main(["inspect", str(tiny_run_dir), "-q"]) == 0
    assert (tiny_run_dir / "inspect.html").is_file()
    assert main(["inspect", str(tmp_path), "-q"]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_histograms_and_label_associations_follow_the_codes_and_labels(
    tiny_run_dir: Path, tiny_corpus_dir: Path
) -> None:
    import pandas as pd

    inspection = inspect_run(tiny_run_dir, top_terms=5, top_docs=0)
    codes = load_codes(tiny_run_dir / "codes" / "train").tocsc()
    labels = pd.read_parquet(tiny_corpus_dir / "train.parquet")["label"].to_numpy()
    assert len(labels) == codes.shape[0]  # the tiny corpus has its own test file: train is the whole train file
    base = np.bincount(labels) / len(labels)
    for latent in inspection.latents:
        values = codes.data[codes.indptr[latent.index] : codes.indptr[latent.index + 1]]
        rows = codes.indices[codes.indptr[latent.index] : codes.indptr[latent.index + 1]]
        assert sum(latent.histogram) == values.size and len(latent.histogram) == 12
        assert latent.histogram_max == pytest.approx(values.max())
        share = np.bincount(labels[rows], minlength=2) / rows.size
        best = int(np.argmax(share / base))
        assert latent.label is not None and latent.label.name == str(best)
        assert latent.label.share == pytest.approx(share[best]) and latent.label.base_rate == pytest.approx(base[best])
    # The corpus's labels are carried by a few sentiment words: some latents must lean hard towards one class.
    assert max(latent.label.lift for latent in inspection.latents if latent.label) > 1.5
    page = render_page(inspection)
    assert "fires most on class" in page and 'class="hist"' in page


def test_sparkline_scales_to_the_largest_count() -> None:
    from textsae.inspection.html import sparkline

    assert sparkline([0, 1, 2, 4, 8]) == " ▁▂▄█"
    assert sparkline([0, 0]) == "" and sparkline([]) == ""
