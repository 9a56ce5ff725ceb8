"""Latent inspection: a static HTML page describing what each latent of a trained run responds to."""

from textsae.inspection.html import highlight_html, render_page, write_page
from textsae.inspection.latents import (
    Inspection,
    LatentDoc,
    LatentSummary,
    Span,
    inspect_run,
    term_spans,
)

__all__ = [
    "Inspection",
    "LatentDoc",
    "LatentSummary",
    "Span",
    "highlight_html",
    "inspect_run",
    "render_page",
    "term_spans",
    "write_page",
]
