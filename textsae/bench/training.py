"""``textsae bench train``: the speed of one TopK SAE training step, textsae against its peers, measured side by side.

Sides (each does forward, loss, backward, the decoder-gradient projection, an Adam step and the decoder
renormalisation on the same batch, with the same optimiser, thread count and device):

- ``textsae``: :class:`~textsae.sae.topk.TopKSAE`, stepped as the trainer steps it (sparse CSR input stays sparse,
  each parameter updated inside backward);
- ``sparsify``: EleutherAI sparsify's ``SparseCoder`` (optional: ``pip install --no-deps eai-sparsify einops
  accelerate``), which needs dense input, so a sparse batch is densified for it;
- ``plain``: a TopK SAE in a few lines of PyTorch with dense matmuls (sparse input densified);
- ``plain_sparse``: the same, its encoder a ``torch.sparse.mm`` on the CSR batch.

Every side starts from the same weights, and the bench first checks that all sides pick the same active latents for
the same batch. Timing runs in interleaved rounds (each round times every side in turn), so a change in the machine's
load hits every side alike; each ratio is taken per round and reported as median and spread. The dead-latent mask is
empty (a healthy SAE), so no side computes its AuxK term. FLOP utilisation is the FLOPs a TopK step cannot avoid
(encoder forward over all latents, everything else over the k active ones) per second, against a dense matmul of the
encoder's shape timed in the same run. The memory roofline is the fastest a step could run if it only moved the bytes an
fp32 Adam step cannot avoid (:func:`step_bytes_floor`) at the memory bandwidth measured in the same run
(:func:`memory_gb_per_s`): an upper bound on every side's speed once the weights and optimiser state outgrow the
cache, and no bound while they fit in it (a step then runs at the cache's bandwidth, and a share above 1 is possible).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from textsae.bench.machine import BenchProvenance
from textsae.errors import UserError
from textsae.markdown import markdown_table
from textsae.results import JSONObject
from textsae.sae.topk import TopKConfig, TopKSAE
from textsae.train.step_in_backward import StepInBackward

__all__ = [
    "SIDES",
    "RatioSpread",
    "TrainBenchCase",
    "TrainBenchResult",
    "TrainShape",
    "default_shapes",
    "run_train_bench",
    "sparsify_available",
]

SIDES = ("textsae", "sparsify", "plain", "plain_sparse")
WARMUP_STEPS = 4
"""Untimed steps per side first: on glibc the first few steps still map fresh pages for weight-sized tensors."""
PROBE_FLOATS = 64 << 20
"""Least elements of each of :func:`memory_gb_per_s`'s two buffers (256 MB); on a CPU whose last-level cache is larger
than 128 MB, each buffer is twice that cache instead, so that the probe measures memory rather than cache."""
SPARSIFY_INSTALL = "pip install --no-deps eai-sparsify einops accelerate"


@dataclasses.dataclass(frozen=True)
class TrainShape:
    """One benchmark case."""

    input: Literal["dense", "sparse"]
    d_in: int
    n_latents: int
    k: int
    batch: int
    nnz: int = 200
    """Non-zeros per row of a sparse batch."""

    def describe(self) -> str:
        nnz = f", {self.nnz} nnz/row" if self.input == "sparse" else ""
        return f"{self.input} d_in={self.d_in} latents={self.n_latents} k={self.k} batch={self.batch}{nnz}"


@dataclasses.dataclass(frozen=True)
class RatioSpread:
    """textsae's speed over a peer's, per round: median and range."""

    median: float
    min: float
    max: float

    def to_json(self) -> dict[str, float]:
        """``{"median", "min", "max"}``."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TrainBenchCase:
    """What one shape measured: vectors per second of each side, textsae's speed over each peer, FLOP use."""

    shape: TrainShape
    vec_per_s: dict[str, float | None]
    """Median over rounds, per side of :data:`SIDES` (``None`` for a side not run)."""
    ratio_vs_sparsify: float | None
    ratio_vs_plain: float | None
    ratio_vs_plain_sparse: float | None
    """Median of textsae's rate over the peer's, per round; ``None`` for a peer not run."""
    ratio_spread: dict[str, RatioSpread]
    same_active_latents: dict[str, float]
    """Fraction of rows on which each peer picks textsae's active latents from the same weights."""
    matmul_gflops: float
    flop_utilisation: dict[str, float]
    memory_gb_per_s: float
    """Bandwidth of an in-place ``a += s·b`` over buffers far larger than the cache, timed in the same run."""
    roofline_vec_per_s: float
    """Vectors per second of a step that only moved :func:`step_bytes_floor` at ``memory_gb_per_s``."""
    rounds: int
    steps_per_round: int
    autocast: str
    """``bf16`` or ``none``."""

    def to_json(self) -> JSONObject:
        """The case as the bench prints it: the shape's fields first, then the measurements."""
        return {
            **dataclasses.asdict(self.shape),
            "vec_per_s": self.vec_per_s,
            "ratio_vs_sparsify": self.ratio_vs_sparsify,
            "ratio_vs_plain": self.ratio_vs_plain,
            "ratio_vs_plain_sparse": self.ratio_vs_plain_sparse,
            "ratio_spread": {key: spread.to_json() for key, spread in self.ratio_spread.items()},
            "same_active_latents": self.same_active_latents,
            "matmul_gflops": self.matmul_gflops,
            "flop_utilisation": self.flop_utilisation,
            "memory_gb_per_s": self.memory_gb_per_s,
            "roofline": {
                "bytes_per_step": step_bytes_floor(self.shape),
                "vec_per_s": self.roofline_vec_per_s,
                "fraction": {
                    name: value / self.roofline_vec_per_s for name, value in self.vec_per_s.items() if value is not None
                },
                "ratio_vs_plain": (
                    None if self.vec_per_s["plain"] is None else self.roofline_vec_per_s / self.vec_per_s["plain"]
                ),
            },
            "rounds": self.rounds,
            "steps_per_round": self.steps_per_round,
            "autocast": self.autocast,
        }


@dataclasses.dataclass(frozen=True)
class TrainBenchResult:
    """Every shape's case, the sides skipped and why, and (from the command line) the data, command and machine."""

    cases: tuple[TrainBenchCase, ...]
    skipped: dict[str, str]
    threads: int
    device: str
    provenance: BenchProvenance | None = None

    def to_json(self) -> JSONObject:
        """``{"cases", "skipped", "threads", "device"[, "data", "command", <machine facts>]}``."""
        values = {
            "cases": [case.to_json() for case in self.cases],
            "skipped": self.skipped,
            "threads": self.threads,
            "device": self.device,
        }
        return {**values, **(self.provenance.to_json() if self.provenance else {})}


def default_shapes() -> list[TrainShape]:
    """The two shapes of the training-speed issue: MiniLM-sized dense input and TF-IDF-sized sparse input."""
    return [TrainShape("dense", 384, 4096, 32, 1024), TrainShape("sparse", 30_000, 4096, 64, 512, nnz=200)]


def sparsify_available() -> bool:
    """Whether EleutherAI sparsify imports (it is optional). Its import-time notice goes to stderr, so that
    ``--json`` keeps stdout to one JSON object."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import sparsify  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ batches


def make_batch(shape: TrainShape, seed: int, device: torch.device) -> Tensor:
    """A batch like the inputs the shape stands for: Gaussian rows (dense), or L2-normalised TF-IDF-like CSR rows."""
    gen = torch.Generator().manual_seed(seed)
    if shape.input == "dense":
        return torch.randn(shape.batch, shape.d_in, generator=gen).to(device)
    if not 1 <= shape.nnz <= shape.d_in:
        raise UserError(f"--nnz must be in [1, d_in={shape.d_in}]. Got {shape.nnz} instead.")
    cols = torch.rand(shape.batch, shape.d_in, generator=gen).argsort(dim=1)[:, : shape.nnz].sort(dim=1).values
    values = torch.rand(shape.batch, shape.nnz, generator=gen)
    values = values / values.norm(dim=1, keepdim=True)
    crow = torch.arange(0, shape.batch * shape.nnz + 1, shape.nnz)
    return torch.sparse_csr_tensor(
        crow, cols.reshape(-1), values.reshape(-1), size=(shape.batch, shape.d_in), check_invariants=False
    ).to(device)


def _dense(x: Tensor) -> Tensor:
    return x.to_dense() if x.layout == torch.sparse_csr else x


# -------------------------------------------------------------------------------------------------- sides


@dataclasses.dataclass
class _Weights:
    W_enc: Tensor  # (d_in, n_latents)
    b_enc: Tensor
    W_dec: Tensor  # (n_latents, d_in)
    b_dec: Tensor


class _Side:
    """One implementation: ``step(x)`` trains on a batch, ``active(x)`` returns each row's active latents (sorted)."""

    name = ""
    bf16 = False
    """Run the forward pass under bf16 autocast (the backward and the update stay outside it, as in both trainers)."""

    def step(self, x: Tensor) -> None:
        raise NotImplementedError

    def _autocast(self, x: Tensor) -> torch.autocast:
        return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def active(self, x: Tensor) -> Tensor:
        raise NotImplementedError


def _adam(params: Sequence[Tensor], device: torch.device) -> torch.optim.Optimizer:
    fused = True if device.type in ("cpu", "cuda") else None
    return torch.optim.Adam(params, lr=1e-4, fused=fused)


class _TextsaeSide(_Side):
    name = "textsae"

    def __init__(self, shape: TrainShape, weights: _Weights, device: torch.device) -> None:
        cfg = TopKConfig(n_latents=shape.n_latents, k=shape.k, input_scaling="none", decoder_init="random")
        sae = TopKSAE(shape.d_in, cfg)  # what build_sae(cfg, d_in) builds for architecture=topk
        with torch.no_grad():
            for name, value in dataclasses.asdict(weights).items():
                getattr(sae, name).copy_(value)
        self.sae = sae.to(device).train()
        parameters = list(self.sae.parameters())
        self.optimizer = _adam(parameters, device)
        self.stepper = StepInBackward(self.sae, self.optimizer, parameters)  # as the trainer steps
        self.dead = torch.zeros(shape.n_latents, dtype=torch.bool, device=device)

    def step(self, x: Tensor) -> None:
        sae = self.sae
        with self._autocast(x):
            out = sae(x)
            loss = sae.loss(out, dead_mask=self.dead).total
        loss.backward()  # projection, Adam and renormalisation run inside, one parameter at a time
        with torch.no_grad():  # the trainer's dead-latent bookkeeping
            fired = torch.zeros_like(self.dead)
            fired[out.active.indices] = True

    def active(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            out = self.sae(x)
        return out.active.indices.view(x.shape[0], -1).sort(dim=1).values


class _SparsifySide(_Side):
    name = "sparsify"

    def __init__(self, shape: TrainShape, weights: _Weights, device: torch.device) -> None:
        from sparsify import SparseCoder, SparseCoderConfig

        coder = SparseCoder(shape.d_in, SparseCoderConfig(num_latents=shape.n_latents, k=shape.k), device=device)
        with torch.no_grad():
            coder.encoder.weight.copy_(weights.W_enc.T)
            coder.encoder.bias.copy_(weights.b_enc)
            coder.W_dec.copy_(weights.W_dec)
            coder.b_dec.copy_(weights.b_dec)
        self.coder = coder.train()
        self.optimizer = _adam(list(coder.parameters()), device)
        self.dead = torch.zeros(shape.n_latents, dtype=torch.bool, device=device)
        self.sparse_input = shape.input == "sparse"

    def step(self, x: Tensor) -> None:
        x = _dense(x)  # sparsify takes dense activations only
        with self._autocast(x):
            out = self.coder(x, dead_mask=self.dead)
            loss = out.fvu + out.auxk_loss
        loss.backward()
        self.coder.remove_gradient_parallel_to_decoder_directions()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # freed now, not at the next step: the sides share one machine
        self.coder.set_decoder_norm_to_unit_norm()
        with torch.no_grad():
            fired = torch.zeros_like(self.dead)
            fired[out.latent_indices.flatten()] = True

    def active(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.coder.encode(_dense(x)).top_indices.sort(dim=1).values


class _PlainSide(_Side):
    """A TopK SAE as one would write it in plain PyTorch; ``sparse_encoder`` uses torch.sparse.mm on CSR input."""

    def __init__(self, shape: TrainShape, weights: _Weights, device: torch.device, *, sparse_encoder: bool) -> None:
        self.name = "plain_sparse" if sparse_encoder else "plain"
        self.params = {
            name: value.clone().to(device).requires_grad_() for name, value in dataclasses.asdict(weights).items()
        }
        self.optimizer = _adam(list(self.params.values()), device)
        self.k = shape.k
        self.sparse_encoder = sparse_encoder and shape.input == "sparse"

    def _pre(self, x: Tensor) -> Tensor:
        p = self.params
        if self.sparse_encoder:
            with torch.autocast(x.device.type, enabled=False):  # the CPU's sparse kernels have no bf16
                product = torch.sparse.mm(x, p["W_enc"])
            return product - p["b_dec"] @ p["W_enc"] + p["b_enc"]
        return (_dense(x) - p["b_dec"]) @ p["W_enc"] + p["b_enc"]

    def step(self, x: Tensor) -> None:
        p = self.params
        with self._autocast(x):
            values, indices = self._pre(x).topk(self.k, dim=1, sorted=False)
            codes = torch.zeros(x.shape[0], p["W_enc"].shape[1], device=values.device, dtype=values.dtype)
            codes = codes.scatter(1, indices, values.relu())
            x_hat = codes @ p["W_dec"] + p["b_dec"]
            loss = (_dense(x) - x_hat).float().square().sum(dim=1).mean()
        loss.backward()
        with torch.no_grad():
            W, grad = p["W_dec"], p["W_dec"].grad
            grad -= (grad * W).sum(dim=1, keepdim=True) / W.square().sum(dim=1, keepdim=True) * W
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)  # as the sparsify side
            W /= W.norm(dim=1, keepdim=True)
            _ = codes != 0  # dead-latent bookkeeping on the dense codes

    def active(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self._pre(x).topk(self.k, dim=1).indices.sort(dim=1).values


def _build_sides(shape: TrainShape, names: list[str], device: torch.device, seed: int) -> list[_Side]:
    torch.manual_seed(seed)
    W_dec = F.normalize(torch.randn(shape.n_latents, shape.d_in), dim=1)
    weights = _Weights(W_dec.T.contiguous(), torch.randn(shape.n_latents) * 0.01, W_dec, torch.randn(shape.d_in) * 0.01)
    sides: list[_Side] = []
    for name in names:
        if name == "textsae":
            sides.append(_TextsaeSide(shape, weights, device))
        elif name == "sparsify":
            sides.append(_SparsifySide(shape, weights, device))
        else:
            sides.append(_PlainSide(shape, weights, device, sparse_encoder=name == "plain_sparse"))
    return sides


# ---------------------------------------------------------------------------------------------- measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def matmul_gflops(
    shape: TrainShape, device: torch.device, repeats: int = 3, dtype: torch.dtype = torch.float32
) -> float:
    """Dense matmul speed in ``dtype`` at the encoder's shape (batch × d_in @ d_in × n_latents), in GFLOP/s."""
    a = torch.randn(shape.batch, shape.d_in, device=device, dtype=dtype)
    b = torch.randn(shape.d_in, shape.n_latents, device=device, dtype=dtype)
    a @ b  # warm-up
    seconds = min(_seconds(lambda: a @ b, 1, device) for _ in range(repeats))
    return 2 * shape.batch * shape.d_in * shape.n_latents / seconds / 1e9


def memory_gb_per_s(device: torch.device, repeats: int = 5, n_floats: int | None = None) -> float:
    """Memory bandwidth in GB/s: the best of ``repeats`` in-place ``a += s·b`` over two float32 buffers of ``n_floats``
    (default :func:`probe_floats`; three streams: a and b read, a written, the same in-place pattern as an optimiser
    step). On CUDA each sample times 10 adds, so that launch and synchronisation do not count."""
    n_floats = probe_floats(device) if n_floats is None else n_floats
    a = torch.zeros(n_floats, device=device)
    b = torch.ones(n_floats, device=device)
    a.add_(b, alpha=1e-3)  # warm-up: pages mapped, kernels loaded
    adds = 10 if device.type == "cuda" else 1
    seconds = min(_seconds(lambda: a.add_(b, alpha=1e-3), adds, device) for _ in range(repeats))
    return 3 * 4 * n_floats / seconds / 1e9


def probe_floats(device: torch.device) -> int:
    """Elements per buffer of the bandwidth probe: :data:`PROBE_FLOATS`, or twice the last-level cache where that is
    larger (CPU only; read from ``/sys/devices/system/cpu/cpu0/cache``, ignored where unreadable)."""
    if device.type != "cpu":
        return PROBE_FLOATS
    return max(PROBE_FLOATS, 2 * _last_level_cache_bytes() // 4)


def _last_level_cache_bytes(folder: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """The largest cache size ``folder``'s ``index*/size`` files give (e.g. ``48M``), 0 when there are none."""
    sizes = []
    for size_file in folder.glob("index*/size"):
        try:
            text = size_file.read_text(errors="replace").strip()
        except OSError:  # not a readable file: this entry says nothing
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
        digits = text[:-1] if unit > 1 else text
        if digits.isdigit():
            sizes.append(int(digits) * unit)
    return max(sizes, default=0)


def step_bytes_floor(shape: TrainShape) -> int:
    """Bytes an fp32 TopK SAE step with Adam moves at least when nothing stays in cache between steps: every
    weight element of W_enc and W_dec read once by the forward, then read and written with its two Adam moments by
    the update (28 bytes; the gradient formed inside the update, never stored), plus the batch's dense
    reconstruction written and read once (8 bytes per batch × d_in). Biases and the sparse input are left out. The
    forward reading every row assumes the batch uses them all, as at the bench's shapes (batch × k ≥ latents, and for
    sparse input batch × nnz ≥ d_in); a batch that reads fewer rows moves up to 4 of the 28 bytes less for the rest."""
    weights = 2 * shape.d_in * shape.n_latents
    return 28 * weights + 8 * shape.batch * shape.d_in


def topk_step_flops(shape: TrainShape) -> float:
    """FLOPs a TopK SAE step cannot avoid: encoder forward over every latent (over the non-zeros for sparse input),
    encoder backward and decoder forward and backward over the k active latents only."""
    inputs = shape.batch * (shape.nnz if shape.input == "sparse" else shape.d_in)
    active = shape.batch * shape.k
    return 2.0 * inputs * shape.n_latents + 2.0 * (inputs / shape.batch) * active + 6.0 * active * shape.d_in


def _agreement(sides: list[_Side], x: Tensor) -> dict[str, float]:
    """Fraction of rows on which each side picks exactly textsae's active latents from the same weights."""
    reference = sides[0].active(x)
    return {side.name: float((side.active(x) == reference).all(dim=1).float().mean()) for side in sides[1:]}


def _ratio_summary(values: list[float]) -> RatioSpread | None:
    if not values:
        return None
    return RatioSpread(statistics.median(values), min(values), max(values))


def bench_case(
    shape: TrainShape,
    names: list[str],
    *,
    device: torch.device,
    rounds: int,
    steps: int,
    seed: int = 0,
    bf16: bool = False,
    progress: Callable[[str], None] | None = None,
) -> TrainBenchCase:
    """Measure one shape: agreement check (fp32), then ``rounds`` interleaved rounds of ``steps`` steps per side.

    ``bf16``: every side's forward pass runs under bf16 autocast (fp32 master weights), as sparsify's trainer and
    textsae's run on a GPU; FLOP utilisation is then measured against a bf16 matmul.
    """
    bandwidth = memory_gb_per_s(device)  # first, while no side's weights and optimiser state hold memory
    sides = _build_sides(shape, names, device, seed)
    x = make_batch(shape, seed, device)
    agreement = _agreement(sides, x)

    for side in sides:  # warm-up: optimiser state, kernels, and the allocator's reuse of freed blocks (a few steps)
        side.bf16 = bf16
        for _ in range(WARMUP_STEPS):
            side.step(x)
    per_round: dict[str, list[float]] = {side.name: [] for side in sides}
    for r in range(rounds):
        order = sides[r % len(sides) :] + sides[: r % len(sides)]
        for side in order:
            seconds = _seconds(partial(side.step, x), steps, device)
            per_round[side.name].append(shape.batch / seconds)
        if progress:
            progress(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]:,.0f} vec/s" for n, v in per_round.items()))
    peak = matmul_gflops(shape, device, dtype=torch.bfloat16 if bf16 else torch.float32)
    vec_per_s = {name: (statistics.median(per_round[name]) if name in per_round else None) for name in SIDES}
    ratios = {}
    for other in ("sparsify", "plain", "plain_sparse"):
        values = [a / b for a, b in zip(per_round["textsae"], per_round.get(other, []))]
        ratios[f"ratio_vs_{other}"] = _ratio_summary(values)
    medians = {key: (value.median if value else None) for key, value in ratios.items()}
    flops = topk_step_flops(shape)
    return TrainBenchCase(
        shape=shape,
        vec_per_s=vec_per_s,
        ratio_vs_sparsify=medians["ratio_vs_sparsify"],
        ratio_vs_plain=medians["ratio_vs_plain"],
        ratio_vs_plain_sparse=medians["ratio_vs_plain_sparse"],
        ratio_spread={key: value for key, value in ratios.items() if value},
        same_active_latents=agreement,
        matmul_gflops=peak,
        flop_utilisation={
            name: flops * value / shape.batch / 1e9 / peak for name, value in vec_per_s.items() if value is not None
        },
        memory_gb_per_s=bandwidth,
        roofline_vec_per_s=shape.batch * bandwidth * 1e9 / step_bytes_floor(shape),
        rounds=rounds,
        steps_per_round=steps,
        autocast="bf16" if bf16 else "none",
    )


def run_train_bench(
    shapes: list[TrainShape],
    *,
    device: str = "cpu",
    sides: list[str] | None = None,
    rounds: int = 3,
    steps: int = 5,
    autocast: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> TrainBenchResult:
    """Run every shape; returns each shape's case and the sides skipped, with why.

    ``autocast``: ``bf16`` runs every side's step under bf16 autocast, ``none`` in fp32, ``auto`` = bf16 on CUDA
    (as both trainers run there) and fp32 elsewhere.

    Raises:
        UserError: If a side or ``autocast`` is unknown, or a requested ``sparsify`` side cannot be imported.
    """
    if autocast not in ("auto", "bf16", "none"):
        raise UserError(f"--autocast must be auto, bf16 or none. Got {autocast!r} instead.")
    wanted = list(SIDES) if sides is None else sides
    unknown = sorted(set(wanted) - set(SIDES))
    if unknown:
        raise UserError(f"--sides: unknown {unknown}. Expected some of {list(SIDES)}.")
    skipped = {}
    if "sparsify" in wanted and not sparsify_available():
        if sides is not None:
            raise UserError(f"--sides asks for sparsify, which is not installed; install it with: {SPARSIFY_INSTALL}")
        wanted.remove("sparsify")
        skipped["sparsify"] = f"not installed ({SPARSIFY_INSTALL})"
    if "textsae" not in wanted:
        wanted.insert(0, "textsae")
    wanted.sort(key=SIDES.index)
    torch_device = torch.device(device)
    bf16 = autocast == "bf16" or (autocast == "auto" and torch_device.type == "cuda")
    cases = []
    for shape in shapes:
        if progress:
            progress(shape.describe())
        cases.append(
            bench_case(shape, wanted, device=torch_device, rounds=rounds, steps=steps, bf16=bf16, progress=progress)
        )
    return TrainBenchResult(tuple(cases), skipped, torch.get_num_threads(), device)


def format_train_table(result: TrainBenchResult) -> str:
    """Markdown table: one row per shape, vectors per second per side, the median ratios, and the memory roofline with
    textsae's share of it."""
    ratio_keys = ("ratio_vs_sparsify", "ratio_vs_plain", "ratio_vs_plain_sparse")
    header = ["input", "d_in", "latents", "k", "batch", *(f"{s} vec/s" for s in SIDES)]
    header += ["vs sparsify", "vs plain", "vs plain_sparse", "same latents", "roofline vec/s", "textsae / roofline"]
    rows = []
    for case in result.cases:
        rates = ["–" if case.vec_per_s[s] is None else f"{case.vec_per_s[s]:,.0f}" for s in SIDES]
        ratios = ["–" if getattr(case, key) is None else f"{getattr(case, key):.2f}×" for key in ratio_keys]
        agree = min(case.same_active_latents.values(), default=1.0)
        dims = case.shape
        shape = [dims.input, f"{dims.d_in:,}", f"{dims.n_latents:,}", str(dims.k), f"{dims.batch:,}"]
        roofline = [
            f"{case.roofline_vec_per_s:,.0f}",
            f"{100 * (case.vec_per_s['textsae'] or 0.0) / case.roofline_vec_per_s:.0f}%",  # textsae always runs
        ]
        rows.append([*shape, *rates, *ratios, f"{100 * agree:.0f}%", *roofline])
    return markdown_table(header, rows)
