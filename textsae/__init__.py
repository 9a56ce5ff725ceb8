"""textsae: turn text into sparse, useful representations.

Public API::

    from textsae import load_recipe, Pipeline, SparseCodeTransformer, load_codes, load_sae
    from textsae import from_pretrained, Codebook   # share and reuse a trained codebook (folder or hub id)
"""

from __future__ import annotations

__version__ = "0.2.0"

__all__ = [
    "Codebook",
    "Pipeline",
    "SparseCodeTransformer",
    "__version__",
    "from_pretrained",
    "load_codes",
    "load_recipe",
    "load_sae",
]


def __getattr__(name: str):  # lazy: `import textsae` stays fast and torch-free until needed
    if name == "Pipeline":
        from textsae.pipeline import Pipeline

        return Pipeline
    if name == "SparseCodeTransformer":
        from textsae.estimators import SparseCodeTransformer

        return SparseCodeTransformer
    if name in ("Codebook", "from_pretrained"):
        import textsae.codebook

        return getattr(textsae.codebook, name)
    if name == "load_codes":
        from textsae.store.codes import load_codes

        return load_codes
    if name == "load_recipe":
        from textsae.config.compose import load_recipe

        return load_recipe
    if name == "load_sae":
        from textsae.sae import load_sae

        return load_sae
    raise AttributeError(f"module 'textsae' has no attribute {name!r}")
