"""The inspection page: one static HTML file with inline CSS and JavaScript, no external resources.

Every piece of text from the corpus, the vocabulary or the run is escaped with :func:`html.escape`;
the page's Content-Security-Policy allows only its own inline style and script, so nothing is
fetched from anywhere. The script filters latents by term (or ``#index``) and, once it has run,
sets ``data-ready="1"`` on ``<body>`` (the browser test looks for it). Opening the page with
``#q=TERM`` in the URL pre-fills the search box.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

import numpy as np

from textsae._io import atomic_write_text
from textsae.inspection.latents import Inspection, LatentSummary, Span

__all__ = ["highlight_html", "render_page", "write_page"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:10px 16px;z-index:1}
h1{font-size:18px;margin:0 0 6px}
#search{font-size:15px;padding:4px 8px;width:22em}
.meta{color:#666;font-size:12px}
main{padding:8px 16px}
.latent{background:#fff;border:1px solid #e2e2e2;border-radius:6px;margin:10px 0;padding:8px 12px}
.latent h2{font-size:15px;margin:0 0 6px}
.terms{display:flex;flex-wrap:wrap;gap:4px;margin:0 0 6px;padding:0;list-style:none}
.terms li{background:#eef3fb;border-radius:4px;padding:1px 6px;font-size:13px}
.terms li b{display:inline-block;height:6px;background:#4a78c2;margin-left:4px;vertical-align:middle}
.doc{border-left:3px solid #ccc;margin:4px 0;padding:2px 8px;font-size:13px;color:#333;white-space:pre-wrap}
.doc .act{color:#888;font-size:11px}
mark{color:inherit;border-radius:2px;padding:0 1px}
.hist{font-family:monospace;color:#4a78c2;letter-spacing:1px;white-space:pre}
"""

_JS = """
(function () {
  var input = document.getElementById("search");
  var shown = document.getElementById("shown");
  var latents = Array.prototype.slice.call(document.querySelectorAll("section.latent"));
  function apply() {
    var q = input.value.trim().toLowerCase();
    var id = /^#\\d+$/.test(q) ? q.slice(1) : null;
    var n = 0;
    latents.forEach(function (el) {
      var match = !q || (id !== null ? el.getAttribute("data-index") === id : el.getAttribute("data-terms").indexOf(q) !== -1);
      el.hidden = !match;
      if (match) { n += 1; }
    });
    shown.textContent = String(n);
  }
  input.addEventListener("input", apply);
  if (location.hash.indexOf("#q=") === 0) { input.value = decodeURIComponent(location.hash.slice(3)); }
  apply();
  document.body.setAttribute("data-ready", "1");
})();
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def highlight_html(text: str, spans: Sequence[Span], *, max_chars: int = 600) -> str:
    """Escaped HTML of ``text`` with each span wrapped in a ``<mark>`` shaded by its weight.

    Works for any source of weights: bag-of-words term matches, or per-token activations of a
    hidden-state run. Longer texts are cut to an excerpt of about ``max_chars`` characters that
    starts shortly before the first span.

    Args:
        text: The document.
        spans: Non-overlapping character spans with weights in [0, 1], in any order.
        max_chars: Longest excerpt shown.

    Returns:
        An HTML fragment (safe to place inside an element).
    """
    spans = sorted(spans, key=lambda s: s.start)
    begin = 0
    if len(text) > max_chars and spans:
        begin = max(0, min(spans[0].start - max_chars // 6, len(text) - max_chars))
    end = min(len(text), begin + max_chars)
    parts = ["…" if begin > 0 else ""]
    cursor = begin
    for span in spans:
        if span.start < cursor or span.end > end:
            continue
        alpha = 0.2 + 0.7 * min(max(span.weight, 0.0), 1.0)
        parts.append(html.escape(text[cursor : span.start]))
        parts.append(
            f'<mark style="background:rgba(255,176,0,{alpha:.2f})">{html.escape(text[span.start : span.end])}</mark>'
        )
        cursor = span.end
    parts.append(html.escape(text[cursor:end]))
    parts.append("…" if end < len(text) else "")
    return "".join(parts)


def _latent_html(latent: LatentSummary, max_chars: int) -> str:
    terms_attr = html.escape("\n".join(term.lower() for term, _ in latent.terms), quote=True)
    top = latent.terms[0][1] if latent.terms else 1.0
    terms = "".join(
        f'<li title="weight {weight:.4g}">{html.escape(term)}<b style="width:{max(2, round(30 * weight / top))}px"></b></li>'
        for term, weight in latent.terms
    )
    terms = f'<ul class="terms">{terms}</ul>' if terms else ""
    docs = "".join(
        f'<div class="doc"><span class="act">doc {doc.row} · activation {doc.activation:.3g}</span>\n{highlight_html(doc.text, doc.spans, max_chars=max_chars)}</div>'
        for doc in latent.docs
    )
    return (
        f'<section class="latent" id="latent-{latent.index}" data-index="{latent.index}" data-terms="{terms_attr}">'
        f'<h2>latent {latent.index} <span class="meta">active on {100 * latent.frequency:.2f}% of training documents'
        f" · mean activation {latent.mean_activation:.3g} · top-1/top-2 activation {latent.top_ratio:.3g}</span></h2>"
        f"{_histogram_html(latent)}{_label_html(latent)}{terms}{docs}</section>"
    )


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(counts: Sequence[int]) -> str:
    """Counts as a row of block characters, the tallest bar for the largest count (blank for zero)."""
    top = max(counts, default=0)
    if top <= 0:
        return ""
    return "".join(" " if c == 0 else _BARS[min(len(_BARS) - 1, (len(_BARS) * c - 1) // top)] for c in counts)


def _histogram_html(latent: LatentSummary) -> str:
    if not latent.histogram:
        return ""
    counts = ", ".join(str(c) for c in latent.histogram)
    title = f"documents per activation bin from 0 to {latent.histogram_max:.3g}: {counts}"
    return (
        f'<div class="meta">activations 0 <span class="hist" title="{html.escape(title, quote=True)}">'
        f"{sparkline(latent.histogram)}</span> {latent.histogram_max:.3g}</div>"
    )


def _label_html(latent: LatentSummary) -> str:
    label = latent.label
    if label is None:
        return ""
    return (
        f'<div class="meta">fires most on class <b>{html.escape(label.name)}</b>: {100 * label.share:.0f}% of its '
        f"documents against {100 * label.base_rate:.0f}% of all (×{label.lift:.2f})</div>"
    )


def render_page(inspection: Inspection, *, max_chars: int = 600) -> str:
    """The whole inspection page as a string.

    Args:
        inspection: What :func:`textsae.inspection.latents.inspect_run` returned.
        max_chars: Longest document excerpt shown.
    """
    title = f"textsae latents: {inspection.recipe}"
    what = (
        "top-weighted terms and top-activating training documents"
        if inspection.has_vocabulary
        else "top-activating training documents"
    )
    ratios = [latent.top_ratio for latent in inspection.latents]
    median = f"{float(np.median(ratios)):.3g}" if ratios else "–"
    summary = (
        f"{len(inspection.latents)} live latents of {inspection.n_latents} ({inspection.n_dead} never active on the "
        f"{inspection.n_docs} training documents), most frequent first, with their {what}. Median top-1/top-2 "
        f"activation ratio {median} (near 1: latents shared by many documents; above 3: latents tied to single documents). "
        f"Run: {inspection.run_dir}"
    )
    body = "\n".join(_latent_html(latent, max_chars) for latent in inspection.latents)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>"
        f"<header><h1>{html.escape(title)}</h1>"
        '<label>Filter by term or #latent: <input id="search" type="search" placeholder="e.g. horror, #12" autocomplete="off"></label> '
        f'<span class="meta"><span id="shown">{len(inspection.latents)}</span> shown</span>'
        f'<div class="meta">{html.escape(summary)}</div></header>\n'
        f"<main>\n{body}\n</main>\n<script>{_JS}</script></body></html>\n"
    )


def write_page(inspection: Inspection, path: str | os.PathLike[str], *, max_chars: int = 600) -> None:
    """Render the page and write it to ``path`` atomically."""
    atomic_write_text(path, render_page(inspection, max_chars=max_chars))
