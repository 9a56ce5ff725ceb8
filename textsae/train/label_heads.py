"""The label-aware loss as a component the trainer calls: linear heads on the codes, trained with the labels of the
training split.

Everything about the loss lives here: whether there is one (``train.label_loss_weight`` > 0 and labels), the heads'
shapes, the dropout on the codes they read (``train.label_dropout``), the weight of their cross-entropy in the total
loss, and which checkpoint tensors are theirs. They are not part of the saved SAE (encoding never needs them); the
trainer saves them in its checkpoints under ``head.*`` (the head on the whole code) and ``dense_head.*`` (the head on
the always-on dense latents).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from textsae.config.schema import TrainConfig
from textsae.errors import UserError
from textsae.train.batches import drop_latents

__all__ = ["CHECKPOINT_PREFIXES", "LabelHeads", "check_labels"]

CHECKPOINT_PREFIXES = ("head.", "dense_head.")
"""The names of the heads' tensors in a training checkpoint (their ``state_dict`` keys)."""


def check_labels(cfg: TrainConfig, labels: np.ndarray | None, n_rows: int) -> None:
    """Refuse a label loss without one class label per training row.

    Raises:
        UserError: ``cfg.label_loss_weight`` > 0 and ``labels`` is ``None`` or not ``n_rows`` long.
    """
    if cfg.label_loss_weight > 0 and (labels is None or len(labels) != n_rows):
        raise UserError(
            "train.label_loss_weight > 0 needs one class label per training document; set it to 0 for unlabeled data."
        )


class LabelHeads(torch.nn.Module):
    """Linear classifiers of the class from the codes: on the whole code, on its dense latents, or both.

    Args:
        n_latents: Width of the code.
        dense_latents: Number of always-on latents at the start of the code (``sae.dense_latents``).
        n_classes: Number of classes.
        where: ``codes``, ``dense`` or ``both`` (``train.label_head``).
        weight: Weight of the cross-entropy in the training loss, per input dimension (``train.label_loss_weight``).
        dropout: Probability of zeroing each code entry the heads read while training (``train.label_dropout``).

    Raises:
        UserError: ``where`` reads the dense latents but there are none.
    """

    def __init__(
        self,
        n_latents: int,
        dense_latents: int,
        n_classes: int,
        where: Literal["codes", "dense", "both"],
        *,
        weight: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.weight = weight
        self.dropout = dropout
        if where != "codes" and not dense_latents:
            raise UserError(
                f"train.label_head={where} reads the always-on latents, but this SAE has sae.dense_latents=0; "
                "set it > 0 or use train.label_head=codes."
            )
        # Created in this order (the global RNG draws their initial weights): codes first, then dense.
        self.head = torch.nn.Linear(n_latents, n_classes) if where != "dense" else None
        self.dense_head = torch.nn.Linear(dense_latents, n_classes) if where != "codes" else None

    @classmethod
    def for_training(
        cls, cfg: TrainConfig, n_latents: int, dense_latents: int, labels: torch.Tensor | None
    ) -> LabelHeads | None:
        """The heads ``cfg`` asks for, with as many classes as ``labels`` has; ``None`` without a label loss.

        Args:
            cfg: Training settings (``label_loss_weight``, ``label_head``, ``label_dropout``).
            n_latents: Width of the SAE's code.
            dense_latents: Its always-on latents.
            labels: Class ids of the training rows, or ``None``.
        """
        if cfg.label_loss_weight <= 0 or labels is None:
            return None
        n_classes = int(labels.max()) + 1
        return cls(
            n_latents, dense_latents, n_classes, cfg.label_head, weight=cfg.label_loss_weight, dropout=cfg.label_dropout
        )

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

    def training_loss(
        self, codes: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, d_in: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The term added to the SAE's loss in one training step, and the cross-entropy it is made of.

        The codes go through dropout (its mask drawn from ``generator``, seeded per step, so a resumed run drops the
        same entries); the cross-entropy is scaled by ``weight × d_in``, so that its weight does not depend on the
        input dimension that the reconstruction error is summed over.

        Args:
            codes: ``(B, n_latents)`` codes of the batch.
            labels: ``(B,)`` class ids.
            generator: The step's generator (after the input corruption has drawn from it).
            d_in: The SAE's input dimension.

        Returns:
            ``(weight × d_in × cross-entropy, cross-entropy)``.
        """
        ce = self.loss(drop_latents(codes, self.dropout, generator), labels)
        return self.weight * d_in * ce, ce

    def load_checkpoint_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the heads from a training checkpoint's tensors (the others are ignored)."""
        self.load_state_dict({name: value for name, value in tensors.items() if name.startswith(CHECKPOINT_PREFIXES)})
