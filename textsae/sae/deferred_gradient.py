"""The sparse-input encoder's weight gradient handed to the optimiser step in factored form, never stored.

With TF-IDF input the encoder's weight gradient is ∂W_enc = xᵀG − c ⊗ Σ_b G_b: a dense ``(d_in, n_latents)`` tensor
made of a sparse product and a rank-one term. Written out by backward and read back by Adam it costs two passes over
weight-sized memory a step; the Adam step itself and the next forward's c·W_enc cost two more. A training loop that
steps inside backward (:class:`~textsae.train.step_in_backward.StepInBackward`) can instead ask for the factors
(:func:`defer_encoder_gradient`): the encoder's backward then passes them to a receiver and returns no gradient for
W_enc, and the receiver runs one native pass per row that forms the gradient row in cache, takes the Adam step and sums
c·W_enc for the next forward (:func:`textsae.native.encoder_adam_step`, :func:`remember_center_product`).

Only the encoder's backward through the kept latents of sparse input on CPU defers
(:func:`~textsae.sae.encoder.gathered_pre_activations`, where the native kernels apply); every other contribution to
W_enc's gradient reaches ``.grad`` as usual, and the receiver adds the two.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable

import torch
from torch import Tensor

from textsae import native

__all__ = [
    "SparseEncoderGradient",
    "defer_encoder_gradient",
    "forget_center_product",
    "receiver_for",
    "remember_center_product",
    "take_center_product",
    "will_accumulate",
]


@dataclasses.dataclass(frozen=True)
class SparseEncoderGradient:
    """∂W_enc = u ⊗ r + xᵀG ``(n_rows, n_cols)`` in factors: x as CSR rows (``offsets``, ``terms``, ``values``) over
    the ``n_rows`` terms, G by ``indices`` and ``grad_values`` ``(B, S)`` (each row's kept latents and their
    gradients), and the centring's rank-one term u = −c, r = Σ_b G_b."""

    offsets: Tensor
    terms: Tensor
    values: Tensor
    indices: Tensor
    grad_values: Tensor
    rank_rows: Tensor
    rank_columns: Tensor
    n_rows: int
    n_cols: int

    def materialise(self) -> Tensor:
        """The dense gradient ``(n_rows, n_cols)``."""
        return native.csr_t_sparse_mm(
            self.offsets,
            self.terms,
            self.values,
            self.n_rows,
            self.indices,
            self.grad_values,
            self.n_cols,
            rank_one=(self.rank_rows, self.rank_columns),
        )


Receiver = Callable[[SparseEncoderGradient], None]
_receivers: dict[int, tuple[weakref.ref[Tensor], weakref.WeakMethod | weakref.ref]] = {}


def defer_encoder_gradient(weight: Tensor, receiver: Receiver | None) -> None:
    """From now on, backward passes ``weight``'s sparse-input gradient through the kept latents to ``receiver`` (called
    during backward) instead of accumulating it into ``weight.grad``; None stops that. Neither is kept alive by this:
    once the weight or the receiver's owner is gone, the gradient goes to ``.grad`` again."""
    _prune(_receivers)
    _receivers.pop(id(weight), None)
    if receiver is not None:
        method = getattr(receiver, "__self__", None) is not None
        _receivers[id(weight)] = (
            weakref.ref(weight),
            weakref.WeakMethod(receiver) if method else weakref.ref(receiver),
        )


def receiver_for(weight: Tensor) -> Receiver | None:
    """The receiver set for ``weight`` by :func:`defer_encoder_gradient`, if any (and still alive)."""
    entry = _receivers.get(id(weight))
    return entry[1]() if entry is not None and entry[0]() is weight else None


def will_accumulate(weight: Tensor) -> bool:
    """Inside backward: whether this backward accumulates into ``weight.grad`` (not an ``autograd.grad`` or a
    ``backward(inputs=...)`` that leaves it out). False where torch cannot say."""
    will_execute = getattr(torch._C, "_will_engine_execute_node", None)  # private, as register_multi_grad_hook uses
    if will_execute is None:
        return False
    return bool(will_execute(torch.autograd.graph.get_gradient_edge(weight).node))


def _prune(table: dict) -> None:
    """Drop the entries whose weight is gone (an id can be reused by a later tensor)."""
    for key in [key for key, entry in table.items() if entry[0]() is None]:
        del table[key]


_center_products: dict[int, tuple[weakref.ref[Tensor], tuple, weakref.ref[Tensor], tuple, Tensor]] = {}


def _state(tensor: Tensor) -> tuple:
    """What must not change for a remembered product to hold: the memory, its layout and the in-place writes through
    autograd (views share their base's version counter)."""
    return tensor.data_ptr(), tensor.dtype, tensor.device, tuple(tensor.shape), tuple(tensor.stride()), tensor._version


def remember_center_product(weight: Tensor, center: Tensor, product: Tensor) -> None:
    """Keep ``center · weight`` ``(n_latents,)`` for the next forward (:func:`take_center_product`)."""
    _prune(_center_products)
    _center_products[id(weight)] = (weakref.ref(weight), _state(weight), weakref.ref(center), _state(center), product)


def take_center_product(weight: Tensor, center: Tensor) -> Tensor | None:
    """``center · weight`` as remembered, if ``weight`` is the same tensor, ``center`` the same values (the same tensor
    or a view of the same memory, alive), and neither was replaced, moved or changed in place through autograd since;
    either way it is forgotten.

    Once only, and meant for the forward that follows the step that remembered it: an in-place write through
    ``.data`` changes no version counter, so nothing here can see one.
    """
    entry = _center_products.pop(id(weight), None)
    if entry is None:
        return None
    weight_ref, weight_state, center_ref, center_state, product = entry
    same_weight = weight_ref() is weight and _state(weight) == weight_state
    if same_weight and center_ref() is not None and _state(center) == center_state:
        return product
    return None


def forget_center_product(weight: Tensor) -> None:
    """Drop what :func:`remember_center_product` kept for ``weight``."""
    _center_products.pop(id(weight), None)
