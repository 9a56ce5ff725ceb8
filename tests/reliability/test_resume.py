"""SIGKILL during ``featurize``, ``train`` and ``encode``, then the same command again: the outputs equal an uninterrupted run.

Each command runs in its own process, started by a ``forkserver`` that has imported textsae once (a
fresh interpreter would spend seconds importing torch for every run), and is killed with a real
SIGKILL: by itself at named points (the ``TEXTSAE_TEST_KILL_AT`` hook in :mod:`textsae._io`: during a
file write, just before a manifest, after a training step or an encoded batch), with the counts
drawn from a fixed seed, and by the test after a seeded random delay. After the rerun, every file
must be byte-identical to an uninterrupted run's (CPU, fixed seeds) and no temporary or partial file
may survive.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from textsae._io import KILL_POINT_ENV

pytestmark = (
    pytest.mark.slow
)  # about 30 s of child processes on two CPU cores; CI runs it (``make test`` runs every marker)

SEED = 6
_RNG = np.random.default_rng(SEED)
N_TRAIN_STEPS = 5  # 182 training rows (192 sampled, 5% held out) in batches of 32
N_ENCODE_BATCHES = 7  # 200 documents in batches of 32


def _cli(argv: Sequence[str], cwd: str, kill_at: str | None) -> None:
    """Child process: run the CLI in ``cwd``, with the kill hook armed at ``kill_at``."""
    os.chdir(cwd)
    if kill_at:
        os.environ[KILL_POINT_ENV] = kill_at
    else:
        os.environ.pop(KILL_POINT_ENV, None)
    from textsae.cli.main import main

    sys.exit(main(list(argv)))


@pytest.fixture(scope="module")
def context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    # torch._dynamo is what torch.optim.Adam imports on first use: seconds that each child would pay again.
    ctx.set_forkserver_preload(
        ["textsae.cli.main", "textsae.cli.stages", "textsae.cli.encode", "textsae.pipeline", "torch._dynamo"]
    )
    return ctx


def run(
    ctx: multiprocessing.context.BaseContext,
    argv: Sequence[str | Path],
    cwd: Path,
    *,
    kill_at: str | None = None,
    kill_after_s: float | None = None,
) -> int:
    """Run the CLI in a child process; returns its exit code (``-9`` when SIGKILLed)."""
    cwd.mkdir(parents=True, exist_ok=True)
    process = ctx.Process(target=_cli, args=([str(a) for a in argv], str(cwd), kill_at))
    process.start()
    if kill_after_s is not None:
        process.join(kill_after_s)
        if process.exitcode is None:
            os.kill(process.pid, signal.SIGKILL)
    process.join(120)
    assert process.exitcode is not None, f"{argv} did not finish"
    return process.exitcode


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_outputs(got: Path, want: Path) -> None:
    got_files, want_files = snapshot(got), snapshot(want)
    leftovers = [name for name in got_files if Path(name).name.startswith(".tmp-") or Path(name).name == "writer.json"]
    assert not leftovers, f"stale temporary or partial files survived: {leftovers}"
    assert sorted(got_files) == sorted(want_files)
    different = [name for name in want_files if got_files[name] != want_files[name]]
    assert not different, f"files differ from the uninterrupted run: {different}"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory, tiny_corpus_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("resume_recipe") / "resume.yaml"
    path.write_text(
        "defaults: [featurizer/tfidf_small, sae/topk, train/cpu_small, eval/linear_probe]\n"
        f"data:\n  path: {tiny_corpus_dir}\n  max_docs: 192\n"
        "featurizer:\n  min_df: 1\n"
        "sae:\n  n_latents: 32\n  k: 4\n"
        "train:\n  epochs: 1\n  batch_size: 32\n  checkpoint_every: 2\n  log_every: 2\n  warmup_steps: 2\n"
        "runtime:\n  progress: false\n  device: cpu\n"
    )
    return path


@pytest.fixture(scope="module")
def reference(
    context: multiprocessing.context.BaseContext,
    recipe: Path,
    tiny_corpus_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """Uninterrupted featurize, train and encode, each in its own working directory."""
    root = tmp_path_factory.mktemp("reference")
    for stage in ("featurize", "train"):
        assert run(context, [stage, recipe, "-q"], root / stage) == 0
    encode_out = root / "encode" / "codes"
    assert run(context, encode_argv(trained_run_dir(root / "train"), tiny_corpus_dir, encode_out), root / "encode") == 0
    return {"featurize": root / "featurize", "train": root / "train", "encode": root / "encode"}


def trained_run_dir(cwd: Path) -> Path:
    (run_dir,) = (cwd / "runs" / "resume").iterdir()
    return run_dir


def encode_argv(run_dir: Path, corpus: Path, out: Path) -> list[str | Path]:
    return ["encode", run_dir, corpus / "test.parquet", "--out", out, "--batch-size", "32", "--shard-docs", "64", "-q"]


# Named kill points; the counts come from the seeded generator.
FEATURIZE_POINTS = ["write:vocab.json", "manifest#1", "write:data-00000.npy#2", "manifest#2", "manifest#4"]
TRAIN_POINTS = [
    f"train-step#{_RNG.integers(1, N_TRAIN_STEPS + 1)}",
    f"write:checkpoint.safetensors#{_RNG.integers(1, 4)}",  # during a checkpoint save (saves at steps 2, 4, 5)
    "manifest#3",  # just before the SAE's manifest (after the featurizer's and the features')
    "write:metrics.jsonl",
]
ENCODE_POINTS = [
    f"encode-batch#{_RNG.integers(1, N_ENCODE_BATCHES + 1)}",
    f"write:shard-0000{_RNG.integers(0, 4)}.npz",  # during a shard write
    "manifest",  # every shard in place, manifest not yet written
]
RANDOM_DELAYS = {
    stage: _RNG.uniform(0.02, 1.0, size=2).round(3).tolist() for stage in ("featurize", "train", "encode")
}  # seconds


@pytest.mark.parametrize("kill_at", FEATURIZE_POINTS)
def test_featurize_resumes(kill_at: str, context, recipe: Path, reference: dict[str, Path], tmp_path: Path) -> None:
    assert run(context, ["featurize", recipe, "-q"], tmp_path, kill_at=kill_at) == -signal.SIGKILL
    assert run(context, ["featurize", recipe, "-q"], tmp_path) == 0
    assert_same_outputs(tmp_path, reference["featurize"])


@pytest.mark.parametrize("kill_at", TRAIN_POINTS)
def test_train_resumes(kill_at: str, context, recipe: Path, reference: dict[str, Path], tmp_path: Path) -> None:
    if kill_at == "write:metrics.jsonl":  # a kill while the log is cut back on resume: two kills in a row
        assert run(context, ["train", recipe, "-q"], tmp_path, kill_at="train-step#5") == -signal.SIGKILL
    assert run(context, ["train", recipe, "-q"], tmp_path, kill_at=kill_at) == -signal.SIGKILL
    assert run(context, ["train", recipe, "-q"], tmp_path) == 0
    assert_same_outputs(tmp_path, reference["train"])


@pytest.mark.parametrize("kill_at", ENCODE_POINTS)
def test_encode_resumes(
    kill_at: str, context, reference: dict[str, Path], tiny_corpus_dir: Path, tmp_path: Path
) -> None:
    argv = encode_argv(trained_run_dir(reference["train"]), tiny_corpus_dir, tmp_path / "codes")
    assert run(context, argv, tmp_path, kill_at=kill_at) == -signal.SIGKILL
    assert run(context, argv, tmp_path) == 0
    assert_same_outputs(tmp_path, reference["encode"])


@pytest.mark.parametrize("stage", ["featurize", "train", "encode"])
def test_kill_after_a_random_delay(
    stage: str, context, recipe: Path, reference: dict[str, Path], tiny_corpus_dir: Path, tmp_path: Path
) -> None:
    """Kills wherever the seeded delays land (maybe after the command finished); each time the rerun completes the work."""
    if stage == "encode":
        argv = encode_argv(trained_run_dir(reference["train"]), tiny_corpus_dir, tmp_path / "codes")
    else:
        argv = [stage, recipe, "-q"]
    for delay in RANDOM_DELAYS[stage]:
        code = run(context, argv, tmp_path, kill_after_s=delay)
        assert code in (0, -signal.SIGKILL)
        if code == 0:  # the delay outlasted the command
            break
    else:
        assert run(context, argv, tmp_path) == 0
    assert_same_outputs(tmp_path, reference[stage])


def test_kill_hook_is_inert_unless_armed_for_the_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from textsae import _io

    monkeypatch.delenv(KILL_POINT_ENV, raising=False)
    _io.kill_point("manifest")  # would kill this very test process if it were armed
    monkeypatch.setenv(KILL_POINT_ENV, "write:*#1000000")
    _io.kill_point("manifest")
    _io.kill_point("write:x.json")
    assert _io._kill_counts == {"write:*": 1}
