"""The k largest entries per row (textsae.sae.selection.top_k and its native kernel): torch.topk's choice on any row,
ties to the lower column, NaN rows left to torch, gradients through the values, and the same codes in training."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import sae_config
from textsae import native
from textsae.sae import build_sae, selection

pytestmark = pytest.mark.usefixtures("native_kernels")


def _same_choice(x: torch.Tensor, k: int) -> None:
    values, indices = native.topk(x, k)  # type: ignore[misc]
    reference = x.topk(k, dim=1).indices.sort(dim=1).values
    assert torch.equal(indices, reference)  # unsorted: each row in column order
    assert torch.equal(values, x.gather(1, indices))
    sorted_values, sorted_indices = native.topk(x, k, sorted=True)  # type: ignore[misc]
    assert torch.equal(sorted_values, x.topk(k, dim=1).values)
    assert torch.equal(sorted_indices.sort(dim=1).values, reference)


@pytest.mark.parametrize(
    ("n_rows", "n_cols", "k"),
    [(64, 4096, 32), (7, 1000, 1), (5, 37, 37), (9, 100, 13), (3, 9, 4), (1, 16385, 64), (4, 2000, 100)],
    ids=[
        "sae_shape",
        "k_1",
        "k_all",
        "uneven_groups",
        "shorter_than_a_vector",
        "long_row",
        "sorted_outside_the_kernel",
    ],
)
def test_native_topk_picks_what_torch_picks(n_rows: int, n_cols: int, k: int) -> None:
    x = torch.randn(n_rows, n_cols, generator=torch.Generator().manual_seed(n_cols))
    _same_choice(x, k)
    _same_choice(torch.sort(x, dim=1).values, k)  # ascending: every later entry beats the bound so far
    _same_choice(-x.abs() - 1.0, k)  # all negative


def test_native_topk_reads_strided_rows_and_keeps_the_lower_column_among_ties() -> None:
    base = torch.randn(6, 50, generator=torch.Generator().manual_seed(1))
    _same_choice(base[:, 3:], 5)  # rows 50 floats apart, starting at column 3
    ties = torch.zeros(2, 10)
    ties[0, 7] = 1.0
    ties[1, 4] = -0.0  # -0 equals +0
    values, indices = native.topk(ties, 3)  # type: ignore[misc]
    assert indices.tolist() == [[0, 1, 7], [0, 1, 2]]
    values, indices = native.topk(ties, 3, sorted=True)  # type: ignore[misc]
    assert indices.tolist() == [[7, 0, 1], [0, 1, 2]] and values[0].tolist() == [1.0, 0.0, 0.0]
    assert native.topk(torch.full((3, 8), float("-inf")), 2)[1].tolist() == [[0, 1]] * 3  # type: ignore[index]


def test_a_nan_row_is_left_to_torch_and_the_values_carry_the_gradient() -> None:
    x = torch.randn(4, 300, generator=torch.Generator().manual_seed(2))
    x[2, 150] = float("nan")
    assert native.topk(x, 8) is None
    values, indices = selection.top_k(x, 8, sorted=True)
    expected = x.topk(8, dim=1)  # NaN first, as torch orders it
    assert torch.equal(indices, expected.indices)
    torch.testing.assert_close(values, expected.values, rtol=0, atol=0, equal_nan=True)

    x = torch.randn(4, 300, generator=torch.Generator().manual_seed(3), requires_grad=True)
    values, indices = selection.top_k(x, 8)
    values.square().sum().backward()
    assert x.grad is not None
    expected = torch.zeros_like(x).scatter(1, indices, 2 * values.detach())
    assert torch.equal(x.grad, expected)


def test_native_topk_refuses_what_it_does_not_serve() -> None:
    assert not native.topk_applies(torch.randn(3, 8, dtype=torch.float64), 2)
    assert not native.topk_applies(torch.randn(3, 8), 9) and not native.topk_applies(torch.randn(3, 8), 0)
    assert not native.topk_applies(torch.randn(8, 3).T, 2)  # columns not contiguous
    assert not native.topk_applies(torch.randn(2, 3, 8), 2)
    with pytest.raises(ValueError, match="does not serve"):
        native.topk(torch.randn(3, 8, dtype=torch.float64), 2)
    x = torch.randn(5, 64, dtype=torch.float64)
    assert torch.equal(selection.top_k(x, 3, sorted=True)[0], x.topk(3, dim=1).values)  # other dtypes: torch's


def test_a_topk_sae_trains_the_same_with_the_native_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same active latents and, up to the order the decoder sums them in, the same loss and gradients."""
    x = torch.randn(32, 48, generator=torch.Generator().manual_seed(6))
    picked: list[int] = []
    kernel = native.topk
    monkeypatch.setattr(native, "topk", lambda x, k, **kwargs: picked.append(k) or kernel(x, k, **kwargs))

    def step() -> tuple[torch.Tensor, float, dict[str, torch.Tensor]]:
        torch.manual_seed(0)
        sae = build_sae(sae_config(n_latents=256, k=8, input_scaling="none"), 48).train()
        out = sae(x)
        loss = sae.loss(out, dead_mask=torch.arange(256) % 3 == 0).total  # AuxK selects too
        loss.backward()
        chosen = out.active.indices.view(32, -1).sort(dim=1).values
        return chosen, float(loss.detach()), {name: p.grad.clone() for name, p in sae.named_parameters()}

    native_chosen, native_loss, native_grads = step()
    assert len(picked) == 2 and picked[0] == 8  # TopK's choice and AuxK's both went through the kernel
    monkeypatch.setattr(native, "topk_applies", lambda *args: False)
    torch_chosen, torch_loss, torch_grads = step()
    assert torch.equal(native_chosen, torch_chosen)
    assert native_loss == pytest.approx(torch_loss, rel=1e-6)
    for name, value in native_grads.items():
        torch.testing.assert_close(value, torch_grads[name], rtol=1e-5, atol=1e-6, msg=name)


def test_large_k_goes_to_torch() -> None:
    assert selection.native_pays(4096, 512) and not selection.native_pays(4096, 1024)
    assert selection.native_pays(4096, 256, sorted=True) and not selection.native_pays(4096, 512, sorted=True)
    x = torch.randn(3, 40, generator=torch.Generator().manual_seed(7))
    x[0, :] = 1.0  # all tied: torch keeps other columns than the kernel would
    assert torch.equal(selection.top_k(x, 10)[1], x.topk(10, dim=1, sorted=False).indices)
