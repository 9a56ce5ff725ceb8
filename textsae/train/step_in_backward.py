"""The optimiser step taken inside the backward pass, one parameter at a time, so one gradient is alive at a time.

A plain step keeps every gradient until ``optimizer.step()``: for a 30,000-term × 8,192-latent SAE that is 2 GB of
gradients on top of 2 GB of weights and 4 GB of Adam state. Here each parameter is updated by a hook the moment
autograd has finished its gradient (``register_post_accumulate_grad_hook``, the pattern of PyTorch's "optimizer step
in backward" tutorial), and the gradient is freed at once: the decoder's gradient is gone before the encoder's is
formed. Adam updates each tensor independently, so the result is the same as one step after backward, bit for bit
(on CPU, native passes stand in, which agree to float rounding: W_dec's projection, Adam step and renormalisation in
one, :meth:`StepInBackward._fused_decoder_step`; and, for a W_enc larger than the cache, its step with its
sparse-input gradient formed inside it, :meth:`StepInBackward._fused_encoder_step`).

**W_enc waits for the end of backward** (on CPU, one process, a plain Adam): the encoder's backward
through the kept latents of sparse input hands its gradient over in factors (:mod:`textsae.sae.deferred_gradient`)
instead of writing a weight-sized tensor, other contributions (AuxK's) reach ``.grad`` as usual and are held aside,
and one callback at the end of backward (``queue_callback``, as DistributedDataParallel uses) takes the step with all
of them, or adds them up for the optimiser where the fused step does not apply.

The SAE's constraints ride along: the decoder gradient loses its component along each decoder row before the
decoder's update and the rows are renormalised right after it; the fixed dense latents' encoder columns get no update.

**Several processes** (``reduce_gradients``, data parallelism under ``torchrun``): each hook first sums its
parameter's gradient over the ranks (``all_reduce``), then applies the constraint and the Adam step exactly as one
process would. This is the per-parameter hook ``DistributedDataParallel`` itself uses. Every rank runs the same
autograd graph (same model, same loss terms: the dead-latent mask that switches AuxK on and off is identical on every
rank), so the hooks fire in the same order everywhere and the collectives pair up; the first backward after
construction checks that (:meth:`StepInBackward._check_order`) and stops with one clear error rather than summing one
rank's encoder gradient into another rank's decoder. The model is not wrapped in ``DistributedDataParallel``: its
reducer reduces gradient *buckets* after backward has produced them and keeps every gradient until
``optimizer.step()``, which is exactly the weight-sized memory this module exists to avoid, and it cannot run an
optimiser step (nor the decoder constraint) between one parameter's reduction and the next parameter's gradient.
"""

from __future__ import annotations

from typing import cast

import torch

from textsae import distributed, native
from textsae.sae import SparseAutoencoder
from textsae.sae.cache_blocks import exceeds_cache
from textsae.sae.deferred_gradient import (
    SparseEncoderGradient,
    defer_encoder_gradient,
    forget_center_product,
    receiver_for,
    remember_center_product,
)

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
        reduce_gradients: Sum each gradient over the ranks of the process group before its step (data parallelism);
            the loss of each rank must then be weighted so that the sum is the global batch's gradient.
    """

    def __init__(
        self,
        sae: SparseAutoencoder,
        optimizer: torch.optim.Optimizer,
        parameters: list[torch.nn.Parameter],
        fixed_dense_latents: int = 0,
        *,
        reduce_gradients: bool = False,
    ) -> None:
        self.sae = sae
        self.optimizer = optimizer
        self.fixed = fixed_dense_latents
        self.reduce = reduce_gradients
        self._index = {id(p): i for i, p in enumerate(parameters)}
        self._checked = not reduce_gradients
        self._handles = [p.register_post_accumulate_grad_hook(self._step) for p in parameters]
        # On CPU, the encoder's step waits for the end of backward, where its gradient's factors and any other
        # contributions are all in (not with several ranks: their gradients must be summed first).
        self._defer_encoder = (
            not reduce_gradients
            and type(optimizer) is torch.optim.Adam
            and sae.W_enc.device.type == "cpu"
            and any(p is sae.W_enc for p in parameters)
            and _graph_task() is not None  # needed to drop what a failed backward left
            and receiver_for(sae.W_enc) is None  # one stepper per SAE takes W_enc's factors
        )
        self._pending: list[SparseEncoderGradient] = []
        self._encoder_grad: torch.Tensor | None = None  # W_enc's other gradient contributions, until the step
        self._finish_queued = False
        self._backward_task: int | None = None  # the backward these belong to
        if self._defer_encoder:
            defer_encoder_gradient(sae.W_enc, self._receive)

    def _step(self, parameter: torch.Tensor) -> None:
        sae = self.sae
        if self.reduce:
            if not self._checked:
                self._check_order(parameter)
            distributed.all_reduce_(cast(torch.Tensor, parameter.grad), "sum")
        if parameter is sae.W_enc and self._defer_encoder:
            self._join_backward()
            # Held aside: the other parameters' steps before the end of backward must not step it.
            self._encoder_grad, parameter.grad = parameter.grad, None
            self._queue_encoder_step()
            return
        if parameter is sae.W_dec and self._fused_decoder_step(parameter):
            return
        self._apply(parameter)

    def _apply(self, parameter: torch.Tensor) -> None:
        """The constraint, the optimiser step and the constraint again, with ``parameter.grad`` as it stands."""
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

    def _receive(self, gradient: SparseEncoderGradient) -> None:
        """Called by the encoder's backward with W_enc's sparse-input gradient in factors."""
        self._join_backward()
        self._pending.append(gradient)
        self._queue_encoder_step()

    def _join_backward(self) -> None:
        """Drop what a backward that stopped on an error left (its end-of-backward step never ran), so that it is
        neither stepped with this backward's gradient nor blocks this backward's step."""
        task = _graph_task()
        if task != self._backward_task:
            self._pending, self._encoder_grad, self._finish_queued = [], None, False
            self._backward_task = task

    def _queue_encoder_step(self) -> None:
        if not self._finish_queued:
            self._finish_queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._encoder_step)  # at the end of backward

    @torch.no_grad()
    def _encoder_step(self) -> None:
        """W_enc's step, once backward has finished: its factored gradient and ``.grad`` (the other contributions)
        in one native pass where :meth:`_fused_encoder_step` applies, else added up into ``.grad`` for the torch
        step."""
        self._finish_queued, self._backward_task = False, None
        pending, self._pending = self._pending, []
        grad, self._encoder_grad = self._encoder_grad, None
        parameter = self.sae.W_enc
        if pending and self._fused_encoder_step(parameter, pending, grad):
            return
        grad = _added_up(grad, pending)
        if grad is not None:
            parameter.grad = grad
            self._apply(parameter)

    def _fused_encoder_step(
        self, parameter: torch.Tensor, pending: list[SparseEncoderGradient], base: torch.Tensor | None
    ) -> bool:
        """W_enc's gradient (``pending``'s factors plus ``base``, the other contributions) formed a row at a time
        inside its Adam step, never stored (:func:`textsae.native.encoder_adam_step`), and c·W_enc summed in the same
        pass for the next forward. Applies as :meth:`_fused_decoder_step` does, for a W_enc larger than the cache.
        Returns whether it ran."""
        adam = self._plain_adam(parameter, *([] if base is None else [base])) if exceeds_cache(parameter) else None
        if adam is None:
            return False
        group, state = adam
        base = _added_up(base, pending[1:])  # one gradient's factors in the pass, any others added to the base
        step = _next_step(state)
        first = pending[0]
        center = self.sae._input_center()
        keep_product = center is self.sae.b_dec  # the next forward's centre (sigmoid(b_dec) is made anew)
        product = native.encoder_adam_step(
            first.offsets,
            first.terms,
            first.values,
            first.indices,
            first.grad_values,
            parameter,
            state["exp_avg"],
            state["exp_avg_sq"],
            lr=float(group["lr"]),
            betas=group["betas"],
            eps=group["eps"],
            step=step,
            rank_one=(first.rank_rows, first.rank_columns),
            base=base,
            center=center if keep_product else None,
            first_column=self.fixed,  # the fixed dense latents' columns do not move
        )
        _count_step(state)
        torch.autograd.graph.increment_version(parameter)  # written through its pointer
        if product is not None:
            remember_center_product(parameter, center, product)
        return True

    def _plain_adam(self, parameter: torch.Tensor, *tensors: torch.Tensor) -> tuple[dict, dict] | None:
        """``parameter``'s param group and Adam state when a native fused step can stand in for the optimiser's: a
        plain ``torch.optim.Adam`` (no weight decay, amsgrad or maximize) whose state exists, a float32 CPU parameter,
        the native kernels built, and it, its state and ``tensors`` contiguous float32."""
        state = self.optimizer.state.get(parameter, {})
        group = next((g for g in self.optimizer.param_groups if any(p is parameter for p in g["params"])), None)
        options = ("weight_decay", "amsgrad", "maximize", "differentiable", "capturable")
        if (
            group is None
            or type(self.optimizer) is not torch.optim.Adam
            or any(group.get(option) for option in options)
            or "exp_avg" not in state
            or not native.applies(parameter, state["exp_avg"], state["exp_avg_sq"], *tensors)
            or not all(t.is_contiguous() for t in (parameter, state["exp_avg"], state["exp_avg_sq"], *tensors))
        ):
            return None
        return group, state

    @torch.no_grad()
    def _fused_decoder_step(self, parameter: torch.Tensor) -> bool:
        """W_dec's projection, Adam step and renormalisation in one pass over each row
        (:func:`textsae.native.decoder_adam_step`), where :meth:`_plain_adam` allows. Returns whether it ran; when
        not, the caller takes the three torch passes, which agree to float rounding."""
        grad = parameter.grad
        adam = None if grad is None else self._plain_adam(parameter, grad)
        if adam is None:
            return False
        group, state = adam
        constrained = self.sae.cfg.normalize_decoder
        native.decoder_adam_step(
            parameter,
            cast(torch.Tensor, grad),
            state["exp_avg"],
            state["exp_avg_sq"],
            lr=float(group["lr"]),
            betas=group["betas"],
            eps=group["eps"],
            step=_next_step(state),
            project=constrained,
            renormalise=constrained,
        )
        _count_step(state)
        parameter.grad = None
        torch.autograd.graph.increment_version(parameter)  # written through its pointer
        return True

    def finish_backward(self) -> None:
        """Call after each ``backward()``: the order check runs on the first backward only."""
        self._checked = True

    def _check_order(self, parameter: torch.Tensor) -> None:
        """Every rank is about to reduce the same parameter (the same index among ``parameters``), else a RuntimeError
        on every rank (the ranks all see the same reduced values, so they all stop)."""
        index = self._index[id(parameter)]
        seen = torch.tensor([index, -index], dtype=torch.float64, device=parameter.device)
        distributed.all_reduce_(seen, "max")
        if int(seen[0]) != index or int(seen[1]) != -index:
            raise RuntimeError(
                f"Data-parallel training: the ranks' backward passes reached different parameters (this rank "
                f"#{index}, others up to #{int(seen[0])}); every rank must run the same loss terms."
            )

    def remove(self) -> None:
        """Detach the hooks; the parameters go back to ordinary gradients."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._defer_encoder:
            if receiver_for(self.sae.W_enc) == self._receive:
                defer_encoder_gradient(self.sae.W_enc, None)
            forget_center_product(self.sae.W_enc)
            self._defer_encoder = False


def _graph_task() -> int | None:
    """The running backward's id (torch's private ``_current_graph_task_id``; None where torch lacks it)."""
    current = getattr(torch._C, "_current_graph_task_id", None)
    return int(current()) if current is not None else None


def _added_up(grad: torch.Tensor | None, gradients: list[SparseEncoderGradient]) -> torch.Tensor | None:
    """``grad`` (None: zero) plus each of ``gradients`` materialised, added in place."""
    for gradient in gradients:
        grad = gradient.materialise() if grad is None else grad.add_(gradient.materialise())
    return grad


def _next_step(state: dict) -> int:
    """The number of the step about to be taken (Adam's count, as ``torch.optim.Adam`` keeps it, plus one)."""
    return int(state["step"]) + 1


def _count_step(state: dict) -> None:
    """Advance Adam's step count, once the step was taken."""
    if isinstance(state["step"], torch.Tensor):
        state["step"].add_(1)
    else:
        state["step"] += 1
