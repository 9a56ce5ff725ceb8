"""Everything GPU-specific in one run: the GPU tests, a recipe end to end, training and extraction speed, encode.

Run through ``benchmarks/gpu_check.sh`` (which installs the bundle's wheels first), from the repository root:

    python benchmarks/gpu_check.py --bundle .gpu --out OUT [--device cuda|cpu]

``--device cpu`` runs the same flow at small sizes, to check the script on a machine without a GPU. Each step runs
as its own process with its own time limit; a step that fails or runs out of time is recorded and the next one
runs. Writes under OUT: one log per step, each step's JSON, and ``summary.json`` (machine, command, every step's
status and seconds, the measured numbers and the bars of the GPU issue, each marked met, not met or not measured).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BARS = {
    "extraction_vs_plain": 10.0,
    "extraction_vs_sentence_transformers": 1.5,
    "training_vs_sparsify": 4.0,
    "accuracy_points_from_cpu": 1.0,
}
"""On the H200: extraction >= 10x the plain loop and >= 1.5x SentenceTransformer.encode; the training step >= 4x
sparsify at d_in 768, 24,576 latents, k 32, batch 8,192; the recipe's codes within seed noise of the CPU run (1 point
on 20,000 test reviews is about 3 standard errors)."""

SIZES = {
    "cuda": {
        "train_shape": ["--d-in", "768", "--n-latents", "24576", "--k", "32", "--batch", "8192"],
        "featurize_docs": 20_000,
        "featurize_batch": 256,
        "featurize_repeats": 2,
        "recipe_overrides": [],
        "encode_docs": None,
    },
    "cpu": {
        "train_shape": ["--d-in", "64", "--n-latents", "512", "--k", "8", "--batch", "256"],
        "featurize_docs": 200,
        "featurize_batch": 64,
        "featurize_repeats": 1,
        "recipe_overrides": ["data.max_docs=300", "train.max_steps=300"],
        "encode_docs": 200,
    },
}


class Runner:
    """Runs steps as child processes, logging each to OUT/<name>.log and recording status and seconds."""

    def __init__(self, out: Path, env: dict[str, str]) -> None:
        self.out = out
        self.env = env
        self.steps: dict[str, dict[str, Any]] = {}

    def run(self, name: str, argv: list[str], *, timeout: int, stdout_json: bool = False) -> Any:
        """Run ``argv``; returns its stdout parsed as JSON when ``stdout_json``, else True on success (None on failure)."""
        log = self.out / f"{name}.log"
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {shlex.join(argv)}", flush=True)
        start = time.perf_counter()
        status, result = "ok", None
        try:
            done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
            log.write_text(f"$ {shlex.join(argv)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
            if done.returncode != 0:
                status = f"exit {done.returncode}"
            elif stdout_json:
                result = json.loads(done.stdout)
                (self.out / f"{name}.json").write_text(json.dumps(result, indent=2))
            else:
                result = True
        except subprocess.TimeoutExpired as exc:
            status = f"timed out after {timeout} s"
            log.write_text(f"$ {shlex.join(argv)}\n--- {status}\n{exc.stdout or ''}\n{exc.stderr or ''}")
        except json.JSONDecodeError as exc:
            status = f"stdout is not JSON ({exc})"
        seconds = time.perf_counter() - start
        self.steps[name] = {"status": status, "seconds": round(seconds, 1), "log": log.name}
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {status} in {seconds:.0f} s", flush=True)
        return result


def machine(device: str) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "machine": platform.node(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": gpu,
        "device": device,
    }


def _bar(value: float | None, bar: float, *, higher_is_better: bool = True) -> dict[str, Any]:
    if value is None:
        return {"value": None, "bar": bar, "verdict": "not measured"}
    met = value >= bar if higher_is_better else value <= bar
    return {"value": round(value, 4), "bar": bar, "verdict": "met" if met else "not met"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=Path(".gpu"), help="folder built by benchmarks/gpu_bundle.py")
    parser.add_argument("--out", type=Path, required=True, help="where logs, JSON and summary.json go")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cuda (default), or cpu to check")
    parser.add_argument("--work", type=Path, default=Path("/tmp/textsae-gpu-check"), help="run and store folders")
    args = parser.parse_args(argv)
    bundle, out, work, device = args.bundle.resolve(), args.out.resolve(), args.work.resolve(), args.device
    sizes = SIZES[device]
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    python = [sys.executable]
    textsae = [*python, "-m", "textsae"]
    runner = Runner(out, env)
    model, imdb = bundle / "minilm-fp16", bundle / "imdb"
    started = time.perf_counter()

    # 1. The GPU-marked tests (on CPU: the device tests, whose CUDA cases skip).
    tests = ["-m", "gpu", "tests"] if device == "cuda" else ["tests/devices"]
    runner.run(
        "pytest",
        [*python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *tests, "--junitxml", str(out / "pytest.xml")],
        timeout=240,
    )

    # 2. The general MiniLM recipe end to end on the IMDB slice (bf16 autocast on CUDA by default).
    settings = [
        f"data.path={imdb}",
        f"featurizer.model={model}",
        f"runtime.device={device}",
        f"store.dir={work / 'store'}",
        "runtime.progress=false",
        *sizes["recipe_overrides"],
    ]
    # Named by its settings: a rerun of the same check reuses its finished stages, and a folder left by another
    # version of this script (other settings) is never mistaken for this run's.
    run_dir = work / f"run-{hashlib.sha256(' '.join(settings).encode()).hexdigest()[:10]}"
    recipe = [*textsae, "run", "recipes/minilm_auto.yaml", *settings, f"run.dir={run_dir}"]
    report = None
    if runner.run("recipe", recipe, timeout=300):
        report = json.loads((run_dir / "report.json").read_text())
        (out / "recipe_report.json").write_text(json.dumps(report, indent=2, default=str))

    # 3. The training step against sparsify and plain PyTorch at the GPU shape (bf16 autocast on CUDA).
    train = runner.run(
        "bench_train",
        [*textsae, "bench", "train", "--input", "dense", *sizes["train_shape"], "--device", device, "--json"],
        timeout=180,
        stdout_json=True,
    )

    # 4. Extraction from raw text to stored features: textsae vs the plain loop vs SentenceTransformer.encode.
    featurize = runner.run(
        "bench_featurize",
        [
            *textsae,
            "bench",
            "featurize",
            "--data",
            str(imdb / "test.parquet"),
            "--max-docs",
            str(sizes["featurize_docs"]),
            "--max-length",
            "128",
            "--batch-size",
            str(sizes["featurize_batch"]),
            "--model",
            str(model),
            "--device",
            device,
            "--repeats",
            str(sizes["featurize_repeats"]),
            "--json",
        ],
        timeout=240,
        stdout_json=True,
    )

    # 5. Encode throughput: raw text to sparse codes with the recipe's run.
    encode_rate = None
    if report is not None:
        encode_input = imdb / "test.parquet"
        if sizes["encode_docs"]:
            import pandas as pd

            encode_input = work / "encode_input.parquet"
            pd.read_parquet(imdb / "test.parquet").iloc[: sizes["encode_docs"]].to_parquet(encode_input)
        start = time.perf_counter()
        argv_encode = [*textsae, "encode", str(run_dir), str(encode_input), "--out", str(work / "codes")]
        if runner.run("encode", [*argv_encode, "--device", device, "--overwrite", "-q"], timeout=180):
            import pyarrow.parquet as pq

            encode_rate = pq.ParquetFile(encode_input).metadata.num_rows / (time.perf_counter() - start)

    reference_path = bundle / "cpu_reference.json"
    reference = json.loads(reference_path.read_text()) if reference_path.exists() else None
    codes_accuracy = report["eval"]["codes"]["accuracy"] if report else None
    cpu_accuracy = reference["eval"]["codes"]["accuracy"] if reference else None
    gap = abs(codes_accuracy - cpu_accuracy) * 100 if codes_accuracy is not None and cpu_accuracy is not None else None
    case = train["cases"][0] if train else {}
    summary = {
        **machine(device),
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seconds": round(time.perf_counter() - started, 1),
        "steps": runner.steps,
        "recipe": {
            "eval": {name: row.get("accuracy") for name, row in (report or {}).get("eval", {}).items()},
            "sae": {
                key: (report or {}).get("sae", {}).get(key) for key in ("fvu", "l0", "dead_fraction", "training_steps")
            },
            "cpu_reference_codes_accuracy": cpu_accuracy,
        },
        "train": {key: case.get(key) for key in ("vec_per_s", "ratio_vs_sparsify", "ratio_spread", "autocast")},
        "featurize": {
            key: (featurize or {}).get(key)
            for key in ("plain", "textsae", "sentence_transformers", "speedup", "speedup_vs_sentence_transformers")
        },
        "encode_docs_per_s": encode_rate,
        "bars": {
            "extraction_vs_plain": _bar((featurize or {}).get("speedup"), BARS["extraction_vs_plain"]),
            "extraction_vs_sentence_transformers": _bar(
                (featurize or {}).get("speedup_vs_sentence_transformers"), BARS["extraction_vs_sentence_transformers"]
            ),
            "training_vs_sparsify": _bar(case.get("ratio_vs_sparsify"), BARS["training_vs_sparsify"]),
            "accuracy_points_from_cpu": _bar(gap, BARS["accuracy_points_from_cpu"], higher_is_better=False),
        },
        "note": None if device == "cuda" else "CPU flow check at small sizes: the bars apply to the H200 run only",
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps({key: summary[key] for key in ("gpu", "seconds", "steps", "bars")}, indent=2))
    return 0 if all(step["status"] == "ok" for step in runner.steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
