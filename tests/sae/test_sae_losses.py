"""Loss helpers against their formulas, on dense and sparse CSR inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from textsae.sae import losses


def _x_dense() -> torch.Tensor:
    # (4, 5), with an all-zero row
    return torch.tensor(
        [
            [1.0, 0.0, 0.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.5, 0.0, 3.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 1.0],
        ]
    )


@pytest.mark.parametrize("sparse", [False, True])
def test_squared_error_per_sample_matches_dense_formula(sparse: bool) -> None:
    x = _x_dense()
    y = torch.arange(20.0).reshape(4, 5) / 10
    got = losses.squared_error_per_sample(x.to_sparse_csr() if sparse else x, y)
    torch.testing.assert_close(got, ((x - y) ** 2).sum(dim=1))


def test_squared_error_sparse_gradient_equals_dense() -> None:
    x = _x_dense()
    y_dense = torch.randn(4, 5, requires_grad=True)
    y_sparse = y_dense.detach().clone().requires_grad_(True)
    losses.squared_error_per_sample(x, y_dense).sum().backward()
    losses.squared_error_per_sample(x.to_sparse_csr(), y_sparse).sum().backward()
    torch.testing.assert_close(y_sparse.grad, y_dense.grad)
    torch.testing.assert_close(y_dense.grad, 2 * (y_dense.detach() - x))


@pytest.mark.parametrize("sparse", [False, True])
def test_squared_error_survives_a_retained_graph_and_leaves_y_alone(sparse: bool) -> None:
    x = _x_dense()
    y = torch.randn(4, 5, requires_grad=True)
    before = y.detach().clone()
    total = losses.squared_error_per_sample(x.to_sparse_csr() if sparse else x, y).sum()
    first = torch.autograd.grad(total, y, retain_graph=True)[0]
    second = torch.autograd.grad(total, y)[0]  # the saved residual was not scaled in place by the first backward
    torch.testing.assert_close(first, 2 * (before - x))
    torch.testing.assert_close(second, first)
    assert torch.equal(y.detach(), before)


def test_squared_error_with_int32_csr_indices() -> None:
    x = _x_dense()
    csr = x.to_sparse_csr()
    x32 = torch.sparse_csr_tensor(
        csr.crow_indices().int(), csr.col_indices().int(), csr.values(), size=x.shape, check_invariants=True
    )
    y = torch.randn(4, 5, requires_grad=True)
    got = losses.squared_error_per_sample(x32, y)
    torch.testing.assert_close(got, ((x - y.detach()) ** 2).sum(dim=1))
    got.sum().backward()
    torch.testing.assert_close(y.grad, 2 * (y.detach() - x))


@pytest.mark.parametrize("sparse", [False, True])
def test_squared_error_in_higher_precision_of_either_operand(sparse: bool) -> None:
    x = _x_dense().double()
    y = (torch.arange(20.0).reshape(4, 5) / 7).to(torch.bfloat16).requires_grad_(True)
    got = losses.squared_error_per_sample(x.to_sparse_csr() if sparse else x, y)
    assert got.dtype == torch.float64  # a float64 target is not rounded to float32 before subtracting
    torch.testing.assert_close(got, ((x - y.detach().double()) ** 2).sum(dim=1))
    got.sum().backward()
    assert y.grad is not None and y.grad.dtype == torch.bfloat16  # the gradient comes back in y's dtype


@pytest.mark.parametrize("sparse", [False, True])
def test_squared_error_with_a_trained_target_sends_it_a_gradient(sparse: bool) -> None:
    x = (_x_dense().to_sparse_csr() if sparse else _x_dense()).requires_grad_(True)
    y = torch.randn(4, 5, requires_grad=True)
    losses.squared_error_per_sample(x, y).sum().backward()
    assert x.grad is not None and y.grad is not None
    x_grad = x.grad.to_dense() if sparse else x.grad
    expected = -y.grad * (_x_dense() != 0) if sparse else -y.grad  # a CSR target's gradient lives on its non-zeros
    torch.testing.assert_close(x_grad, expected)


@pytest.mark.parametrize("sparse", [False, True])
def test_bce_per_sample_matches_torch(sparse: bool) -> None:
    x = (_x_dense() > 0).float()
    logits = torch.randn(4, 5)
    got = losses.bce_with_logits_per_sample(x.to_sparse_csr() if sparse else x, logits)
    torch.testing.assert_close(got, F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1))


@pytest.mark.parametrize("sparse", [False, True])
def test_fvu_perfect_is_zero_and_mean_is_one(sparse: bool) -> None:
    x = _x_dense()
    xs = x.to_sparse_csr() if sparse else x
    assert losses.fvu(xs, x).item() == 0.0
    mean = x.mean(dim=0, keepdim=True).expand_as(x)
    torch.testing.assert_close(losses.fvu(xs, mean), torch.tensor(1.0), rtol=1e-6, atol=1e-6)
    assert not losses.fvu(xs, mean.clone().requires_grad_(True)).requires_grad


def test_l1_penalty_by_hand() -> None:
    codes = torch.tensor([[1.0, 0.0, 3.0], [0.5, 0.0, 0.0]])
    assert losses.l1_penalty(codes).item() == pytest.approx((4.0 + 0.5) / 2)


def test_kl_penalty_by_hand() -> None:
    rho = 0.05
    # KL(0.05 ‖ 0.5) = 0.05 ln 0.1 + 0.95 ln 1.9 = 0.494631...
    assert losses.kl_sparsity_penalty(torch.tensor([0.5]), rho).item() == pytest.approx(0.4946317, rel=1e-6)
    assert losses.kl_sparsity_penalty(torch.tensor([rho, rho]), rho).item() == pytest.approx(0.0, abs=1e-7)
    # ρ̂ = 0 and ρ̂ = 1 are clamped to 1e-6 from the edge: finite penalties, each by hand, and a finite gradient
    eps = 1e-6
    at_zero = rho * math.log(rho / eps) + (1 - rho) * math.log((1 - rho) / (1 - eps))  # 0.4923
    at_one = rho * math.log(rho / (1 - eps)) + (1 - rho) * math.log((1 - rho) / eps)  # 12.93
    rho_hat = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)  # float32 cannot hold 1 - 1e-6
    value = losses.kl_sparsity_penalty(rho_hat, rho)
    value.backward()
    assert value.item() == pytest.approx(at_zero + at_one, rel=1e-5)
    assert losses.kl_sparsity_penalty(torch.tensor([0.0]), rho).item() == pytest.approx(at_zero, rel=1e-5)
    assert torch.isfinite(rho_hat.grad).all()
