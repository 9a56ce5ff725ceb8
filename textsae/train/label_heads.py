"""The label-aware loss's classifiers: linear heads on the codes, trained with the labels of the training split.

They are not part of the saved SAE (encoding never needs them); the trainer saves them in its checkpoints under
``head.*`` (the head on the whole code) and ``dense_head.*`` (the head on the always-on dense latents).
"""

from __future__ import annotations

from typing import Literal

import torch

from textsae.errors import UserError

__all__ = ["LabelHeads"]


class LabelHeads(torch.nn.Module):
    """Linear classifiers of the class from the codes: on the whole code, on its dense latents, or both.

    Args:
        n_latents: Width of the code.
        dense_latents: Number of always-on latents at the start of the code (``sae.dense_latents``).
        n_classes: Number of classes.
        where: ``codes``, ``dense`` or ``both`` (``train.label_head``).

    Raises:
        UserError: ``where`` reads the dense latents but there are none.
    """

    def __init__(
        self, n_latents: int, dense_latents: int, n_classes: int, where: Literal["codes", "dense", "both"]
    ) -> None:
        super().__init__()
        if where != "codes" and not dense_latents:
            raise UserError(
                f"train.label_head={where} reads the always-on latents, but this SAE has sae.dense_latents=0; "
                "set it > 0 or use train.label_head=codes."
            )
        # Created in this order (the global RNG draws their initial weights): codes first, then dense.
        self.head = torch.nn.Linear(n_latents, n_classes) if where != "dense" else None
        self.dense_head = torch.nn.Linear(dense_latents, n_classes) if where != "codes" else None

    def loss(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each head, summed.

        Args:
            codes: ``(B, n_latents)`` codes (possibly through dropout).
            labels: ``(B,)`` class ids.
        """
        ce = torch.zeros((), device=codes.device)
        if self.head is not None:
            ce = ce + torch.nn.functional.cross_entropy(self.head(codes).float(), labels)
        if self.dense_head is not None:
            dense = codes[:, : self.dense_head.in_features]
            ce = ce + torch.nn.functional.cross_entropy(self.dense_head(dense).float(), labels)
        return ce
