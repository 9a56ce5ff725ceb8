"""The registries behind the fused encoder step: who receives W_enc's factored gradient, and the remembered c·W_enc
(used once, and never after the weight or the centre changed)."""

from __future__ import annotations

import gc

import torch

from textsae.sae import deferred_gradient as deferred


class _Owner:
    def __init__(self) -> None:
        self.received: list[object] = []

    def receive(self, gradient: object) -> None:
        self.received.append(gradient)


def test_a_receiver_is_found_for_its_weight_only_and_kept_alive_by_nobody() -> None:
    weight, other = torch.zeros(3, 2), torch.zeros(3, 2)
    owner = _Owner()
    deferred.defer_encoder_gradient(weight, owner.receive)
    found = deferred.receiver_for(weight)
    assert found is not None and deferred.receiver_for(other) is None
    found("factors")  # type: ignore[arg-type]
    assert owner.received == ["factors"]
    del found, owner
    gc.collect()
    assert deferred.receiver_for(weight) is None  # the owner is gone: gradients go to .grad again
    owner = _Owner()
    deferred.defer_encoder_gradient(weight, owner.receive)
    deferred.defer_encoder_gradient(weight, None)
    assert deferred.receiver_for(weight) is None


def test_the_remembered_center_product_is_used_once_and_never_after_an_in_place_change() -> None:
    weight, center = torch.randn(4, 3), torch.randn(4)
    product = center @ weight
    deferred.remember_center_product(weight, center, product)
    assert deferred.take_center_product(weight, center) is product
    assert deferred.take_center_product(weight, center) is None  # once only
    deferred.remember_center_product(weight, center, product)
    assert deferred.take_center_product(weight, center.clone()) is None  # another centre
    for changed in (weight, center):
        deferred.remember_center_product(weight, center, product)
        changed.add_(1.0)
        assert deferred.take_center_product(weight, center) is None
    deferred.remember_center_product(weight, center, product)
    deferred.forget_center_product(weight)
    assert deferred.take_center_product(weight, center) is None


def test_a_replaced_or_moved_weight_and_a_view_of_the_centre() -> None:
    weight = torch.nn.Parameter(torch.randn(4, 3))
    center = torch.nn.Parameter(torch.randn(4))
    product = center.detach() @ weight.detach()
    deferred.remember_center_product(weight, center, product)
    assert deferred.take_center_product(weight, center.view_as(center)) is product  # the same memory: the same values
    for replace in (lambda: weight.data.clone(), lambda: weight.data.double()):  # as Module.to() or .double() do
        deferred.remember_center_product(weight, center, product)
        weight.data = replace()
        assert deferred.take_center_product(weight, center) is None
