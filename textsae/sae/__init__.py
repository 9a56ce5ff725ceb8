"""Sparse autoencoders: one architecture per module, built by name from :class:`SAEConfig`.

``topk``, ``batchtopk``, ``relu_l1``, ``sigmoid_kl`` and ``jumprelu``; formulas are in each class docstring. Adding one
is one module: its SAE class and config dataclass, registered with ``register_sae``.
"""

from __future__ import annotations

from textsae.sae.base import LossOutput, SAEOutput, SparseAutoencoder
from textsae.sae.registry import SAE_REGISTRY, build_sae, load_sae
from textsae.sae.sizing import DataShape

# Imported for their @register_sae side effect.
from textsae.sae import batch_topk, jumprelu, relu_l1, sigmoid_kl, topk  # noqa: F401  isort: skip

__all__ = ["SAE_REGISTRY", "DataShape", "LossOutput", "SAEOutput", "SparseAutoencoder", "build_sae", "load_sae"]
