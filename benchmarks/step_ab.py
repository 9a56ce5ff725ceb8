"""A/B of one code path in textsae's training step, the two alternated inside one process.

Usage:

    python benchmarks/step_ab.py [--toggle fused-encoder|native|topk|dense-gradient|cached-decoder|panel-decoder|panel-backward|torch-threads|native-at|bias-in-matmul]
                                 [--baseline REV] [--input sparse] [--d-in 30000] [--n-latents 4096] [--k 64]
                                 [--batch 512] [--nnz 200] [--rounds 6] [--steps 2] [--phases]

Builds the textsae side of ``textsae bench train`` at one shape (same weights, batch and Adam as the bench) and times
its step with the path on and off in turn: ``--rounds`` rounds, each one untimed step after the switch and then
``--steps`` timed steps per setting. Prints one JSON line: the machine, the settings, each setting's median seconds
per step and per-round values, and the median per-round ratio off / on (above 1: the path is faster). With
``--phases``, also each setting's median milliseconds per step in every native kernel and in ``optimizer.step``, and
its minor page faults per step.

- ``fused-encoder``: W_enc's sparse-input gradient handed to its Adam step in factors
  (:mod:`textsae.sae.deferred_gradient`), against the gradient written out and stepped by torch's fused Adam.
- ``native``: every native kernel (:func:`textsae.native.set_enabled`) against torch's kernels.
- ``topk``: the native top-k (:func:`textsae.native.topk`) against torch's topk.
- ``dense-gradient``: the dense-input encoder's weight gradient written by :func:`textsae.native.dense_t_sparse_mm`
  against a CSR product and a transposing copy.
- ``cached-decoder``: a cache-resident W_dec's backward by the native kernel (:func:`textsae.native.csr_mm_backward`)
  against `embedding_bag`'s; the forward is `embedding_bag` either way.
- ``panel-decoder``: a large W_dec's forward and gradients by 64-column panels in L2 (:func:`textsae.native.panel_mm`,
  :func:`textsae.native.panel_mm_backward`) against the column blocks of :func:`textsae.native.csr_mm` and
  :func:`textsae.native.csr_mm_backward`.
- ``panel-backward``: the panel path's gradients by 64-column panels of the output gradient copied into L2
  (:func:`textsae.native.panel_mm_backward`) against :func:`textsae.native.csr_mm_backward`'s column blocks.
- ``torch-threads``: the native kernels run in torch's OpenMP thread pool against threads of their own (the library
  built without OpenMP).
- ``bias-in-matmul``: a training forward's dense-input pre-activations as one ``addmm`` against ``x @ W`` and then
  the bias added (what encoding does).
- ``native-at``: the working tree's native kernels against those of git revision ``--baseline`` (default HEAD), built
  with the same compiler and flags; the Python side is the working tree's, so the two must share the kernels' ABI.

This machine's speed moves more between processes than most changes do; only an A/B inside one process, alternating
in rounds, has shown a difference reliably (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

from textsae import native
from textsae.bench.training import TrainShape, _build_sides, _TextsaeSide, make_batch
from textsae.runtime import keep_freed_memory
from textsae.sae import base, decoder, encoder
from textsae.sae.deferred_gradient import defer_encoder_gradient


def _library_at(revision: str) -> ctypes.CDLL:
    """The native kernels' sources at git ``revision`` (the files it has), built as the working tree's are."""
    folder = Path(tempfile.mkdtemp(prefix="textsae-native-at-"))
    for source in (*native._SOURCES, *native._HEADERS):
        shown = subprocess.run(
            ["git", "show", f"{revision}:textsae/native/{source.name}"], capture_output=True, check=False
        )
        if shown.returncode == 0:
            (folder / source.name).write_bytes(shown.stdout)
    openmp = native._OPENMP_FLAGS if native.shares_torch_threads() else ()
    target = folder / "kernels.so"
    command = [*native._compiler(), *native._FLAGS, *openmp, *native._CPU_FLAGS, *map(str, sorted(folder.glob("*.c")))]
    subprocess.run([*command, "-o", str(target)], check=True)
    return native._load(target)


def _switch(side: _TextsaeSide, toggle: str, baseline: str) -> Callable[[bool], None]:
    """A function that turns the path under test on (True) or off (False) for ``side``."""
    if toggle == "native-at":
        ours, theirs = native._library(), _library_at(baseline)

        def library(on: bool) -> None:
            native._library = (lambda: ours) if on else (lambda: theirs)  # type: ignore[assignment]

        return library
    if toggle == "bias-in-matmul":
        folded = base.encoder_pre_activations

        def unfolded(*args, training: bool = False, **kwargs):  # type: ignore[no-untyped-def]
            return folded(*args, training=False, **kwargs)

        def bias(on: bool) -> None:
            base.encoder_pre_activations = folded if on else unfolded  # type: ignore[assignment]

        return bias
    if toggle == "native":
        return native.set_enabled
    if toggle in ("topk", "dense-gradient", "cached-decoder", "panel-decoder"):
        module, name = {
            "topk": (native, "topk_applies"),
            "dense-gradient": (encoder, "native_dense_gradient"),
            "cached-decoder": (decoder, "cached_native_backward"),
            "panel-decoder": (decoder, "panel_path"),
        }[toggle]
        original = getattr(module, name)

        def kernel(on: bool) -> None:
            setattr(module, name, original if on else lambda *args: False)

        return kernel
    if toggle == "panel-backward":
        panel: dict[str, Callable] = {}

        def backward(on: bool) -> None:
            panel.setdefault("kernel", native.panel_mm_backward)  # first called after --phases wraps the kernels
            native.panel_mm_backward = panel["kernel"] if on else native.csr_mm_backward  # type: ignore[assignment]

        return backward
    if toggle == "torch-threads":
        in_torch_threads = native._library()
        own_threads = native._load(native._build())

        def threads(on: bool) -> None:
            chosen = in_torch_threads if on else own_threads
            native._library = lambda: chosen  # type: ignore[assignment]

        return threads
    stepper = side.stepper

    def fused_encoder(on: bool) -> None:
        stepper._defer_encoder = on
        defer_encoder_gradient(side.sae.W_enc, stepper._receive if on else None)

    return fused_encoder


_PHASES = (
    "csr_mm",
    "csr_mm_backward",
    "panel_mm",
    "panel_mm_backward",
    "csr_t_sparse_mm",
    "dense_t_sparse_mm",
    "decoder_adam_step",
    "encoder_adam_step",
    "center_product",
    "topk",
)


def _time_phases(side: _TextsaeSide, seconds: dict[str, float]) -> None:
    """Add each native kernel's and ``optimizer.step``'s time to ``seconds`` from now on."""

    def timed(name: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start

        return wrapper

    for name in _PHASES:
        setattr(native, name, timed(name, getattr(native, name)))
    side.optimizer.step = timed("optimizer.step", side.optimizer.step)  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--toggle",
        choices=[
            "fused-encoder",
            "native",
            "topk",
            "dense-gradient",
            "cached-decoder",
            "panel-decoder",
            "panel-backward",
            "torch-threads",
            "native-at",
            "bias-in-matmul",
        ],
        default="fused-encoder",
    )
    parser.add_argument("--baseline", default="HEAD", help="git revision for --toggle native-at (default HEAD)")
    parser.add_argument("--input", choices=["dense", "sparse"], default="sparse")
    parser.add_argument("--d-in", type=int, default=30_000)
    parser.add_argument("--n-latents", type=int, default=4096)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--nnz", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--phases", action="store_true", help="time each native kernel and optimizer.step too")
    args = parser.parse_args()

    keep_freed_memory()  # as textsae's trainer and `textsae bench train` do
    shape = TrainShape(args.input, args.d_in, args.n_latents, args.k, args.batch, args.nnz)
    (side,) = _build_sides(shape, ["textsae"], torch.device("cpu"), seed=0)
    assert isinstance(side, _TextsaeSide)
    switch = _switch(side, args.toggle, args.baseline)
    x = make_batch(shape, 0, torch.device("cpu"))
    for _ in range(2):  # Adam's state, the allocator's reuse of freed blocks
        side.step(x)
    seconds: dict[str, list[float]] = {"on": [], "off": []}
    phase_seconds: defaultdict[str, float] = defaultdict(float)
    phases: dict[str, defaultdict[str, list[float]]] = {"on": defaultdict(list), "off": defaultdict(list)}
    if args.phases:
        _time_phases(side, phase_seconds)
    try:
        for _ in range(args.rounds):
            for setting in ("on", "off"):
                switch(setting == "on")
                side.step(x)
                phase_seconds.clear()
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                for _ in range(args.steps):
                    side.step(x)
                seconds[setting].append((time.perf_counter() - start) / args.steps)
                phases[setting]["page_faults"].append(
                    (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.steps
                )
                for name, value in phase_seconds.items():
                    phases[setting][f"{name}_ms"].append(1e3 * value / args.steps)
    finally:
        switch(True)
    ratios = [off / on for on, off in zip(seconds["on"], seconds["off"])]
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
                **vars(args),
                "seconds_per_step_median": {key: round(statistics.median(value), 3) for key, value in seconds.items()},
                "seconds_per_step": {key: [round(v, 3) for v in value] for key, value in seconds.items()},
                "ratio_off_over_on_median": round(statistics.median(ratios), 3),
                "ratio_off_over_on_range": [round(min(ratios), 3), round(max(ratios), 3)],
                **(
                    {
                        "phases_median": {
                            setting: {name: round(statistics.median(v), 1) for name, v in sorted(values.items())}
                            for setting, values in phases.items()
                        }
                    }
                    if args.phases
                    else {}
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
