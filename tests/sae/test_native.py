"""textsae's native CPU kernel (sparse rows × dense matrix): embedding_bag's values and gradients for uneven rows,
column blocks and thread splits; clear errors on bad input; a cached build; torch's kernels when it cannot be built."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import sae_config
from textsae import native
from textsae.sae import build_sae, cache_blocks, decoder

N_ROWS, D = 40, 1000  # d not a multiple of the kernel's 32- and 64-column chunks


def _entries(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of 5, 0, 3, 7 and 1 entries; the third row names one weight row twice (embedding_bag adds both)."""
    gen = torch.Generator().manual_seed(seed)
    sizes = [5, 0, 3, 7, 1]
    parts = [torch.randperm(N_ROWS, generator=gen)[:n] for n in sizes]
    parts[2][1] = parts[2][0]
    indices = torch.cat(parts)
    values = torch.rand(indices.numel(), generator=gen) - 0.3
    offsets = torch.tensor([0, *torch.tensor(sizes).cumsum(0).tolist()])
    return indices, values, offsets


def _reference(indices, values, offsets, weight, grad):  # type: ignore[no-untyped-def]
    """embedding_bag's output and gradients, in float64."""
    weight = weight.double().requires_grad_()
    values = values.double().requires_grad_()
    out = F.embedding_bag(indices, weight, offsets, mode="sum", per_sample_weights=values, include_last_offset=True)
    out.backward(grad.double())
    return out.detach(), values.grad, weight.grad


@pytest.fixture
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("threads", [1, 3], indirect=True, ids=["1_thread", "3_threads"])
@pytest.mark.parametrize("slab_bytes", [4 << 20, 5 * 96 * 4], ids=["one_block", "64_column_blocks"])
def test_csr_mm_and_its_gradients_equal_embedding_bag(
    monkeypatch: pytest.MonkeyPatch, threads: int, slab_bytes: int
) -> None:
    monkeypatch.setattr(native, "SLAB_BYTES", slab_bytes)
    indices, values, offsets = _entries()
    weight = torch.randn(N_ROWS, D, generator=torch.Generator().manual_seed(1))
    grad = torch.randn(offsets.numel() - 1, D, generator=torch.Generator().manual_seed(2))
    out = native.csr_mm(offsets, indices, values, weight)
    grad_values, grad_weight = native.csr_mm_backward(offsets, indices, values, weight, grad)
    expected = _reference(indices, values, offsets, weight, grad)
    for name, ours, reference in zip(
        ("output", "values grad", "weight grad"), (out, grad_values, grad_weight), expected
    ):
        assert ours is not None
        torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-5, msg=name)
    assert torch.count_nonzero(out[1]) == 0  # the empty row
    assert torch.equal(native.csr_mm(offsets, indices, values, weight), out)  # the same bits again


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("n_rows", [N_ROWS, 2], ids=["40_rows", "fewer_rows_than_threads"])
def test_csr_mm_backward_gives_the_same_bits_on_any_thread_count(n_rows: int) -> None:
    """Threads take whole weight rows: every gradient row and every entry's dot product is summed in one thread, in
    one order, however many threads there are (also with more threads than rows, and rows no entry reads)."""
    indices, values, offsets = _entries()
    indices = indices % n_rows
    weight = torch.randn(n_rows, D, generator=torch.Generator().manual_seed(1))
    grad = torch.randn(offsets.numel() - 1, D, generator=torch.Generator().manual_seed(2))
    rank_one = (torch.randn(n_rows), torch.randn(D))
    before = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2, 3, 7):
            torch.set_num_threads(count)
            results.append(native.csr_mm_backward(offsets, indices, values, weight, grad, rank_one=rank_one))
    finally:
        torch.set_num_threads(before)
    for grad_values, grad_weight in results[1:]:
        assert grad_values is not None and grad_weight is not None
        assert torch.equal(grad_values, results[0][0]) and torch.equal(grad_weight, results[0][1])
    expected_weight = _reference(indices, values, offsets, weight, grad)[2] + torch.outer(*rank_one).double()
    torch.testing.assert_close(results[0][1].double(), expected_weight, rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("native_kernels")
def test_scratch_memory_kept_from_a_larger_call_is_zeroed_before_reuse() -> None:
    """The kernels keep freed scratch blocks for the next call; a block handed out again starts at zero like a fresh
    one (the entry counts of the grouping add onto it)."""
    gen = torch.Generator().manual_seed(5)
    for n_rows, batch in ((4000, 300), (40, 5), (4000, 300), (41, 6)):
        indices = torch.randint(0, n_rows, (batch * 3,), generator=gen)
        values = torch.randn(batch * 3, generator=gen)
        offsets = torch.arange(0, batch * 3 + 1, 3)
        weight = torch.randn(n_rows, 24, generator=gen)
        grad = torch.randn(batch, 24, generator=gen)
        expected = _reference(indices, values, offsets, weight, grad)
        ours = (
            native.csr_mm(offsets, indices, values, weight),
            *native.csr_mm_backward(offsets, indices, values, weight, grad),
        )
        for name, got, reference in zip(("output", "values grad", "weight grad"), ours, expected, strict=True):
            assert got is not None
            torch.testing.assert_close(got.double(), reference, rtol=1e-5, atol=1e-5, msg=f"{n_rows} rows: {name}")


@pytest.mark.usefixtures("native_kernels")
def test_a_cache_resident_decoder_takes_embedding_bags_forward_and_the_native_backward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    indices, values, offsets = _entries()
    weight = torch.randn(N_ROWS, D, generator=torch.Generator().manual_seed(1))  # 160 kB: stays in cache
    grad = torch.randn(offsets.numel() - 1, D, generator=torch.Generator().manual_seed(2))
    backward_calls: list[int] = []
    real_backward = native.csr_mm_backward
    monkeypatch.setattr(native, "csr_mm_backward", lambda *a, **k: backward_calls.append(1) or real_backward(*a, **k))
    monkeypatch.setattr(native, "csr_mm", lambda *a, **k: pytest.fail("the native forward ran"))
    parameter, code_values = weight.clone().requires_grad_(), values.clone().requires_grad_()
    decoder.sparse_decode(indices, code_values, offsets, parameter).backward(grad)
    assert backward_calls == []  # 16 entries × 1,000: too little work for the native kernel's start-up
    monkeypatch.setattr(decoder, "CACHED_BACKWARD_MIN_WORK", indices.numel() * D)
    parameter.grad = code_values.grad = None
    out = decoder.sparse_decode(indices, code_values, offsets, parameter)
    out.backward(grad)
    assert backward_calls == [1]
    expected = _reference(indices, values, offsets, weight, grad)
    for name, ours, reference in zip(
        ("output", "values grad", "weight grad"), (out, code_values.grad, parameter.grad), expected
    ):
        assert ours is not None
        torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-5, msg=name)
    code_values.grad = None
    decoder.sparse_decode(indices, code_values, offsets, weight).backward(grad)  # W_dec without a gradient
    torch.testing.assert_close(code_values.grad.double(), expected[1], rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("threads", [1, 3], indirect=True, ids=["1_thread", "3_threads"])
@pytest.mark.parametrize("d", [D, D + 1], ids=["rows_32_byte_aligned", "rows_unaligned"])
def test_panel_mm_equals_embedding_bag(threads: int, d: int) -> None:
    indices, values, offsets = _entries()
    weight = torch.randn(N_ROWS, d, generator=torch.Generator().manual_seed(1))
    out = native.panel_mm(offsets, indices, values, weight)
    expected, _, _ = _reference(indices, values, offsets, weight, torch.zeros(offsets.numel() - 1, d))
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)  # the last panel is 40 columns wide
    assert torch.count_nonzero(out[1]) == 0  # the empty row
    assert torch.equal(native.panel_mm(offsets, indices, values, weight), out)  # the same bits again
    grad = torch.randn(offsets.numel() - 1, d, generator=torch.Generator().manual_seed(2))
    _, reference_values, reference_weight = _reference(indices, values, offsets, weight, grad)
    grad_values, grad_weight = native.panel_mm_backward(offsets, indices, values, weight, grad)
    assert grad_values is not None and grad_weight is not None
    torch.testing.assert_close(grad_values.double(), reference_values, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_weight.double(), reference_weight, rtol=1e-5, atol=1e-5)
    u, r = torch.randn(N_ROWS), torch.randn(d)
    only_values, no_weight = native.panel_mm_backward(offsets, indices, values, weight, grad, need_weight=False)
    no_values, with_rank_one = native.panel_mm_backward(
        offsets, indices, values, weight, grad, need_values=False, rank_one=(u, r)
    )
    assert no_weight is None and no_values is None and only_values is not None and with_rank_one is not None
    assert torch.equal(only_values, grad_values)
    expected_rank_one = reference_weight + torch.outer(u, r).double()  # rows no entry reads included
    torch.testing.assert_close(with_rank_one.double(), expected_rank_one, rtol=1e-5, atol=1e-5)
    with pytest.raises(native.NativeError, match=r"grad_out must be \(5, "):
        native.panel_mm_backward(offsets, indices, values, weight, grad[:, :-1])
    with pytest.raises(native.NativeError, match=r"up to 4,096 rows\. Got 4,097"):
        native.panel_mm(offsets, indices, values, torch.zeros(native.PANEL_ROWS + 1, 8))
    with pytest.raises(native.NativeError, match=r"index is outside its range"):
        native.panel_mm(offsets, torch.where(indices == indices[3], N_ROWS, indices), values, weight)


@pytest.mark.usefixtures("native_kernels")
def test_a_large_decoder_takes_panels_column_blocks_or_row_gathers_by_its_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 1 << 10)  # the 160 kB weight no longer "stays in cache"
    kernels: list[str] = []
    for name in ("csr_mm", "panel_mm", "csr_mm_backward", "panel_mm_backward"):
        real = getattr(native, name)
        monkeypatch.setattr(
            native, name, lambda *a, _real=real, _name=name, **k: kernels.append(_name) or _real(*a, **k)
        )
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(N_ROWS, D, generator=gen)
    for batch, row_gather_max_columns, expected_kernels in (  # 8 entries a latent, then fewer
        (40, D, ["panel_mm", "panel_mm_backward"]),
        (39, D - 1, ["csr_mm", "csr_mm_backward"]),  # long rows: column blocks both ways
        (39, D, ["csr_mm_backward"]),  # short rows: embedding_bag's forward
    ):
        monkeypatch.setattr(decoder, "ROW_GATHER_MAX_COLUMNS", row_gather_max_columns)
        indices = torch.stack([torch.randperm(N_ROWS, generator=gen)[:8] for _ in range(batch)]).reshape(-1)
        values, offsets = torch.rand(indices.numel(), generator=gen), torch.arange(0, indices.numel() + 1, 8)
        grad = torch.randn(batch, D, generator=gen)
        parameter, code_values = weight.clone().requires_grad_(), values.clone().requires_grad_()
        kernels.clear()
        out = decoder.sparse_decode(indices, code_values, offsets, parameter)
        out.backward(grad)
        assert kernels == expected_kernels
        expected = _reference(indices, values, offsets, weight, grad)
        for name, ours, reference in zip(
            ("output", "values grad", "weight grad"), (out, code_values.grad, parameter.grad), expected
        ):
            assert ours is not None
            torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.usefixtures("native_kernels")
def test_backward_computes_only_what_is_asked_and_starts_from_the_rank_one_term() -> None:
    indices, values, offsets = _entries()
    weight = torch.randn(N_ROWS, D, generator=torch.Generator().manual_seed(1))
    grad = torch.randn(offsets.numel() - 1, D, generator=torch.Generator().manual_seed(2))
    u, r = torch.randn(N_ROWS), torch.randn(D)
    only_values, no_weight = native.csr_mm_backward(offsets, indices, values, weight, grad, need_weight=False)
    no_values, with_rank_one = native.csr_mm_backward(
        offsets, indices, values, weight, grad, need_values=False, rank_one=(u, r)
    )
    assert no_weight is None and no_values is None
    _, reference_values, reference_weight = _reference(indices, values, offsets, weight, grad)
    torch.testing.assert_close(only_values.double(), reference_values, rtol=1e-5, atol=1e-5)
    assert with_rank_one is not None
    expected = reference_weight + torch.outer(u, r).double()
    torch.testing.assert_close(with_rank_one.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("native_kernels")
def test_bad_input_is_refused_with_a_message() -> None:
    indices, values, offsets = _entries()
    weight = torch.randn(N_ROWS, D)
    with pytest.raises(native.NativeError, match=r"index is outside its range: \[0, weight rows\)"):
        native.csr_mm(offsets, torch.where(indices == indices[3], N_ROWS, indices), values, weight)
    with pytest.raises(native.NativeError, match="never decrease"):
        native.csr_mm(torch.tensor([0, 9, 4, 16, 16, 16]), indices, values, weight)
    with pytest.raises(native.NativeError, match="end at the number of entries"):
        native.csr_mm(offsets[:-1], indices, values, weight)
    with pytest.raises(native.NativeError, match=r"grad_out must be \(5, 1000\)"):
        native.csr_mm_backward(offsets, indices, values, weight, torch.zeros(5, D - 1))


def test_other_dtypes_and_devices_keep_torch_kernels() -> None:
    assert not native.applies(torch.zeros(2, 2, dtype=torch.float64))
    assert not native.applies(torch.zeros(2, 2), torch.zeros(2, dtype=torch.bfloat16))
    native.set_enabled(False)
    try:
        assert not native.applies(torch.zeros(2, 2)) and not native.available()
    finally:
        native.set_enabled(True)


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_a_sparse_input_sae_gets_the_same_loss_and_gradients_from_either_kernel(
    arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoder, AuxK residual, sparse-input encoder and its centred gradient (xᵀ·G through the kept entries): native
    against torch's kernels."""
    x = (torch.rand(16, D) * (torch.rand(16, D) < 0.05)).to_sparse_csr()
    dead = torch.zeros(N_ROWS, dtype=torch.bool)
    dead[::4] = True
    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 1024)  # W_enc and W_dec (160 kB) count as larger than the cache
    monkeypatch.setattr(decoder, "ROW_GATHER_MAX_COLUMNS", 0)  # and W_dec's rows as long: csr_mm's column blocks
    calls: list[str] = []
    for name in ("csr_mm", "csr_t_sparse_mm"):
        real = getattr(native, name)
        monkeypatch.setattr(
            native, name, lambda *a, _real=real, _name=name, **kw: calls.append(_name) or _real(*a, **kw)
        )

    def gradients() -> tuple[float, dict[str, torch.Tensor]]:
        torch.manual_seed(0)
        sae = build_sae(sae_config(arch, n_latents=N_ROWS, k=4, decoder_init="random"), D)
        sae.init_from_data(x.to_dense())
        sae.train()
        loss = sae.loss(sae(x), dead_mask=dead).total
        loss.backward()
        return float(loss.detach()), {name: p.grad.clone() for name, p in sae.named_parameters()}

    native_loss, native_grads = gradients()
    assert calls.count("csr_mm") >= 3  # encoder, decoder, AuxK residual
    assert ("csr_t_sparse_mm" in calls) == (arch == "topk")  # ∂W_enc through the kept entries (BatchTopK: dense G)
    native.set_enabled(False)
    try:
        torch_loss, torch_grads = gradients()
    finally:
        native.set_enabled(True)
    assert native_loss == pytest.approx(torch_loss, rel=1e-5)
    for name, grad in torch_grads.items():
        torch.testing.assert_close(native_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture
def fresh_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """An empty cache folder and no loaded library; the session's library is loaded again afterwards."""
    monkeypatch.setenv("TEXTSAE_NATIVE_CACHE", str(tmp_path / "cache"))
    native._library.cache_clear()
    yield tmp_path / "cache"
    native._library.cache_clear()


@pytest.mark.usefixtures("native_kernels")
def test_the_build_is_cached_per_source_compiler_and_cpu(fresh_build: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = native._build()
    assert first.parent == fresh_build and first.is_file()
    assert [p.name for p in fresh_build.iterdir()] == [first.name]  # no build scratch left behind

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again although the library was cached")

    monkeypatch.setattr(native.subprocess, "run", no_compiling)
    assert native._build() == first
    monkeypatch.setattr(native, "_cpu_fingerprint", lambda: "another CPU")
    with pytest.raises(AssertionError, match="compiled again"):
        native._build()


def test_without_a_compiler_torch_kernels_run_and_it_is_said_once(
    fresh_build: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # cc, gcc and clang are not found
    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 1024)  # a weight the native kernel would take
    indices, values, offsets = _entries()
    weight = torch.randn(N_ROWS, D)
    with caplog.at_level(logging.WARNING, logger="textsae"):
        assert not native.available()
        out = decoder.sparse_decode(indices, values, offsets, weight)
        decoder.sparse_decode(indices, values, offsets, weight)
    warnings = [r.getMessage() for r in caplog.records if "native CPU kernels" in r.getMessage()]
    assert len(warnings) == 1 and "no C compiler found" in warnings[0] and "TEXTSAE_NATIVE=0" in warnings[0]
    torch.testing.assert_close(out.double(), _reference(indices, values, offsets, weight, out)[0])
    with pytest.raises(RuntimeError, match="not available here"):
        native.csr_mm(offsets, indices, values, weight)


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("constrained", [True, False], ids=["unit_norm_rows", "free_rows"])
def test_the_fused_decoder_step_equals_projection_adam_and_renormalisation(
    monkeypatch: pytest.MonkeyPatch, constrained: bool
) -> None:
    """Three steps of a TopK SAE with its decoder stepped by the fused kernel, against torch's three passes."""
    from textsae.train.step_in_backward import StepInBackward

    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 1024)  # W_dec (160 kB) counts as larger than the cache
    x = torch.rand(16, D) * (torch.rand(16, D) < 0.05)
    fused: list[bool] = []

    def train(use_native: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        sae = build_sae(sae_config("topk", n_latents=N_ROWS, k=4, normalize_decoder=constrained), D)
        sae.init_from_data(x)
        sae.normalize_decoder_()
        sae.W_dec.data.mul_(1.5)  # rows off the unit sphere: the constraint has work to do
        optimizer = torch.optim.Adam(sae.parameters(), lr=1e-2, betas=(0.9, 0.99))
        stepper = StepInBackward(sae, optimizer, list(sae.parameters()))
        real = stepper._fused_decoder_step

        def fused_step(parameter: torch.Tensor) -> bool:
            ran = use_native and real(parameter)
            fused.append(ran)
            return ran

        monkeypatch.setattr(stepper, "_fused_decoder_step", fused_step)
        for _ in range(3):
            sae.loss(sae(x)).total.backward()
        state = optimizer.state[sae.W_dec]
        return {
            "W_dec": sae.W_dec.detach(),
            "exp_avg": state["exp_avg"],
            "exp_avg_sq": state["exp_avg_sq"],
            "step": state["step"],
            "W_enc": sae.W_enc.detach(),
        }

    ours, reference = train(True), train(False)
    assert fused[:3] == [False, True, True]  # Adam makes its state in the first step; the kernel takes the rest
    for name, expected in reference.items():
        torch.testing.assert_close(ours[name], expected, rtol=2e-4, atol=2e-6, msg=name)
    if constrained:
        torch.testing.assert_close(ours["W_dec"].norm(dim=1), torch.ones(N_ROWS))


def test_a_compiler_that_fails_leaves_no_scratch_and_is_said_once(
    fresh_build: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CC", "false")  # found on PATH, exits 1 for every build
    with caplog.at_level(logging.WARNING, logger="textsae"):
        assert not native.available() and not native.available()
    warnings = [r.getMessage() for r in caplog.records if "native CPU kernels" in r.getMessage()]
    assert len(warnings) == 1 and "failed: exit status 1" in warnings[0]
    left = [path.suffix for path in fresh_build.iterdir()]  # no scratch; a failed OpenMP build is remembered
    openmp_tried = torch.backends.openmp.is_available() and bool(native._openmp_runtimes())
    assert left == ([".failed"] if openmp_tried else [])


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("threads", [1, 3], indirect=True, ids=["1_thread", "3_threads"])
def test_csr_t_sparse_mm_equals_the_dense_product(threads: int) -> None:
    """xᵀ·G − u ⊗ r for G given as S entries per row, one latent repeated within a row (its values add)."""
    indices, values, offsets = _entries()  # 5 rows over N_ROWS terms
    n_cols = 70
    gen = torch.Generator().manual_seed(3)
    g_indices = torch.randint(0, n_cols, (5, 4), generator=gen)
    g_indices[0, 1] = g_indices[0, 0]
    g_values = torch.randn(5, 4, generator=gen)
    u, r = torch.randn(N_ROWS, generator=gen), torch.randn(n_cols, generator=gen)
    out = native.csr_t_sparse_mm(offsets, indices, values, N_ROWS, g_indices, g_values, n_cols, rank_one=(u, r))
    x = torch.zeros(5, N_ROWS, dtype=torch.float64)
    rows = torch.repeat_interleave(torch.arange(5), offsets.diff())
    x.index_put_((rows, indices), values.double(), accumulate=True)
    g = torch.zeros(5, n_cols, dtype=torch.float64).index_put_(
        (torch.arange(5).repeat_interleave(4), g_indices.reshape(-1)), g_values.reshape(-1).double(), accumulate=True
    )
    torch.testing.assert_close(out.double(), x.T @ g + torch.outer(u, r).double(), rtol=1e-5, atol=1e-5)
    plain = native.csr_t_sparse_mm(offsets, indices, values, N_ROWS, g_indices, g_values, n_cols)
    torch.testing.assert_close(plain.double(), x.T @ g, rtol=1e-5, atol=1e-5)
    with pytest.raises(native.NativeError, match=r"\[0, n_cols\) for G.s entries"):
        native.csr_t_sparse_mm(offsets, indices, values, N_ROWS, g_indices + n_cols, g_values, n_cols)


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("threads", [1, 3], indirect=True, ids=["1_thread", "3_threads"])
@pytest.mark.parametrize(
    "d", [40, 37, 136, 101], ids=["d_multiple_of_8", "d_odd", "panels_multiple_of_8", "panels_odd"]
)
def test_dense_t_sparse_mm_equals_the_dense_product(threads: int, d: int) -> None:
    """xᵀ·G − u ⊗ r for dense x, written in (d, n_cols) layout; 37 columns: a partial tile and a thread boundary; d
    over 64: several of the kernel's 64-column panels of x, the last one partial."""
    gen = torch.Generator().manual_seed(4)
    batch, n_cols, per_row = 9, 37, 4
    x = torch.randn(batch, d, generator=gen)
    g_indices = torch.randint(0, n_cols, (batch, per_row), generator=gen)
    g_indices[0, 1] = g_indices[0, 0]  # a repeated column: its values add
    g_values = torch.randn(batch, per_row, generator=gen)
    u, r = torch.randn(d, generator=gen), torch.randn(n_cols, generator=gen)
    g = torch.zeros(batch, n_cols, dtype=torch.float64).index_put_(
        (torch.arange(batch).repeat_interleave(per_row), g_indices.reshape(-1)),
        g_values.reshape(-1).double(),
        accumulate=True,
    )
    out = native.dense_t_sparse_mm(x, g_indices, g_values, n_cols, rank_one=(u, r))
    assert out.shape == (d, n_cols) and out.is_contiguous()
    torch.testing.assert_close(out.double(), x.double().T @ g + torch.outer(u, r).double(), rtol=1e-5, atol=1e-5)
    plain = native.dense_t_sparse_mm(x, g_indices, g_values, n_cols)
    torch.testing.assert_close(plain.double(), x.double().T @ g, rtol=1e-5, atol=1e-5)
    torch.set_num_threads(1)
    assert torch.equal(native.dense_t_sparse_mm(x, g_indices, g_values, n_cols, rank_one=(u, r)), out)  # same bits
    with pytest.raises(native.NativeError, match=r"\[0, n_cols\) for G.s entries"):
        native.dense_t_sparse_mm(x, g_indices + n_cols, g_values, n_cols)
    with pytest.raises(native.NativeError, match=r"g_indices, g_values both \(B, S\)"):
        native.dense_t_sparse_mm(x[:-1], g_indices, g_values, n_cols)


@pytest.mark.usefixtures("native_kernels")
def test_the_dense_input_encoder_gradient_is_the_same_through_the_native_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A TopK SAE's gradients on dense input equal those of the CSR product and transposing copy it replaces."""
    from textsae.sae import encoder

    sae = build_sae(sae_config(n_latents=64, k=8, input_scaling="none"), 48).train()
    x = torch.randn(20, 48, generator=torch.Generator().manual_seed(5))

    def gradients() -> dict[str, torch.Tensor]:
        sae.zero_grad(set_to_none=True)
        sae.loss(sae(x)).total.backward()
        return {name: p.grad.clone() for name, p in sae.named_parameters() if p.grad is not None}

    through_native = gradients()
    monkeypatch.setattr(encoder, "native_dense_gradient", lambda *args: False)
    through_torch = gradients()
    assert through_native.keys() == through_torch.keys()
    for name, value in through_native.items():
        torch.testing.assert_close(value, through_torch[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.usefixtures("native_kernels")
def test_weight_gradients_reuse_one_kept_block_once_it_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step's two weight-sized gradients share one block (never one still in use), and autograd adopts it as .grad."""
    monkeypatch.setattr(native, "_kept", [])
    indices, values, offsets = _entries()
    weight = torch.randn(N_ROWS, D)
    grad = torch.randn(offsets.numel() - 1, D)
    _, first = native.csr_mm_backward(offsets, indices, values, weight, grad, need_values=False)
    assert first is not None
    _, busy = native.csr_mm_backward(offsets, indices, values, weight, grad, need_values=False)
    assert busy is not None and busy.data_ptr() != first.data_ptr()  # the kept block is still in use
    expected, pointer = first.clone(), first.data_ptr()
    del first, busy
    g_indices = torch.randint(0, N_ROWS, (5, 3))
    transposed = native.csr_t_sparse_mm(offsets, indices, values, D, g_indices, torch.randn(5, 3), N_ROWS)
    assert transposed.data_ptr() == pointer and transposed.shape == (D, N_ROWS) and transposed.is_contiguous()
    del transposed
    parameter = weight.clone().requires_grad_()
    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 1024)
    decoder.sparse_decode(indices, values, offsets, parameter).backward(grad)
    assert parameter.grad is not None and parameter.grad.data_ptr() == pointer  # adopted, not copied
    torch.testing.assert_close(parameter.grad, expected)
    held = parameter.grad.untyped_storage()  # the storage object alone, no tensor: still in use
    parameter.grad = None
    _, again = native.csr_mm_backward(offsets, indices, values, weight, grad, need_values=False)
    assert again is not None and again.data_ptr() != pointer
    del held


def test_cc_may_carry_arguments_and_a_cc_that_names_nothing_is_said(
    fresh_build: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CC", "env LC_ALL=C cc")
    assert native._compiler()[1:] == ["LC_ALL=C", "cc"]
    monkeypatch.setenv("CC", "no-such-compiler -O2")
    with caplog.at_level(logging.WARNING, logger="textsae"):
        assert not native.available()
    assert any("CC='no-such-compiler -O2' names no program" in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("native_kernels")
def test_a_cached_library_others_can_write_is_not_loaded(fresh_build: Path) -> None:
    built = native._build()
    built.chmod(0o777)
    with pytest.raises(OSError, match="writable by others"):
        native._build()


def test_the_environment_switch_wins_over_the_runtime_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_allowed_by_environment", False)
    native.set_enabled(True)
    try:
        assert not native.available()
    finally:
        monkeypatch.setattr(native, "_allowed_by_environment", True)
        native.set_enabled(True)


@pytest.mark.usefixtures("native_kernels")
def test_wrong_dtypes_and_devices_are_refused_before_the_kernel() -> None:
    indices, values, offsets = _entries()
    weight = torch.randn(N_ROWS, D)
    with pytest.raises(native.NativeError, match="must be float32"):
        native.csr_mm(offsets, indices, values.half(), weight)
    with pytest.raises(native.NativeError, match="must be float32"):
        native.csr_mm_backward(offsets, indices, values, weight.double(), torch.zeros(5, D))
    with pytest.raises(native.NativeError, match="must be float32"):
        native.csr_t_sparse_mm(
            offsets, indices, values.bfloat16(), N_ROWS, torch.zeros(5, 1, dtype=torch.int64), torch.zeros(5, 1), 3
        )


def _adam_reference(weight, grad, exp_avg, exp_avg_sq, lr, betas, eps, step):  # type: ignore[no-untyped-def]
    """torch.optim.Adam's update in float64: (weight, exp_avg, exp_avg_sq) after one step."""
    beta1, beta2 = betas
    m = exp_avg.double() * beta1 + (1 - beta1) * grad
    v = exp_avg_sq.double() * beta2 + (1 - beta2) * grad * grad
    denominator = v.sqrt() / (1 - beta2**step) ** 0.5 + eps
    return weight.double() - lr / (1 - beta1**step) * m / denominator, m, v


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("threads", [1, 3], indirect=True, ids=["1_thread", "3_threads"])
@pytest.mark.parametrize("with_base", [False, True], ids=["factors_only", "plus_other_contributions"])
def test_the_fused_encoder_step_equals_the_gradient_then_adam(threads: int, with_base: bool) -> None:
    """Gradient base + u ⊗ r + xᵀ·G formed a row at a time inside Adam's step, and the updated c·W summed on the way,
    bit for bit as center_product sums it; columns before first_column (fixed latents) and their moments untouched."""
    indices, values, offsets = _entries()  # 5 rows over N_ROWS terms
    n_cols = 70
    gen = torch.Generator().manual_seed(4)
    g_indices = torch.randint(0, n_cols, (5, 4), generator=gen)
    g_values = torch.randn(5, 4, generator=gen)
    u, r = torch.randn(N_ROWS, generator=gen), torch.randn(n_cols, generator=gen)
    weight_0 = torch.randn(N_ROWS, n_cols, generator=gen)
    exp_avg_0 = torch.randn(N_ROWS, n_cols, generator=gen) * 0.1
    exp_avg_sq_0 = torch.rand(N_ROWS, n_cols, generator=gen) * 0.01
    base = torch.randn(N_ROWS, n_cols, generator=gen) if with_base else None
    center = torch.randn(N_ROWS, generator=gen)
    grad = native.csr_t_sparse_mm(offsets, indices, values, N_ROWS, g_indices, g_values, n_cols, rank_one=(u, r))
    grad = grad.double() + (base.double() if base is not None else 0.0)
    expected = _adam_reference(weight_0, grad, exp_avg_0, exp_avg_sq_0, 1e-2, (0.9, 0.99), 1e-8, 3)
    before = weight_0.clone(), exp_avg_0.clone(), exp_avg_sq_0.clone()
    fixed = [t.clone() for t in before]  # a copy stepped with its first 5 columns held still
    step = {"lr": 1e-2, "betas": (0.9, 0.99), "eps": 1e-8, "step": 3, "rank_one": (u, r), "base": base}
    product = native.encoder_adam_step(offsets, indices, values, g_indices, g_values, *before, center=center, **step)
    native.encoder_adam_step(offsets, indices, values, g_indices, g_values, *fixed, first_column=5, **step)
    weight, exp_avg, exp_avg_sq = before
    for name, ours, reference in zip(("weight", "exp_avg", "exp_avg_sq"), (weight, exp_avg, exp_avg_sq), expected):
        torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-6, msg=name)
    for held, moved, untouched in zip(fixed, (weight, exp_avg, exp_avg_sq), (weight_0, exp_avg_0, exp_avg_sq_0)):
        assert torch.equal(held[:, 5:], moved[:, 5:]) and torch.equal(held[:, :5], untouched[:, :5])
    assert product is not None
    assert torch.equal(product, native.center_product(center, weight))
    torch.testing.assert_close(product.double(), center.double() @ weight.double(), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("native_kernels")
def test_the_fused_encoder_step_refuses_bad_input_and_leaves_the_weight() -> None:
    indices, values, offsets = _entries()
    weight, state = torch.randn(N_ROWS, 6), torch.zeros(N_ROWS, 6)
    before = weight.clone()
    g_indices, g_values = torch.zeros(5, 2, dtype=torch.int64), torch.ones(5, 2)
    step = {"lr": 0.1, "betas": (0.9, 0.99), "eps": 1e-8, "step": 1}
    with pytest.raises(native.NativeError, match=r"\[0, n_cols\) for G.s entries"):
        native.encoder_adam_step(offsets, indices, values, g_indices + 6, g_values, weight, state, state, **step)
    with pytest.raises(native.NativeError, match="exp_avg_sq must be a contiguous 2-D float32 CPU tensor"):
        native.encoder_adam_step(offsets, indices, values, g_indices, g_values, weight, state, state.T, **step)
    with pytest.raises(native.NativeError, match="center must be"):
        native.encoder_adam_step(
            offsets, indices, values, g_indices, g_values, weight, state, state, center=torch.zeros(3), **step
        )
    with pytest.raises(native.NativeError, match="step must be >= 1"):
        native.encoder_adam_step(
            offsets, indices, values, g_indices, g_values, weight, state, state, **step | {"step": 0}
        )
    assert torch.equal(weight, before)


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize(
    ("dead", "fixed"), [(False, 0), (True, 0), (False, 2)], ids=["topk_only", "with_auxk", "fixed_dense_latents"]
)
def test_sparse_input_training_steps_the_encoder_in_one_pass_as_torch_would(
    monkeypatch: pytest.MonkeyPatch, dead: bool, fixed: int
) -> None:
    """Four steps inside backward on sparse input: W_enc's gradient reaches the fused step in factors (plus AuxK's
    contribution through .grad when latents are dead), and every forward after it takes the c·W_enc it summed, the
    trainer's re-fixing of dense latents between steps included (their columns do not move). The same parameters as
    torch's kernels and torch's Adam, to rounding."""
    from textsae.train.step_in_backward import StepInBackward

    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 1024)  # W_enc and W_dec (160 kB) count as larger than the cache
    x = (torch.rand(16, D, generator=torch.Generator().manual_seed(5)) < 0.05).float().to_sparse_csr()
    dead_mask = torch.arange(N_ROWS) % 4 == 0 if dead else torch.zeros(N_ROWS, dtype=torch.bool)
    calls: list[str] = []
    for name in ("encoder_adam_step", "center_product"):
        real = getattr(native, name)

        def spy(*a, _real=real, _name=name, **kw):  # type: ignore[no-untyped-def]
            calls.append(_name + ("+base" if kw.get("base") is not None else ""))
            return _real(*a, **kw)

        monkeypatch.setattr(native, name, spy)

    dense = torch.randn(fixed, D, generator=torch.Generator().manual_seed(7)), torch.randn(fixed)

    def train() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        sae = build_sae(sae_config("topk", n_latents=N_ROWS, k=4, decoder_init="random", dense_latents=fixed), D)
        sae.init_from_data(x.to_dense())
        if fixed:
            sae.set_dense_encoder(*dense)
        sae.train()
        optimizer = torch.optim.Adam(sae.parameters(), lr=1e-2, fused=True)
        stepper = StepInBackward(sae, optimizer, list(sae.parameters()), fixed_dense_latents=fixed)
        for _ in range(4):
            sae.loss(sae(x), dead_mask=dead_mask).total.backward()
            assert all(p.grad is None for p in sae.parameters())
            if fixed:
                sae.set_dense_encoder(*dense)  # as the trainer does after each step: b_dec moved
        stepper.remove()
        return {name: p.detach().clone() for name, p in sae.named_parameters()}

    ours = train()
    # Adam makes its state in the first step; the fused step takes the other three, and the forwards after them use
    # the c·W_enc it summed instead of summing it again.
    assert calls == ["center_product"] * 2 + ["encoder_adam_step" + ("+base" if dead else "")] * 3
    native.set_enabled(False)
    try:
        reference = train()
    finally:
        native.set_enabled(True)
    # Adam divides by √v: an entry whose gradient is rounding noise moves by up to lr either way, so the two agree to
    # a tenth of lr (lr 1e-2), where a missed, doubled or wrong step moves every entry by about lr.
    for name, expected in reference.items():
        torch.testing.assert_close(ours[name], expected, rtol=0, atol=1e-3, msg=name)
    assert torch.equal(ours["W_enc"][:, :fixed], reference["W_enc"][:, :fixed])  # the fixed columns never moved


def _stepped_once(monkeypatch: pytest.MonkeyPatch, seed: int) -> tuple:
    """Sparse input, a TopK SAE whose weights count as larger than the cache, stepped inside backward once: Adam's
    state exists, so its next steps are fused. Returns (x, sae, optimizer, stepper)."""
    from textsae.train.step_in_backward import StepInBackward

    monkeypatch.setattr(cache_blocks, "BLOCK_BYTES", 1024)
    x = (torch.rand(16, D, generator=torch.Generator().manual_seed(seed)) < 0.05).float().to_sparse_csr()
    torch.manual_seed(0)
    sae = build_sae(sae_config("topk", n_latents=N_ROWS, k=4, decoder_init="random"), D)
    sae.init_from_data(x.to_dense())
    sae.train()
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-2)
    stepper = StepInBackward(sae, optimizer, list(sae.parameters()))
    sae.loss(sae(x)).total.backward()
    return x, sae, optimizer, stepper


@pytest.mark.usefixtures("native_kernels")
def test_what_a_failed_backward_left_is_dropped_by_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backward that stops on an error never reaches its end-of-backward step: the W_enc gradient it handed over
    must neither be stepped with the next backward's nor keep the next from stepping."""
    import copy

    from textsae.train.step_in_backward import StepInBackward

    x, sae, optimizer, stepper = _stepped_once(monkeypatch, seed=6)

    def fail(grad: torch.Tensor) -> None:
        raise RuntimeError("boom")

    # b_dec's gradient is complete only after the encoder's backward has handed W_enc's factors over.
    handle = sae.b_dec.register_hook(fail)
    with pytest.raises(RuntimeError, match="boom"):
        sae.loss(sae(x)).total.backward()
    handle.remove()
    assert stepper._pending  # the failed backward's factors, never stepped
    for parameter in sae.parameters():
        parameter.grad = None

    fresh = copy.deepcopy(sae)  # the same weights with a stepper that never saw the failure
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    fresh_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    StepInBackward(fresh, fresh_optimizer, list(fresh.parameters()))
    for model in (sae, fresh):
        model.loss(model(x)).total.backward()
    for (name, ours), expected in zip(sae.named_parameters(), fresh.parameters()):
        assert torch.equal(ours, expected), name


@pytest.mark.usefixtures("native_kernels")
def test_the_fused_steps_match_torch_adam_to_the_last_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """β2 = 0.999: the kernels take 1 − β2 computed in double, as torch does (1.0f − 0.999f is off by 1.3e-5)."""
    indices, values, offsets = _entries()
    gen = torch.Generator().manual_seed(8)
    g_indices, g_values = torch.randint(0, 70, (5, 4), generator=gen), torch.randn(5, 4, generator=gen)
    weight = torch.randn(N_ROWS, 70, generator=gen)
    parameter = torch.nn.Parameter(weight.clone())
    optimizer = torch.optim.Adam([parameter], lr=1e-3, fused=True)
    ours = [weight, torch.zeros_like(weight), torch.zeros_like(weight)]
    for step in range(1, 4):
        grad = native.csr_t_sparse_mm(offsets, indices, values, N_ROWS, g_indices, g_values, 70)
        parameter.grad = grad.clone()
        optimizer.step()
        native.encoder_adam_step(
            offsets, indices, values, g_indices, g_values, *ours, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, step=step
        )
    state = optimizer.state[parameter]
    for name, mine, theirs in zip(
        ("weight", "exp_avg", "exp_avg_sq"), ours, (parameter, state["exp_avg"], state["exp_avg_sq"])
    ):
        torch.testing.assert_close(mine, theirs.detach(), rtol=2e-7, atol=1e-12, msg=name)


@pytest.mark.usefixtures("native_kernels")
def test_a_gradient_query_or_a_second_stepper_does_not_step_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """autograd.grad and backward(inputs=...) that leave W_enc out take no step of it; a second stepper on the same SAE
    does not take W_enc's factors, and removing it leaves the first's in place."""
    from textsae.sae import deferred_gradient
    from textsae.train.step_in_backward import StepInBackward

    x, sae, optimizer, stepper = _stepped_once(monkeypatch, seed=9)
    before = sae.W_enc.detach().clone()
    (grad,) = torch.autograd.grad(sae.loss(sae(x)).total, [sae.b_enc])
    assert grad.abs().sum() > 0
    sae.loss(sae(x)).total.backward(inputs=[sae.b_enc])
    assert torch.equal(sae.W_enc.detach(), before) and not stepper._pending
    second = StepInBackward(sae, optimizer, list(sae.parameters()))
    assert not second._defer_encoder
    second.remove()
    assert deferred_gradient.receiver_for(sae.W_enc) == stepper._receive


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("threads", [3], indirect=True, ids=["3_threads"])
def test_the_kernels_give_the_same_bits_in_torchs_threads_as_in_their_own(
    monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    """The OpenMP build splits the work as the build with threads of its own does: job for job, the same sums."""
    in_torch_threads = native._load_in_torch_threads()
    if in_torch_threads is None:
        pytest.skip("no OpenMP build of the kernels shares torch's OpenMP runtime here")
    own_threads = native._load(native._build())
    assert in_torch_threads.textsae_native_openmp_runtime() is not None
    assert own_threads.textsae_native_openmp_runtime() is None
    gen = torch.Generator().manual_seed(0)
    indices, values, offsets = _entries()
    weight, grad = torch.randn(N_ROWS, D, generator=gen), torch.randn(offsets.numel() - 1, D, generator=gen)
    scores = torch.randn(300, 1000, generator=gen)  # enough entries for the top-k to take 3 threads
    x, g_values = torch.randn(300, 70, generator=gen), torch.randn(300, 6, generator=gen)

    def run(lib: object) -> list[torch.Tensor]:
        monkeypatch.setattr(native, "_library", lambda: lib)
        grad_values, grad_weight = native.csr_mm_backward(offsets, indices, values, weight, grad)
        panel_values, panel_weight = native.panel_mm_backward(offsets, indices, values, weight, grad)
        top = native.topk(scores, 6)
        assert grad_values is not None and grad_weight is not None and top is not None
        assert panel_values is not None and panel_weight is not None
        g_indices = top[1]
        dense_gradient = native.dense_t_sparse_mm(x, g_indices, g_values, 1000)
        return [
            native.csr_mm(offsets, indices, values, weight),
            native.panel_mm(offsets, indices, values, weight),
            grad_values,
            grad_weight,
            panel_values,
            panel_weight,
            *top,
            dense_gradient,
        ]

    for ours, theirs in zip(run(in_torch_threads), run(own_threads), strict=True):
        assert torch.equal(ours, theirs)


@pytest.fixture
def openmp_build(fresh_build: Path) -> Path:
    """The OpenMP build of the kernels in an empty cache; skips where it cannot be made."""
    try:
        return native._build(openmp=True)
    except OSError:
        pytest.skip("the C compiler here cannot build with OpenMP")


def test_the_kernels_stay_on_their_own_threads_unless_bound_to_torchs_runtime(
    openmp_build: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mapped = native._openmp_runtimes()
    if not mapped or not torch.backends.openmp.is_available():
        pytest.skip("no /proc/self/maps, or torch without OpenMP")
    monkeypatch.setattr(native, "_build", lambda openmp=False: openmp_build)
    assert (native._load_in_torch_threads() is not None) == _runs_on_torchs_libgomp()
    torch_folder = native._torch_folder
    monkeypatch.setattr(native, "_torch_folder", lambda: Path("/elsewhere"))  # bound to a runtime torch does not use
    assert native._load_in_torch_threads() is None
    monkeypatch.setattr(native, "_torch_folder", torch_folder)
    seen = iter([mapped, {*mapped, "/usr/lib/llvm/libomp.so"}])  # loading it mapped a second runtime
    monkeypatch.setattr(native, "_openmp_runtimes", lambda: next(seen))
    assert native._load_in_torch_threads() is None
    assert openmp_build.with_suffix(".failed").exists()  # later processes do not load it again
    monkeypatch.setattr(native, "_openmp_runtimes", lambda: None)  # the mappings cannot be read
    assert native._load_in_torch_threads() is None


def _runs_on_torchs_libgomp() -> bool:
    """torch on GNU OpenMP from its own package, and GCC as the C compiler: the OpenMP build can share it."""
    runtimes = native._openmp_runtimes() or set()
    torchs = [r for r in runtimes if Path(r).resolve().is_relative_to(native._torch_folder())]
    version = subprocess.run([*native._compiler(), "--version"], capture_output=True, text=True, check=False).stdout
    return torch.backends.openmp.is_available() and any("libgomp" in r for r in torchs) and "Free Software" in version


@pytest.mark.usefixtures("native_kernels")
def test_built_by_gcc_beside_torchs_libgomp_the_kernels_run_in_torchs_threads(fresh_build: Path) -> None:
    import sklearn.linear_model  # noqa: F401  (its wheel brings a libgomp of its own into the process)

    if not _runs_on_torchs_libgomp():
        pytest.skip("torch here does not run on a GNU OpenMP of its own package, or the C compiler is not GCC")
    before = native._openmp_runtimes()
    assert native.shares_torch_threads()
    assert native._openmp_runtimes() == before


@pytest.mark.usefixtures("native_kernels")
def test_a_failed_openmp_build_is_tried_once(fresh_build: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_OPENMP_FLAGS", ("-fno-such-option",))
    with pytest.raises(OSError, match="failed"):
        native._build(openmp=True)
    native._build()  # the build with threads of its own is not affected
    monkeypatch.setattr(native.subprocess, "run", None)  # not called: the marker answers
    with pytest.raises(OSError, match="an earlier OpenMP build failed"):
        native._build(openmp=True)


def _top_k_in_child(x: torch.Tensor, results: object) -> None:
    top = native.topk(x, 8)
    results.put(None if top is None else top[1].tolist())  # type: ignore[attr-defined]


@pytest.mark.usefixtures("native_kernels")
@pytest.mark.parametrize("threads", [2], indirect=True, ids=["2_threads"])
def test_a_forked_child_runs_the_kernels_after_the_parent_did(threads: int) -> None:
    """GNU OpenMP's pool does not survive fork; the kernels in a forked child must not wait for it."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork here")
    x = torch.randn(256, 1024, generator=torch.Generator().manual_seed(0))
    expected = native.topk(x, 8)  # the parent's pool (where the kernels share torch's) has run
    assert expected is not None
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_top_k_in_child, args=(x, results))
    child.start()
    try:
        assert results.get(timeout=60) == expected[1].tolist()
    finally:
        child.kill()
        child.join()
