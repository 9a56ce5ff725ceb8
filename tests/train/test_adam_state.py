"""The trainer makes Adam's state at setup; the updates are those of Adam's own lazily made state, bit for bit."""

from __future__ import annotations

import pytest
import torch

from textsae.train.trainer import _allocate_adam_state


@pytest.mark.parametrize("fused", [True, None], ids=["fused", "foreach"])
def test_state_made_up_front_gives_the_same_updates(fused: bool | None) -> None:
    def train(up_front: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
        torch.manual_seed(0)
        weight, bias = torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))
        optimizer = torch.optim.Adam([weight, bias], lr=1e-2, fused=fused)
        if up_front:
            _allocate_adam_state(optimizer)
            assert all(float(optimizer.state[p]["exp_avg_sq"].abs().sum()) == 0 for p in (weight, bias))
        for _ in range(3):
            optimizer.zero_grad()
            ((weight.sum(dim=0) + bias) ** 2).sum().backward()
            optimizer.step()
        return weight.detach().clone(), bias.detach().clone(), float(optimizer.state[weight]["step"])

    lazy, up_front = train(False), train(True)
    assert torch.equal(lazy[0], up_front[0]) and torch.equal(lazy[1], up_front[1])
    assert lazy[2] == up_front[2] == 3.0
