"""Export a hidden-states TopK run to a sentence-transformers ``SparseEncoder`` folder.

A TopK SAE over pooled transformer states is exactly a ``SparseEncoder([Transformer, Pooling, (Normalize),
SparseAutoEncoder])``: textsae computes pre = ((x − shift)·s − c)·W_enc + b_enc, which is
(x − (shift + c/s))·(s ⊙ W_enc) + b_enc, so the sentence-transformers module gets ``pre_bias = shift + c/s``,
``encoder.weight = (s[:, None] · W_enc)ᵀ`` and ``latent_bias = b_enc``, and keeps the k largest, ReLU'd. An SAE with
always-on dense latents (``sae.dense_latents``, as ``recipes/minilm_auto.yaml`` trains) keeps them signed and in
every code; :class:`DenseLatentsSparseAutoEncoder` adds that to the sentence-transformers module, so such a folder
loads where textsae is installed, with ``SparseEncoder(folder, trust_remote_code=True)`` (sentence-transformers
imports a module class from outside its own package only when told to).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from sentence_transformers.sparse_encoder import SparseEncoder

if TYPE_CHECKING:  # checked against the current module paths
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder
else:
    try:  # sentence-transformers >= 6.1 moved the modules; the old paths still work there, with a deprecation warning
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
        from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder
    except ImportError:
        from sentence_transformers.models import Normalize, Pooling, Transformer
        from sentence_transformers.sparse_encoder.models import SparseAutoEncoder

from textsae.errors import UserError
from textsae.export.sae_libraries import export_problems, raw_space_weights
from textsae.featurize.hidden_states import HiddenStatesFeaturizer
from textsae.sae import SparseAutoencoder

__all__ = ["DenseLatentsSparseAutoEncoder", "to_sparse_encoder"]


class DenseLatentsSparseAutoEncoder(SparseAutoEncoder):
    """sentence-transformers' TopK ``SparseAutoEncoder`` whose first ``dense_latents`` latents are always in the
    code with their signed pre-activation; the other k − m entries are the largest of the rest, ReLU'd."""

    config_keys: list[str] = [*SparseAutoEncoder.config_keys, "dense_latents"]  # noqa: RUF012  (the base declares it an instance attribute; a ClassVar would not match it)

    def __init__(self, *args: Any, dense_latents: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dense_latents = int(dense_latents)

    def top_k(
        self, x: torch.Tensor, k: int | None = None, compute_aux: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As the parent's, with latents 0 … m − 1 always kept (signed); no auxiliary latents (inference only)."""
        m = self.dense_latents
        k = self.k if k is None else k
        values, indices = x[..., m:].topk(k - m, dim=-1)
        codes = torch.zeros_like(x).scatter(-1, indices + m, values.relu())
        codes[..., :m] = x[..., :m]
        return codes, None


def to_sparse_encoder(featurizer: HiddenStatesFeaturizer, sae: SparseAutoencoder) -> SparseEncoder:
    """The ``SparseEncoder`` that gives ``sae.encode(featurizer.transform(texts))`` (to float rounding).

    Raises:
        UserError: The featurizer or the SAE has a setting sentence-transformers cannot express; the message says which.
    """
    _check_exportable(featurizer, sae)
    transformer = Transformer(featurizer.model_id, max_seq_length=featurizer.max_length)
    modules: list[torch.nn.Module] = [transformer, Pooling(sae.d_in, pooling_mode=featurizer.pooling)]
    if featurizer.normalize:
        modules.append(Normalize())
    m = sae.cfg.always_on_latents
    settings: dict[str, Any] = {"input_dim": sae.d_in, "hidden_dim": sae.n_latents, "k": sae.cfg.code_k, "k_aux": 0}
    module = DenseLatentsSparseAutoEncoder(**settings, dense_latents=m) if m else SparseAutoEncoder(**settings)
    weights = raw_space_weights(sae, target="sentence-transformers", allow_dense_latents=True)
    with torch.no_grad():
        module.pre_bias.copy_(weights["b_dec"])
        cast(torch.nn.Linear, module.encoder).weight.copy_(weights["W_enc"].T)  # declared an nn.Module upstream
        module.latent_bias.copy_(weights["b_enc"])
    modules.append(module)
    return SparseEncoder(modules=modules, device="cpu")


def export_sentence_transformers(featurizer: HiddenStatesFeaturizer, sae: SparseAutoencoder, out: Path) -> Path:
    """Write the :func:`to_sparse_encoder` model to ``out`` with ``save_pretrained``; returns ``out``."""
    to_sparse_encoder(featurizer, sae).save_pretrained(str(out))
    return out


def _check_exportable(featurizer: object, sae: SparseAutoencoder) -> None:
    if not isinstance(featurizer, HiddenStatesFeaturizer):
        raise UserError(
            f"Only hidden-states runs export to sentence-transformers; this run's featurizer is {type(featurizer).__name__}, "
            "whose input (a bag of words, or vectors given with the data) has no sentence-transformers module. Use "
            "`textsae encode`, or share it as a codebook (--to codebook)."
        )
    problems = []
    if list(featurizer.layers) != [-1]:
        problems.append(
            f"featurizer.layers={list(featurizer.layers)} (sentence-transformers pools the last layer only)"
        )
    if featurizer.pooling not in ("mean", "cls", "max"):
        problems.append(f"featurizer.pooling={featurizer.pooling!r} (one vector per document is needed)")
    problems += export_problems(sae, allow_dense_latents=True)
    if problems:
        raise UserError("This run cannot be exported to sentence-transformers: " + "; ".join(problems) + ".")
