"""Export a TopK SAE in the weight layouts of EleutherAI sparsify and SAELens.

textsae normalises its input before the encoder, x' = (x − shift)·s, computes pre = (x' − b_dec)·W_enc + b_enc, keeps
the k largest (ReLU'd), and decodes x̂ = (z·W_dec + b_dec)/s + shift. Both libraries work in the raw input space with
one decoder bias that is also subtracted before the encoder, so folding the normalisation in gives them exactly
textsae's codes and reconstructions:

    b_dec' = shift + b_dec/s,   W_enc' = s[:, None]·W_enc   (d_in, n),   b_enc' = b_enc,   W_dec' = W_dec / s[None, :]

sparsify (``SparseCoder.load_from_disk``): ``cfg.json`` (its ``SparseCoderConfig`` plus ``d_in``) and
``sae.safetensors`` with ``encoder.weight`` (n, d_in), ``encoder.bias``, ``W_dec`` (n, d_in), ``b_dec``.
SAELens (``SAE.load_from_disk``, v6 layout): ``cfg.json`` (``architecture: topk``, ``d_in``, ``d_sae``, ``k``, ...) and
``sae_weights.safetensors`` with ``W_enc`` (d_in, d_sae), ``b_enc``, ``W_dec`` (d_sae, d_in), ``b_dec``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, cast

import torch
from safetensors.torch import save_file

from textsae._io import atomic_path
from textsae.errors import UserError
from textsae.sae import SparseAutoencoder
from textsae.sae.topk import TopKConfig

__all__ = ["LIBRARIES", "export_problems", "export_sae_library", "raw_space_weights"]

LIBRARIES = ("sparsify", "saelens")
Library = Literal["sparsify", "saelens"]


def export_problems(sae: SparseAutoencoder, *, allow_dense_latents: bool = False) -> list[str]:
    """What keeps ``sae`` from being a plain TopK SAE in the raw input space, one phrase each (empty: nothing)."""
    problems = []
    if not isinstance(sae.cfg, TopKConfig):
        problems.append(f"sae.architecture={sae.cfg.architecture!r} (only a TopK SAE maps onto theirs)")
    elif sae.cfg.adaptive_k != "none":
        problems.append(f"sae.adaptive_k={sae.cfg.adaptive_k!r} (the code size must be k for every document)")
    if sae.cfg.always_on_latents and not allow_dense_latents:
        problems.append(f"sae.dense_latents={sae.cfg.always_on_latents} (always-on signed latents have no equivalent)")
    if sae.cfg.reconstruction != "mse":
        problems.append(f"sae.reconstruction={sae.cfg.reconstruction!r} (their decoder is linear)")
    if not bool(torch.all(sae.input_scale > 0)):
        problems.append("an input scale of 0 (the SAE ignores an input dimension; the export divides by the scale)")
    return problems


def raw_space_weights(
    sae: SparseAutoencoder, *, target: str, allow_dense_latents: bool = False
) -> dict[str, torch.Tensor]:
    """The SAE with its input normalisation folded in (see the module docstring), float32 on the CPU: ``W_enc``
    (d_in, n), ``b_enc`` (n,), ``W_dec`` (n, d_in), ``b_dec`` (d_in,).

    Args:
        sae: A trained SAE.
        target: The format being written, for the error message.
        allow_dense_latents: The target keeps always-on signed latents (textsae's sentence-transformers module does).

    Raises:
        UserError: The SAE has a setting a plain TopK SAE in raw space cannot express; the message says which.
    """
    problems = export_problems(sae, allow_dense_latents=allow_dense_latents)
    if problems:
        raise UserError(f"This SAE cannot be exported to {target}: " + "; ".join(problems) + ".")
    with torch.no_grad():
        scale = sae.input_scale.detach().float().cpu().expand(sae.d_in)
        shift = sae.input_shift.detach().float().cpu().expand(sae.d_in)
        return dict(
            W_enc=(scale[:, None] * sae.W_enc.detach().float().cpu()).contiguous(),
            b_enc=sae.b_enc.detach().float().cpu().contiguous(),
            W_dec=(sae.W_dec.detach().float().cpu() / scale[None, :]).contiguous(),
            b_dec=(shift + sae.b_dec.detach().float().cpu() / scale).contiguous(),
        )


def export_sae_library(
    sae: SparseAutoencoder, out: Path, library: Library, *, model_name: str | None = None, dataset: str | None = None
) -> Path:
    """Write ``sae`` into ``out`` in ``library``'s layout and return ``out``.

    Args:
        sae: A trained TopK SAE.
        out: The folder to write (created).
        library: ``"sparsify"`` or ``"saelens"``.
        model_name: The model whose pooled hidden states the SAE reads, recorded in SAELens' metadata.
        dataset: The training corpus, recorded likewise.
    """
    weights = raw_space_weights(sae, target=library)
    out.mkdir(parents=True, exist_ok=True)
    cfg = cast(TopKConfig, sae.cfg)  # raw_space_weights refused any other architecture
    n_latents, k = sae.n_latents, int(cfg.k)
    if library == "sparsify":
        tensors = {
            "encoder.weight": weights["W_enc"].T.contiguous(),
            "encoder.bias": weights["b_enc"],
            "W_dec": weights["W_dec"],
            "b_dec": weights["b_dec"],
        }
        config: dict[str, Any] = {
            "activation": "topk",
            "expansion_factor": max(1, n_latents // sae.d_in),
            "normalize_decoder": False,  # the folded decoder rows are not unit norm; nothing renormalises them
            "num_latents": n_latents,
            "k": k,
            "multi_topk": bool(cfg.multi_topk),
            "skip_connection": False,
            "transcode": False,
            "d_in": sae.d_in,
        }
        weights_name = "sae.safetensors"
    else:
        tensors = dict(weights)
        config = {
            "architecture": "topk",
            "d_in": sae.d_in,
            "d_sae": n_latents,
            "k": k,
            "dtype": "float32",
            "device": "cpu",
            "apply_b_dec_to_input": True,
            "normalize_activations": "none",
            "reshape_activations": "none",
            "meta": {"model_name": model_name, "hook_name": "mean_pooled_hidden_states", "dataset_path": dataset},
        }
        weights_name = "sae_weights.safetensors"
    with atomic_path(out / weights_name) as tmp:
        save_file(tensors, str(tmp))
    with atomic_path(out / "cfg.json") as tmp:
        Path(tmp).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out
