"""Resumable training state in one safetensors file, written atomically.

The file's metadata holds the JSON state and a SHA-256 over every tensor's name, dtype, shape and bytes, so a
checkpoint edited or damaged in place (same size) is refused on resume instead of training on from altered weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from textsae._io import atomic_save_safetensors
from textsae.errors import UserError

_STATE_KEY = "textsae_state"
_DIGEST_KEY = "textsae_tensors_sha256"


def tensors_digest(tensors: dict[str, torch.Tensor], state_text: str = "") -> str:
    """SHA-256 over the training state's JSON text and the tensors in name order (each name, dtype, shape and raw
    bytes; about 1 s per GB)."""
    digest = hashlib.sha256(state_text.encode("utf-8"))
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write tensors plus a JSON ``state`` (in the safetensors metadata) to ``path`` atomically."""
    contiguous = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    state_text = json.dumps(state)
    metadata = {_STATE_KEY: state_text, _DIGEST_KEY: tensors_digest(contiguous, state_text)}
    atomic_save_safetensors(path, contiguous, metadata)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        UserError: If the file is truncated, corrupt, changed since it was written (its tensors no longer match the
            recorded SHA-256) or not a textsae checkpoint.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(
            f"Checkpoint {path} is corrupt or truncated ({error}); delete it to restart training from scratch."
        ) from None
    if _STATE_KEY not in metadata:
        raise UserError(
            f"{path} is not a textsae training checkpoint (no {_STATE_KEY!r} metadata); delete it to restart training."
        )
    try:
        state = json.loads(metadata[_STATE_KEY])
    except json.JSONDecodeError as error:
        raise UserError(
            f"Checkpoint {path} has unreadable {_STATE_KEY!r} metadata ({error}); delete it to restart training from scratch."
        ) from None
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("step"), int)
        or not isinstance(state.get("optimizer"), dict)
    ):
        raise UserError(
            f"{path} is not a textsae training checkpoint (its {_STATE_KEY!r} lacks 'step' or 'optimizer'); delete it to restart training."
        )
    if _DIGEST_KEY not in metadata:
        raise UserError(
            f"Checkpoint {path} records no SHA-256 of its tensors (an older textsae wrote it, or it was edited); "
            "delete it to restart training from scratch."
        )
    if metadata[_DIGEST_KEY] != tensors_digest(tensors, metadata[_STATE_KEY]):
        raise UserError(
            f"Checkpoint {path} was changed after it was written (its state and tensors do not match the recorded SHA-256); "
            "delete it to restart training from scratch."
        )
    return tensors, state


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten an optimizer's state into named tensors plus JSON-able scalars."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, slot in state_dict["state"].items():
        for name, value in slot.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith("optim."):
            continue
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, slot in meta["scalars"].items():
        state.setdefault(int(index), {}).update(slot)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
