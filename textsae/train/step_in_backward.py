"""The optimiser step taken inside the backward pass, one parameter at a time, so one gradient is alive at a time.

A plain step keeps every gradient until ``optimizer.step()``: for a 30,000-term × 8,192-latent SAE that is 2 GB of
gradients on top of 2 GB of weights and 4 GB of Adam state. Here each parameter is updated by a hook the moment
autograd has finished its gradient (``register_post_accumulate_grad_hook``, the pattern of PyTorch's "optimizer step
in backward" tutorial), and the gradient is freed at once: the decoder's gradient is gone before the encoder's is
formed. Adam updates each tensor independently, so the result is the same as one step after backward, bit for bit.

The SAE's constraints ride along: the decoder gradient loses its component along each decoder row before the
decoder's update and the rows are renormalised right after it; the fixed dense latents' encoder columns get no update.
"""

from __future__ import annotations

from typing import cast

import torch

from textsae.sae import SparseAutoencoder

__all__ = ["StepInBackward"]


class StepInBackward:
    """Updates each of ``parameters`` with ``optimizer`` as soon as backward has accumulated its gradient.

    Call ``optimizer.step()`` never; call ``loss.backward()`` (with no gradient left from before) and every parameter
    that received a gradient is stepped once. Parameters that got no gradient are not stepped, as with ``step()``.

    Args:
        sae: The SAE whose ``W_dec`` constraint and fixed dense latents apply.
        optimizer: Holds every one of ``parameters``; its ``step()`` updates the parameters that have a gradient.
        parameters: The SAE's parameters and any others trained with it (label heads).
        fixed_dense_latents: The first encoder columns (and biases) that must not move.
    """

    def __init__(
        self,
        sae: SparseAutoencoder,
        optimizer: torch.optim.Optimizer,
        parameters: list[torch.nn.Parameter],
        fixed_dense_latents: int = 0,
    ) -> None:
        self.sae = sae
        self.optimizer = optimizer
        self.fixed = fixed_dense_latents
        self._handles = [p.register_post_accumulate_grad_hook(self._step) for p in parameters]

    def _step(self, parameter: torch.Tensor) -> None:
        sae = self.sae
        if parameter is sae.W_dec:
            sae.remove_parallel_grad_()
        grad = cast(torch.Tensor, parameter.grad)  # set: the hook runs once the gradient is accumulated
        if self.fixed and parameter is sae.W_enc:
            grad[:, : self.fixed] = 0.0  # with no gradient, Adam leaves these columns where they are
        if self.fixed and parameter is sae.b_enc:
            grad[: self.fixed] = 0.0
        self.optimizer.step()  # only this parameter holds a gradient now
        parameter.grad = None
        if parameter is sae.W_dec:
            sae.normalize_decoder_()

    def remove(self) -> None:
        """Detach the hooks; the parameters go back to ordinary gradients."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
