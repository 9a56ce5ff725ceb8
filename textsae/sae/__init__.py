"""Sparse autoencoders: one architecture per module, built by name from :class:`SAEConfig`.

``topk``, ``batchtopk``, ``relu_l1`` and ``sigmoid_kl``; formulas are in each class docstring.
"""

from __future__ import annotations

from textsae.sae.base import LossOutput, SAEOutput, SparseAutoencoder
from textsae.sae.registry import SAE_REGISTRY, build_sae, load_sae
from textsae.sae.sizing import DataShape

# Imported for their @register_sae side effect.
from textsae.sae import batch_topk, relu_l1, sigmoid_kl, topk  # noqa: F401  isort: skip

__all__ = ["SAE_REGISTRY", "DataShape", "LossOutput", "SAEOutput", "SparseAutoencoder", "build_sae", "load_sae"]
