"""The model card (README.md) of a shared codebook: hub metadata in YAML front matter, then what it is and how well
its codes did in the run that trained it."""

from __future__ import annotations

import math
from typing import Any

import yaml

from textsae.markdown import markdown_table

__all__ = ["BUNDLED_MODEL_HUB_ID", "render_model_card"]

BUNDLED_MODEL_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""The hub id of the model a hidden-states featurizer uses when ``featurizer.model`` is unset."""

_REPRESENTATIONS = ("codes", "source", "truncated", "binary")


def render_model_card(
    marker: dict[str, Any], config: dict[str, Any], report: dict[str, Any] | None, *, repo_id: str | None = None
) -> str:
    """README.md text for a codebook.

    Args:
        marker: The codebook's ``codebook.json`` (featurizer kind, model, architecture, sizes).
        config: The resolved recipe that trained it.
        report: Its ``report.json``, or None.
        repo_id: The hub id it is published as, for the usage snippet (default: a placeholder).
    """
    config, report = _mapping(config), _mapping(report) if report is not None else None
    data = _mapping(config.get("data"))
    metadata: dict[str, Any] = {
        "library_name": "textsae",
        "tags": ["textsae", "sparse-autoencoder", "sparse-coding", "feature-extraction"],
        "pipeline_tag": "feature-extraction",
    }
    base_model = _base_model(marker)
    if base_model:
        metadata["base_model"] = base_model
    if data.get("name"):
        metadata["datasets"] = [str(data["name"])]
    results = _results(report, data)
    if results:
        metadata["model-index"] = [{"name": repo_id or "textsae-codebook", "results": results}]
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n" + "\n".join(_body(marker, config, report, repo_id))


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else empty: a report or config read back may hold anything."""
    return value if isinstance(value, dict) else {}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _base_model(marker: dict[str, Any]) -> str | None:
    if marker.get("featurizer_kind") != "hidden_states":
        return None
    model = marker.get("model")
    if model is None:
        return BUNDLED_MODEL_HUB_ID
    local = marker.get("model_is_local_folder") or not isinstance(model, str) or model.startswith((".", "/", "~"))
    return None if local else model


def _dataset_name(report: dict[str, Any] | None, data: dict[str, Any]) -> str:
    dataset = _mapping((report or {}).get("dataset"))
    return str(data.get("name") or dataset.get("name") or data.get("bundled") or "local data")


def _results(report: dict[str, Any] | None, data: dict[str, Any]) -> list[dict[str, Any]]:
    evaluation = _mapping((report or {}).get("eval"))
    codes = evaluation.get("codes")
    if not isinstance(codes, dict) or not _finite(codes.get("accuracy")):
        return []
    dataset = _mapping((report or {}).get("dataset"))
    metrics = [{"type": "accuracy", "value": round(float(codes["accuracy"]), 4), "name": "Linear probe on the codes"}]
    if _finite(codes.get("macro_f1")):
        metrics.append({"type": "f1", "value": round(float(codes["macro_f1"]), 4), "name": "Macro F1 on the codes"})
    return [
        {
            "task": {"type": "text-classification", "name": "Text classification (linear probe on the codes)"},
            "dataset": {
                "name": _dataset_name(report, data),
                "type": str(data.get("name") or _dataset_name(report, data)),
                "split": str(dataset.get("eval_split") or "test"),
            },
            "metrics": metrics,
        }
    ]


def _body(
    marker: dict[str, Any], config: dict[str, Any], report: dict[str, Any] | None, repo_id: str | None
) -> list[str]:
    kind = marker.get("featurizer_kind")
    k = f", k = {marker.get('k')} active latents per text" if marker.get("k") is not None else ""
    source = {
        "hidden_states": f"mean-pooled hidden states of `{_base_model(marker) or marker.get('model')}`",
        "vectors": "precomputed vectors given with the data; `encode` takes the same kind of vectors",
    }.get(str(kind), "TF-IDF vectors of the text")
    lines = [
        f"# {config.get('name') or 'textsae'} codebook",
        "",
        f"A [textsae](https://pypi.org/project/textsae/) codebook: a {marker.get('architecture')} sparse autoencoder "
        f"with {marker.get('n_latents')} latents over {marker.get('d_in')} inputs ({source}){k}. "
        + ("Vectors in, sparse codes out." if kind == "vectors" else "Texts in, sparse codes out."),
        "",
        "## Usage",
        "",
        "```python",
        "import textsae",
        "",
        f'codebook = textsae.from_pretrained("{repo_id or "REPO_ID_OR_FOLDER"}")',
        (
            f"codes = codebook.encode(vectors)  # an (n, {marker.get('d_in')}) array from the same model; scipy CSR"
            if kind == "vectors"
            else 'codes = codebook.encode(["a quietly moving film", "tedious and far too long"])  # scipy CSR'
        ),
        "```",
        "",
        "or from the command line: `textsae encode FOLDER docs.csv --out codes/`"
        + (" (the file needs the same vector column)." if kind == "vectors" else "."),
    ]
    lines += _quality(report, _mapping(config.get("data")))
    lines += [
        "",
        "## Files",
        "",
        "`featurizer/` and `sae/` hold the fitted featurizer and the SAE weights (safetensors), each with a manifest of "
        "SHA-256 hashes checked on load; `config.yaml` is the recipe that trained it; `report.json` its evaluation.",
        "",
    ]
    return lines


def _quality(report: dict[str, Any] | None, data: dict[str, Any]) -> list[str]:
    evaluation = _mapping((report or {}).get("eval"))
    rows = [(name, evaluation[name]) for name in _REPRESENTATIONS if isinstance(evaluation.get(name), dict)]
    if not rows:
        unlabelled = report is not None and _mapping(report.get("dataset")).get("n_classes") == 0
        said = (
            "The corpus it was trained on had no labels, so no classifier was evaluated."
            if unlabelled
            else "This codebook was saved without an evaluation report."
        )
        return ["", "## Quality", "", said]
    dataset = _mapping((report or {}).get("dataset"))
    sae = _mapping((report or {}).get("sae"))
    lines = [
        "",
        "## Quality",
        "",
        f"Measured by the run that trained it on {_dataset_name(report, data)} ({dataset.get('train_docs', '?')} training "
        f"texts, {dataset.get('eval_docs', '?')} in the {dataset.get('eval_split', 'reported')} split): a logistic "
        "regression on each representation.",
        "",
        markdown_table(
            ["representation", "accuracy", "macro F1", "bytes per text"],
            [
                [name, _number(row.get("accuracy")), _number(row.get("macro_f1")), _number(row.get("bytes_per_doc"), 1)]
                for name, row in rows
            ],
        ),
    ]
    if _finite(sae.get("fvu")):
        lines += ["", f"Fraction of variance unexplained on that split: {float(sae['fvu']):.3f}."]
    return lines


def _number(value: Any, digits: int = 4) -> str:
    return f"{float(value):.{digits}f}" if _finite(value) else "–"
