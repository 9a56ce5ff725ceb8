"""``textsae inspect``: a static HTML page describing the latents of a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

INSPECT_PAGE_NAME = "inspect.html"
"""Default file name of the page, inside the run directory."""


def add_parsers(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``inspect`` verb to ``subparsers`` (``common``: the shared ``--debug``/``--quiet`` options)."""
    parser = subparsers.add_parser(
        "inspect",
        help="write an HTML page describing each latent of a trained run",
        description="Writes one static HTML file (no server, nothing fetched) listing the run's live latents, most\n"
        "frequent first: activation frequency on the training documents, top-weighted vocabulary terms\n"
        "(bag-of-words featurizers: decoder rows read through the vocabulary), and the top-activating\n"
        "training documents with the latent's terms highlighted. A search box filters latents by term.",
        parents=[common],
        formatter_class=formatter,
        epilog="examples:\n  textsae inspect runs/imdb_tfidf_topk/1a2b3c4d5e\n  textsae inspect RUN_DIR --out latents.html --top-terms 30 --top-docs 3",
    )
    parser.add_argument("run_dir", help="a finished run directory (printed by `textsae run`)")
    parser.add_argument("--out", help=f"output HTML file (default: RUN_DIR/{INSPECT_PAGE_NAME})")
    parser.add_argument("--top-terms", type=int, default=20, help="terms shown per latent (default: 20)")
    parser.add_argument(
        "--top-docs", type=int, default=3, help="top-activating documents shown per latent (default: 3; 0 for none)"
    )
    parser.add_argument("--max-chars", type=int, default=600, help="longest document excerpt shown (default: 600)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the inspection page of ``args.run_dir``; returns the exit code."""
    from textsae.errors import UserError
    from textsae.inspection import inspect_run, write_page

    for name in ("top_terms", "top_docs", "max_chars"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be an int >= 0. Got {getattr(args, name)} instead.")
    inspection = inspect_run(args.run_dir, top_terms=args.top_terms, top_docs=args.top_docs)
    out = Path(args.out) if args.out else inspection.run_dir / INSPECT_PAGE_NAME
    write_page(inspection, out, max_chars=args.max_chars)
    print(f"wrote {out} ({len(inspection.latents)} live latents of {inspection.n_latents})")
    return 0
